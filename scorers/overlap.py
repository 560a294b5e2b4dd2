"""The label-overlap table: one pass over the pixels feeds every instance metric.

Every instance-segmentation score (best Dice, DiC, foreground Dice, IoU
matching, panoptic quality) is a function of three things: the area of each
true object, the area of each predicted object, and the number of pixels each
(true, predicted) pair shares. :func:`label_overlap` computes all three from
one pass over the pixels, with no per-object loop.

Label images are mostly long runs of one (true, predicted) pair along a row, so
the pixels are first run-length coded (two comparisons and one ``flatnonzero``
over the image). The areas are bincounts weighted by run length and the
intersections come from one sort of packed (pair code, run length) values: a
2048x2048 pair with 1,500 objects has ~190,000 runs, and its table costs about
8 ms. Images with short runs (noise) are counted pixel by pixel, with one
``np.bincount`` over a combined pair code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validate import as_labels, same_shape

__all__ = ["LabelOverlap", "label_overlap"]

# A dense (n_true + 1) x (n_pred + 1) table is used when it has at most this many
# cells or no more cells than the image has pixels; beyond that the sparse path
# sorts only the pixels where both images are foreground.
_DENSE_MIN_CELLS = 1 << 22
# Ids up to this bound are compacted through a lookup table (a bincount);
# larger ids (uint32/int64 hashes, say) go through np.unique.
_LUT_MAX_ID = 1 << 24
# Run-length code the pixels when that shrinks them at least this much; below it
# the extra passes cost more than they save. Tiny images skip the coding.
_RUN_GAIN = 4
_RUN_MIN_PIXELS = 1 << 12


@dataclass(frozen=True, eq=False)
class LabelOverlap:
    """Areas and pairwise intersections of the objects in two label images.

    Attributes
    ----------
    truth_ids, pred_ids : ndarray
        Sorted distinct non-zero ids of each image; object ``i`` of the truth
        is ``truth_ids[i]``.
    truth_areas, pred_areas : ndarray of int64
        Pixel count of each object, aligned with the ids.
    rows, cols : ndarray of intp
        Object indices (into the id arrays) of every overlapping pair.
    intersections : ndarray of int64
        Shared pixels of each pair, all > 0.
    n_pixels : int
        Number of pixels in each image.
    """

    truth_ids: NDArray[Any]
    pred_ids: NDArray[Any]
    truth_areas: NDArray[np.int64]
    pred_areas: NDArray[np.int64]
    rows: NDArray[np.intp]
    cols: NDArray[np.intp]
    intersections: NDArray[np.int64]
    n_pixels: int

    @property
    def n_true(self) -> int:
        """Number of objects in the truth."""
        return len(self.truth_ids)

    @property
    def n_pred(self) -> int:
        """Number of objects in the prediction."""
        return len(self.pred_ids)

    def pair_iou(self) -> NDArray[np.float64]:
        """Intersection over union of every overlapping pair."""
        union = self.truth_areas[self.rows] + self.pred_areas[self.cols] - self.intersections
        return self.intersections / union

    def pair_dice(self) -> NDArray[np.float64]:
        """Dice coefficient of every overlapping pair."""
        total = self.truth_areas[self.rows] + self.pred_areas[self.cols]
        return 2.0 * self.intersections / total


class _Index:
    """Distinct non-zero ids of one image, their areas, and how to code pixels.

    Codes are 1..n for the objects (in id order) and 0 for background. With
    ``weights`` (run lengths), ``flat`` holds one value per run and areas are
    the weighted counts.
    """

    def __init__(self, flat: NDArray[Any], weights: NDArray[np.int64] | None = None) -> None:
        if flat.dtype == np.uint64 and int(flat.max()) < 2**63:
            flat = flat.astype(np.int64)  # bincount and fancy indexing want signed ids
        self.flat = flat
        max_id = int(flat.max())
        self.codes: NDArray[np.intp] | None = None
        if max_id <= _LUT_MAX_ID and max_id <= 4 * flat.size + 65536:
            counts = np.bincount(flat, weights=weights, minlength=max_id + 1)
            ids = np.flatnonzero(counts)
            ids = ids[ids > 0]
            self.max_id = max_id
            self.ids: NDArray[Any] = ids.astype(flat.dtype)
            self.areas: NDArray[np.int64] = _counts(counts[ids])
        else:
            values, inverse = np.unique(flat, return_inverse=True)
            codes = inverse.reshape(-1).astype(np.intp)
            areas = _counts(np.bincount(codes, weights=weights, minlength=len(values)))
            if values[0] == 0:
                values, areas = values[1:], areas[1:]
            else:
                codes += 1
            self.codes = codes
            self.ids = values
            self.areas = areas

    def __len__(self) -> int:
        return len(self.ids)

    def coded(self, stride: int = 1) -> NDArray[Any]:
        """Per-pixel ``code * stride``; int32 where it fits, else intp."""
        n = len(self.ids)
        wide = stride > 1 or n >= 2**31 - 1
        if self.codes is not None:
            return self.codes * stride if stride != 1 else self.codes
        lut = np.zeros(self.max_id + 1, dtype=np.intp if wide else np.int32)
        lut[self.ids] = np.arange(1, n + 1, dtype=lut.dtype) * stride
        return lut[self.flat]


def _counts(counts: NDArray[Any]) -> NDArray[np.int64]:
    """Pixel counts as int64; weighted bincounts sum whole run lengths, exact in float64."""
    return counts if counts.dtype == np.int64 else counts.astype(np.int64)


def _runs(
    t: NDArray[Any], p: NDArray[Any]
) -> tuple[NDArray[Any], NDArray[Any], NDArray[np.int64]] | None:
    """Run-length code of the flat pixel pairs: (true id, predicted id, length) per run.

    None when the runs are too short for the coding to pay (noise, tiny images).
    """
    n = t.size
    if n < _RUN_MIN_PIXELS:
        return None
    change = np.not_equal(t[1:], t[:-1])
    change |= np.not_equal(p[1:], p[:-1])
    n_runs = int(np.count_nonzero(change)) + 1
    if n_runs * _RUN_GAIN > n:
        return None
    starts = np.empty(n_runs, dtype=np.intp)
    starts[0] = 0
    np.add(np.flatnonzero(change), 1, out=starts[1:])
    del change
    lengths = np.diff(starts, append=n).astype(np.int64)
    return t[starts], p[starts], lengths


def label_overlap(truth: ArrayLike, prediction: ArrayLike) -> LabelOverlap:
    """Tabulate object areas and pairwise overlaps of two label images.

    Parameters
    ----------
    truth, prediction : array_like of int
        Label images of the same shape (any number of dimensions); 0 is
        background, every other value one object. Ids need not be consecutive.

    Returns
    -------
    LabelOverlap
        Areas of every object and the intersection of every overlapping pair.

    Raises
    ------
    ScorerError
        If an input is not an integer array, has negative ids, is empty, or
        the shapes differ.

    Notes
    -----
    The pixels are run-length coded along the flattened image (when runs are
    long enough to pay), both images are compacted to consecutive codes, and a
    single bincount over ``code_true * (n_pred + 1) + code_pred``, weighted by
    run length, gives the contingency table: the same table as StarDist's
    ``label_overlap`` [1]_ but without a Python or JIT loop over pixels.

    References
    ----------
    .. [1] U. Schmidt, M. Weigert, C. Broaddus, G. Myers, "Cell Detection with
       Star-convex Polygons", MICCAI 2018. https://github.com/stardist/stardist
    """
    t = as_labels(truth, "truth")
    p = as_labels(prediction, "prediction")
    same_shape(t, p)
    return _label_overlap(t, p)


def _pair_sums(
    key: NDArray[np.int64], lengths: NDArray[np.int64]
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Distinct pair codes and the summed run lengths of each: a group-by by one sort.

    A code (< 2**31) and a length (< 2**32) packed in one int64 sort together, so
    no argsort and no table over every possible pair is needed.
    """
    if len(key) == 0:
        return key, lengths
    if int(key.max()) >= 2**31 or int(lengths.max()) >= 2**32:
        pairs, inverse = np.unique(key, return_inverse=True)
        sums = np.bincount(inverse.reshape(-1), weights=lengths, minlength=len(pairs))
        return pairs, _counts(sums)
    packed = key << 32
    packed |= lengths
    packed.sort()
    codes = packed >> 32
    first = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    return codes[first], np.add.reduceat(packed & 0xFFFFFFFF, first)


