"""Sex and age from one table per subject: the ``sex_age`` folder scorer (template ``brains``).

Each truth and prediction file is a CSV named after the subject (``sub-0001.csv``) whose
first column is the subject id and whose columns ``sex`` (class labels, e.g. ``F``/``M``)
and ``age`` (years) hold that subject's values. Files are read with the scorer's bounded
table reader (:func:`scorers.files.read_table`); the metrics are pooled over every subject
scored (a subject is one item, so the public and private parts of the leaderboard split
by subject):

- ``sex_balanced_accuracy``: balanced accuracy of ``sex`` (the mean recall per true class);
- ``sex_accuracy``: accuracy of ``sex``;
- ``age_pearson_r``: Pearson correlation of predicted and true ``age``;
- ``age_mae``: mean absolute error of ``age`` in years;
- ``n``: subjects scored.

References
----------
.. [1] K. H. Brodersen et al., "The balanced accuracy and its posterior distribution",
   ICPR 2010, 3121-3124.
.. [2] S. Caspers et al., "Studying variability in human brain aging in a population-based
   German cohort - rationale and design of 1000BRAINS", Front. Aging Neurosci. 6 (2014) 149.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from . import classification, regression
from .errors import ScorerError
from .files import ItemError, align, read_table, table_column
from .results import Metrics

__all__ = ["BETTER", "DEFINITIONS", "KEYS", "aggregate", "score_item"]

#: What the scorer reports, in the order it reports it.
KEYS = ("sex_balanced_accuracy", "sex_accuracy", "age_pearson_r", "age_mae", "n")

DEFINITIONS = {
    "sex_balanced_accuracy": "Balanced accuracy of the predicted sex: the recall of each true sex, averaged "
                             "over the sexes, over all subjects. 1 is perfect, 0.5 is chance.",
    "sex_accuracy": "Fraction of subjects whose predicted sex is the true one.",
    "age_pearson_r": "Pearson correlation coefficient of predicted and true age over all subjects. 1 is perfect.",
    "age_mae": "Mean absolute error of the predicted age, in years. 0 is perfect.",
    "n": "Number of subjects scored.",
}
BETTER = {"sex_balanced_accuracy": "max", "sex_accuracy": "max", "age_pearson_r": "max", "age_mae": "min"}


def _truth_table(path: Path) -> Any:
    try:
        frame = read_table(path, trusted=True)
        return (table_column(frame, "sex", numeric=False, role="truth"),
                table_column(frame, "age", numeric=True, role="truth"))
    except ItemError as exc:
        raise ScorerError(f"truth file {path}: {exc}; the hidden data set is broken") from exc


def score_item(truth_path: Path, pred_path: Path, opts: Mapping[str, Any]) -> tuple[Metrics, Any]:
    """One subject's file: per-item figures, and the values :func:`aggregate` pools."""
    sex_t, age_t = _truth_table(truth_path)
    pred = read_table(pred_path)
    sex_t, sex_p = align(sex_t, table_column(pred, "sex", numeric=False, role="prediction"))
    age_t, age_p = align(age_t, table_column(pred, "age", numeric=True, role="prediction"))
    try:
        sex_t, sex_p = classification.class_labels(sex_t, sex_p)
    except ScorerError as exc:
        raise ItemError(str(exc)) from exc
    metrics: Metrics = {"sex_accuracy": float(np.mean(sex_t == sex_p)),
                        "age_mae": float(np.mean(np.abs(age_p - age_t))), "n": float(len(age_t))}
    return metrics, (sex_t, sex_p, age_t.astype(float), age_p.astype(float))


def aggregate(payloads: Sequence[Any], opts: Mapping[str, Any]) -> Metrics:
    """The metrics over every scored subject (pooled, not averaged per file)."""
    if not payloads:
        return dict.fromkeys(KEYS)
    sex_t, sex_p, age_t, age_p = (np.concatenate(parts) for parts in zip(*payloads, strict=True))
    if sex_t.dtype.kind != sex_p.dtype.kind:  # text in some files, numbers in others
        sex_t, sex_p = sex_t.astype(str), sex_p.astype(str)
    if len(age_t) < 2 or np.ptp(age_t) == 0:
        r: float | None = None  # no spread in the truth: no correlation to measure
    elif np.ptp(age_p) == 0:
        r = 0.0  # a constant prediction (the starter kit's mean age) follows none of it
    else:
        r = regression.pearson_r(age_t, age_p)
    return {
        "sex_balanced_accuracy": classification.balanced_accuracy(sex_t, sex_p),
        "sex_accuracy": classification.accuracy(sex_t, sex_p),
        "age_pearson_r": r,
        "age_mae": regression.mae(age_t, age_p),
        "n": float(len(age_t)),
    }
