"""Ranking statistics of one phase from per-item scores (pure: numpy and scipy, no I/O).

How stable is a leaderboard? Rankings flip with the metric, the aggregation and
the test set (Maier-Hein et al. 2018, Nat Commun 9:5217); challengeR
(Wiesenfarth et al. 2021, Sci Rep 11:2369) shows it with bootstrap rank
stability, significance maps and a comparison of ranking methods. This module
computes those from a teams x items matrix of one metric:

- bootstrap 95% percentile intervals of each team's mean per-item score and of
  its rank, from :data:`RESAMPLES` resamples of the items drawn with a fixed
  seed (the same ledger gives the same numbers, so the pages stay the same bytes);
- a one-sided Wilcoxon signed-rank test (:func:`scipy.stats.wilcoxon`) for each
  ordered pair of teams, Holm-adjusted over all of them;
- ranks by mean-then-rank, median-then-rank, rank-then-mean and test-based
  ranking, each with Kendall's tau (:func:`scipy.stats.kendalltau`) against the
  official ranking;
- rank tiers: walking down the official ranking, a team joins the tier of the
  team above unless the tier's leader (its first team) is significantly better
  than it; then it leads a new tier.

Missing items (a team's evaluation failed on an item, or has no score for it)
get the worst per-item score of the whole matrix, so a failure costs what the
worst result costs and every team is compared on the same items. A team with
fewer than :func:`min_items` scored items gets no statistics at all (it is
listed as left out) rather than intervals made mostly of imputed values.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

RESAMPLES = 1000
SEED = 5217  # fixed: the same scores always give the same intervals
CONFIDENCE = 0.95
ALPHA = 0.05  # the family-wise error rate of the Holm-adjusted pairwise tests
MIN_ITEMS = 5  # fewer scored items than this: no statistics for the team
PAIRS_PER_CALL = 256  # pairs of teams per scipy.stats.wilcoxon call, at most ...
VALUES_PER_CALL = 2**20  # ... differences per call: scipy makes several copies of them
METHODS = ("mean-then-rank", "median-then-rank", "rank-then-mean", "test-based")


def min_items(items: int) -> int:
    """The fewest scored items a team needs: :data:`MIN_ITEMS`, and at least half the items."""
    return max(MIN_ITEMS, math.ceil(items / 2))


@dataclass(frozen=True)
class Matrix:
    """Per-item scores of one metric: ``scores[t, i]`` is team ``teams[t]`` on item ``items[i]``.

    ``teams`` are in official order (best first); NaN marks a missing score.
    """

    teams: tuple[str, ...]
    items: tuple[str, ...]
    scores: np.ndarray


def matrix(entries: Sequence[tuple[str, Any]], metric: str, part: str) -> Matrix:
    """The matrix of ``metric`` on the items of ``part`` (``public`` or ``private``).

    ``entries``: (team, the ``items`` of the evaluation that ranks it), in official order.
    An item counts when it is an object with a string name and this ``part``; its score
    when ``metrics[metric]`` is a finite number and it has no error. Anything else is missing.
    """
    per_team: list[dict[str, float]] = []
    names: set[str] = set()
    for _, items in entries:
        mine: dict[str, float] = {}
        for item in items if isinstance(items, list | tuple) else ():
            if not (isinstance(item, Mapping) and item.get("part") == part and isinstance(item.get("name"), str)):
                continue
            names.add(item["name"])
            scores = item.get("metrics")
            value = scores.get(metric) if isinstance(scores, Mapping) else None
            if (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
                    and not item.get("error")):
                mine[item["name"]] = float(value)
        per_team.append(mine)
    items = tuple(sorted(names))
    scores = np.array([[mine.get(name, np.nan) for name in items] for mine in per_team], dtype=float)
    return Matrix(teams=tuple(team for team, _ in entries), items=items,
                  scores=scores.reshape(len(entries), len(items)))


@dataclass(frozen=True)
class TeamStats:
    team: str
    official_rank: int  # among the teams with statistics, 1 = best
    scored: int  # items with a score
    missing: int  # items given the worst score
    mean: float  # mean per-item score (missing items at the worst score)
    mean_low: float  # bootstrap percentile interval of the mean
    mean_high: float
    rank_median: float  # median bootstrap rank
    rank_low: int  # 2.5% and 97.5% bootstrap rank (lower and higher order statistic)
    rank_high: int
    tier: int


@dataclass(frozen=True)
class Pair:
    """The one-sided test that ``team`` is better than ``other`` on the same items."""

    team: str
    other: str
    statistic: float  # Wilcoxon's T+ of team - other (oriented so higher is better)
    p_value: float
    p_holm: float
    significant: bool


@dataclass(frozen=True)
class Method:
    name: str
    ranks: tuple[int, ...]  # per team, in official order; ties share the lowest rank
    tau: float | None  # Kendall's tau-b against the official ranking; None when undefined
    p_value: float | None


@dataclass(frozen=True)
class Statistics:
    """Every ranking statistic of one part of one phase; ``teams`` in official order."""

    part: str
    items: int
    resamples: int
    seed: int
    teams: tuple[TeamStats, ...]
    left_out: tuple[tuple[str, int], ...]  # (team, scored items) with too few items
    pairs: tuple[Pair, ...]  # every ordered pair of ``teams``
    methods: tuple[Method, ...]
    rank_counts: tuple[tuple[int, ...], ...]  # [team][rank - 1] -> resamples giving that rank


def orient(scores: np.ndarray, direction: str) -> np.ndarray:
    """Scores turned so that higher is better (``direction``: ``max`` or ``min``)."""
    if direction not in ("max", "min"):
        raise ValueError(f"direction {direction!r}: must be 'max' or 'min'")
    return scores if direction == "max" else -scores


def impute_worst(oriented: np.ndarray) -> np.ndarray:
    """Missing (NaN) scores set to the worst score of the whole matrix (0 when none is known)."""
    known = oriented[~np.isnan(oriented)]
    worst = float(known.min()) if known.size else 0.0
    return np.where(np.isnan(oriented), worst, oriented)


def resample_indices(items: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
    """``resamples`` x ``items`` item indices drawn with replacement (as scipy.stats.bootstrap draws)."""
    return np.random.default_rng(seed).integers(0, items, (resamples, items))


def bootstrap_means(scores: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Resamples x teams: each team's mean over each resample of the items.

    A resample is a count per item (bincount), so all means are one matrix product.
    """
    resamples, items = indices.shape
    offsets = (np.arange(resamples) * items)[:, None]
    counts = np.bincount((indices + offsets).ravel(), minlength=resamples * items).reshape(resamples, items)
    return (counts @ scores.T) / items


