"""Inline SVG plots drawn with matplotlib, the same bytes for the same data.

Each plot is drawn on its own :class:`~matplotlib.figure.Figure` (no pyplot, no
global figure state) with the SVG backend; ``svg.hashsalt`` is fixed per plot so
the ids inside are stable (and differ between plots of one page), the ``Date``
metadata is left out, and text stays text (``svg.fonttype = none``), so no
build-time clock or font file reaches a page.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import math
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import matplotlib
import matplotlib.dates as mdates
from markupsafe import Markup, escape
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from site_generator.workers import Workers

_RC: Any = {"svg.fonttype": "none", "timezone": "UTC", "font.size": 9.0,
       "font.family": ["DejaVu Sans", "sans-serif"], "axes.spines.top": False,
       "axes.spines.right": False}
_SIZE = (6.4, 2.8)
_NO_METADATA: Any = {"Date": None, "Format": None, "Type": None, "Creator": None}
#: Part of every cache key: change it when a change here changes the drawing.
DRAWING_VERSION = "6"


class PlotCache:
    """SVGs an earlier build drew, found by a hash of everything a plot shows.

    Drawing is most of a build's time, and a new evaluation changes only a few
    plots, so the plots are kept in a folder beside the site (``folder``, None:
    no cache). A plot is the same bytes drawn or read, so builds stay
    byte-identical. :meth:`save` writes the new plots and removes those this
    build did not use.
    """

    def __init__(self, folder: Path | None) -> None:
        self.folder = folder
        self.used: dict[str, str] = {}
        self.drawn: dict[str, str] = {}
        self.requested: list[str] = []  # every digest asked for, in order (see :meth:`keep`)
        self.kept: set[str] = set()

    @staticmethod
    def digest(key: object) -> str:
        return hashlib.sha256(repr((DRAWING_VERSION, matplotlib.__version__, key)).encode()).hexdigest()

    def missing(self, key: object) -> bool:
        """Whether :meth:`get` would have to draw this plot."""
        digest = self.digest(key)
        return digest not in self.used and (self.folder is None or not (self.folder / f"{digest}.svg").is_file())

    def provide(self, key: object, text: str) -> None:
        """A plot drawn elsewhere (see :func:`draw_points`), as :meth:`get` would have drawn it."""
        digest = self.digest(key)
        self.drawn[digest] = self.used[digest] = text

    def get(self, key: object, draw: Callable[[], Markup]) -> Markup:
        digest = self.digest(key)
        self.requested.append(digest)
        if digest not in self.used:
            text = None
            path = None if self.folder is None else self.folder / f"{digest}.svg"
            if path is not None and not path.is_symlink():  # only what a build wrote
                try:
                    text = path.read_text(encoding="utf-8")
                except OSError:
                    text = None
            if not text:  # missing, or empty (written by a build that was killed before atomic writes)
                text = str(draw())
                self.drawn[digest] = text
            self.used[digest] = text
        return Markup(self.used[digest])

    def keep(self, digests: list[str]) -> None:
        """Keep these plots although this build did not ask for them (a page it did not render shows them)."""
        self.kept.update(d for d in digests if isinstance(d, str))

    def save(self) -> None:
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        for digest, text in self.drawn.items():
            write_atomic(self.folder / f"{digest}.svg", text)
        for path in self.folder.glob(".*.tmp"):  # left by a build that was killed while writing
            path.unlink()
        for path in self.folder.glob("*.svg"):
            if path.stem not in self.used and path.stem not in self.kept and not path.is_symlink():
                path.unlink()


def write_atomic(path: Path, text: str) -> None:
    """Write a cache file by temp file and rename: a build killed meanwhile leaves the old file or
    none, never a partial one that later builds would take as drawn. A symlink there is replaced."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _svg(fig: Figure, salt: str, title: str) -> Markup:
    """``fig`` as an inline ``<svg>`` element labelled ``title`` (role img, <title> first)."""
    return _labelled(_drawn(fig, salt, _ident(salt)), salt, title)


def _ident(salt: str) -> str:
    return "plot-" + re.sub(r"[^A-Za-z0-9_-]", "-", salt)


def _drawn(fig: Figure, salt: str, prefix: str) -> str:
    """``fig`` as SVG text, every id (figure_1, patch_1, ...) and each reference to it prefixed."""
    return _prefixed(_raw(fig, salt), prefix)


def _raw(fig: Figure, salt: str) -> str:
    """``fig`` as SVG text as matplotlib writes it, from ``<svg`` on (the SVG is inline)."""
    buf = io.StringIO()
    with matplotlib.rc_context(cast(Any, {**_RC, "svg.hashsalt": salt})):
        # no <metadata>: its RDF namespaces are not allowed in an SVG inside HTML (the validator says so)
        fig.savefig(buf, format="svg", metadata=_NO_METADATA, bbox_inches=None)
    text = buf.getvalue()
    return text[text.index("<svg"):]  # no XML declaration or doctype


