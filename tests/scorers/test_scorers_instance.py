"""Instance metrics against hand-computed cases, a naive StarDist-style
reference built on scipy, a loop-by-loop port of the 2017 CVPPP script, and
property tests."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.optimize import linear_sum_assignment as scipy_lsa

import scorers
from scorers.assignment import linear_sum_assignment, match_candidates
from scorers.instance import IOU_THRESHOLDS

# --- hand-computed -----------------------------------------------------------


@pytest.fixture
def inst_pair() -> tuple[np.ndarray, np.ndarray]:
    """Truth: 4x4 square id 3, 3x3 square id 7. Prediction: 4x3 part of the
    first (id 1), the second exactly (id 2), one stray pixel (id 5)."""
    t = np.zeros((10, 10), np.uint16)
    t[1:5, 1:5] = 3
    t[6:9, 6:9] = 7
    p = np.zeros((10, 10), np.uint16)
    p[1:5, 1:4] = 1
    p[6:9, 6:9] = 2
    p[0, 9] = 5
    return t, p


def test_hand_computed_dice_family(inst_pair):
    t, p = inst_pair
    d1 = 2 * 12 / (16 + 12)  # pred 1 vs truth 3
    assert scorers.best_dice(t, p) == pytest.approx((d1 + 1.0 + 0.0) / 3)
    assert scorers.best_dice(p, t) == pytest.approx((d1 + 1.0) / 2)
    assert scorers.symmetric_best_dice(t, p) == pytest.approx((d1 + 1.0) / 3)
    assert scorers.dic(t, p) == 1
    assert scorers.abs_dic(p, t) == 1
    assert scorers.foreground_dice(t, p) == pytest.approx(2 * 21 / (25 + 22))


def test_hand_computed_matching(inst_pair):
    t, p = inst_pair
    m = scorers.match_instances(t, p)
    iou1 = 12 / 16
    by_thr = {x.threshold: x for x in m}
    assert [x.threshold for x in m] == list(IOU_THRESHOLDS)
    assert (by_thr[0.75].tp, by_thr[0.75].fp, by_thr[0.75].fn) == (2, 1, 0)  # 0.75 >= 0.75
    assert (by_thr[0.8].tp, by_thr[0.8].fp, by_thr[0.8].fn) == (1, 2, 1)
    assert by_thr[0.5].precision == pytest.approx(2 / 3)
    assert by_thr[0.5].recall == 1.0
    assert by_thr[0.5].f1 == pytest.approx(4 / 5)
    assert by_thr[0.5].ap == pytest.approx(2 / 3)
    assert by_thr[0.5].mean_iou == pytest.approx((iou1 + 1) / 2)
    assert by_thr[0.5].pq == pytest.approx((iou1 + 1) / (2 + 0.5))


def test_exact_decimal_threshold_at_tie():
    # IoU exactly 11/20 must match at 0.55 (np.arange would give 0.5500000000000002).
    t = np.zeros((1, 20), np.uint8)
    t[0, :11] = 1
    p = np.zeros((1, 20), np.uint8)
    p[0, :20] = 1
    (m,) = scorers.match_instances(t, p, thresholds=[0.55])
    assert m.tp == 1
    (m,) = scorers.match_instances(t, p, thresholds=["0.5500001"])
    assert m.tp == 0


def test_half_iou_ties_are_resolved_one_to_one():
    # One true object split exactly in halves: both halves have IoU 0.5.
    t = np.ones((2, 4), np.uint8)
    p = np.array([[1, 1, 2, 2], [1, 1, 2, 2]], np.uint8)
    (m,) = scorers.match_instances(t, p, thresholds=[0.5])
    assert (m.tp, m.fp, m.fn) == (1, 1, 0)
    assert m.mean_iou == 0.5


def test_empty_conventions():
    z = np.zeros((5, 5), np.uint16)
    one = z.copy()
    one[1:3, 1:3] = 4
    assert scorers.symmetric_best_dice(z, z) == 1.0
    assert scorers.symmetric_best_dice(z, one) == 0.0
    assert scorers.foreground_dice(z, z) == 1.0
    m = scorers.match_instances(z, z)[0]
    assert (m.tp, m.fp, m.fn, m.precision, m.f1, m.pq) == (0, 0, 0, 0.0, 0.0, 0.0)
    m = scorers.match_instances(one, z)[0]
    assert (m.fn, m.recall) == (1, 0.0)


def test_pooled_vs_by_image(inst_pair):
    t, p = inst_pair
    z = np.zeros_like(t)
    stack_t, stack_p = np.stack([t, t]), np.stack([p, z])
    pooled = scorers.instance_segmentation(stack_t, stack_p, stack=True)
    by_image = scorers.instance_segmentation(stack_t, stack_p, stack=True, by_image=True)
    # pooled: tp 2, fp 1, fn 2 at 0.5; by image: mean of 2/3 and 0
    assert pooled["ap50"] == pytest.approx(2 / 5)
    assert by_image["ap50"] == pytest.approx((2 / 3 + 0) / 2)
    assert pooled["tp_50"] == 2 and pooled["fn_50"] == 2
    assert pooled["dic"] == pytest.approx((1 + -2) / 2)
    assert pooled["abs_dic"] == pytest.approx((1 + 2) / 2)
    assert pooled["ap"] == pytest.approx(np.mean([pooled[f"ap{k}"] for k in range(50, 100, 5)]))


def test_non_consecutive_and_wide_ids():
    t = np.zeros((6, 6), np.int64)
    t[:3, :3] = 10**12
    t[3:, 3:] = 5
    p = np.zeros((6, 6), np.uint32)
    p[:3, :3] = 4_000_000_000
    p[3:, 3:] = 17
    assert scorers.symmetric_best_dice(t, p) == 1.0
    assert scorers.match_instances(t, p)[-1].tp == 2


# --- independent reference: naive masks + scipy, StarDist semantics -----------


def naive_matching(t, p, thr):
    tids = [i for i in np.unique(t) if i != 0]
    pids = [j for j in np.unique(p) if j != 0]
    iou = np.zeros((len(tids), len(pids)))
    for a, i in enumerate(tids):
        for b, j in enumerate(pids):
            inter = np.sum((t == i) & (p == j))
            iou[a, b] = inter / np.sum((t == i) | (p == j))
    n = min(len(tids), len(pids))
    if n == 0:
        return 0, len(pids), len(tids), 0.0
    cost = -(iou >= thr).astype(float) - iou / (2 * n)
    r, c = scipy_lsa(cost)
    ok = iou[r, c] >= thr
    return int(ok.sum()), len(pids) - int(ok.sum()), len(tids) - int(ok.sum()), float(iou[r, c][ok].sum())


def naive_best_dice(a, b):
    aids = [i for i in np.unique(a) if i != 0]
    bids = [j for j in np.unique(b) if j != 0]
    if not aids:
        return 1.0 if not bids else 0.0
    best = []
    for i in aids:
        ma = a == i
        best.append(max([2 * np.sum(ma & (b == j)) / (ma.sum() + np.sum(b == j)) for j in bids] or [0]))
    return float(np.mean(best))


label_images = arrays(np.uint8, st.tuples(st.integers(1, 7), st.integers(1, 7)), elements=st.integers(0, 5))


@settings(max_examples=60, deadline=None)
@given(label_images, st.data())
def test_matches_naive_reference(t, data):
    p = data.draw(arrays(np.uint8, t.shape, elements=st.integers(0, 5)))
    thresholds = (0.1, 0.3, 0.5, 0.55, 0.75)
    for m, thr in zip(scorers.match_instances(t, p, thresholds=thresholds), thresholds, strict=True):
        tp, fp, fn, s = naive_matching(t, p, thr)
        assert (m.tp, m.fp, m.fn) == (tp, fp, fn)
        if thr >= 0.5:  # below 0.5 StarDist's tie-break may pick a different, equal-count set
            assert m.iou_sum == pytest.approx(s)
    assert scorers.best_dice(t, p) == pytest.approx(naive_best_dice(p, t))
    assert scorers.best_dice(p, t) == pytest.approx(naive_best_dice(t, p))


# --- properties ---------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(label_images, st.data())
def test_permutation_invariance_and_symmetry(t, data):
    p = data.draw(arrays(np.uint8, t.shape, elements=st.integers(0, 5)))
    perm = np.concatenate([[0], 1 + np.array(data.draw(st.permutations(range(255))))]).astype(np.uint16)
    tp = perm[t] * 7  # permuted, non-consecutive, different dtype
    a = scorers.instance_segmentation(t, p)
    b = scorers.instance_segmentation(tp, p)
    assert a == pytest.approx(b)
    assert scorers.symmetric_best_dice(t, p) == pytest.approx(scorers.symmetric_best_dice(p, t))
    for m, r in zip(scorers.match_instances(t, p), scorers.match_instances(p, t), strict=True):
        assert (m.tp, m.fp, m.fn) == (r.tp, r.fn, r.fp)
    assert scorers.symmetric_best_dice(t, t) == 1.0
    assert 0.0 <= a["sbd"] <= 1.0 and 0.0 <= a["pq_50"] <= 1.0


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 9), st.integers(1, 9)),
              elements=st.floats(-10, 10)))
def test_assignment_matches_scipy(cost):
    r, c = linear_sum_assignment(cost)
    sr, sc = scipy_lsa(cost)
    assert len(r) == len(sr) and len(set(r)) == len(r) and len(set(c)) == len(c)
    assert cost[r, c].sum() == pytest.approx(cost[sr, sc].sum())


def test_match_candidates_prefers_count_then_score():
    # rows 0,1 / cols 0,1: edges (0,0) .9, (0,1) .6, (1,0) .6 -> two matches beat one better one
    chosen = match_candidates(np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([0.9, 0.6, 0.6]))
    assert chosen.tolist() == [False, True, True]


# --- legacy CVPPP: a loop-by-loop port of the 2017 script ----------------------


def script_dice(a, b, i, j):
    ma, mb = a == i, b == j
    s = ma.sum() + mb.sum()
    return 2 * np.sum(ma & mb) / s if s > 1e-8 else 0


def script_best_dice(a, b):
    if a.shape != b.shape:
        return 0
    lo, hi, glo, ghi = int(a.min()), int(a.max()), int(b.min()), int(b.max())
    if hi == lo:
        return 0
    score = 0.0
    for i in range(lo + 1, hi + 1):
        score += max([script_dice(a, b, i, j) for j in range(glo + 1, ghi + 1)] or [0])
    return score / (hi - lo)


def script_fg(a, b):
    return script_dice((a != a.min()).astype(int), (b != b.min()).astype(int), 1, 1)


@settings(max_examples=40, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 6), st.integers(1, 6)), elements=st.integers(0, 6)),
       st.data())
def test_legacy_matches_script(t, data):
    p = data.draw(arrays(np.uint8, t.shape, elements=st.integers(0, 6)))
    sbd = min(script_best_dice(p, t), script_best_dice(t, p))
    assert scorers.symmetric_best_dice(t, p, legacy_cvppp=True) == pytest.approx(sbd)
    assert scorers.best_dice(t, p, legacy_cvppp=True) == pytest.approx(script_best_dice(p, t))
    expected_dic = (int(p.max()) - int(p.min())) - (int(t.max()) - int(t.min()))
    assert scorers.dic(t, p, legacy_cvppp=True) == expected_dic
    assert scorers.foreground_dice(t, p, legacy_cvppp=True) == pytest.approx(script_fg(p, t))
    # every metric at once, from the one table the matching uses too
    score = scorers.score_instances(t, p, legacy_cvppp=True)
    assert (score.sbd, score.best_dice, score.best_dice_truth, score.fg_dice) == pytest.approx(
        (sbd, script_best_dice(p, t), script_best_dice(t, p), script_fg(p, t)))
    assert score.matches == scorers.score_instances(t, p).matches
    # negative values: the script only compares values, so a shift changes nothing
    ts, ps = t.astype(np.int16) - 3, p.astype(np.int16) - 7
    assert scorers.symmetric_best_dice(ts, ps, legacy_cvppp=True) == pytest.approx(sbd)
    assert scorers.foreground_dice(ts, ps, legacy_cvppp=True) == pytest.approx(script_fg(p, t))


def test_legacy_known_behaviour():
    z = np.zeros((4, 4), np.uint8)
    assert scorers.symmetric_best_dice(z, z, legacy_cvppp=True) == 0.0
    assert scorers.foreground_dice(z, z, legacy_cvppp=True) == 0.0
    t = z.copy()
    t[0, 0], t[1, 1] = 1, 3  # id 2 absent: still counts in the divisor
    assert scorers.best_dice(p := t.copy(), t, legacy_cvppp=True) == pytest.approx(2 / 3)
    assert scorers.dic(t, p[:, :3], legacy_cvppp=True) == -1
    assert scorers.abs_dic(t, p[:, :3], legacy_cvppp=True) == 1  # |DiffFGLabels| = |-1|
    assert scorers.symmetric_best_dice(t, p[:, :3], legacy_cvppp=True) == 0.0
    assert scorers.foreground_dice(t, p[:, :3], legacy_cvppp=True) == 0.0
    # background is the lowest value, here 5
    assert scorers.symmetric_best_dice(t + 5, p + 5, legacy_cvppp=True) == pytest.approx(2 / 3)
    out = scorers.instance_segmentation(t, p[:, :3], legacy_cvppp=True)
    assert (out["sbd"], out["dic"], out["abs_dic"], out["fg_dice"], out["tp_50"]) == (
        0.0, -1.0, 1.0, 0.0, 0.0)


def script_diff_fg(a, b):
    """DiffFGLabels of the 2017 script (a: prediction, b: truth)."""
    if a.shape != b.shape:
        return -1
    return (int(a.max()) - int(a.min())) - (int(b.max()) - int(b.min()))


def script_abs_diff_fg(a, b):
    """AbsDiffFGLabels of the 2017 script: np.abs(DiffFGLabels(a, b))."""
    return np.abs(script_diff_fg(a, b))


@settings(max_examples=60, deadline=None)
@given(arrays(np.uint8, st.tuples(st.integers(1, 5), st.integers(1, 5)), elements=st.integers(0, 6)),
       arrays(np.uint8, st.tuples(st.integers(1, 5), st.integers(1, 5)), elements=st.integers(0, 6)))
def test_legacy_dic_and_abs_dic_match_script_on_any_shapes(t, p):
    expected_abs = script_abs_diff_fg(p, t)
    assert scorers.dic(t, p, legacy_cvppp=True) == script_diff_fg(p, t)
    assert scorers.abs_dic(t, p, legacy_cvppp=True) == expected_abs >= 0
    score = scorers.score_instances(t, p, legacy_cvppp=True)
    assert (score.dic, score.abs_dic) == (script_diff_fg(p, t), expected_abs)
    assert scorers.instance_segmentation(t, p, legacy_cvppp=True)["abs_dic"] == expected_abs


# --- speed and memory on a mid-size image (the 2048 figures are in benchmarks/) --


def test_memory_stays_proportional():
    import tracemalloc

    # 32 x 32 grid of 16-pixel tiles, prediction shifted by 3 pixels
    t = np.kron(np.arange(1, 1025, dtype=np.uint16).reshape(32, 32), np.ones((16, 16), np.uint16))
    p = np.roll(t, 3, axis=(0, 1))
    tracemalloc.start()
    scorers.score_instances(t, p)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    table = 8 * 1025 * 1025  # the dense (n_true + 1) x (n_pred + 1) int64 table
    assert peak < 16 * t.size + table  # codes and pair key: ~12 bytes per pixel


def _long_run_pair(rng, shape, n_objects):
    """Label images of rectangles: long runs along rows, as real label images have."""
    t = np.zeros(shape, np.uint16)
    p = np.zeros(shape, np.uint16)
    for img, ids in ((t, rng.choice(60000, n_objects, replace=False) + 1),
                     (p, rng.choice(60000, n_objects, replace=False) + 1)):
        for i in ids:
            y, x = rng.integers(0, shape[0]), rng.integers(0, shape[1])
            img[y:y + rng.integers(1, 30), x:x + rng.integers(1, 40)] = i
    return t, p


@pytest.mark.parametrize("seed", range(6))
def test_run_length_path_equals_pixel_path(monkeypatch, seed):
    import scorers.overlap as overlap

    rng = np.random.default_rng(seed)
    t, p = _long_run_pair(rng, (128, 96), int(rng.integers(1, 60)))
    assert overlap._runs(t.reshape(-1), p.reshape(-1)) is not None  # the run path is taken
    runs = overlap.label_overlap(t, p)
    by_runs = (scorers.score_instances(t, p), scorers.score_instances(t, p, legacy_cvppp=True))
    monkeypatch.setattr(overlap, "_RUN_GAIN", 10**9)  # never worth it: pixel by pixel
    assert overlap._runs(t.reshape(-1), p.reshape(-1)) is None
    pixels = overlap.label_overlap(t, p)
    for name in ("truth_ids", "pred_ids", "truth_areas", "pred_areas", "rows", "cols",
                 "intersections"):
        assert np.array_equal(getattr(runs, name), getattr(pixels, name)), name
        assert getattr(runs, name).dtype.kind == getattr(pixels, name).dtype.kind, name
    assert by_runs == (scorers.score_instances(t, p), scorers.score_instances(t, p, legacy_cvppp=True))
    for m, naive in zip(scorers.match_instances(t, p, thresholds=(0.5, 0.7)),
                        (naive_matching(t, p, 0.5), naive_matching(t, p, 0.7)), strict=True):
        assert (m.tp, m.fp, m.fn) == naive[:3]


def test_pair_sums_wide_codes_and_long_runs():
    import scorers.overlap as overlap

    key = np.array([5, 2**40, 5, 3, 2**40], dtype=np.int64)  # beyond the packed sort's 31 bits
    lengths = np.array([1, 2, 3, 2**33, 4], dtype=np.int64)
    pairs, sums = overlap._pair_sums(key, lengths)
    assert pairs.tolist() == [3, 5, 2**40] and sums.tolist() == [2**33, 4, 6]
    pairs, sums = overlap._pair_sums(np.array([7, 1, 7], np.int64), np.array([2, 3, 4], np.int64))
    assert pairs.tolist() == [1, 7] and sums.tolist() == [3, 6]


def test_sparse_and_unique_paths_agree_with_dense(monkeypatch):
    import scorers.overlap as overlap

    rng = np.random.default_rng(5)
    t = np.repeat(rng.permutation(1500) + 1, 4).astype(np.uint32)
    p = np.roll(t, 1)
    dense = scorers.score_instances(t, p)  # 1501^2 cells: the dense table
    assert dense.matches[0].tp == 1500 and dense.sbd == pytest.approx(0.75)
    monkeypatch.setattr(overlap, "_DENSE_MIN_CELLS", 0)
    assert scorers.score_instances(t, p) == dense  # sparse pair sort
    monkeypatch.setattr(overlap, "_LUT_MAX_ID", 0)
    assert scorers.score_instances(t, p) == dense  # np.unique compaction
    wide = p.astype(np.uint64) * np.uint64(10**12)
    assert scorers.score_instances(t, wide) == dense
