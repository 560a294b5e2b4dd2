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

__all__ = ["accuracy", "balanced_accuracy", "f1", "class_labels", "roc_auc"]


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


def class_labels(truth: ArrayLike, prediction: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    """Truth and predicted class labels of one comparable type, or a clear refusal.

    Tables give numbers or text: a prediction column written ``1.0, 0.0`` reads
    as floats against the truth's integers, and must compare equal to ``1, 0``;
    a column of probabilities or scores (``0.73``) is not a class label and is
    refused rather than scored as all wrong. Numbers against text are refused too.

    Parameters
    ----------
    truth, prediction : array_like
        1-D class labels: integers, bools, integral floats or strings.

    Returns
    -------
    tuple of ndarray
        Both as int64 when both are numeric, else both as strings.

    Raises
    ------
    ScorerError
        Naming the first non-integral prediction (probabilities where classes
        are expected), NaN, or numbers where the truth has text (or back).
    """
    t = _as_class_array(truth, "truth")
    p = _as_class_array(prediction, "prediction")
    same_length(("truth", t), ("prediction", p))
    t_text, p_text = t.dtype.kind in "US", p.dtype.kind in "US"
    if t_text and p_text:
        return t.astype(str), p.astype(str)
    if t_text != p_text:
        text, numbers = ("truth", "prediction") if t_text else ("prediction", "truth")
        example = (t if t_text else p)[0]
        raise ScorerError(
            f"prediction: class labels are numbers in the {numbers} but text in the {text} "
            f"(e.g. {str(example)[:40]!r}); write the truth's class labels"
        )
    return _integral(t, "truth"), _integral(p, "prediction")


def _as_class_array(value: ArrayLike, name: str) -> NDArray[Any]:
    arr = np.asarray(value)
    if arr.ndim != 1 or arr.size == 0:
        raise ScorerError(f"{name}: class labels must be a non-empty 1-D array, got shape {arr.shape}")
    if arr.dtype == object:
        arr = arr.astype(str)
    if arr.dtype.kind not in "biufUS":
        raise ScorerError(f"{name}: class labels must be integers, bools or strings, got {arr.dtype}")
    return arr


def _integral(arr: NDArray[Any], name: str) -> NDArray[np.int64]:
    if arr.dtype.kind != "f":
        return arr.astype(np.int64)
    finite = np.isfinite(arr)
    if not finite.all():
        raise ScorerError(f"{name}: class labels contain NaN or infinite values")
    fractional = np.flatnonzero(arr != np.round(arr))
    if len(fractional):
        first = float(arr[fractional[0]])
        kind = "probabilities" if ((arr >= 0) & (arr <= 1)).all() else "scores"
        raise ScorerError(
            f"{name}: {len(fractional)} value(s) are not whole numbers (first {first:g} at row "
            f"{int(fractional[0])}); they look like {kind}, but class labels are expected: "
            "write the predicted class (e.g. 0 or 1), not a probability"
        )
    if np.abs(arr).max() >= 2**62:
        raise ScorerError(f"{name}: class labels are too large to be class numbers")
    return arr.astype(np.int64)


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
