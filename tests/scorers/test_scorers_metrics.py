"""Pixel, regression, classification and interval metrics against scikit-learn,
scipy and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import pearsonr

import scorers

masks = arrays(bool, st.integers(1, 40))


@settings(max_examples=50, deadline=None)
@given(masks, st.data())
def test_pixel_metrics_match_sklearn(t, data):
    p = data.draw(arrays(bool, t.shape))
    both_empty = not t.any() and not p.any()
    zd = 1.0 if both_empty else 0.0
    assert scorers.mask_dice(t, p) == pytest.approx(skm.f1_score(t, p, zero_division=zd))
    assert scorers.mask_f1(t, p) == pytest.approx(skm.f1_score(t, p, zero_division=zd))
    assert scorers.mask_jaccard(t, p) == pytest.approx(skm.jaccard_score(t, p, zero_division=zd))
    assert scorers.mask_accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    assert scorers.mask_precision(t, p) == pytest.approx(skm.precision_score(t, p, zero_division=zd))
    assert scorers.mask_recall(t, p) == pytest.approx(skm.recall_score(t, p, zero_division=zd))


def test_pixel_empty_option():
    z = np.zeros((3, 3), bool)
    assert scorers.mask_dice(z, z) == 1.0
    assert scorers.mask_dice(z, z, empty=0.0) == 0.0
    assert scorers.mask_jaccard(z, z, empty=0.5) == 0.5
    one = z.copy()
    one[0, 0] = True
    assert scorers.mask_precision(one, z) == 0.0
    assert scorers.mask_recall(z, one) == 0.0


floats = st.floats(-1e3, 1e3, allow_nan=False)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(floats, floats), min_size=2, max_size=30))
def test_regression_matches_sklearn_scipy(pairs):
    t = np.array([a for a, _ in pairs])
    p = np.array([b for _, b in pairs])
    assert scorers.r2(t, p) == pytest.approx(skm.r2_score(t, p), abs=1e-9)
    assert scorers.mae(t, p) == pytest.approx(skm.mean_absolute_error(t, p))
    assert scorers.rmse(t, p) == pytest.approx(math.sqrt(skm.mean_squared_error(t, p)))
    assert scorers.mean_bias_error(t, p) == pytest.approx(np.mean(p - t), abs=1e-9)
    if np.ptp(t) > 1e-6 and np.ptp(p) > 1e-6:
        assert scorers.pearson_r(t, p) == pytest.approx(pearsonr(t, p)[0], abs=1e-9)
    if np.all(np.abs(t) > 1e-3):
        assert scorers.mean_relative_error(t, p) == pytest.approx(
            skm.mean_absolute_percentage_error(t, p)
        )


def test_regression_hand_values_and_edges():
    t, p = [1.0, 2.0, 4.0], [2.0, 2.0, 3.0]
    assert scorers.mean_bias_error(t, p) == pytest.approx(0.0)
    assert scorers.mean_relative_error(t, p) == pytest.approx((1 + 0 + 0.25) / 3)
    assert scorers.r2([3, 3], [3, 3]) == 1.0
    assert scorers.r2([3, 3], [3, 4]) == 0.0
    assert scorers.pearson_r([1, 2, 3], [5, 5, 5]) == 0.0
    with pytest.raises(scorers.ScorerError, match="0"):
        scorers.mean_relative_error([0.0, 1.0], [1.0, 1.0])


labels = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), min_size=1, max_size=40)


@settings(max_examples=50, deadline=None)
@given(labels)
def test_classification_matches_sklearn(pairs):
    t = np.array([a for a, _ in pairs])
    p = np.array([b for _, b in pairs])
    assert scorers.accuracy(t, p) == pytest.approx(skm.accuracy_score(t, p))
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected_bal = skm.balanced_accuracy_score(t, p)
    assert scorers.balanced_accuracy(t, p) == pytest.approx(expected_bal)
    assert scorers.f1(t, p, average="macro") == pytest.approx(
        skm.f1_score(t, p, average="macro", zero_division=0)
    )
    tb, pb = t % 2, p % 2
    assert scorers.f1(tb, pb) == pytest.approx(skm.f1_score(tb, pb, zero_division=0))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 5)), min_size=2, max_size=40))
def test_roc_auc_matches_sklearn(pairs):
    t = np.array([a for a, _ in pairs], dtype=int)
    s = np.array([b for _, b in pairs], dtype=float)  # many ties
    if len(set(t)) < 2:
        with pytest.raises(scorers.ScorerError, match="two classes"):
            scorers.roc_auc(t, s)
        return
    assert scorers.roc_auc(t, s) == pytest.approx(skm.roc_auc_score(t, s))


def test_classification_strings():
    t = ["M", "F", "F", "M"]
    p = ["M", "M", "F", "M"]
    assert scorers.accuracy(t, p) == 0.75
    assert scorers.f1(t, p, pos_label="F") == pytest.approx(2 / 3)
    with pytest.raises(scorers.ScorerError, match="same label type"):
        scorers.accuracy(t, [1, 0, 0, 1])


def released_quantiles_score(mu, p16, p84, eps=1e-3):
    """FAIR-Universe scoring_program Quantiles_Score, restated for the test."""
    interval = np.mean(np.abs(p84 - p16))
    coverage = np.mean((mu >= p16) & (mu <= p84))
    n, one_sigma = mu.shape[0], 0.6827
    sigma68 = np.sqrt((1 - one_sigma) * one_sigma * n) / n
    if one_sigma - 2 * sigma68 <= coverage <= one_sigma + 2 * sigma68:
        f = 1.0
    elif coverage < one_sigma - 2 * sigma68:
        f = 1 + abs((coverage - (one_sigma - 2 * sigma68)) / sigma68) ** 4
    else:
        f = 1 + abs((coverage - (one_sigma + 2 * sigma68)) / sigma68) ** 3
    return interval, coverage, -np.log((interval + eps) * f)


@pytest.mark.parametrize("half_width", [0.05, 0.5, 1.0, 3.0])
def test_coverage_score_matches_released_program(half_width):
    rng = np.random.default_rng(3)
    mu = rng.normal(1.0, 0.5, 100)
    centre = mu + rng.normal(0, 1.0, 100)
    lo, hi = centre - half_width, centre + half_width
    out = scorers.coverage_score(mu, lo, hi, confidence=0.6827, epsilon=1e-3)
    w, c, s = released_quantiles_score(mu, lo, hi)
    assert (out["width"], out["coverage"]) == pytest.approx((w, c))
    assert out["score"] == pytest.approx(s)


def test_coverage_score_hand_computed():
    # N = 100, confidence 0.68: sigma = sqrt(.68 * .32 / 100) = 0.046648...
    mu = np.zeros(100)
    lo = np.full(100, -1.0)
    hi = np.full(100, 1.0)
    hi[:10] = -0.5  # 10 intervals miss (upper bound below 0) -> c = 0.9
    lo[:10] = -1.5
    sigma = math.sqrt(0.68 * 0.32 / 100)
    upper = 0.68 + 2 * sigma
    f = 1 + abs((0.9 - upper) / sigma) ** 3
    out = scorers.coverage_score(mu, lo, hi)
    assert out["coverage"] == pytest.approx(0.9)
    assert out["width"] == pytest.approx(2.0 * 0.9 + 1.0 * 0.1)
    assert out["penalty"] == pytest.approx(f)
    assert out["score"] == pytest.approx(-math.log((1.9 + 1e-2) * f))
    # closed interval: the truth on a bound counts as covered
    assert scorers.coverage_score([1.0], [1.0], [2.0])["coverage"] == 1.0
    below = 0.68 - 2 * sigma - 0.1
    assert scorers.coverage_penalty(below, 100) == pytest.approx(1 + (0.1 / sigma) ** 4)
    assert scorers.coverage_penalty(0.68, 100) == 1.0


def test_coverage_score_rejects_inverted_intervals():
    with pytest.raises(scorers.ScorerError, match="p84 is below p16"):
        scorers.coverage_score([0.0, 0.0], [1.0, -1.0], [0.0, 1.0])
