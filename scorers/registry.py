"""Name -> function registry of every array-level metric.

``get("symmetric_best_dice")`` returns the function; ``names()`` lists what is
available. Every registered function takes ``(truth, prediction, **options)``
(``coverage_score`` takes ``(mu_true, p16, p84)``) and returns a float, an int
or a dict of floats.

``describe("sbd", scorer="instance_segmentation")`` gives a one-sentence
definition of a metric under the name a scorer reports it (a leaderboard
column), for challenge pages; None for a name it does not know.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import brains, classification, instance, interval, pixel, regression
from .errors import ScorerError

__all__ = ["MetricInfo", "describe", "get", "metric_info", "names"]

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


# -- definitions of reported metrics ------------------------------------------
# By the name each scorer reports a metric under: the same name means different
# things to different scorers (``f1`` of pixel masks vs. of classes).

_INSTANCE = {
    "sbd": "Symmetric best Dice: for each object the best Dice with any object of the other image, "
           "averaged, taken in both directions (truth to prediction and back); the smaller of the two, "
           "averaged over images. 1 is perfect (CVPPP; Scharr et al. 2016).",
    "best_dice": "Best Dice from each predicted object to any true object, averaged over the predicted "
                 "objects, then over images.",
    "best_dice_truth": "Best Dice from each true object to any predicted object, averaged over the true "
                       "objects, then over images.",
    "dic": "Difference in count: the number of predicted minus the number of true objects, averaged over "
           "images. 0 is perfect.",
    "abs_dic": "|DiC|: the absolute difference between the numbers of predicted and true objects, "
               "averaged over images. 0 is perfect.",
    "fg_dice": "Foreground Dice: Dice of all object pixels against all predicted object pixels, whichever "
               "object they belong to, averaged over images.",
    "n_images": "Number of images (frames) scored.",
    "ap": "Average precision TP / (TP + FP + FN) averaged over the IoU thresholds 0.5, 0.55, ..., 0.95.",
}

#: Per IoU threshold (``f1_50``, ``ap50``, ...): objects match one to one when their IoU reaches the
#: threshold (StarDist matching); counts are pooled over images before a ratio is taken.
_INSTANCE_TAGGED = (
    (re.compile(r"^tp_(\d+(?:\.\d+)?)$"), "True positives at IoU {t}: predicted objects matched one to "
                                         "one with a true object, summed over images."),
    (re.compile(r"^fp_(\d+(?:\.\d+)?)$"), "False positives at IoU {t}: predicted objects without a match, "
                                         "summed over images."),
    (re.compile(r"^fn_(\d+(?:\.\d+)?)$"), "False negatives at IoU {t}: true objects without a match, "
                                         "summed over images."),
    (re.compile(r"^precision_(\d+(?:\.\d+)?)$"), "Precision at IoU {t}: TP / (TP + FP)."),
    (re.compile(r"^recall_(\d+(?:\.\d+)?)$"), "Recall at IoU {t}: TP / (TP + FN)."),
    (re.compile(r"^f1_(\d+(?:\.\d+)?)$"), "F1 at IoU {t}: 2 TP / (2 TP + FP + FN); a predicted and a true "
                                         "object match when their intersection over union reaches {t}."),
    (re.compile(r"^ap(\d+(?:\.\d+)?)$"), "Average precision at IoU {t}, as in StarDist and the Data "
                                        "Science Bowl 2018: TP / (TP + FP + FN)."),
    (re.compile(r"^mean_iou_(\d+(?:\.\d+)?)$"), "Mean IoU of the object pairs matched at IoU {t}."),
    (re.compile(r"^pq_(\d+(?:\.\d+)?)$"), "Panoptic quality at IoU {t}: the sum of the matched IoUs / "
                                         "(TP + FP/2 + FN/2) (Kirillov et al. 2019)."),
)

_PIXEL = {
    "dice": "Dice coefficient of the masks, 2 |T ∩ P| / (|T| + |P|), averaged over files.",
    "jaccard": "Jaccard index (IoU) of the masks, |T ∩ P| / |T ∪ P|, averaged over files.",
    "precision": "Pixel precision |T ∩ P| / |P|, averaged over files.",
    "recall": "Pixel recall |T ∩ P| / |T|, averaged over files.",
    "f1": "Pixel F1 of the foreground (equal to Dice), averaged over files.",
    "accuracy": "Fraction of pixels where the masks agree, averaged over files.",
    "n_items": "Number of files scored.",
}

_REGRESSION = {
    "r2": "Coefficient of determination 1 - SS_res / SS_tot over all rows. 1 is perfect.",
    "mae": "Mean absolute error: mean of |prediction - truth|.",
    "rmse": "Root mean squared error: square root of the mean of (prediction - truth)².",
    "mean_bias_error": "Mean of prediction - truth (positive: overestimates).",
    "pearson_r": "Pearson correlation coefficient of prediction and truth.",
    "mean_relative_error": "Mean of |prediction - truth| / |truth| (undefined when a true value is 0).",
    "n": "Number of rows scored.",
}

#: Per value column when the regression scorer's ``columns`` option names several (``r2_length_mm``).
_REGRESSION_COLUMN = re.compile(
    r"^(r2|mae|rmse|mean_bias_error|pearson_r|mean_relative_error)_([A-Za-z0-9_.-]{1,64})$")
_REGRESSION_MEAN_R2 = ("Mean over the scored value columns of each column's coefficient of determination "
                       "1 - SS_res / SS_tot: every quantity counts alike. 1 is perfect.")

_CLASSIFICATION = {
    "accuracy": "Fraction of items whose predicted class is the true class.",
    "balanced_accuracy": "Recall of each true class, averaged over the classes.",
    "f1_macro": "F1 score 2 TP / (2 TP + FP + FN) of each class, averaged over the classes (macro).",
    "n": "Number of rows scored.",
}

_COVERAGE = {
    "width": "Mean width of the intervals, p84 - p16.",
    "coverage": "Fraction of true values inside their interval [p16, p84].",
    "penalty": "Coverage penalty f(c): 1 while the coverage lies within the confidence ± 2σ, growing "
               "outside it (FAIR Universe HiggsML uncertainty challenge).",
    "score": "-ln((width + ε) · f(c)): narrow intervals with the intended coverage score highest "
             "(FAIR Universe HiggsML uncertainty challenge).",
}

#: Registered metric names, as reported when a challenge's scorer is a single metric.
_METRICS = {
    "symmetric_best_dice": _INSTANCE["sbd"],
    "best_dice": _INSTANCE["best_dice"],
    "dic": _INSTANCE["dic"],
    "abs_dic": _INSTANCE["abs_dic"],
    "foreground_dice": _INSTANCE["fg_dice"],
    "instance_segmentation": "Instance segmentation scores: best Dice, DiC and IoU matching per threshold.",
    "dice": "Dice coefficient of the masks, 2 |T ∩ P| / (|T| + |P|).",
    "jaccard": "Jaccard index (IoU) of the masks, |T ∩ P| / |T ∪ P|.",
    "pixel_accuracy": "Fraction of pixels where the masks agree.",
    "pixel_precision": "Pixel precision |T ∩ P| / |P|.",
    "pixel_recall": "Pixel recall |T ∩ P| / |T|.",
    "pixel_f1": "Pixel F1 of the foreground (equal to Dice).",
    **{k: v for k, v in _REGRESSION.items() if k != "n"},
    "accuracy": _CLASSIFICATION["accuracy"],
    "balanced_accuracy": _CLASSIFICATION["balanced_accuracy"],
    "f1": "F1 score of the positive class: 2 TP / (2 TP + FP + FN).",
    "f1_macro": _CLASSIFICATION["f1_macro"],
    "roc_auc": "Area under the ROC curve from continuous scores (ties count half); with three or more "
               "classes the mean over the classes of each class's one-vs-rest AUC (macro).",
    "coverage_score": "Width, coverage, penalty and score of confidence intervals (FAIR Universe HiggsML).",
}

_BY_SCORER = {
    "instance_segmentation": _INSTANCE,
    "pixel_masks": _PIXEL,
    "regression": _REGRESSION,
    "classification": _CLASSIFICATION,
    "coverage_score": _COVERAGE,
    "sex_age": brains.DEFINITIONS,
}


def _threshold(tag: str) -> str:
    return f"{float(tag) / 100:g}"


def describe(metric: str, scorer: str | None = None) -> str | None:
    """A one-sentence definition of ``metric`` as ``scorer`` reports it; None if unknown.

    ``scorer`` is a folder scorer (``instance_segmentation``, ``pixel_masks``, ...)
    or a registered metric name, as in a challenge's ``metrics.scorer``.
    """
    own = _BY_SCORER.get(scorer or "", {})
    if metric in own:
        return own[metric]
    if scorer == "regression":
        if metric == "mean_r2":
            return _REGRESSION_MEAN_R2
        match = _REGRESSION_COLUMN.match(metric)
        if match:
            return f"Of the value column {match.group(2)}: {_REGRESSION[match.group(1)]}"
    if scorer in (None, "instance_segmentation"):
        for pattern, text in _INSTANCE_TAGGED:
            match = pattern.match(metric)
            if match:
                return text.format(t=_threshold(match.group(1)))
        if metric in _INSTANCE:
            return _INSTANCE[metric]
    if metric in _METRICS:
        return _METRICS[metric]
    if scorer is None:  # a name only one scorer reports
        found = {table[metric] for table in _BY_SCORER.values() if metric in table}
        if len(found) == 1:
            return found.pop()
    return None


# -- what a reported metric is, for tables that lay metrics out --------------------------------

#: The family of each pattern of ``_INSTANCE_TAGGED``, in its order (``f1_50`` -> ``f1``).
_TAGGED_FAMILIES = ("tp", "fp", "fn", "precision", "recall", "f1", "ap", "mean_iou", "pq")

#: The order a table shows the families of per-threshold metrics in: scores, then counts.
FAMILY_ORDER = ("precision", "recall", "f1", "ap", "mean_iou", "pq", "tp", "fp", "fn")

#: Which way each reported metric is better: "max", "min", "zero" (closer to 0), or absent (a count
#: or a value with no better side). By scorer, like the definitions.
_BETTER: dict[str, dict[str, str]] = {
    "instance_segmentation": {
        "sbd": "max", "best_dice": "max", "best_dice_truth": "max", "dic": "zero", "abs_dic": "min",
        "fg_dice": "max", "ap": "max", "tp": "max", "fp": "min", "fn": "min", "precision": "max",
        "recall": "max", "f1": "max", "mean_iou": "max", "pq": "max"},
    "pixel_masks": {k: "max" for k in ("dice", "jaccard", "precision", "recall", "f1", "accuracy")},
    "regression": {"r2": "max", "mae": "min", "rmse": "min", "mean_bias_error": "zero", "pearson_r": "max",
                   "mean_relative_error": "min"},
    "classification": {"accuracy": "max", "balanced_accuracy": "max", "f1_macro": "max"},
    "coverage_score": {"width": "min", "penalty": "min", "score": "max"},
    "sex_age": brains.BETTER,
}
_BETTER_METRICS = {
    "symmetric_best_dice": "max", "best_dice": "max", "dic": "zero", "abs_dic": "min", "foreground_dice": "max",
    **{k: "max" for k in ("dice", "jaccard", "pixel_accuracy", "pixel_precision", "pixel_recall", "pixel_f1",
                          "accuracy", "balanced_accuracy", "f1", "f1_macro", "roc_auc", "coverage_score")},
    **_BETTER["regression"],
}
#: Reported names that count things (objects, images, rows) rather than score them.
_COUNTS = frozenset({"tp", "fp", "fn", "n_images", "n_items", "n"})


@dataclass(frozen=True)
class MetricInfo:
    """What a reported metric is: its definition, which way is better, and for a metric reported
    per IoU threshold (``f1_50``) its family (``f1``) and threshold (``"0.5"``)."""

    name: str
    definition: str | None
    better: str | None  # "max", "min", "zero" (closer to 0 is better), None (no better side)
    count: bool  # counts objects, images or rows
    family: str | None = None
    threshold: str | None = None
    family_definition: str | None = None  # the definition with the threshold written as t


def metric_info(metric: str, scorer: str | None = None) -> MetricInfo:
    """What ``metric`` is as ``scorer`` reports it (see :func:`describe`); unknown names get no
    definition and no direction."""
    definition = describe(metric, scorer)
    if scorer in (None, "instance_segmentation"):
        for family, (pattern, text) in zip(_TAGGED_FAMILIES, _INSTANCE_TAGGED, strict=True):
            match = pattern.match(metric)
            if match:
                return MetricInfo(name=metric, definition=definition,
                                  better=_BETTER["instance_segmentation"].get(family), count=family in _COUNTS,
                                  family=family, threshold=_threshold(match.group(1)),
                                  family_definition=text.format(t="t"))
    own = _BETTER.get(scorer or "", {})
    column = _REGRESSION_COLUMN.match(metric) if scorer == "regression" else None
    if metric in own:
        better: str | None = own[metric]
    elif column:
        better = own[column.group(1)]
    elif scorer == "regression" and metric == "mean_r2":
        better = "max"
    elif scorer in (None, "instance_segmentation") and metric in _BETTER["instance_segmentation"]:
        better = _BETTER["instance_segmentation"][metric]
    else:
        better = _BETTER_METRICS.get(metric)
    return MetricInfo(name=metric, definition=definition, better=better, count=metric in _COUNTS)