def ranks_of(values: np.ndarray) -> np.ndarray:
    """Ranks (1 = highest value) along the last axis; ties keep the official (column) order."""
    order = np.argsort(-values, axis=-1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(1, values.shape[-1] + 1), axis=-1)
    return ranks


def wilcoxon_pairs(oriented: np.ndarray, processes: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """T+ statistic and one-sided p-value that team ``i`` is better than team ``j``, as teams x teams.

    One :func:`scipy.stats.wilcoxon` call (``axis=1``) per block of :data:`PAIRS_PER_CALL`
    pairs ``i < j`` (fewer with more than 4,096 items: at most :data:`VALUES_PER_CALL`
    differences a call), on the differences in order of magnitude (:func:`by_magnitude`).
    The exact null distribution for a pair of at most 50 items without zero or tied
    differences, else the normal approximation with the tie correction and no continuity
    correction (zero differences left out, ``wilcox``), whose p-value for the reverse
    direction (``less``) is ``norm.cdf`` of the z statistic scipy returns; the exact test
    is asked again for it. Pairs without a nonzero difference get T+ = 0 and p = 1 (no
    evidence either way). ``processes`` > 1: the blocks are shared among that many forked
    processes (where ``fork`` exists and there are enough pairs to pay for it).
    """
    teams = oriented.shape[0]
    statistic = np.zeros((teams, teams))
    p = np.ones((teams, teams))
    first, second = np.triu_indices(teams, 1)
    size = max(1, min(PAIRS_PER_CALL, VALUES_PER_CALL // max(oriented.shape[1], 1)))
    blocks = [(start, min(start + size, first.size)) for start in range(0, first.size, size)]
    _SHARED[:] = [oriented, first, second]
    try:
        if processes > 1 and len(blocks) >= 4 and "fork" in multiprocessing.get_all_start_methods():
            with multiprocessing.get_context("fork").Pool(min(processes, len(blocks))) as pool:
                done = pool.map(_pair_block, blocks, chunksize=max(1, len(blocks) // (4 * processes)))
        else:
            done = [_pair_block(block) for block in blocks]
    finally:
        _SHARED.clear()
    for a, b, t_plus, t_minus, greater, less in done:
        statistic[a, b], statistic[b, a] = t_plus, t_minus
        p[a, b], p[b, a] = greater, less
    np.fill_diagonal(p, np.nan)
    return statistic, p


#: What :func:`_pair_block` reads (set before the processes fork, so they inherit it).
_SHARED: list[np.ndarray] = []


def _pair_block(block: tuple[int, int]) -> tuple[np.ndarray, ...]:
    """The tests of pairs ``block`` of :func:`wilcoxon_pairs` that have a nonzero difference."""
    oriented, first, second = _SHARED
    a, b = first[block[0]:block[1]], second[block[0]:block[1]]
    d = oriented[a] - oriented[b]
    nonzero = np.any(d != 0, axis=1)
    a, b, d = a[nonzero], b[nonzero], by_magnitude(d[nonzero])
    t_plus, greater, less = (np.zeros(a.size) for _ in range(3))
    # scipy's method="auto" decides once per call from the whole block; decided here per pair,
    # as scipy decides for a single pair (and as R's wilcox.test does): the exact distribution
    # for at most 50 items without zero or tied differences, else the normal approximation
    exact = np.zeros(a.size, bool)
    if d.shape[1] <= 50 and a.size:
        magnitudes = np.abs(d)  # sorted
        exact = ~np.any(d == 0, axis=1) & ~np.any(magnitudes[:, 1:] == magnitudes[:, :-1], axis=1)
    if exact.any():
        res = stats.wilcoxon(d[exact], axis=1, alternative="greater", method="exact")
        t_plus[exact], greater[exact] = res.statistic, res.pvalue
        less[exact] = stats.wilcoxon(d[exact], axis=1, alternative="less", method="exact").pvalue
    if (~exact).any():
        res = stats.wilcoxon(d[~exact], axis=1, alternative="greater", method="asymptotic")
        t_plus[~exact], greater[~exact] = res.statistic, res.pvalue
        less[~exact] = stats.norm.cdf(res.zstatistic)  # what alternative="less" computes
    return a, b, t_plus, items_used(d) - t_plus, greater, less


def by_magnitude(d: np.ndarray) -> np.ndarray:
    """Each row of differences ``d`` reordered by magnitude (the same values, zeros as +-0).

    The signed-rank test of a pair depends only on the multiset of its differences, so the
    order of the items is free; in this order scipy's stable argsort of the magnitudes (its
    rankdata) finds each row already sorted, which halves the time of the tests. The order
    comes from one sort of 64-bit keys: the bits of ``|d|`` (ordered as the floats are, for
    values >= 0) shifted left past the sign bit, which is always 0, with the sign in the
    lowest bit.
    """
    key = (np.abs(d).view(np.uint64) << np.uint64(1)) | (d > 0).astype(np.uint64)
    key.sort(axis=1)
    magnitude = (key >> np.uint64(1)).view(np.float64)
    return np.where((key & np.uint64(1)).astype(bool), magnitude, -magnitude)


def items_used(d: np.ndarray) -> np.ndarray:
    """n(n+1)/2 of the nonzero differences per row: T+ plus T- (the statistic of the reverse test)."""
    n = np.count_nonzero(d, axis=1).astype(float)
    return n * (n + 1) / 2


def holm(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of the p-values ``p`` (NaN left out and kept NaN).

    Sorted ascending, the k-th smallest of m becomes max over l <= k of min(1, (m - l + 1) p_(l)).
    """
    flat = p.ravel()
    keep = ~np.isnan(flat)
    values = flat[keep]
    order = np.argsort(values, kind="stable")
    m = values.size
    adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * values[order]))
    out = np.full(flat.shape, np.nan)
    result = np.empty(m)
    result[order] = adjusted
    out[keep] = result
    return out.reshape(p.shape)


def tiers(significant: np.ndarray) -> list[int]:
    """Tier of each team in official order: a team leads a new tier when the current tier's
    leader is significantly better than it (``significant[leader, team]``), else joins it."""
    out: list[int] = []
    leader, tier = 0, 1
    for team in range(significant.shape[0]):
        if team > 0 and significant[leader, team]:
            leader, tier = team, tier + 1
        out.append(tier)
    return out


def method_ranks(oriented: np.ndarray, significant: np.ndarray) -> dict[str, np.ndarray]:
    """Each ranking method's ranks (1 = best; ties share the lowest rank) of the teams."""
    per_item = stats.rankdata(-oriented, method="average", axis=0)  # 1 = best on each item
    return {
        "mean-then-rank": stats.rankdata(-oriented.mean(axis=1), method="min"),
        "median-then-rank": stats.rankdata(-np.median(oriented, axis=1), method="min"),
        "rank-then-mean": stats.rankdata(per_item.mean(axis=1), method="min"),
        "test-based": stats.rankdata(-significant.sum(axis=1), method="min"),
    }


def compute(m: Matrix, direction: str, part: str, *, resamples: int = RESAMPLES,
            seed: int = SEED, processes: int = 1) -> Statistics:
    """Every statistic of :class:`Statistics` for the matrix ``m`` (teams in official order).

    ``processes``: how many processes share the pairwise tests (see :func:`wilcoxon_pairs`).
    """
    counts = np.count_nonzero(~np.isnan(m.scores), axis=1) if m.items else np.zeros(len(m.teams), int)
    enough = counts >= min_items(len(m.items))
    left_out = tuple((team, int(n)) for team, n, ok in zip(m.teams, counts, enough, strict=True) if not ok)
    teams = [team for team, ok in zip(m.teams, enough, strict=True) if ok]
    empty = Statistics(part=part, items=len(m.items), resamples=resamples, seed=seed, teams=(),
                       left_out=left_out, pairs=(), methods=(), rank_counts=())
    if not teams:
        return empty
    sign = 1.0 if direction == "max" else -1.0
    oriented = impute_worst(orient(m.scores, direction))[enough]  # the worst of every ranked team
    raw = sign * oriented  # missing items at the worst score, in the metric's own units
    n_teams, n_items = oriented.shape

    means = bootstrap_means(raw, resample_indices(n_items, resamples, seed))
    low, high = np.quantile(means, [(1 - CONFIDENCE) / 2, (1 + CONFIDENCE) / 2], axis=0)
    boot_ranks = ranks_of(sign * means)
    rank_low = np.quantile(boot_ranks, (1 - CONFIDENCE) / 2, axis=0, method="lower")
    rank_high = np.quantile(boot_ranks, (1 + CONFIDENCE) / 2, axis=0, method="higher")
    rank_median = np.median(boot_ranks, axis=0)
    rank_counts = np.stack([np.bincount(boot_ranks[:, t] - 1, minlength=n_teams) for t in range(n_teams)])

    statistic, p = wilcoxon_pairs(oriented, processes)
    p_holm = holm(p)
    significant = np.nan_to_num(p_holm, nan=1.0) < ALPHA
    tier = tiers(significant)

    official = np.arange(1, n_teams + 1)
    methods = []
    for name, ranks in method_ranks(oriented, significant).items():
        tau, tau_p = (float("nan"), float("nan"))
        if n_teams > 1 and len(set(ranks.tolist())) > 1:
            res = stats.kendalltau(official, ranks)
            tau, tau_p = float(res.statistic), float(res.pvalue)
        methods.append(Method(name=name, ranks=tuple(int(r) for r in ranks),
                              tau=None if math.isnan(tau) else tau, p_value=None if math.isnan(tau_p) else tau_p))
    observed = raw.mean(axis=1)
    scored = counts[enough]
    team_stats = tuple(TeamStats(
        team=team, official_rank=t + 1, scored=int(scored[t]), missing=n_items - int(scored[t]),
        mean=float(observed[t]), mean_low=float(low[t]), mean_high=float(high[t]),
        rank_median=float(rank_median[t]), rank_low=int(rank_low[t]), rank_high=int(rank_high[t]),
        tier=tier[t]) for t, team in enumerate(teams))
    pairs = tuple(Pair(team=teams[i], other=teams[j], statistic=float(statistic[i, j]), p_value=float(p[i, j]),
                       p_holm=float(p_holm[i, j]), significant=bool(significant[i, j]))
                  for i in range(n_teams) for j in range(n_teams) if i != j)
    return Statistics(part=part, items=n_items, resamples=resamples, seed=seed, teams=team_stats,
                      left_out=left_out, pairs=pairs, methods=tuple(methods),
                      rank_counts=tuple(tuple(int(c) for c in row) for row in rank_counts))