def _label_overlap(t: NDArray[Any], p: NDArray[Any]) -> LabelOverlap:
    """:func:`label_overlap` for validated inputs."""
    n_pixels = int(t.size)
    runs = _runs(t.reshape(-1), p.reshape(-1))
    if runs is not None:
        t_runs, p_runs, lengths = runs
        ti, pi = _Index(t_runs, lengths), _Index(p_runs, lengths)
        n_p = len(pi) + 1
        # Every run, background included: a boolean selection costs more than sorting them.
        key = ti.coded().astype(np.int64) * n_p
        key += pi.coded()
        pairs, sums = _pair_sums(key, lengths)
        rows, cols = np.divmod(pairs, n_p)
        inner = np.flatnonzero((rows > 0) & (cols > 0))
        rows, cols, inter = rows[inner] - 1, cols[inner] - 1, sums[inner]
    else:
        ti, pi = _Index(t.reshape(-1)), _Index(p.reshape(-1))
        rows, cols, inter = _pixel_pairs(ti, pi, n_pixels)
    return LabelOverlap(
        truth_ids=ti.ids,
        pred_ids=pi.ids,
        truth_areas=ti.areas,
        pred_areas=pi.areas,
        rows=rows.astype(np.intp),
        cols=cols.astype(np.intp),
        intersections=inter,
        n_pixels=n_pixels,
    )


def _pixel_pairs(
    ti: _Index, pi: _Index, n_pixels: int
) -> tuple[NDArray[Any], NDArray[Any], NDArray[np.int64]]:
    """Overlapping pairs counted pixel by pixel (short runs: noise, tiny images)."""
    n_t, n_p = len(ti) + 1, len(pi) + 1
    cells = n_t * n_p
    if cells <= max(_DENSE_MIN_CELLS, n_pixels):
        # Dense: pair code = t_code * n_p + p_code, one bincount over all pixels.
        key = ti.coded(stride=n_p)
        np.add(key, pi.coded(), out=key)
        table = np.bincount(key, minlength=cells)
        del key
        nz = np.flatnonzero(table)
        rows, cols = np.divmod(nz, n_p)
        inner = (rows > 0) & (cols > 0)
        return rows[inner] - 1, cols[inner] - 1, _counts(table[nz[inner]])
    # Sparse: too many id pairs for a table; sort the doubly-foreground codes.
    tc, pc = ti.coded(), pi.coded()
    both = (tc > 0) & (pc > 0)
    key = tc[both].astype(np.int64) * n_p + pc[both]
    del tc, pc, both
    pairs, counts = np.unique(key, return_counts=True)
    return pairs // n_p - 1, pairs % n_p - 1, _counts(counts)
