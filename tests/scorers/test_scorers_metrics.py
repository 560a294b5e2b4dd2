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


def test_pearson_r_huge_values_do_not_overflow():
    import warnings

    t, p = [1e200, 2e200, 3e200], [3e200, 2e200, 1e200]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow, no invalid value on the way
        assert scorers.pearson_r(t, p) == pearsonr(t, p)[0] == -1.0
        assert scorers.pearson_r([1e-310, 2e-310, 5e-310], [1.0, 2.0, 3.0]) == pytest.approx(
            pearsonr([1, 2, 5], [1, 2, 3])[0], abs=1e-15)  # subnormals: no underflow to 0
        # near 1e308, where scipy's own mean overflows: scipy on the same values halved
        big = np.array([1.7e308, -1.7e308, 0.9e308, 1.1e308])
        other = np.array([1.0, 3.0, 2.0, -5.0])
        assert scorers.pearson_r(big, other) == pytest.approx(pearsonr(big / 4, other)[0], abs=1e-15)
        assert scorers.pearson_r([1e308, 1e308], [1.0, 2.0]) == 0.0  # constant: the policy


@pytest.mark.parametrize("seed", range(20))
def test_pearson_r_matches_scipy_at_any_magnitude(seed):
    import warnings

    rng = np.random.default_rng(seed)
    for _ in range(100):
        n = int(rng.integers(2, 60))
        scale_t, scale_p = 10.0 ** rng.integers(-300, 300, 2)
        t = (rng.normal(size=n) + rng.normal() * 10.0 ** rng.integers(0, 9)) * scale_t
        p = (rng.normal(size=n) + rng.normal() * (t / scale_t)) * scale_p
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = pearsonr(t, p)[0]
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            got = scorers.pearson_r(t, p)
        if np.ptp(t) == 0 or np.ptp(p) == 0:
            assert got == 0.0
        else:
            assert np.isfinite(expected)
            assert got == pytest.approx(expected, abs=1e-12)


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


# --- ROC AUC: binary with any two labels, multiclass one-vs-rest ----------------------------

BINARY_LABELS = [(0, 1), (1000, 2000), (-1, 1), ("F", "M"), (False, True), (2.0, 7.0)]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("pair", BINARY_LABELS, ids=str)
def test_roc_auc_binary_any_labels_matches_sklearn(pair, seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 90))
    idx = rng.integers(0, 2, n)
    idx[:2] = (0, 1)
    t = np.array(pair)[rng.permutation(idx)]
    s = rng.normal(size=n) * 10.0 ** rng.integers(-5, 5) if seed % 2 else rng.integers(0, 4, n) / 3
    # scikit-learn's binary convention: the larger label is the positive class
    assert scorers.roc_auc(t, s) == pytest.approx(skm.roc_auc_score(t, s), abs=1e-12)
    for pos in pair:
        fpr, tpr, _ = skm.roc_curve(t, s, pos_label=pos)
        assert scorers.roc_auc(t, s, pos_label=pos) == pytest.approx(skm.auc(fpr, tpr), abs=1e-12)
    # two columns, one per class in sorted order (or named by labels): the positive's column
    two = np.column_stack([1 - s, s])
    assert scorers.roc_auc(t, two) == pytest.approx(skm.roc_auc_score(t, s), abs=1e-12)
    assert scorers.roc_auc(t, two[:, ::-1], labels=list(pair[::-1])) == pytest.approx(
        skm.roc_auc_score(t, s), abs=1e-12)


def _multiclass_case(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(3, 8))
    n = int(rng.integers(k, 150))
    classes = (np.sort(rng.choice(10_000, k, replace=False)) if seed % 3
               else np.array(sorted(f"class-{i}" for i in rng.choice(99, k, replace=False))))
    idx = rng.integers(0, k, n)
    idx[:k] = np.arange(k)
    t = classes[rng.permutation(idx)]
    if seed % 2:
        raw = rng.integers(0, 4, (n, k)) + 1.0  # coarse: many ties in every column
    else:
        raw = rng.dirichlet(np.ones(k), n)
    return rng, classes, t, raw / raw.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", range(60))
def test_roc_auc_multiclass_ovr_macro_matches_sklearn(seed):
    rng, classes, t, probs = _multiclass_case(seed)
    expected = skm.roc_auc_score(t, probs, multi_class="ovr", average="macro")
    assert scorers.roc_auc(t, probs) == pytest.approx(expected, abs=1e-12)
    assert scorers.roc_auc(t, probs, labels=classes) == pytest.approx(
        skm.roc_auc_score(t, probs, multi_class="ovr", average="macro", labels=classes), abs=1e-12)
    # columns in another order, named by labels (scikit-learn insists on sorted labels)
    perm = rng.permutation(len(classes))
    assert scorers.roc_auc(t, probs[:, perm], labels=classes[perm]) == pytest.approx(expected, abs=1e-12)
    # scores that are not probabilities: each column still ranks its class against the rest
    scores = np.log(probs + 1e-3) * 7 - 3
    per_class = [skm.roc_auc_score(t == c, scores[:, j]) for j, c in enumerate(classes)]
    assert scorers.roc_auc(t, scores) == pytest.approx(np.mean(per_class), abs=1e-12)


@pytest.mark.parametrize(
    ("truth", "scores", "options", "match"),
    [
        ([1, 1, 1], [0.1, 0.2, 0.3], {}, "two classes"),
        ([0, 1, 2], [0.1, 0.2, 0.3], {}, r"one score column per class, shape \(3, 3\)"),
        ([0, 1, 2], np.eye(3)[:, :2], {}, "2 columns but the truth has 3 classes"),
        ([0, 1, 2, 3], np.eye(4)[:, :3], {"labels": [0, 1, 2]}, "class.* 3 without a score column"),
        ([0, 1, 2], np.eye(3), {"labels": [0, 1, 1]}, "each class once"),
        ([0, 1, 1], np.eye(3), {"labels": [0, 1, 2]}, "class.* 2 never occur"),
        ([0, 1, 2], np.eye(3), {"labels": ["a", "b", "c"]}, "truth's class labels"),
        ([0, 1, 2], np.eye(3), {"pos_label": 1}, "binary task"),
        ([1000, 2000], [0.1, 0.2], {"pos_label": 1}, "positive class 1 does not occur"),
        (["a", "b"], [0.1, 0.2], {"pos_label": 1}, "positive class 1 does not occur"),
        ([0, 1], [0.1, 0.2], {"labels": [0, 1]}, "pos_label instead"),
        ([0, 1], [0.1, np.nan], {}, "NaN or infinite"),
        ([0, 1], [[0.1, np.inf], [0.2, 0.8]], {}, "first at row 0"),
        ([0, 1], np.zeros((2, 2, 2)), {}, "1-D .binary. or 2-D"),
        ([0, 1], [[1.0], [0.0]], {}, "at least 2"),
        ([0, 1, 1], [0.1, 0.2], {}, "differ in length"),
        ([0, 1], ["a", "b"], {}, "must be numbers"),
    ],
)
def test_roc_auc_refuses_bad_input_clearly(truth, scores, options, match):
    with pytest.raises(scorers.ScorerError, match=match):
        scorers.roc_auc(truth, scores, **options)


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
