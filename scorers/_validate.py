"""Input checks shared by every scorer: run first, raise :class:`ScorerError`.

Each check names the argument (``truth``, ``prediction``, ...) and what is
wrong with it, so a participant reading the message knows what to change.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .errors import ScorerError

__all__ = [
    "as_labels",
    "as_mask",
    "as_finite",
    "as_1d_labels",
    "same_shape",
    "same_length",
]


def _as_array(value: ArrayLike, name: str) -> NDArray[Any]:
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged lists and the like
        raise ScorerError(f"{name}: cannot be read as an array ({exc})") from exc
    if arr.dtype == object:
        raise ScorerError(f"{name}: holds Python objects, not numbers; pass a numeric array")
    if arr.size == 0:
        raise ScorerError(f"{name}: is empty (shape {arr.shape}); pass at least one value")
    return arr


def same_shape(truth: NDArray[Any], prediction: NDArray[Any]) -> None:
    """Raise unless both arrays have the same shape."""
    if truth.shape != prediction.shape:
        raise ScorerError(
            f"prediction: shape {tuple(prediction.shape)} differs from the truth's "
            f"{tuple(truth.shape)}; predict one value per truth pixel"
        )


def same_length(*named: tuple[str, NDArray[Any]]) -> None:
    """Raise unless the 1-D arrays all have the same length."""
    lengths = {name: len(arr) for name, arr in named}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ScorerError(f"inputs differ in length: {listed}; pass one value per item")


def as_labels(value: ArrayLike, name: str, *, min_ndim: int = 1) -> NDArray[Any]:
    """Return `value` as an integer label array with ids >= 0.

    Parameters
    ----------
    value : array_like
        Label image: 0 is background, every other value an object id.
    name : str
        Argument name used in error messages.
    min_ndim : int
        Smallest accepted number of dimensions.
    """
    arr = _as_array(value, name)
    if arr.ndim < min_ndim:
        raise ScorerError(f"{name}: needs at least {min_ndim} dimensions, got shape {arr.shape}")
    if arr.dtype.kind not in "iu":
        raise ScorerError(
            f"{name}: labels must be integers, got {arr.dtype}; "
            "save label images as uint16 (or uint8/uint32/int32)"
        )
    if arr.dtype.kind == "i" and arr.min() < 0:
        raise ScorerError(
            f"{name}: label ids must be >= 0 (0 is background), found {int(arr.min())}"
        )
    return arr


def as_mask(value: ArrayLike, name: str) -> NDArray[np.bool_]:
    """Return `value` as a boolean mask; accepts bool or integer 0/1 arrays."""
    arr = _as_array(value, name)
    if arr.dtype == bool:
        return arr
    if arr.dtype.kind not in "iu":
        raise ScorerError(f"{name}: a mask must be bool or integer 0/1, got {arr.dtype}")
    bad = (arr != 0) & (arr != 1)
    if bad.any():
        raise ScorerError(
            f"{name}: a mask holds only 0 and 1, found {int(arr[bad].flat[0])}; "
            "threshold the prediction first"
        )
    return arr.astype(bool)


def as_finite(value: ArrayLike, name: str) -> NDArray[np.float64]:
    """Return `value` as a 1-D float64 array of finite numbers."""
    arr = _as_array(value, name)
    if arr.dtype.kind not in "biuf":
        raise ScorerError(f"{name}: must be numeric, got {arr.dtype}")
    if arr.ndim != 1:
        raise ScorerError(f"{name}: must be one-dimensional, got shape {arr.shape}")
    out = arr.astype(np.float64)
    bad = ~np.isfinite(out)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ScorerError(
            f"{name}: {int(bad.sum())} value(s) are NaN or infinite (first at index {first}); "
            "every item needs a finite value"
        )
    return out


def as_1d_labels(value: ArrayLike, name: str) -> NDArray[Any]:
    """Return `value` as a 1-D array of class labels (integers, bools or strings)."""
    arr = _as_array(value, name)
    if arr.ndim != 1:
        raise ScorerError(f"{name}: must be one-dimensional, got shape {arr.shape}")
    if arr.dtype.kind == "f":
        if not np.isfinite(arr).all():
            raise ScorerError(f"{name}: class labels contain NaN or infinite values")
        if not np.array_equal(arr, np.round(arr)):
            raise ScorerError(
                f"{name}: class labels are non-integer floats; pass class labels, "
                "not scores or probabilities"
            )
    elif arr.dtype.kind not in "biuUS":
        raise ScorerError(f"{name}: class labels must be integers, bools or strings, got {arr.dtype}")
    return arr
