"""Reading prediction and truth files, with one clear reason per bad file.

Label images are TIFF (``.tif``/``.tiff``, read with tifffile), tables are CSV
(read with pandas). Every reader raises :class:`ItemError` with a message that
names what is wrong and how to fix it; the folder scorer turns it into a
per-item error, so one bad file never stops the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tifffile
from numpy.typing import NDArray

__all__ = ["ItemError", "LABEL_DTYPES", "read_labels", "read_mask", "read_table", "table_column"]

#: dtypes accepted for label images.
LABEL_DTYPES = (np.uint8, np.uint16, np.uint32, np.int32)


class ItemError(Exception):
    """One file cannot be scored; the message says why and what to do."""


def _read_tiff(path: Path) -> NDArray[Any]:
    try:
        arr = tifffile.imread(path)
    except Exception as exc:  # tifffile raises many types on corrupt files
        raise ItemError(
            f"unreadable as TIFF ({type(exc).__name__}: {exc}); write it with tifffile.imwrite"
        ) from exc
    if not isinstance(arr, np.ndarray):
        raise ItemError("unreadable as TIFF: no image data")
    return arr


def read_labels(path: Path) -> NDArray[Any]:
    """Read a label image or time-lapse stack, shape (H, W) or (T, H, W)."""
    arr = _read_tiff(path)
    if arr.dtype.type not in LABEL_DTYPES:
        hint = " (labels must be whole numbers)" if arr.dtype.kind in "fc" else ""
        raise ItemError(
            f"dtype {arr.dtype} is not a label type{hint}; save labels as uint16 "
            "(uint8, uint32 and int32 are accepted too)"
        )
    if arr.ndim not in (2, 3):
        raise ItemError(
            f"shape {arr.shape} is neither an image (H, W) nor a stack (T, H, W)"
        )
    if arr.size == 0:
        raise ItemError(f"the image is empty (shape {arr.shape})")
    if arr.dtype.kind == "i" and int(arr.min()) < 0:
        raise ItemError(f"label ids must be >= 0 (0 is background), found {int(arr.min())}")
    return arr


def read_mask(path: Path) -> NDArray[np.bool_]:
    """Read a binary mask (bool or integer 0/1), shape (H, W) or (T, H, W)."""
    arr = _read_tiff(path)
    if arr.dtype != bool and arr.dtype.kind not in "iu":
        raise ItemError(f"dtype {arr.dtype} is not a mask type; save masks as uint8 0/1")
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ItemError(f"shape {arr.shape} is neither an image (H, W) nor a stack (T, H, W)")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise ItemError("a mask holds only 0 and 1; threshold the prediction first")
    return arr.astype(bool)


def read_table(path: Path) -> pd.DataFrame:
    """Read a CSV whose first column is a unique item id."""
    try:
        frame = pd.read_csv(path)
    except Exception as exc:  # pandas raises parser, encoding and empty-data errors
        raise ItemError(f"unreadable as CSV ({type(exc).__name__}: {exc})") from exc
    if frame.shape[1] < 2:
        raise ItemError(
            f"needs an id column and at least one value column, found columns {list(frame.columns)}"
        )
    if frame.empty:
        raise ItemError("has a header but no rows")
    key = frame.columns[0]
    dup = frame[key][frame[key].duplicated()]
    if len(dup):
        raise ItemError(f"id {dup.iloc[0]!r} appears more than once in column {key!r}")
    return frame.set_index(key)


def table_column(
    frame: pd.DataFrame, column: str | None, *, numeric: bool, role: str
) -> pd.Series:
    """Pick the value column: `column` if given, else the only value column."""
    if column is None:
        if frame.shape[1] != 1:
            raise ItemError(
                f"{role} has several value columns {list(frame.columns)}; "
                "pass column=NAME to choose one"
            )
        column = str(frame.columns[0])
    if column not in frame.columns:
        raise ItemError(f"{role} has no column {column!r}; found {list(frame.columns)}")
    series = frame[column]
    if numeric:
        values = pd.to_numeric(series, errors="coerce")
        bad = values.index[~np.isfinite(values.to_numpy(dtype=float))]
        if len(bad):
            raise ItemError(
                f"column {column!r} has {len(bad)} missing, non-numeric or infinite value(s) "
                f"(first at id {bad[0]!r}); every item needs a finite number"
            )
        return values.astype(float)
    if series.isna().any():
        first = series.index[series.isna()][0]
        raise ItemError(f"column {column!r} has missing values (first at id {first!r})")
    return series


def align(truth: pd.Series, pred: pd.Series) -> tuple[NDArray[Any], NDArray[Any]]:
    """Values of truth and prediction in truth's id order; ids must match."""
    missing = truth.index.difference(pred.index)
    extra = pred.index.difference(truth.index)
    if len(missing) or len(extra):
        parts = []
        if len(missing):
            parts.append(f"{len(missing)} id(s) missing (first {missing[0]!r})")
        if len(extra):
            parts.append(f"{len(extra)} unknown id(s) (first {extra[0]!r})")
        raise ItemError(f"{' and '.join(parts)}; predict exactly the ids of the truth")
    t, p = truth.to_numpy(), pred.loc[truth.index].to_numpy()
    # pandas keeps text as Python objects; the scorers want a numpy string array
    return (t.astype(str) if t.dtype == object else t), (p.astype(str) if p.dtype == object else p)
