"""Inline SVG plots drawn with matplotlib, the same bytes for the same data.

Each plot is drawn on its own :class:`~matplotlib.figure.Figure` (no pyplot, no
global figure state) with the SVG backend; ``svg.hashsalt`` is fixed per plot so
the ids inside are stable (and differ between plots of one page), the ``Date``
metadata is left out, and text stays text (``svg.fonttype = none``), so no
build-time clock or font file reaches a page.
"""

from __future__ import annotations

import datetime as dt
import io
import re
from collections.abc import Sequence
from typing import Any, cast

import matplotlib
import matplotlib.dates as mdates
from markupsafe import Markup, escape
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

_RC: Any = {"svg.fonttype": "none", "timezone": "UTC", "font.size": 9.0,
       "font.family": ["DejaVu Sans", "sans-serif"], "axes.spines.top": False,
       "axes.spines.right": False}
_SIZE = (6.4, 2.8)


def _svg(fig: Figure, salt: str, title: str) -> Markup:
    """``fig`` as an inline ``<svg>`` element labelled ``title`` (role img, <title> first)."""
    buf = io.StringIO()
    with matplotlib.rc_context(cast(Any, {**_RC, "svg.hashsalt": salt})):
        fig.savefig(buf, format="svg", metadata={"Date": None}, bbox_inches=None)
    text = buf.getvalue()
    text = text[text.index("<svg"):]  # drop the XML declaration and doctype: the SVG is inline
    label = escape(title)
    ident = "plot-" + re.sub(r"[^A-Za-z0-9_-]", "-", salt)
    # several plots share a page: prefix every id (figure_1, patch_1, ...) and each reference to it
    text = re.sub(r'(\bid="|url\(#|href="#)', rf"\g<1>{ident}-", text)
    text = re.sub(r"<svg ", f'<svg role="img" aria-labelledby="{ident}" ', text, count=1)
    text = re.sub(r"(<svg[^>]*>)", rf'\1<title id="{ident}">{label}</title>', text, count=1)
    return Markup(text)


def _figure() -> Figure:
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=_SIZE)
        # fixed margins: a layout engine would double the drawing time of every plot
        fig.subplots_adjust(left=0.1, right=0.98, top=0.95, bottom=0.24)
        return fig


def steps(salt: str, title: str, series: Sequence[tuple[str, Sequence[dt.datetime], Sequence[float]]],
          *, ylabel: str, markers: bool = False, counts: bool = False) -> Markup:
    """A step line per named series over time (each step holds until the next point)."""
    with matplotlib.rc_context(_RC):
        fig = _figure()
        ax = fig.add_subplot()
        for name, xs, ys in series:
            ax.step(cast(Any, list(xs)), list(ys), where="post", label=name, marker="o" if markers else None,
                    markersize=3)
        ax.set_ylabel(ylabel)
        if counts:
            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        if len(series) > 1:
            ax.legend(loc="best", frameon=False)
        _dates(ax)
        return _svg(fig, salt, title)


def points(salt: str, title: str, series: Sequence[tuple[str, Sequence[dt.datetime], Sequence[float]]],
           *, ylabel: str) -> Markup:
    """Scores over time: one marker per submission, joined per series."""
    with matplotlib.rc_context(_RC):
        fig = _figure()
        ax = fig.add_subplot()
        for name, xs, ys in series:
            ax.plot(cast(Any, list(xs)), list(ys), marker="o", markersize=4, label=name)
        ax.set_ylabel(ylabel)
        if len(series) > 1:
            ax.legend(loc="best", frameon=False)
        _dates(ax)
        return _svg(fig, salt, title)


def bars(salt: str, title: str, labels: Sequence[str], values: Sequence[float], *, ylabel: str) -> Markup:
    """One bar per label (days, bins), labels thinned to at most about 12."""
    with matplotlib.rc_context(_RC):
        fig = _figure()
        ax = fig.add_subplot()
        positions = list(range(len(labels)))
        ax.bar(positions, list(values), color="#4c72b0")
        every = max(1, len(labels) // 12 + (1 if len(labels) % 12 else 0))
        ax.set_xticks(positions[::every], list(labels)[::every], rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts
        return _svg(fig, salt, title)


def _dates(ax: Any) -> None:
    """Date ticks that fit, with a concise formatter."""
    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
