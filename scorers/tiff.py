"""A TIFF reader that reads one file and nothing else, and knows its size before decoding.

``tifffile.imread`` follows what a file says about other files: an OME-TIFF
whose ``TiffData`` names ``../labels/img.tif`` (or any path) is read as a
series spanning both files, so a "prediction" can make a scorer read the
labels or another team's stored predictions. This reader:

* opens the one file given, never following a symlink, and refuses anything
  that is not a regular file (FIFO, device, folder);
* hands tifffile the open file object with every format flag off (no OME,
  ImageJ, Micro-Manager, LSM, ... series logic, no multi-file series) and
  reads the file's own pages, in order;
* refuses OME-XML (or any image description) that names another file
  (``UUID FileName``, ``BinaryOnly``/``MetadataFile``), with a reason;
* checks the declared size (pages x page shape x dtype) against a bound and
  the expected shape before any pixel is decoded;
* inflates every compressed block with a bound first, so a block that
  inflates beyond its declared size (a zlib or LZMA bomb) is refused without
  being decompressed in full.

Every refusal is a :class:`ReadError` whose message says what is wrong and how
to write the file instead.
"""

from __future__ import annotations

import lzma
import math
import os
import re
import stat
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import tifffile
from numpy.typing import NDArray

__all__ = ["MAX_IMAGE_BYTES", "MAX_PAGES", "ReadError", "open_regular", "read_tiff"]

#: Largest decoded image accepted, in bytes, when the caller gives no tighter bound.
MAX_IMAGE_BYTES = 2**31
#: Most pages (frames) read from one file.
MAX_PAGES = 10_000
#: Compressed bytes read at a time while a block is checked.
_SLICE = 2**20

_HOW = "write it with tifffile.imwrite(path, labels)"

#: Compression codes decoded here; each with a bounded inflater (None: stored as is).
_INFLATERS: dict[int, Callable[[], Any] | None] = {
    1: None,  # uncompressed
    8: zlib.decompressobj,  # Adobe Deflate (tifffile's compression='zlib')
    32946: zlib.decompressobj,  # Deflate, the older code
    34925: lzma.LZMADecompressor,  # LZMA
}

# Attributes by which OME-XML points at other files: TiffData/UUID FileName for
# multi-file series, BinaryOnly MetadataFile for a companion metadata file.
_FILE_REFERENCE = re.compile(r"FileName\s*=\s*([\"'])(.*?)\1", re.IGNORECASE | re.DOTALL)
_OTHER_REFERENCE = re.compile(r"MetadataFile|BinaryOnly|<\s*(?:\w+:)?External\b", re.IGNORECASE)


class ReadError(Exception):
    """The file cannot be read safely; the message says why and what to write instead."""


