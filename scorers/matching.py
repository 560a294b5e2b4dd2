"""IoU matching records and the exact-threshold matching of one overlap table.

References
----------
.. [1] U. Schmidt, M. Weigert, C. Broaddus, G. Myers, "Cell Detection with
   Star-convex Polygons", MICCAI 2018, ``stardist.matching``.
.. [2] A. Kirillov, K. He, R. Girshick, C. Rother, P. Dollar, "Panoptic
   Segmentation", CVPR 2019.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray

from .assignment import match_candidates
from .errors import ScorerError
from .overlap import LabelOverlap

__all__ = ["IOU_THRESHOLDS", "Matching", "Threshold", "threshold_tag"]

#: The COCO / StarDist IoU thresholds 0.50, 0.55, ..., 0.95, written as decimals
#: (not ``np.arange``) so that each is the double nearest to the decimal.
IOU_THRESHOLDS: tuple[float, ...] = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95)

Threshold = float | str | Decimal | Fraction


def _ratio(num: float, den: float) -> float:
    return float(num / den) if den > 0 else 0.0


@dataclass(frozen=True)
class Matching:
    """Counts of one IoU matching, poolable across images with ``+``.

    Attributes
    ----------
    threshold : float
        A pair matches when IoU >= threshold.
    tp, fp, fn : int
        Matched pairs, unmatched predicted objects, unmatched true objects.
    iou_sum : float
        Sum of the IoU of the matched pairs.
    """

    threshold: float
    tp: int
    fp: int
    fn: int
    iou_sum: float

    def __add__(self, other: Matching) -> Matching:
        if other.threshold != self.threshold:
            raise ScorerError(
                f"cannot pool matchings at thresholds {self.threshold} and {other.threshold}"
            )
        return Matching(
            self.threshold,
            self.tp + other.tp,
            self.fp + other.fp,
            self.fn + other.fn,
            self.iou_sum + other.iou_sum,
        )

    @property
    def n_true(self) -> int:
        """Number of true objects."""
        return self.tp + self.fn

    @property
    def n_pred(self) -> int:
        """Number of predicted objects."""
        return self.tp + self.fp

    @property
    def precision(self) -> float:
        """TP / (TP + FP)."""
        return _ratio(self.tp, self.tp + self.fp)

    @property
    def recall(self) -> float:
        """TP / (TP + FN)."""
        return _ratio(self.tp, self.tp + self.fn)

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN)."""
        return _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn)

    @property
    def ap(self) -> float:
        """TP / (TP + FP + FN): the "average precision" of the DSB 2018 and StarDist."""
        return _ratio(self.tp, self.tp + self.fp + self.fn)

    @property
    def mean_iou(self) -> float:
        """Mean IoU of the matched pairs (StarDist's ``mean_matched_score``)."""
        return _ratio(self.iou_sum, self.tp)

    @property
    def pq(self) -> float:
        """Panoptic quality: IoU sum / (TP + FP/2 + FN/2)."""
        return _ratio(self.iou_sum, self.tp + 0.5 * self.fp + 0.5 * self.fn)


def _fraction(t: Threshold) -> Fraction:
    if isinstance(t, bool) or not isinstance(t, float | int | str | Decimal | Fraction):
        raise ScorerError(f"thresholds: {t!r} is not a number")
    try:
        # str() of a float is its shortest decimal, so 0.55 becomes exactly 11/20.
        frac = Fraction(str(t)) if isinstance(t, float) else Fraction(t)
    except (ValueError, ZeroDivisionError) as exc:
        raise ScorerError(f"thresholds: {t!r} is not a number") from exc
    if not 0 < frac <= 1:
        raise ScorerError(f"thresholds: IoU threshold {t!r} must lie in (0, 1]")
    return frac


def _fractions(thresholds: Iterable[Threshold]) -> tuple[Fraction, ...]:
    fracs = tuple(_fraction(t) for t in thresholds)
    if not fracs:
        raise ScorerError("thresholds: give at least one IoU threshold")
    return fracs


def threshold_tag(threshold: Threshold) -> str:
    """Key suffix of a threshold in percent: 0.5 -> ``"50"``, 0.525 -> ``"52.5"``."""
    pct = _fraction(threshold) * 100
    return str(pct.numerator) if pct.denominator == 1 else str(float(pct))


def _candidates(
    inter: NDArray[np.int64], union: NDArray[np.int64], frac: Fraction
) -> NDArray[np.bool_]:
    """``inter / union >= frac`` decided in exact integer arithmetic."""
    num, den = frac.numerator, frac.denominator
    if len(union) and int(union.max()) * max(num, den) >= 2**62:
        return inter / union >= float(frac)  # ids astronomically large; float is all we have
    return inter * den >= union * num


def _match(ov: LabelOverlap, fracs: Sequence[Fraction]) -> tuple[Matching, ...]:
    union = ov.truth_areas[ov.rows] + ov.pred_areas[ov.cols] - ov.intersections
    iou = ov.intersections / union
    out = []
    for frac in fracs:
        ok = np.flatnonzero(_candidates(ov.intersections, union, frac))
        chosen = ok[match_candidates(ov.rows[ok], ov.cols[ok], iou[ok])]
        tp = len(chosen)
        out.append(
            Matching(
                threshold=float(frac),
                tp=tp,
                fp=ov.n_pred - tp,
                fn=ov.n_true - tp,
                iou_sum=float(iou[chosen].sum()),
            )
        )
    return tuple(out)
