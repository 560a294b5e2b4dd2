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
        Paired values, at least two.

    Returns
    -------
    float
        In [-1, 1]; 0.0 when either input is constant (no linear
        association can be measured; scipy returns NaN there).

    References
    ----------
    .. [1] K. Pearson, "Notes on regression and inheritance in the case of two
       parents", Proceedings of the Royal Society of London 58 (1895) 240-242.
    """
    t, p = _pair(truth, prediction)
    if len(t) < 2:
        raise ScorerError("pearson_r needs at least two items")
    if np.ptp(t) == 0 or np.ptp(p) == 0:
        return 0.0
    dt, dp = t - t.mean(), p - p.mean()
    den = float(np.sqrt(np.sum(dt * dt) * np.sum(dp * dp)))
    return float(np.clip(np.sum(dt * dp) / den, -1.0, 1.0))
