"""Benchmark the ranking statistics: 300 teams x 1,000 items x 1,000 bootstrap resamples.

Times each part of :func:`site_generator.ranking.compute` on one synthetic
phase (per-item scores in [0, 1], a few missing, rounded to three decimals so
that ties and zero differences occur as they do in real scores): the bootstrap
of means and ranks, the 44,850 pairwise one-sided Wilcoxon signed-rank tests in
both directions with Holm's adjustment, the ranking methods, and the whole of
``compute``. Target: the whole under 5 s.

Run: ``.venv/bin/python benchmarks/stats.py [--teams N] [--items N] [--repeat N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # `stats` is no package here
sys.path.insert(0, str(_HERE.parent))

import numpy as np  # noqa: E402

from site_generator import ranking  # noqa: E402

TARGET_S = 5.0


def synthetic(teams: int, items: int, seed: int = 0) -> ranking.Matrix:
    """Teams of steadily falling skill on items of varying difficulty; 0.5% of scores missing."""
    rng = np.random.default_rng(seed)
    skill = np.linspace(0.8, 0.6, teams)[:, None]
    difficulty = rng.normal(0, 0.1, items)[None, :]
    scores = np.clip(np.round(skill + difficulty + rng.normal(0, 0.08, (teams, items)), 3), 0, 1)
    scores[rng.random((teams, items)) < 0.005] = np.nan
    # official order: by mean score, as a leaderboard of these items would rank them
    order = np.argsort(-np.nanmean(scores, axis=1), kind="stable")
    return ranking.Matrix(teams=tuple(f"team-{n:03d}" for n in order), items=tuple(f"item-{n:04d}" for n in range(items)),
                          scores=scores[order])


def timed(label: str, call, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Median wall time of ``call``; also this process's CPU time (robust on a busy machine;
    forked processes not counted)."""
    times, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        call()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    median = statistics.median(times)
    print(f"{label:<62} {median:7.3f} s  (median of {repeat}; {min(times):.3f}-{max(times):.3f}; "
          f"CPU here {statistics.median(cpu):.3f} s)")
    return median


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--teams", type=int, default=300)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--resamples", type=int, default=ranking.RESAMPLES)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1,
                        help="processes sharing the pairwise tests (default: every core)")
    args = parser.parse_args()
    m = synthetic(args.teams, args.items)
    oriented = ranking.impute_worst(m.scores)
    print(f"{args.teams} teams x {args.items} items x {args.resamples} resamples; "
          f"{args.teams * (args.teams - 1)} one-sided tests; load average {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} cores")

    def boot() -> None:
        means = ranking.bootstrap_means(oriented, ranking.resample_indices(args.items, args.resamples))
        ranks = ranking.ranks_of(means)
        np.quantile(means, [0.025, 0.975], axis=0)
        np.quantile(ranks, [0.025, 0.975], axis=0)

    timed("bootstrap of means and ranks (with intervals)", boot, args.repeat)
    _, p = ranking.wilcoxon_pairs(oriented)
    timed("pairwise Wilcoxon tests, both directions, 1 process", lambda: ranking.wilcoxon_pairs(oriented),
          args.repeat)
    timed(f"pairwise Wilcoxon tests, both directions, {args.processes} processes",
          lambda: ranking.wilcoxon_pairs(oriented, args.processes), args.repeat)
    timed("Holm adjustment", lambda: ranking.holm(p), args.repeat)
    significant = np.nan_to_num(ranking.holm(p), nan=1.0) < ranking.ALPHA
    timed("ranking methods (ranks only)", lambda: ranking.method_ranks(oriented, significant), args.repeat)
    timed("ranking.compute (everything the page shows), 1 process",
          lambda: ranking.compute(m, "max", "public", resamples=args.resamples), args.repeat)
    whole = timed(f"ranking.compute (everything the page shows), {args.processes} processes",
                  lambda: ranking.compute(m, "max", "public", resamples=args.resamples,
                                          processes=args.processes), args.repeat)
    result = ranking.compute(m, "max", "public", resamples=args.resamples, processes=args.processes)
    print(f"tiers: {result.teams[-1].tier}; significant pairs: {sum(pr.significant for pr in result.pairs)} "
          f"of {len(result.pairs)}; Kendall's tau: "
          + ", ".join(f"{mt.name} {mt.tau:.3f}" for mt in result.methods if mt.tau is not None))
    print(f"whole: {whole:.2f} s, target under {TARGET_S:.0f} s: {'met' if whole < TARGET_S else 'NOT met'}")
    return 0 if whole < TARGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
