"""Pixel-mask metrics: Dice, Jaccard, accuracy, precision, recall, F1.

Each takes ``(truth, prediction)`` boolean (or 0/1 integer) masks of the same
shape. Ratios whose denominator is zero follow one explicit convention: when
both masks are empty the score is ``empty`` (default 1.0: nothing to find,
nothing found); any other 0/0 (precision of an empty prediction against a
non-empty truth, recall of a non-empty prediction against an empty truth) is
0.0.

References
----------
.. [1] L. R. Dice, "Measures of the amount of ecologic association between
   species", Ecology 26 (1945) 297-302.
.. [2] P. Jaccard, "The distribution of the flora in the alpine zone", New
   Phytologist 11 (1912) 37-50.
.. [3] C. J. van Rijsbergen, Information Retrieval, 2nd ed., Butterworths, 1979.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from ._validate import as_mask, same_shape

__all__ = ["mask_accuracy", "mask_dice", "mask_f1", "mask_jaccard", "mask_precision", "mask_recall"]


class _Counts(NamedTuple):
    tp: int
    fp: int
    fn: int
    tn: int


def _counts(truth: ArrayLike, prediction: ArrayLike) -> _Counts:
    t = as_mask(truth, "truth")
    p = as_mask(prediction, "prediction")
    same_shape(t, p)
    tp = int(np.count_nonzero(t & p))
    n_t, n_p = int(np.count_nonzero(t)), int(np.count_nonzero(p))
    return _Counts(tp, n_p - tp, n_t - tp, t.size - n_t - n_p + tp)


def _ratio(num: int, den: int, c: _Counts, empty: float) -> float:
    if den:
        return num / den
    return float(empty) if c.tp + c.fp + c.fn == 0 else 0.0


def mask_dice(truth: ArrayLike, prediction: ArrayLike, *, empty: float = 1.0) -> float:
    """Dice coefficient ``2|T & P| / (|T| + |P|)``.

    Parameters
    ----------
    truth, prediction : array_like of bool
        Masks of the same shape.
    empty : float
        Score when both masks are empty.

    Returns
    -------
    float

    References
    ----------
    .. [1] L. R. Dice, Ecology 26 (1945) 297-302.
    """
    c = _counts(truth, prediction)
    return _ratio(2 * c.tp, 2 * c.tp + c.fp + c.fn, c, empty)


def mask_jaccard(truth: ArrayLike, prediction: ArrayLike, *, empty: float = 1.0) -> float:
    """Jaccard index (IoU) ``|T & P| / |T | P|``.

    Parameters
    ----------
    truth, prediction : array_like of bool
        Masks of the same shape.
    empty : float
        Score when both masks are empty.

    Returns
    -------
    float

    References
    ----------
    .. [1] P. Jaccard, New Phytologist 11 (1912) 37-50.
    """
    c = _counts(truth, prediction)
    return _ratio(c.tp, c.tp + c.fp + c.fn, c, empty)


def mask_accuracy(truth: ArrayLike, prediction: ArrayLike) -> float:
    """Fraction of pixels where the masks agree.

    Parameters
    ----------
    truth, prediction : array_like of bool
        Masks of the same shape.

    Returns
    -------
    float

    References
    ----------
    .. [1] T. Fawcett, "An introduction to ROC analysis", Pattern Recognition
       Letters 27 (2006) 861-874.
    """
    c = _counts(truth, prediction)
    return (c.tp + c.tn) / (c.tp + c.tn + c.fp + c.fn)


def mask_precision(truth: ArrayLike, prediction: ArrayLike, *, empty: float = 1.0) -> float:
    """Precision ``|T & P| / |P|``.

    Parameters
    ----------
    truth, prediction : array_like of bool
        Masks of the same shape.
    empty : float
        Score when both masks are empty; an empty prediction against a
        non-empty truth scores 0.

    Returns
    -------
    float

    References
    ----------
    .. [1] C. J. van Rijsbergen, Information Retrieval, 2nd ed., 1979.
    """
    c = _counts(truth, prediction)
    return _ratio(c.tp, c.tp + c.fp, c, empty)


def mask_recall(truth: ArrayLike, prediction: ArrayLike, *, empty: float = 1.0) -> float:
    """Recall (sensitivity) ``|T & P| / |T|``.

    Parameters
    ----------
    truth, prediction : array_like of bool
        Masks of the same shape.
    empty : float
        Score when both masks are empty; a non-empty prediction against an
        empty truth scores 0.

    Returns
    -------
    float

    References
    ----------
    .. [1] C. J. van Rijsbergen, Information Retrieval, 2nd ed., 1979.
    """
    c = _counts(truth, prediction)
    return _ratio(c.tp, c.tp + c.fn, c, empty)


def mask_f1(truth: ArrayLike, prediction: ArrayLike, *, empty: float = 1.0) -> float:
    """F1 score of the positive class; equal to :func:`mask_dice`.

    Parameters
    ----------
    truth, prediction : array_like of bool
        Masks of the same shape.
    empty : float
        Score when both masks are empty.

    Returns
    -------
    float

    References
    ----------
    .. [1] C. J. van Rijsbergen, Information Retrieval, 2nd ed., 1979.
    """
    return mask_dice(truth, prediction, empty=empty)