def open_regular(path: Path, *, follow_links: bool = False) -> BinaryIO:
    """Open ``path`` for reading, refusing symlinks (unless ``follow_links``) and non-regular files.

    ``O_NONBLOCK`` keeps a FIFO from blocking the open; it is refused right after.
    """
    flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_links and os.path.islink(path):
            raise ReadError(f"is a symlink ({exc.strerror}); write a regular file") from exc
        raise ReadError(f"cannot be opened ({exc.strerror})") from exc
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ReadError("is not a regular file (a folder, FIFO or device); write a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def _check_description(text: str, own_name: str) -> None:
    for match in _FILE_REFERENCE.finditer(text):
        named = match.group(2)
        if named != own_name:
            raise ReadError(
                f"its OME-XML refers to another file ({named[:200]!r}); multi-file OME series and "
                "references to other files are refused: write one single-file TIFF with "
                "tifffile.imwrite(path, labels)"
            )
    if _OTHER_REFERENCE.search(text):
        raise ReadError(f"its OME-XML refers to another file (a companion or external file); {_HOW}")


def _page_description(page: Any) -> str:
    texts = []
    for code in (270, 305):  # ImageDescription, Software: OME-XML sits in the first
        tag = page.tags.get(code)
        if tag is not None and isinstance(tag.value, str | bytes):
            value = tag.value
            texts.append(value.decode("latin-1") if isinstance(value, bytes) else value)
    return "\n".join(texts)


def _segment_bound(page: Any, itemsize: int) -> int:
    chunks = getattr(page, "chunks", None)
    if chunks:
        return math.prod(int(c) for c in chunks) * itemsize
    return int(page.size) * itemsize


def _check_segments(fh: BinaryIO, page: Any, itemsize: int, file_size: int) -> None:
    """Inflate every compressed block up to its declared size plus one byte: a bomb stops there."""
    make = _INFLATERS[page.compression]
    if make is None:
        return
    bound = _segment_bound(page, itemsize)
    for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
        if offset < 0 or count < 0 or offset + count > file_size:
            raise ReadError("a data block lies outside the file; the TIFF is truncated or corrupt")
        fh.seek(offset)
        inflater, produced, left = make(), 0, count
        while left:  # in slices: neither the compressed nor the inflated block is held whole
            data = fh.read(min(left, _SLICE))
            if not data:
                raise ReadError("a data block lies outside the file; the TIFF is truncated or corrupt")
            left -= len(data)
            try:
                produced += len(inflater.decompress(data, bound + 1 - produced))
            except (zlib.error, lzma.LZMAError, EOFError) as exc:
                raise ReadError(f"a compressed block is corrupt ({exc}); {_HOW}") from exc
            if produced > bound:
                raise ReadError(
                    f"a compressed block inflates beyond its declared {bound} bytes (a compression "
                    f"bomb); {_HOW}"
                )


def read_tiff(
    path: Path,
    *,
    max_bytes: int = MAX_IMAGE_BYTES,
    expect_shape: tuple[int, ...] | None = None,
    check_dtype: Callable[[np.dtype[Any]], None] | None = None,
    follow_links: bool = False,
) -> NDArray[Any]:
    """Read the pages of the one TIFF file ``path`` as an array, shape (H, W[, S]) or (T, H, W[, S]).

    Parameters
    ----------
    path : Path
        The file. Nothing else is ever opened.
    max_bytes : int
        Bound on the decoded size, checked against the declared size before decoding.
    expect_shape : tuple of int, optional
        The shape the array must have (the truth's); checked before decoding.
    check_dtype : callable, optional
        Called with the declared dtype before decoding; raises :class:`ReadError` to refuse it.
    follow_links : bool
        Follow a symlink at ``path`` (trusted truth files only, e.g. annexed labels).

    Raises
    ------
    ReadError
        Naming what is wrong: not a regular file, not a TIFF, a reference to another
        file, unsupported compression, pages that differ, too large, a compression bomb.
    """
    with open_regular(path, follow_links=follow_links) as fh:
        file_size = os.fstat(fh.fileno()).st_size
        # every format flag off: no OME, ImageJ, Micro-Manager ... series logic, which may open files
        flags: dict[str, Any] = {f"is_{name}": False for name in tifffile.TIFF.FILE_FLAGS}
        try:
            tif = tifffile.TiffFile(fh, name=path.name, _multifile=False, **flags)
        except MemoryError:  # out of memory is the sandbox's to report, not a bad file
            raise
        except Exception as exc:  # tifffile raises many types on corrupt files
            raise ReadError(f"unreadable as TIFF ({type(exc).__name__}: {exc}); {_HOW}") from exc
        with tif:
            return _read_pages(tif, fh, path.name, file_size, max_bytes, expect_shape, check_dtype)


def _read_pages(
    tif: tifffile.TiffFile,
    fh: BinaryIO,
    own_name: str,
    file_size: int,
    max_bytes: int,
    expect_shape: tuple[int, ...] | None,
    check_dtype: Callable[[np.dtype[Any]], None] | None,
) -> NDArray[Any]:
    pages: list[Any] = []
    try:
        for page in tif.pages:
            if len(pages) >= MAX_PAGES:
                raise ReadError(f"has more than {MAX_PAGES} pages; {_HOW}")
            pages.append(page)
    except (ReadError, MemoryError):  # out of memory is the sandbox's to report, not a bad file
        raise
    except Exception as exc:
        raise ReadError(f"unreadable as TIFF ({type(exc).__name__}: {exc}); {_HOW}") from exc
    if not pages:
        raise ReadError(f"unreadable as TIFF: no image data; {_HOW}")
    first = pages[0]
    for page in pages:
        _check_description(_page_description(page), own_name)
        if page.compression not in _INFLATERS:
            raise ReadError(
                f"compression {page.compression!s} is not accepted; write the TIFF uncompressed "
                "or with compression='zlib'"
            )
        if page.shape != first.shape or page.dtype != first.dtype:
            raise ReadError(
                f"its pages differ in shape or dtype ({first.shape} {first.dtype} and "
                f"{page.shape} {page.dtype}); write one array, e.g. tifffile.imwrite(path, labels)"
            )
    dtype = first.dtype
    if dtype is None:
        raise ReadError(f"its sample format is not supported; {_HOW}")
    if check_dtype is not None:
        check_dtype(np.dtype(dtype))
    shape = tuple(first.shape) if len(pages) == 1 else (len(pages), *first.shape)
    if expect_shape is not None and shape != tuple(expect_shape):
        raise ReadError(
            f"shape {shape} differs from the truth's {tuple(expect_shape)}; "
            "write one label per truth pixel, same frame count"
        )
    declared = math.prod(shape) * np.dtype(dtype).itemsize
    if declared > max_bytes:
        raise ReadError(
            f"declares {declared} bytes of pixels ({shape} {np.dtype(dtype)}), over the "
            f"{max_bytes}-byte bound; nothing was decoded"
        )
    for page in pages:
        _check_segments(fh, page, np.dtype(dtype).itemsize, file_size)
    out = np.empty(shape, dtype)
    try:
        if len(pages) == 1:
            out[...] = first.asarray(maxworkers=1)
        else:
            for index, page in enumerate(pages):
                out[index] = page.asarray(maxworkers=1)
    except MemoryError:  # out of memory is the sandbox's to report, not a bad file
        raise
    except Exception as exc:
        raise ReadError(f"unreadable as TIFF ({type(exc).__name__}: {exc}); {_HOW}") from exc
    return out
