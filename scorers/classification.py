"""Classification metrics: accuracy, balanced accuracy, F1, ROC AUC.

Labels may be integers, bools or strings; the truth and prediction are 1-D
arrays of the same length. Definitions follow scikit-learn [1]_, against which
they are tested.

References
----------
.. [1] F. Pedregosa et al., "Scikit-learn: Machine Learning in Python", JMLR 12
   (2011) 2825-2830.
.. [2] K. H. Brodersen, C. S. Ong, K. E. Stephan, J. M. Buhmann, "The balanced
   accuracy and its posterior distribution", ICPR 2010, 3121-3124.
.. [3] J. A. Hanley, B. J. McNeil, "The meaning and use of the area under a
   receiver operating characteristic (ROC) curve", Radiology 143 (1982) 29-36.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validate import as_1d_labels, as_finite, same_length
from .errors import ScorerError

__all__ = ["accuracy", "balanced_accuracy", "f1", "roc_auc"]


def _pair(truth: ArrayLike, prediction: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    t = as_1d_labels(truth, "truth")
    p = as_1d_labels(prediction, "prediction")
    same_length(("truth", t), ("prediction", p))
    if (t.dtype.kind in "US") != (p.dtype.kind in "US"):
        raise ScorerError(
            f"prediction: class labels are {p.dtype} but the truth's are {t.dtype}; "
            "use the same label type (e.g. 'M'/'F' or 0/1) in both"
        )
    return t, p


def accuracy(truth: ArrayLike, prediction: ArrayLike) -> float:
    """Fraction of items whose predicted class equals the true class.

    Parameters
    ----------
    truth, prediction : array_like
        Class labels.

    Returns
    -------
    float

    References
    ----------
    .. [1] F. Pedregosa et al., JMLR 12 (2011), ``accuracy_score``.
    """
    t, p = _pair(truth, prediction)
    return float(np.mean(t == p))


def balanced_accuracy(truth: ArrayLike, prediction: ArrayLike) -> float:
    """Mean over the true classes of the per-class recall.

    Parameters
    ----------
    truth, prediction : array_like
        Class labels; classes only predicted, never true, do not count.

    Returns
    -------
    float

    References
    ----------
    .. [1] K. H. Brodersen et al., ICPR 2010, 3121-3124.
    """
    t, p = _pair(truth, prediction)
    classes, inverse = np.unique(t, return_inverse=True)
    hits = np.bincount(inverse, weights=(t == p), minlength=len(classes))
    sizes = np.bincount(inverse, minlength=len(classes))
    return float(np.mean(hits / sizes))


def _f1_one(t: NDArray[Any], p: NDArray[Any], label: Any) -> float:
    tp = int(np.count_nonzero((t == label) & (p == label)))
    den = int(np.count_nonzero(t == label)) + int(np.count_nonzero(p == label))
    return 2 * tp / den if den else 0.0


def f1(
    truth: ArrayLike,
    prediction: ArrayLike,
    *,
    average: Literal["binary", "macro"] = "binary",
    pos_label: Any = 1,
) -> float:
    """F1 score, binary (of ``pos_label``) or macro-averaged over classes.

    Parameters
    ----------
    truth, prediction : array_like
        Class labels.
    average : {"binary", "macro"}
        ``"binary"``: F1 of the class ``pos_label``. ``"macro"``: unweighted
        mean of the per-class F1 over every class in truth or prediction.
    pos_label : int, bool or str
        The positive class for ``average="binary"``.

    Returns
    -------
    float
        A class with no true and no predicted item scores 0 (scikit-learn's
        ``zero_division=0``).

    References
    ----------
    .. [1] C. J. van Rijsbergen, Information Retrieval, 2nd ed., 1979.
    .. [2] F. Pedregosa et al., JMLR 12 (2011), ``f1_score``.
    """
    t, p = _pair(truth, prediction)
    if average == "binary":
        classes = np.union1d(t, p)
        if len(classes) > 2:
            raise ScorerError(
                f"f1: average='binary' needs two classes, found {len(classes)}; "
                "use average='macro'"
            )
        return _f1_one(t, p, pos_label)
    if average == "macro":
        return float(np.mean([_f1_one(t, p, c) for c in np.union1d(t, p)]))
    raise ScorerError(f"f1: average must be 'binary' or 'macro', got {average!r}")


def roc_auc(truth: ArrayLike, scores: ArrayLike, *, pos_label: Any = 1) -> float:
    """Area under the ROC curve of a binary task, from continuous scores.

    Parameters
    ----------
    truth : array_like
        Binary class labels; both classes must occur.
    scores : array_like of float
        Higher means more likely ``pos_label``.
    pos_label : int, bool or str
        The positive class.

    Returns
    -------
    float
        The Mann-Whitney probability that a random positive outscores a random
        negative, ties counting one half.

    References
    ----------
    .. [1] J. A. Hanley, B. J. McNeil, Radiology 143 (1982) 29-36.
    """
    t = as_1d_labels(truth, "truth")
    s = as_finite(scores, "scores")
    same_length(("truth", t), ("scores", s))
    classes = np.unique(t)
    if len(classes) != 2:
        raise ScorerError(
            f"truth: ROC AUC needs exactly two classes, found {len(classes)}"
        )
    pos = t == pos_label
    n_pos = int(pos.sum())
    if n_pos == 0:
        raise ScorerError(f"truth: the positive class {pos_label!r} does not occur")
    n_neg = len(t) - n_pos
    # Average ranks (ties share the mean rank), then the Mann-Whitney U.
    order = np.argsort(s, kind="mergesort")
    sorted_s = s[order]
    starts = np.flatnonzero(np.r_[True, sorted_s[1:] != sorted_s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    avg_rank = (starts + ends + 1) / 2.0
    ranks = np.empty(len(s))
    ranks[order] = np.repeat(avg_rank, ends - starts)
    u = ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))
