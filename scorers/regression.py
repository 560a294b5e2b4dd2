"""Regression metrics over paired 1-D arrays of finite numbers.

Used for root length and count, coating lifetime and age prediction. Every
function takes ``(truth, prediction)`` and validates length, emptiness and
NaN/inf first.

References
----------
.. [1] C. J. Willmott, K. Matsuura, "Advantages of the mean absolute error
   (MAE) over the root mean square error (RMSE) in assessing average model
   performance", Climate Research 30 (2005) 79-82.
.. [2] F. Pedregosa et al., "Scikit-learn: Machine Learning in Python", JMLR 12
   (2011) 2825-2830 (definitions of r2_score and the constant-truth case).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validate import as_finite, same_length
from .errors import ScorerError

__all__ = ["mae", "mean_bias_error", "mean_relative_error", "pearson_r", "r2", "rmse"]


def _pair(truth: ArrayLike, prediction: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    t = as_finite(truth, "truth")
    p = as_finite(prediction, "prediction")
    same_length(("truth", t), ("prediction", p))
    return t, p


def r2(truth: ArrayLike, prediction: ArrayLike) -> float:
    """Coefficient of determination ``1 - SS_res / SS_tot``.

    Parameters
    ----------
    truth, prediction : array_like of float
        Paired values.

    Returns
    -------
    float
        At most 1, unbounded below. With constant truth (``SS_tot = 0``):
        1.0 for a perfect prediction, else 0.0 (scikit-learn's
        ``force_finite=True``).

    References
    ----------
    .. [1] F. Pedregosa et al., JMLR 12 (2011) 2825-2830, ``r2_score``.
    """
    t, p = _pair(truth, prediction)
    ss_res = float(np.sum((t - p) ** 2))
    ss_tot = float(np.sum((t - t.mean()) ** 2))
    if ss_tot == 0.0:
        return 1.0 if ss_res == 0.0 else 0.0
    return 1.0 - ss_res / ss_tot


def mean_relative_error(truth: ArrayLike, prediction: ArrayLike) -> float:
    """Mean of ``|prediction - truth| / |truth|``.

    Parameters
    ----------
    truth, prediction : array_like of float
        Paired values; the truth must be non-zero.

    Returns
    -------
    float

    Raises
    ------
    ScorerError
        If a truth value is 0 (the relative error is undefined there).

    References
    ----------
    .. [1] R. J. Hyndman, A. B. Koehler, "Another look at measures of forecast
       accuracy", International Journal of Forecasting 22 (2006) 679-688.
    """
    t, p = _pair(truth, prediction)
    zero = np.flatnonzero(t == 0)
    if len(zero):
        raise ScorerError(
            f"truth: {len(zero)} value(s) are 0 (first at index {int(zero[0])}); "
            "the relative error is undefined there, use mae instead"
        )
    return float(np.mean(np.abs(p - t) / np.abs(t)))


def mae(truth: ArrayLike, prediction: ArrayLike) -> float:
    """Mean absolute error.

    Parameters
    ----------
    truth, prediction : array_like of float
        Paired values.

    Returns
    -------
    float

    References
    ----------
    .. [1] C. J. Willmott, K. Matsuura, Climate Research 30 (2005) 79-82.
    """
    t, p = _pair(truth, prediction)
    return float(np.mean(np.abs(p - t)))


def rmse(truth: ArrayLike, prediction: ArrayLike) -> float:
    """Root mean squared error.

    Parameters
    ----------
    truth, prediction : array_like of float
        Paired values.

    Returns
    -------
    float

    References
    ----------
    .. [1] C. J. Willmott, K. Matsuura, Climate Research 30 (2005) 79-82.
    """
    t, p = _pair(truth, prediction)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mean_bias_error(truth: ArrayLike, prediction: ArrayLike) -> float:
    """Mean bias error: mean of ``prediction - truth`` (positive = overestimate).

    Parameters
    ----------
    truth, prediction : array_like of float
        Paired values.

    Returns
    -------
    float

    References
    ----------
    .. [1] C. J. Willmott, "Some comments on the evaluation of model
       performance", Bulletin of the AMS 63 (1982) 1309-1313.
    """
    t, p = _pair(truth, prediction)
    return float(np.mean(p - t))


def pearson_r(truth: ArrayLike, prediction: ArrayLike) -> float:
    """Pearson correlation coefficient.

    Parameters
    ----------
    truth, prediction : array_like of float
        Paired values, at least two; any finite magnitude (1e-300 to 1e300).

    Returns
    -------
    float
        In [-1, 1]; 0.0 when either input is constant (no linear
        association can be measured; scipy returns NaN there).

    Notes
    -----
    Each input is scaled by a power of two (exact) to a largest magnitude in
    [0.5, 1) before the mean is taken, and its deviations by their largest
    magnitude before they are squared, so that values near 1e200 do not
    overflow to NaN and values near 1e-200 do not underflow to 0. The steps
    after the exact scaling are those of ``scipy.stats.pearsonr``, which scales
    its deviations the same way but not the mean (it overflows on values near
    1e308).

    References
    ----------
    .. [1] K. Pearson, "Notes on regression and inheritance in the case of two
       parents", Proceedings of the Royal Society of London 58 (1895) 240-242.
    """
    t, p = _pair(truth, prediction)
    if len(t) < 2:
        raise ScorerError("pearson_r needs at least two items")
    if t.max() == t.min() or p.max() == p.min():
        return 0.0
    dt, dp = _unit_deviations(t), _unit_deviations(p)
    if dt is None or dp is None:  # constant once scaled: only values below 1e-308 differed
        return 0.0
    return float(np.clip(np.dot(dt, dp), -1.0, 1.0))


def _to_unit(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``x`` times the power of two that brings its largest magnitude into [0.5, 1).

    Exact (only the exponents change), so every later step gives scipy's bits
    wherever scipy's own arithmetic neither overflows nor underflows.
    """
    _, exponent = np.frexp(np.max(np.abs(x)))
    return np.ldexp(x, -int(exponent))


def _unit_deviations(x: NDArray[np.float64]) -> NDArray[np.float64] | None:
    """Deviations from the mean divided by their norm (None if all 0), as scipy's ``pearsonr``."""
    centred = _to_unit(x)
    centred = centred - centred.mean()
    largest = np.max(np.abs(centred))
    if largest == 0:
        return None
    # The norm of the deviations scaled to a largest magnitude of 1: no overflow or underflow.
    scaled = centred / largest
    norm = largest * np.sqrt(np.add.reduce(scaled * scaled))
    return centred / norm
