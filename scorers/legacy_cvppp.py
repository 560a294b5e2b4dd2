"""The 2017 CVPPP leaf-segmentation scoring script, reproduced from the overlap table.

Historic CVPPP leaderboards were computed with ``evaluate.py`` of the
Leaf Segmentation Challenge [1]_ [2]_. It differs from the modern definitions
in :mod:`scorers.instance` in ways that change numbers, so it is kept as an
explicit mode (``legacy_cvppp=True``) rather than silently mixed in:

* the background is the *lowest value* of each image, not 0;
* best Dice visits every id from background + 1 to the maximum: an id absent
  from the image adds 0 but still counts in the divisor ``max - min``;
* DiC is ``(max - min of prediction) - (max - min of truth)``, i.e. it
  assumes consecutive ids;
* an image holding a single value scores best Dice 0 (so two empty images
  give SBD 0, not 1);
* a shape mismatch is not an error: best Dice 0, DiC -1, |DiC| 1 (the
  script's ``AbsDiffFGLabels`` is ``np.abs(DiffFGLabels)``), foreground Dice 0.

The script loops over every pair of ids with full-image masks; here the same
numbers come from one overlap table, the table the modern metrics and the
matching use (:func:`legacy_from_overlap`). The script's Python-2-era arithmetic on
``uint8`` scalars (which wraps when an id is 255) is not reproduced.

References
----------
.. [1] H. Scharr, M. Minervini, A. P. French, C. Klukas, D. M. Kramer, X. Liu,
   I. Luengo, J.-M. Pape, G. Polder, D. Vukadinovic, X. Yin, S. A. Tsaftaris,
   "Leaf segmentation in plant phenotyping: a collation study", Machine
   Vision and Applications 27 (2016) 585-606.
.. [2] M. Minervini, A. Fischbach, H. Scharr, S. A. Tsaftaris, "Finely-grained
   annotated datasets for image-based plant phenotyping", Pattern
   Recognition Letters 81 (2016) 80-89. https://www.plant-phenotyping.org/CVPPP2017
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validate import _as_array
from .errors import ScorerError
from .overlap import LabelOverlap, _label_overlap

__all__ = ["LegacyScore", "legacy_from_overlap", "legacy_score"]


@dataclass(frozen=True)
class LegacyScore:
    """The per-image numbers of the 2017 CVPPP script.

    Attributes
    ----------
    best_dice : float
        ``BestDice(prediction, truth)``: averaged over prediction ids.
    best_dice_truth : float
        ``BestDice(truth, prediction)``: averaged over truth ids.
    sbd : float
        ``SymmetricBestDice``: the smaller of the two.
    dic : int
        ``DiffFGLabels``: -1 on a shape mismatch.
    abs_dic : int
        ``AbsDiffFGLabels``, ``|dic|``: 1 on a shape mismatch, never negative.
    fg_dice : float
        ``FGBGDice``.
    """

    best_dice: float
    best_dice_truth: float
    sbd: float
    dic: int
    abs_dic: int
    fg_dice: float


# DiffFGLabels returns -1 on a shape mismatch and AbsDiffFGLabels its absolute value, 1.
_MISMATCH = LegacyScore(0.0, 0.0, 0.0, -1, 1, 0.0)


def _legacy_labels(value: ArrayLike, name: str) -> NDArray[Any]:
    arr = _as_array(value, name)
    if arr.dtype.kind not in "iub":
        raise ScorerError(f"{name}: labels must be integers, got {arr.dtype}")
    return arr


def _nonnegative(arr: NDArray[Any]) -> NDArray[Any]:
    """Ids the overlap table takes: bool as uint8, negative values shifted up to start at 0.

    The script only compares values with each other and with the lowest, so a
    shift changes nothing it computes.
    """
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    lo = int(arr.min())
    return arr.astype(np.int64) - lo if lo < 0 else arr


def _directional(
    counts_from: NDArray[np.intp], n_from: int, span: int, dice: NDArray[np.float64]
) -> float:
    if span == 0:
        return 0.0
    best = np.zeros(n_from)
    np.maximum.at(best, counts_from, dice)
    return float(best.sum() / span)


def legacy_score(truth: ArrayLike, prediction: ArrayLike) -> LegacyScore:
    """Score one image exactly as the 2017 CVPPP ``evaluate.py`` does.

    Parameters
    ----------
    truth, prediction : array_like of int
        Label images; the lowest value of each is its background.

    Returns
    -------
    LegacyScore
        Best Dice both ways, SBD, DiC, |DiC| and foreground Dice.

    Raises
    ------
    ScorerError
        If an input is empty or not an integer array. A shape mismatch is
        scored, as in the script, not raised.

    References
    ----------
    .. [1] H. Scharr et al., "Leaf segmentation in plant phenotyping: a
       collation study", Machine Vision and Applications 27 (2016) 585-606.
    """
    t = _legacy_labels(truth, "truth")
    p = _legacy_labels(prediction, "prediction")
    if t.shape != p.shape:
        return _MISMATCH
    t, p = _nonnegative(t), _nonnegative(p)
    return legacy_from_overlap(
        _label_overlap(t, p), (int(t.min()), int(t.max())), (int(p.min()), int(p.max()))
    )


def legacy_from_overlap(
    ov: LabelOverlap, truth_range: tuple[int, int], pred_range: tuple[int, int]
) -> LegacyScore:
    """The script's numbers from an overlap table of the same (non-negative) images.

    Parameters
    ----------
    ov : LabelOverlap
        The table of the two images, 0 being background as everywhere else.
    truth_range, pred_range : tuple of int
        (lowest, highest) value of each image. The lowest is the script's
        background: when it is not 0 it is an object to the table, and is
        left out here. So the modern metrics, the matching and these share
        one table.
    """
    (t_lo, t_hi), (p_lo, p_hi) = truth_range, pred_range
    t_span, p_span = t_hi - t_lo, p_hi - p_lo
    keep = np.ones(len(ov.rows), dtype=bool)
    t_area, p_area = int(ov.truth_areas.sum()), int(ov.pred_areas.sum())
    if t_lo > 0:  # the lowest value occurs, so it has an object index
        low = int(np.searchsorted(ov.truth_ids, t_lo))
        keep &= ov.rows != low
        t_area -= int(ov.truth_areas[low])
    if p_lo > 0:
        low = int(np.searchsorted(ov.pred_ids, p_lo))
        keep &= ov.cols != low
        p_area -= int(ov.pred_areas[low])
    rows, cols, inter = ov.rows[keep], ov.cols[keep], ov.intersections[keep]
    dice = 2.0 * inter / (ov.truth_areas[rows] + ov.pred_areas[cols])
    bd_pred = _directional(cols, ov.n_pred, p_span, dice)
    bd_truth = _directional(rows, ov.n_true, t_span, dice)
    dic = p_span - t_span
    fg_total = t_area + p_area
    fg = 2.0 * float(inter.sum()) / fg_total if fg_total > 0 else 0.0
    return LegacyScore(
        best_dice=bd_pred,
        best_dice_truth=bd_truth,
        sbd=min(bd_pred, bd_truth),
        dic=dic,
        abs_dic=abs(dic),
        fg_dice=fg,
    )
