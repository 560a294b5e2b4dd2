"""Reading prediction and truth files, with one clear reason per bad file.

Label images are TIFF (``.tif``/``.tiff``), read by :mod:`scorers.tiff`, which
reads the one file given and never a file it names; tables are CSV, read by
pandas from bytes this module read itself, with bounds on bytes, rows and
columns. Prediction files are opened without following symlinks; only truth
files (``trusted=True``, e.g. annexed labels) may be links. Every reader raises
:class:`ItemError` with a message that names what is wrong and how to fix it;
the folder scorer turns it into a per-item error, so one bad file never stops
the others.
"""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from .tiff import MAX_IMAGE_BYTES, ReadError, open_regular, read_tiff

__all__ = [
    "LABEL_DTYPES",
    "MAX_TABLE_BYTES",
    "MAX_TABLE_COLUMNS",
    "MAX_TABLE_ROWS",
    "ItemError",
    "read_labels",
    "read_mask",
    "read_table",
    "table_column",
]

#: dtypes accepted for label images.
LABEL_DTYPES = (np.uint8, np.uint16, np.uint32, np.int32)
#: Bounds on one CSV table: bytes, data rows, columns.
MAX_TABLE_BYTES = 64 * 2**20
MAX_TABLE_ROWS = 1_000_000
MAX_TABLE_COLUMNS = 1_000


class ItemError(Exception):
    """One file cannot be scored; the message says why and what to do."""


def _read_tiff(
    path: Path, *, trusted: bool, expect_shape: tuple[int, ...] | None, check_dtype: Any, max_bytes: int
) -> NDArray[Any]:
    try:
        return read_tiff(path, max_bytes=max_bytes, expect_shape=expect_shape, check_dtype=check_dtype,
                         follow_links=trusted)
    except ReadError as exc:
        raise ItemError(str(exc)) from exc


def _label_dtype(dtype: np.dtype[Any]) -> None:
    if dtype.type not in LABEL_DTYPES:
        hint = " (labels must be whole numbers)" if dtype.kind in "fc" else ""
        raise ReadError(
            f"dtype {dtype} is not a label type{hint}; save labels as uint16 "
            "(uint8, uint32 and int32 are accepted too)"
        )


def _mask_dtype(dtype: np.dtype[Any]) -> None:
    if dtype.kind not in "biu":
        raise ReadError(f"dtype {dtype} is not a mask type; save masks as uint8 0/1")


def read_labels(
    path: Path,
    *,
    expect_shape: tuple[int, ...] | None = None,
    trusted: bool = False,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> NDArray[Any]:
    """Read a label image or time-lapse stack, shape (H, W) or (T, H, W).

    ``expect_shape`` (the truth's) and ``max_bytes`` are checked before any pixel is
    decoded; ``trusted`` lets a truth file be a symlink (annexed labels).
    """
    arr = _read_tiff(path, trusted=trusted, expect_shape=expect_shape, check_dtype=_label_dtype,
                     max_bytes=max_bytes)
    if arr.ndim not in (2, 3):
        raise ItemError(
            f"shape {arr.shape} is neither an image (H, W) nor a stack (T, H, W)"
        )
    if arr.size == 0:
        raise ItemError(f"the image is empty (shape {arr.shape})")
    if arr.dtype.kind == "i" and int(arr.min()) < 0:
        raise ItemError(f"label ids must be >= 0 (0 is background), found {int(arr.min())}")
    return arr


def read_mask(
    path: Path,
    *,
    expect_shape: tuple[int, ...] | None = None,
    trusted: bool = False,
    max_bytes: int = MAX_IMAGE_BYTES,
) -> NDArray[np.bool_]:
    """Read a binary mask (bool or integer 0/1), shape (H, W) or (T, H, W)."""
    arr = _read_tiff(path, trusted=trusted, expect_shape=expect_shape, check_dtype=_mask_dtype,
                     max_bytes=max_bytes)
    if arr.ndim not in (2, 3) or arr.size == 0:
        raise ItemError(f"shape {arr.shape} is neither an image (H, W) nor a stack (T, H, W)")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise ItemError("a mask holds only 0 and 1; threshold the prediction first")
    return arr.astype(bool)


def _table_text(path: Path, trusted: bool, max_bytes: int) -> str:
    try:
        with open_regular(path, follow_links=trusted) as fh:
            raw = fh.read(max_bytes + 1)
    except ReadError as exc:
        raise ItemError(str(exc)) from exc
    if len(raw) > max_bytes:
        raise ItemError(f"is larger than the {max_bytes}-byte bound for a table; write one row per item")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ItemError(
            f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}); save the table as UTF-8"
        ) from exc


