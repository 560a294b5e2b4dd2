"""Name -> function registry of every array-level metric.

``get("symmetric_best_dice")`` returns the function; ``names()`` lists what is
available. Every registered function takes ``(truth, prediction, **options)``
(``coverage_score`` takes ``(mu_true, p16, p84)``) and returns a float, an int
or a dict of floats.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

from . import classification, instance, interval, pixel, regression
from .errors import ScorerError

__all__ = ["get", "names"]

_REGISTRY: dict[str, Callable[..., Any]] = {
    # instance segmentation
    "instance_segmentation": instance.instance_segmentation,
    "best_dice": instance.best_dice,
    "symmetric_best_dice": instance.symmetric_best_dice,
    "dic": instance.dic,
    "abs_dic": instance.abs_dic,
    "foreground_dice": instance.foreground_dice,
    # pixel masks
    "dice": pixel.mask_dice,
    "jaccard": pixel.mask_jaccard,
    "pixel_accuracy": pixel.mask_accuracy,
    "pixel_precision": pixel.mask_precision,
    "pixel_recall": pixel.mask_recall,
    "pixel_f1": pixel.mask_f1,
    # regression
    "r2": regression.r2,
    "mean_relative_error": regression.mean_relative_error,
    "mae": regression.mae,
    "rmse": regression.rmse,
    "mean_bias_error": regression.mean_bias_error,
    "pearson_r": regression.pearson_r,
    # classification
    "accuracy": classification.accuracy,
    "balanced_accuracy": classification.balanced_accuracy,
    "f1": classification.f1,
    "f1_macro": partial(classification.f1, average="macro"),
    "roc_auc": classification.roc_auc,
    # interval estimation
    "coverage_score": interval.coverage_score,
}


def names() -> tuple[str, ...]:
    """Names of every registered metric, sorted."""
    return tuple(sorted(_REGISTRY))


def get(name: str) -> Callable[..., Any]:
    """Return the metric function registered under `name`.

    Raises
    ------
    ScorerError
        If no metric has that name; the message lists the known names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ScorerError(
            f"unknown metric {name!r}; known metrics: {', '.join(names())}"
        ) from None
