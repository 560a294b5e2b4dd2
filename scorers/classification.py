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

from ._validate import _as_array, as_1d_labels, same_length
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


def roc_auc(
    truth: ArrayLike,
    scores: ArrayLike,
    *,
    pos_label: Any = None,
    labels: ArrayLike | None = None,
) -> float:
    """Area under the ROC curve, binary or multiclass one-vs-rest, from scores.

    Parameters
    ----------
    truth : array_like, shape (n,)
        Class labels (integers, bools, integral floats or strings).
    scores : array_like of float, shape (n,) or (n, k)
        Shape (n,): a binary task; higher means more likely the positive class.
        Shape (n, k): one column per class (e.g. class probabilities), the
        columns in the order of ``labels``; rows need not sum to 1.
    pos_label : int, bool or str, optional
        The positive class of a binary task; default the larger of the two
        labels (1 of 0/1, 2000 of 1000/2000, ``'M'`` of ``'F'``/``'M'``), as
        scikit-learn. Not allowed with three or more classes.
    labels : array_like, optional
        With 2-D scores: the class of each column. Default: the distinct truth
        labels, sorted (scikit-learn's order).

    Returns
    -------
    float
        Binary: the Mann-Whitney probability that a random positive outscores a
        random negative, ties counting one half (the trapezoidal ROC area).
        Shape (n, 2): the same for the column of the positive class. Three or
        more classes: the unweighted mean over the classes of the one-vs-rest
        AUC of each class's column (scikit-learn's ``roc_auc_score(...,
        multi_class="ovr", average="macro")``).

    Raises
    ------
    ScorerError
        A class of the task never occurs in the truth (its AUC is undefined),
        1-D scores with more than two classes, a column count that differs from
        the number of classes, a truth label without a column, ``pos_label``
        absent or given for a multiclass task, NaN or infinite scores.

    References
    ----------
    .. [1] J. A. Hanley, B. J. McNeil, Radiology 143 (1982) 29-36.
    .. [2] D. J. Hand, R. J. Till, "A simple generalisation of the area under
       the ROC curve for multiple class classification problems", Machine
       Learning 45 (2001) 171-186 (one-vs-rest and its alternatives).
    .. [3] F. Pedregosa et al., JMLR 12 (2011), ``roc_auc_score``.
    """
    t = as_1d_labels(truth, "truth")
    s = _as_scores(scores)
    same_length(("truth", t), ("scores", s))
    if s.ndim == 1:
        if labels is not None:
            raise ScorerError(
                "labels: names the columns of 2-D scores; with 1-D scores give pos_label instead"
            )
        classes = np.unique(t)
        if len(classes) > 2:
            raise ScorerError(
                f"scores: the truth has {len(classes)} classes ({_listed(classes)}) but the scores "
                f"are one column; give one score column per class, shape ({len(t)}, {len(classes)})"
            )
        _need_two(classes)
        positive = _positive(classes, pos_label)
        return _binary_auc(t == positive, s)
    columns = _column_classes(t, labels, s.shape[1])
    if len(columns) == 2:
        positive = _positive(columns, pos_label)
        column = int(np.flatnonzero(columns == positive)[0])
        return _binary_auc(t == positive, s[:, column])
    if pos_label is not None:
        raise ScorerError(
            f"pos_label: {pos_label!r} is for a binary task; with {len(columns)} classes the AUC "
            "averages every class against the rest"
        )
    return float(np.mean([_binary_auc(t == c, s[:, j]) for j, c in enumerate(columns)]))


def _as_scores(value: ArrayLike) -> NDArray[np.float64]:
    arr = _as_array(value, "scores")
    if arr.dtype.kind not in "biuf":
        raise ScorerError(f"scores: must be numbers, got {arr.dtype}")
    if arr.ndim not in (1, 2):
        raise ScorerError(
            f"scores: must be 1-D (binary) or 2-D (one column per class), got shape {arr.shape}"
        )
    out = arr.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(out).reshape(len(out), -1).all(axis=1))
    if len(bad):
        raise ScorerError(
            f"scores: {len(bad)} row(s) hold NaN or infinite values (first at row {int(bad[0])}); "
            "every item needs a finite score"
        )
    return out


def _listed(classes: NDArray[Any], limit: int = 6) -> str:
    shown = ", ".join(repr(c)[:40] for c in classes[:limit].tolist())
    return shown + (", ..." if len(classes) > limit else "")


def _need_two(classes: NDArray[Any]) -> None:
    if len(classes) < 2:
        raise ScorerError(
            f"truth: ROC AUC needs two classes, found only {_listed(classes)}; "
            "it is undefined without positives and negatives"
        )


def _positive(classes: NDArray[Any], pos_label: Any) -> Any:
    """The positive one of two classes: ``pos_label``, default the larger label."""
    if pos_label is None:
        return np.sort(classes)[1]
    for j, value in enumerate(classes.tolist()):
        # Text equals only text: 1 must not find '1' (nor numpy compare str with int).
        if isinstance(value, str) == isinstance(pos_label, str) and value == pos_label:
            return classes[j]
    raise ScorerError(
        f"pos_label: the positive class {pos_label!r} does not occur in the truth "
        f"(classes {_listed(classes)})"
    )


def _column_classes(t: NDArray[Any], labels: ArrayLike | None, n_columns: int) -> NDArray[Any]:
    """The class of each score column; every truth label has one, every class occurs."""
    present = np.unique(t)
    if n_columns < 2:
        raise ScorerError(
            f"scores: 2-D scores need one column per class (at least 2), got {n_columns}; "
            "give binary scores as a 1-D array"
        )
    if labels is None:
        if len(present) != n_columns:
            raise ScorerError(
                f"scores: {n_columns} columns but the truth has {len(present)} classes "
                f"({_listed(present)}); give one column per class, in sorted class order, "
                "or name the column classes with labels="
            )
        _need_two(present)
        return present
    columns = np.asarray(labels)
    if columns.ndim != 1 or len(columns) != n_columns:
        raise ScorerError(
            f"labels: {columns.shape} labels for {n_columns} score columns; "
            "give one label per column"
        )
    if (columns.dtype.kind in "US") != (t.dtype.kind in "US"):
        raise ScorerError(
            f"labels: are {columns.dtype} but the truth's class labels are {t.dtype}; "
            "use the truth's labels"
        )
    if len(np.unique(columns)) != len(columns):
        raise ScorerError(f"labels: name each class once, got {_listed(columns)}")
    missing = np.setdiff1d(present, columns)
    if len(missing):
        raise ScorerError(
            f"labels: the truth has class(es) {_listed(missing)} without a score column; "
            "give one column per class"
        )
    absent = np.setdiff1d(columns, present)
    if len(absent):
        raise ScorerError(
            f"truth: class(es) {_listed(absent)} never occur, so their one-vs-rest AUC is "
            "undefined; score only classes the truth holds"
        )
    return columns


def _binary_auc(pos: NDArray[np.bool_], s: NDArray[np.float64]) -> float:
    """Mann-Whitney U of the positives' scores over n_pos * n_neg; both counts > 0."""
    n_pos = int(pos.sum())
    n_neg = len(pos) - n_pos
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
