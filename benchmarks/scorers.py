"""Benchmark the instance scorers on a 2048x2048 uint16 pair with ~1,500 objects.

Prints the time of each instance metric (the overlap table alone, symmetric
best Dice, best Dice, DiC, |DiC|, foreground Dice, IoU matching at the ten
thresholds 0.50..0.95, the CVPPP 2017 metrics, all of them from one table) and
of StarDist's ``matching`` on the same pair in the same run, the ratio, whether
the goals (SBD < 100 ms, matching >= 10x StarDist) are met, checks that the
counts are identical, and reports the peak memory the scorer allocates above
its inputs (tracemalloc sees numpy's allocations). Times are the best of
``--repeat`` rounds that call every function once, in turn.

Run: ``.venv/bin/python benchmarks/scorers.py`` (needs the benchmark extras
``stardist`` and ``psutil``; without stardist the comparison is skipped).
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

# This file is named like the package it measures: run as a script, its own
# folder must not shadow ``scorers``.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402
from skimage.segmentation import expand_labels  # noqa: E402

import scorers  # noqa: E402
from scorers.instance import IOU_THRESHOLDS  # noqa: E402


def make_pair(size: int = 2048, n_objects: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A truth/prediction pair of touching, jittered cells with shuffled ids."""
    rng = np.random.default_rng(seed)
    ys, xs = rng.integers(8, size - 8, n_objects), rng.integers(8, size - 8, n_objects)
    ids = rng.choice(np.arange(1, 65535), size=n_objects, replace=False).astype(np.uint16)
    seeds = np.zeros((size, size), np.uint16)
    seeds[ys, xs] = ids
    truth = expand_labels(seeds, distance=24)
    # Prediction: seeds jittered by a few pixels, a different reach, some objects
    # dropped, some merged with a neighbour, and new ids.
    jy = np.clip(ys + rng.integers(-3, 4, n_objects), 0, size - 1)
    jx = np.clip(xs + rng.integers(-3, 4, n_objects), 0, size - 1)
    pids = rng.choice(np.arange(1, 65535), size=n_objects, replace=False).astype(np.uint16)
    keep = rng.random(n_objects) > 0.05
    pseeds = np.zeros_like(seeds)
    pseeds[jy[keep], jx[keep]] = pids[keep]
    pred = expand_labels(pseeds, distance=22)
    merge = rng.choice(np.flatnonzero(keep), size=n_objects // 30, replace=False)
    lut = np.arange(65536, dtype=np.uint16)
    lut[pids[merge]] = pred[np.clip(jy[merge] + 20, 0, size - 1), jx[merge]]
    pred = lut[pred]
    return truth.astype(np.uint16), pred.astype(np.uint16)


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = np.inf, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


STARDIST = "stardist matching, 10 thr."


def round_robin(
    timed: list[tuple[str, Callable[[], Any]]], repeat: int
) -> tuple[dict[str, float], dict[str, Any]]:
    """Best time of each function over ``repeat`` rounds that call each once, in turn.

    Interleaved, so that a busy machine slows every function alike and the
    ratios of one run compare times taken under the same load.
    """
    times = {name: np.inf for name, _ in timed}
    results: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn in timed:
            elapsed, results[name] = best_time(fn, 1)
            times[name] = min(times[name], elapsed)
    return times, results


def peak_mib(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    tracemalloc.reset_peak()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--objects", type=int, default=1500)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    truth, pred = make_pair(args.size, args.objects)
    n_t = len(np.unique(truth)) - 1
    n_p = len(np.unique(pred)) - 1
    print(f"pair: {truth.shape} {truth.dtype}, {n_t} true and {n_p} predicted objects")

    # Each metric as a user calls it: validation, its own overlap table, the metric.
    timed: list[tuple[str, Callable[[], Any]]] = [
        ("overlap table (one pass)", lambda: scorers.label_overlap(truth, pred)),
        ("symmetric best Dice", lambda: scorers.symmetric_best_dice(truth, pred)),
        ("best Dice", lambda: scorers.best_dice(truth, pred)),
        ("DiC", lambda: scorers.dic(truth, pred)),
        ("|DiC|", lambda: scorers.abs_dic(truth, pred)),
        ("foreground Dice", lambda: scorers.foreground_dice(truth, pred)),
        ("matching, 10 thresholds", lambda: scorers.match_instances(truth, pred)),
        ("CVPPP 2017 metrics (legacy)", lambda: scorers.legacy_score(truth, pred)),
        ("all instance metrics", lambda: scorers.score_instances(truth, pred)),
    ]
    try:
        from stardist.matching import matching
    except ImportError:
        matching = None
        print("stardist not installed: no comparison (pip install -e '.[bench]')")
    thresholds = list(IOU_THRESHOLDS)
    if matching is not None:
        matching(truth[:64, :64], pred[:64, :64], thresh=thresholds)  # numba JIT warm-up
        timed.append((STARDIST, lambda: matching(truth, pred, thresh=thresholds)))
    times, results = round_robin(timed, args.repeat)

    sbd = results["symmetric best Dice"]
    ours = results["matching, 10 thresholds"]
    for name, _ in timed:
        extra = f"   (SBD = {sbd:.4f})" if name == "symmetric best Dice" else ""
        print(f"{name:30s} {times[name] * 1e3:8.1f} ms{extra}")
    for m in ours:
        print(f"  IoU>={m.threshold:.2f}  tp={m.tp:5d} fp={m.fp:5d} fn={m.fn:5d}  "
              f"AP={m.ap:.4f}  PQ={m.pq:.4f}")

    mem = peak_mib(lambda: scorers.score_instances(truth, pred))
    print(f"peak memory above inputs (all metrics): {mem:.1f} MiB "
          f"(inputs {2 * truth.nbytes / 2**20:.1f} MiB)")
    t_sbd = times["symmetric best Dice"]
    print(f"goal: symmetric best Dice < 100 ms: {'met' if t_sbd < 0.1 else 'NOT met'}")
    if matching is None:
        return
    theirs = results[STARDIST]
    same = all(
        (m.tp, m.fp, m.fn) == (s.tp, s.fp, s.fn)
        and np.isclose(m.mean_iou, s.mean_matched_score)
        and np.isclose(m.pq, s.panoptic_quality)
        for m, s in zip(ours, theirs, strict=True)
    )
    t_sd = times[STARDIST]
    ratio = t_sd / times["matching, 10 thresholds"]
    print(f"speed-up over stardist         {ratio:8.1f}x   matching "
          f"({t_sd / times['all instance metrics']:.1f}x for all instance metrics); "
          f"identical counts: {same}")
    print(f"goal: matching >= 10x stardist: {'met' if ratio >= 10 else 'NOT met'}")


if __name__ == "__main__":
    main()
