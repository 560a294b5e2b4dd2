"""The records a folder scoring returns: per item, per folder, per public/private part.

All are frozen dataclasses with a JSON-safe ``to_dict`` (NaN and inf become None).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FolderScore", "ItemScore", "Metrics", "PartsScore", "clean"]

Metrics = dict[str, float | None]


def clean(value: Any) -> float | None:
    """A JSON-safe number: NaN and inf become None."""
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


@dataclass(frozen=True)
class ItemScore:
    """The score of one file, or why it could not be scored.

    Attributes
    ----------
    name : str
        File name, e.g. ``"img_003.tif"``.
    metrics : dict
        Metric name -> value (None where undefined); empty on error.
    error : str or None
        Human-readable reason the file could not be scored.
    """

    name: str
    metrics: Metrics = field(default_factory=dict)
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form."""
        return {
            "name": self.name,
            "metrics": {k: clean(v) for k, v in self.metrics.items()},
            "error": self.error,
        }


@dataclass(frozen=True)
class FolderScore:
    """The record the runner stores for one scored submission.

    Attributes
    ----------
    scorer : str
        Folder scorer or metric name.
    version : str
        ``scorers.__version__`` that computed it.
    metrics : dict
        Aggregate metrics over the items that could be scored.
    items : tuple of ItemScore
        One per expected file, in name order.
    errors : tuple of str
        Every per-file problem, including unexpected extra files.
    """

    scorer: str
    version: str
    metrics: Metrics
    items: tuple[ItemScore, ...]
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when every expected file was scored and nothing was extra."""
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (NaN and inf become None)."""
        return {
            "scorer": self.scorer,
            "version": self.version,
            "ok": self.ok,
            "metrics": {k: clean(v) for k, v in self.metrics.items()},
            "items": [item.to_dict() for item in self.items],
            "errors": list(self.errors),
        }


@dataclass(frozen=True)
class PartsScore:
    """A folder scored once, with the metrics of its public and private parts.

    Attributes
    ----------
    whole : FolderScore
        Every item, as :func:`score_folder` gives it.
    public, private : dict
        Aggregate metrics over the scored items of each part; ``private`` is
        empty when every item is public.
    """

    whole: FolderScore
    public: Metrics
    private: Metrics

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form: the whole record plus ``public`` and ``private``."""
        return {
            **self.whole.to_dict(),
            "public": {k: clean(v) for k, v in self.public.items()},
            "private": {k: clean(v) for k, v in self.private.items()},
        }