def _prefixed(text: str, prefix: str) -> str:
    """Every id in ``text`` and each reference to it prefixed: several plots share a page."""
    return re.sub(r'(\bid="|url\(#|href="#)', rf"\g<1>{prefix}-", text)


def _labelled(text: str, salt: str, title: str) -> Markup:
    ident = _ident(salt)
    text = re.sub(r"<svg ", f'<svg role="img" aria-labelledby="{ident}" ', text, count=1)
    text = re.sub(r"(<svg[^>]*>)", rf'\1<title id="{ident}">{escape(title)}</title>', text, count=1)
    return Markup(text)


def _figure() -> Figure:
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=_SIZE)
        # fixed margins: a layout engine would double the drawing time of every plot
        fig.subplots_adjust(left=0.1, right=0.98, top=0.95, bottom=0.24)
        return fig


Series = Sequence[tuple[str, Sequence[dt.datetime], Sequence[float]]]


def _key(series: Series) -> tuple[Any, ...]:
    return tuple((name, tuple(x.isoformat() for x in xs), tuple(ys)) for name, xs, ys in series)


def steps(salt: str, title: str, series: Series, *, ylabel: str, markers: bool = False,
          counts: bool = False, cache: PlotCache | None = None) -> Markup:
    """A step line per named series over time (each step holds until the next point)."""
    key = ("steps", salt, title, _key(series), ylabel, markers, counts)
    return (cache or PlotCache(None)).get(key, lambda: _steps(salt, title, series, ylabel=ylabel,
                                                              markers=markers, counts=counts))


def _steps(salt: str, title: str, series: Series, *, ylabel: str, markers: bool, counts: bool) -> Markup:
    with matplotlib.rc_context(_RC):
        fig = _figure()
        ax = fig.add_subplot()
        for name, xs, ys in series:
            # a series of one time is a point: without a marker it would not show at all
            ax.step(cast(Any, list(xs)), list(ys), where="post", label=name,
                    marker="o" if markers or len(set(xs)) < 2 else None, markersize=3)
        ax.set_ylabel(ylabel)
        ys = [float(y) for _, _, values in series for y in values]
        if counts:
            # whole numbers from 0: one or two points would otherwise get an axis such as 0.95-1.05
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylim(0, max([1.0, *ys]) * 1.05)
        elif ys and max(ys) - min(ys) < _flat(ys):
            # (nearly) one value: a rounded range around it, not matplotlib's 1.9-2.1 around 2.0
            ax.set_ylim(*_padded(*rounded_range(min(ys), max(ys))))
        if len(series) > 1:
            ax.legend(loc="best", frameon=False)
        _dates(ax)
        _one_day_at_least(ax, series)
        return _svg(fig, salt, title)


def rounded_range(low: float, high: float) -> tuple[float, float]:
    """``low`` to ``high`` rounded out to a tenth of their magnitude (0.62-0.81 -> 0.6-0.9);
    a single value gets one such step either side (2.0 -> 1-3), never an axis of 1.9-2.1."""
    unit = 10.0 ** math.floor(math.log10(max(abs(low), abs(high)) or 1.0))
    # rounded first: 0.7 / 0.1 is 6.999999999999999, which is 7 units, not 6
    bottom, top = math.floor(round(low / unit, 9)) * unit, math.ceil(round(high / unit, 9)) * unit
    if bottom == top:
        bottom, top = bottom - unit, top + unit
    return bottom, top


def _flat(values: Sequence[float]) -> float:
    """A spread under which values count as one: a hundredth of their magnitude."""
    return max(abs(v) for v in values) / 100 or 1e-12


def _padded(low: float, high: float) -> tuple[float, float]:
    pad = (high - low) * 0.05
    return low - pad, high + pad


def _one_day_at_least(ax: Any, series: Series) -> None:
    """Everything at one time: half a day either side (matplotlib would show two years each way)."""
    times = {x for _, xs, _ in series for x in xs}
    if len(times) == 1:
        (only,) = times
        ax.set_xlim(only - dt.timedelta(hours=12), only + dt.timedelta(hours=12))


Span = tuple[dt.datetime, dt.datetime, float, float]  # first and last time, lowest and highest score


def points_key(salt: str, title: str, series: Series, ylabel: str, span: Span) -> tuple[Any, ...]:
    return ("points", salt, title, _key(series), ylabel, (span[0].isoformat(), span[1].isoformat(), *span[2:]))