def _quote(value: Any, limit: int = 80) -> str:
    """``repr`` of a value from a participant's table, shortened: messages quote it, bounded."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _columns(frame: pd.DataFrame, shown: int = 10) -> str:
    names = [_quote(c, 40) for c in frame.columns[:shown]]
    more = f", ... ({frame.shape[1]} in all)" if frame.shape[1] > shown else ""
    return "[" + ", ".join(names) + more + "]"


def read_table(
    path: Path,
    *,
    trusted: bool = False,
    max_bytes: int = MAX_TABLE_BYTES,
    max_rows: int = MAX_TABLE_ROWS,
    max_columns: int = MAX_TABLE_COLUMNS,
) -> pd.DataFrame:
    """Read a CSV whose first column is a unique item id, within bounds on bytes, rows and columns.

    pandas parses text this function read from the one file (never a path or URL
    it could resolve); the header's width is checked before parsing.
    """
    text = _table_text(path, trusted, max_bytes)
    try:
        header = next(csv.reader(io.StringIO(text)), [])
    except csv.Error as exc:
        raise ItemError(f"unreadable as CSV (header: {exc})") from exc
    if len(header) > max_columns:
        raise ItemError(f"has {len(header)} columns, over the bound of {max_columns}; write an id and "
                        "the value columns only")
    try:
        with warnings.catch_warnings():
            # a row longer than the header: pandas would drop its extra fields with a warning
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(io.StringIO(text), nrows=max_rows + 1, index_col=False, engine="c")
    except MemoryError:  # out of memory is the sandbox's to report, not a bad file
        raise
    except Exception as exc:  # pandas raises parser, encoding and empty-data errors
        raise ItemError(f"unreadable as CSV ({type(exc).__name__}: {exc})") from exc
    if len(frame) > max_rows:
        raise ItemError(f"has more than {max_rows} rows; write one row per item")
    if frame.shape[1] < 2:
        raise ItemError(
            f"needs an id column and at least one value column, found columns {_columns(frame)}"
        )
    if frame.empty:
        raise ItemError("has a header but no rows")
    key = frame.columns[0]
    dup = frame[key][frame[key].duplicated()]
    if len(dup):
        raise ItemError(f"id {_quote(dup.iloc[0])} appears more than once in column {_quote(key)}")
    return frame.set_index(key)


def table_column(
    frame: pd.DataFrame, column: str | None, *, numeric: bool, role: str
) -> pd.Series:
    """Pick the value column: `column` if given, else the only value column."""
    if column is None:
        if frame.shape[1] != 1:
            raise ItemError(
                f"{role} has several value columns {_columns(frame)}; "
                "pass column=NAME to choose one"
            )
        column = str(frame.columns[0])
    if column not in frame.columns:
        raise ItemError(f"{role} has no column {_quote(column)}; found {_columns(frame)}")
    series = frame[column]
    if numeric:
        values = pd.to_numeric(series, errors="coerce")
        bad = values.index[~np.isfinite(values.to_numpy(dtype=float))]
        if len(bad):
            raise ItemError(
                f"column {_quote(column)} has {len(bad)} missing, non-numeric or infinite value(s) "
                f"(first at id {_quote(bad[0])}); every item needs a finite number"
            )
        return values.astype(float)
    if series.isna().any():
        first = series.index[series.isna()][0]
        raise ItemError(f"column {_quote(column)} has missing values (first at id {_quote(first)})")
    return series


def align(truth: pd.Series, pred: pd.Series) -> tuple[NDArray[Any], NDArray[Any]]:
    """Values of truth and prediction in truth's id order; ids must match."""
    missing = truth.index.difference(pred.index)
    extra = pred.index.difference(truth.index)
    if len(missing) or len(extra):
        parts = []
        if len(missing):
            parts.append(f"{len(missing)} id(s) missing (first {_quote(missing[0])})")
        if len(extra):
            parts.append(f"{len(extra)} unknown id(s) (first {_quote(extra[0])})")
        raise ItemError(f"{' and '.join(parts)}; predict exactly the ids of the truth")
    t, p = truth.to_numpy(), pred.loc[truth.index].to_numpy()
    # pandas keeps text as Python objects; the scorers want a numpy string array
    return (t.astype(str) if t.dtype == object else t), (p.astype(str) if p.dtype == object else p)
