"""Scorer library of jc-datalad: exact, validated, fast challenge metrics.

Pure functions over numpy arrays, in the style of ``skimage.metrics``:
``(truth, prediction, *, option=...) -> float | dict``. Every function checks
its inputs first and raises :class:`ScorerError` naming what is wrong.

>>> import scorers
>>> scorers.get("symmetric_best_dice")  # doctest: +ELLIPSIS
<function symmetric_best_dice at ...>

Folder scoring for the runner: :func:`score_folder` returns a
:class:`FolderScore` record with aggregate and per-file metrics and errors;
:func:`score_parts` adds the public and private parts. ``python -m
scorers.sealed`` runs it as a process of its own, for the runner's sandbox.
"""

from ._version import __version__
from .classification import accuracy, balanced_accuracy, f1, roc_auc
from .errors import ScorerError
from .folder import FolderScore, ItemScore, PartsScore, folder_scorers, score_folder, score_parts
from .instance import (
    IOU_THRESHOLDS,
    InstanceScore,
    Matching,
    abs_dic,
    best_dice,
    dic,
    foreground_dice,
    instance_segmentation,
    match_instances,
    score_instances,
    summarize_instances,
    symmetric_best_dice,
)
from .interval import coverage_penalty, coverage_score
from .legacy_cvppp import LegacyScore, legacy_score
from .overlap import LabelOverlap, label_overlap
from .pixel import mask_accuracy, mask_dice, mask_f1, mask_jaccard, mask_precision, mask_recall
from .registry import describe, get, names
from .regression import mae, mean_bias_error, mean_relative_error, pearson_r, r2, rmse

__all__ = [
    "IOU_THRESHOLDS",
    "FolderScore",
    "InstanceScore",
    "ItemScore",
    "LabelOverlap",
    "LegacyScore",
    "Matching",
    "PartsScore",
    "ScorerError",
    "__version__",
    "abs_dic",
    "accuracy",
    "balanced_accuracy",
    "best_dice",
    "coverage_penalty",
    "coverage_score",
    "describe",
    "dic",
    "f1",
    "folder_scorers",
    "foreground_dice",
    "get",
    "instance_segmentation",
    "label_overlap",
    "legacy_score",
    "mae",
    "mask_accuracy",
    "mask_dice",
    "mask_f1",
    "mask_jaccard",
    "mask_precision",
    "mask_recall",
    "match_instances",
    "mean_bias_error",
    "mean_relative_error",
    "names",
    "pearson_r",
    "r2",
    "rmse",
    "roc_auc",
    "score_folder",
    "score_instances",
    "score_parts",
    "summarize_instances",
    "symmetric_best_dice",
]