def points(salt: str, title: str, series: Series, ylabel: str, span: Span, *,
           cache: PlotCache | None = None) -> Markup:
    """Scores over time: one marker per submission, joined per series, on axes showing ``span``.

    Plots that share a span (every team of a challenge) share their axes: the axes are drawn
    once and each plot draws only its lines onto them (a third of the time of a whole plot).
    """
    key = points_key(salt, title, series, ylabel, span)
    return (cache or PlotCache(None)).get(key, lambda: _points(salt, title, series, ylabel, span))


def _limits(span: Span) -> tuple[tuple[dt.datetime, dt.datetime], tuple[float, float]]:
    """The axes' limits: ``span`` and a margin of 5% (half a day, or 0.05, around a single value)."""
    first, last, low, high = span
    margin = (last - first) * 0.05 or dt.timedelta(hours=12)
    pad = (high - low) * 0.05 or 0.05
    return (first - margin, last + margin), (low - pad, high + pad)


def _points_figure() -> tuple[Figure, Any]:
    with matplotlib.rc_context(_RC):
        fig = _figure()
        fig.subplots_adjust(top=0.9)  # room for the series names above the axes
        return fig, fig.add_subplot()


@functools.lru_cache(maxsize=8)
def _points_frame(ylabel: str, span: Span) -> str:
    """The axes of the points plots showing ``span``: ticks, labels, no data; an SVG without its end tag."""
    xlim, ylim = _limits(span)
    with matplotlib.rc_context(_RC):
        fig, ax = _points_figure()
        _dates(ax, maxticks=7)
        ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.set_xlim(*xlim)
        ax.set_ylim(*ylim)
        ax.set_ylabel(ylabel)
        text = _raw(fig, "frame")  # its ids are prefixed by each plot (see _points)
    return text[:text.rindex("</svg>")]


#: The one figure the lines of every points plot are drawn on: its axes are hidden (the
#: frame shows them), and setting up a figure costs more than drawing a few lines.
_POINTS: list[tuple[Figure, Any]] = []


def _points_axes(span: Span) -> tuple[Figure, Any]:
    """The reused lines figure, emptied: no lines, no names, the colour cycle restarted."""
    if not _POINTS:
        fig, ax = _points_figure()
        fig.patch.set_visible(False)
        ax.set_axis_off()
        ax.xaxis_date()
        _POINTS.append((fig, ax))
    fig, ax = _POINTS[0]
    for artist in [*ax.lines, *ax.texts]:
        artist.remove()
    ax.set_prop_cycle(None)
    xlim, ylim = _limits(span)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    return fig, ax


def _points(salt: str, title: str, series: Series, ylabel: str, span: Span) -> Markup:
    """The frame, then the lines drawn on the reused figure (the same bytes as on a fresh one)."""
    with matplotlib.rc_context(_RC):
        fig, ax = _points_axes(span)
        lines = [ax.plot(cast(Any, list(xs)), list(ys), marker="o", markersize=4, label=name)[0]
                 for name, xs, ys in series]
        if len(series) > 1:
            # each series named in its colour above the middle of its time span (the phases
            # follow each other): a legend box costs as much as the rest of the plot, and a
            # challenge of 300 teams has 300 of these plots
            for line, (name, xs, _) in zip(lines, series, strict=True):
                middle = (mdates.date2num(min(xs)) + mdates.date2num(max(xs))) / 2
                ax.text(middle, 1.01, name, transform=ax.get_xaxis_transform(), ha="center",
                        va="bottom", fontsize=8, color=line.get_color())
        data = _drawn(fig, salt, f"{_ident(salt)}-data")
    # the lines' drawing (its defs, markers and clip paths included) goes inside the frame's <svg>
    inner = data[data.index(">", data.index("<svg")) + 1:data.rindex("</svg>")]
    frame = _prefixed(_points_frame(ylabel, span), _ident(salt))
    return _labelled(f"{frame}{inner}</svg>\n", salt, title)


def bars(salt: str, title: str, labels: Sequence[str], values: Sequence[float], *, ylabel: str,
         cache: PlotCache | None = None) -> Markup:
    """One bar per label (days, bins), labels thinned to at most about 12."""
    key = ("bars", salt, title, tuple(labels), tuple(values), ylabel)
    return (cache or PlotCache(None)).get(key, lambda: _bars(salt, title, labels, values, ylabel=ylabel))


