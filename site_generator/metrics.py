"""What each metric column means, and metrics laid out as a compact table.

Definitions and directions come from the scorer registry (``scorers.metric_info``),
by the name the challenge's scorer reports a metric under. A scorer that reports
one metric per IoU threshold (``precision_50`` ... ``precision_95``) gets a table of
metrics x thresholds instead of a hundred rows; counts (``tp_50``, ``n_images``)
are kept apart from scores. The grouping is read from the metric names as the
registry knows them, so any scorer with thresholded metrics gets it.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from scorers.registry import FAMILY_ORDER, MetricInfo, metric_info

#: How each direction of the registry reads on a page.
BETTER = {"max": "higher is better", "min": "lower is better", "zero": "closer to 0 is better"}
#: The short form in a table cell.
BETTER_SHORT = {"max": "higher", "min": "lower", "zero": "closer to 0"}


@dataclass(frozen=True)
class Column:
    """One column of a table: its name, definition and which way is better (None: no better side)."""

    name: str
    definition: str | None
    better: str | None  # "max", "min", "zero" or None

    @property
    def better_text(self) -> str:
        return BETTER.get(self.better or "", "")

    @property
    def better_short(self) -> str:
        return BETTER_SHORT.get(self.better or "", "")


def column(name: str, scorer: str | None, definitions: Mapping[str, str | None] | None = None,
           direction: str | None = None) -> Column:
    """A metric column: the definition the challenge description carries, else the registry's.

    ``direction``: the challenge's own direction, for its primary metric (it ranks by it).
    """
    info = metric_info(name, scorer)
    definition = (definitions or {}).get(name) or info.definition
    return Column(name=name, definition=definition, better=direction or info.better)


def plain(name: str, definition: str, better: str | None = None) -> Column:
    """A column that is no metric (rank, team, a count)."""
    return Column(name=name, definition=definition, better=better)


@dataclass(frozen=True)
class Grid:
    """Metric families (rows) x thresholds (columns); each cell names its metric or is None."""

    thresholds: tuple[str, ...]  # as the registry writes them: "0.5", "0.55", ...
    # family, its column (named "<family> at IoU t"), the metric name per threshold
    rows: tuple[tuple[str, Column, tuple[str | None, ...]], ...]

    @property
    def headers(self) -> tuple[str, ...]:
        return tuple(f"{float(t):.2f}" if len(t) <= 4 else t for t in self.thresholds)


@dataclass(frozen=True)
class Layout:
    """The metrics of one part of an evaluation, as the page lays them out."""

    scores: tuple[Column, ...]  # metrics without a threshold, in the given order
    grid: Grid | None  # scores per threshold
    count_grid: Grid | None  # counts per threshold (tp, fp, fn)
    counts: tuple[Column, ...]  # counts without a threshold (n_images)
    definitions: tuple[Column, ...]  # every row and family shown, once, in page order

    @property
    def empty(self) -> bool:
        return not (self.scores or self.grid or self.count_grid or self.counts)


def _grid(infos: list[MetricInfo], scorer: str | None) -> Grid | None:
    if not infos:
        return None
    thresholds = sorted({i.threshold for i in infos if i.threshold}, key=float)
    families: dict[str, dict[str, str]] = {}
    defs: dict[str, str | None] = {}
    for i in infos:
        assert i.family is not None and i.threshold is not None
        families.setdefault(i.family, {})[i.threshold] = i.name
        defs.setdefault(i.family, i.family_definition)
    order = sorted(families, key=lambda f: (FAMILY_ORDER.index(f) if f in FAMILY_ORDER else len(FAMILY_ORDER), f))
    rows = tuple(
        (family, Column(name=f"{family} at IoU t", definition=defs[family],
                        better=metric_info(next(iter(families[family].values())), scorer).better),
         tuple(families[family].get(t) for t in thresholds))
        for family in order)
    return Grid(thresholds=tuple(thresholds), rows=rows)


def layout(names: Iterable[str], scorer: str | None, *, primary: str | None = None,
           direction: str | None = None) -> Layout:
    """``names`` (in page order) laid out: plain scores, a grid of thresholded scores, counts apart.

    A family reported at a single threshold stays a plain row: a grid of one column explains
    nothing. The ``primary`` metric takes the challenge's ``direction``.
    """
    # nearly every evaluation page of a challenge shows the same names: laid out once
    return _layout(tuple(names), scorer, primary, direction)


@functools.lru_cache(maxsize=256)
def _layout(names: tuple[str, ...], scorer: str | None, primary: str | None, direction: str | None) -> Layout:
    infos = [metric_info(n, scorer) for n in names]
    tagged: dict[str, list[MetricInfo]] = {}
    for i in infos:
        if i.family is not None:
            tagged.setdefault(i.family, []).append(i)
    gridded = {f for f, members in tagged.items() if len(members) > 1}

    def col(i: MetricInfo) -> Column:
        better = direction if (i.name == primary and direction) else i.better
        return Column(name=i.name, definition=i.definition, better=better)

    scores = tuple(col(i) for i in infos if not i.count and i.family not in gridded)
    counts = tuple(col(i) for i in infos if i.count and i.family not in gridded)
    grid = _grid([i for i in infos if i.family in gridded and not i.count], scorer)
    count_grid = _grid([i for i in infos if i.family in gridded and i.count], scorer)
    definitions = (*scores, *(c for _, c, _ in (grid.rows if grid else ())), *counts,
                   *(c for _, c, _ in (count_grid.rows if count_grid else ())))
    return Layout(scores=scores, grid=grid, count_grid=count_grid, counts=counts, definitions=definitions)


def values(lay: Layout, scores: Mapping[str, Any]) -> dict[str, Any]:
    """What a template needs to show ``lay`` with ``scores`` (a name missing there shows as —)."""
    def grid(g: Grid | None) -> list[dict[str, Any]]:
        if g is None:
            return []
        return [{"family": f, "column": c, "cells": [None if n is None else scores.get(n) for n in cells]}
                for f, c, cells in g.rows]

    return {"layout": lay, "scores": [(c, scores.get(c.name)) for c in lay.scores],
            "grid": grid(lay.grid), "count_grid": grid(lay.count_grid),
            "counts": [(c, scores.get(c.name)) for c in lay.counts]}