def _bars(salt: str, title: str, labels: Sequence[str], values: Sequence[float], *, ylabel: str) -> Markup:
    with matplotlib.rc_context(_RC):
        fig = _figure()
        ax = fig.add_subplot()
        positions = list(range(len(labels)))
        if len(positions) <= 40:
            ax.bar(positions, list(values), color="#4c72b0")
        else:  # one filled outline, not a patch per bar: half the time for 90 days
            ax.stairs(list(values), [p - 0.5 for p in [*positions, len(positions)]], fill=True, color="#4c72b0")
        every = max(1, len(labels) // 12 + (1 if len(labels) % 12 else 0))
        ax.set_xticks(positions[::every], list(labels)[::every], rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts
        return _svg(fig, salt, title)


def _dates(ax: Any, maxticks: int | None = None) -> None:
    """Date ticks that fit (at most about ``maxticks``), with a concise formatter."""
    locator = mdates.AutoDateLocator(minticks=3, maxticks=maxticks) if maxticks else mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


PointsArgs = tuple[str, str, Series, str, Span]  # salt, title, series, ylabel, span


def _draw_points(args: PointsArgs) -> str | None:
    """The plot, or None when drawing fails: its page then draws it again and reports the error."""
    try:
        return str(_points(*args))
    except Exception:  # noqa: BLE001 - reported where the page is rendered
        _POINTS.clear()  # a figure left half drawn is not reused
        return None


def draw_points(todo: Sequence[PointsArgs], cache: PlotCache, workers: Workers) -> Callable[[], None]:
    """Have ``workers`` draw the points plots ``todo``; the callable returned waits and puts them into ``cache``.

    A worker draws the same bytes as this process would (each starts from the
    same reused figure, see :func:`_points_axes`).
    """
    results = workers.add(lambda n: _draw_points(todo[n]), len(todo))

    def finish() -> None:
        for args, text in zip(todo, results.get(), strict=True):
            if text is not None:
                cache.provide(points_key(*args), text)

    return finish


def blob(salt: str, title: str, counts: Sequence[Sequence[int]], medians: Sequence[float],
         lows: Sequence[int], highs: Sequence[int], *, cache: PlotCache | None = None) -> Markup:
    """Rank stability (a "blob" plot, as challengeR draws it): for the team at each leaderboard
    position (x), a disc per rank it took in the bootstrap resamples (y), its area the share of
    resamples; a line over the 95% interval with the median marked, and the diagonal."""
    key = ("blob", salt, title, tuple(tuple(c) for c in counts), tuple(medians), tuple(lows), tuple(highs))
    return (cache or PlotCache(None)).get(key, lambda: _blob(salt, title, counts, medians, lows, highs))


def _blob(salt: str, title: str, counts: Sequence[Sequence[int]], medians: Sequence[float],
          lows: Sequence[int], highs: Sequence[int]) -> Markup:
    with matplotlib.rc_context(_RC):
        fig = _figure()
        fig.subplots_adjust(bottom=0.17)
        ax = fig.add_subplot()
        xs, ys, sizes = [], [], []
        for position, row in enumerate(counts, 1):
            total = sum(row) or 1
            for rank, count in enumerate(row, 1):
                if count:
                    xs.append(position)
                    ys.append(rank)
                    sizes.append(3 + 80 * count / total)
        positions = list(range(1, len(counts) + 1))
        top = max([len(counts), *highs, 1])
        ax.plot([0.5, top + 0.5], [0.5, top + 0.5], color="#999999", linewidth=0.8, linestyle=":")
        ax.scatter(xs, ys, s=sizes, color="#4c72b0", alpha=0.55, linewidths=0)
        ax.vlines(positions, list(lows), list(highs), color="#222222", linewidth=0.8)
        ax.scatter(positions, list(medians), marker="_", s=40, color="#222222")
        ax.set_xlim(0.5, len(counts) + 0.5)
        ax.set_ylim(top + 0.5, 0.5)  # rank 1 at the top
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("leaderboard position")
        ax.set_ylabel("rank in a resample")
        return _svg(fig, salt, title)


def significance(salt: str, title: str, better: Sequence[Sequence[bool]], *,
                 cache: PlotCache | None = None) -> Markup:
    """A significance map: the cell at row i, column j is dark when the team at leaderboard
    position i is significantly better than the one at position j."""
    key = ("significance", salt, title, tuple(tuple(bool(v) for v in row) for row in better))
    return (cache or PlotCache(None)).get(key, lambda: _significance(salt, title, better))


def _significance(salt: str, title: str, better: Sequence[Sequence[bool]]) -> Markup:
    from matplotlib.colors import ListedColormap

    n = len(better)
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(6.4, 4.8))
        fig.subplots_adjust(left=0.1, right=0.98, top=0.95, bottom=0.12)
        ax = fig.add_subplot()
        edges = [k + 0.5 for k in range(n + 1)]
        ax.pcolormesh(edges, edges, [[1.0 if v else 0.0 for v in row] for row in better],
                      cmap=ListedColormap(["#eeeeee", "#1f4e99"]), vmin=0.0, vmax=1.0,
                      edgecolors="#ffffff", linewidth=0.3)
        ax.set_xlim(0.5, n + 0.5)
        ax.set_ylim(n + 0.5, 0.5)  # position 1 at the top
        ax.set_aspect("equal")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("leaderboard position of the other team")
        ax.set_ylabel("leaderboard position")
        return _svg(fig, salt, title)
