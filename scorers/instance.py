"""Instance-segmentation metrics: best Dice, DiC, foreground Dice, IoU matching.

Every function takes ``(truth, prediction)`` label images, 0 being background
and every other value one object (ids need not be consecutive), and derives its
value from one :func:`~scorers.overlap.label_overlap` table.

Conventions when an image holds no object (modern mode):

* best Dice is averaged over the objects of one image; with none it is 1.0 if
  the other image has none either, else 0.0. Symmetric best Dice of two empty
  images is therefore 1.0 and of an empty vs. a non-empty image 0.0.
* foreground Dice of two empty foregrounds is 1.0.
* IoU matching follows StarDist [3]_: with no true positive every ratio
  (precision, recall, F1, AP, mean IoU, PQ) is 0.

References
----------
.. [1] H. Scharr et al., "Leaf segmentation in plant phenotyping: a collation
   study", Machine Vision and Applications 27 (2016) 585-606.
.. [2] A. Kirillov, K. He, R. Girshick, C. Rother, P. Dollar, "Panoptic
   Segmentation", CVPR 2019.
.. [3] U. Schmidt, M. Weigert, C. Broaddus, G. Myers, "Cell Detection with
   Star-convex Polygons", MICCAI 2018, ``stardist.matching``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validate import as_labels, same_shape
from .errors import ScorerError
from .legacy_cvppp import legacy_from_overlap, legacy_score
from .matching import (
    IOU_THRESHOLDS,
    Matching,
    Threshold,
    _fractions,
    _match,
    threshold_tag,
)
from .overlap import LabelOverlap, _label_overlap

__all__ = [
    "IOU_THRESHOLDS",
    "InstanceScore",
    "Matching",
    "abs_dic",
    "best_dice",
    "dic",
    "foreground_dice",
    "instance_segmentation",
    "match_instances",
    "score_instances",
    "summarize_instances",
    "symmetric_best_dice",
    "threshold_tag",
]



def _labels_pair(truth: ArrayLike, prediction: ArrayLike) -> tuple[NDArray[Any], NDArray[Any]]:
    t = as_labels(truth, "truth")
    p = as_labels(prediction, "prediction")
    same_shape(t, p)
    return t, p


def match_instances(
    truth: ArrayLike,
    prediction: ArrayLike,
    *,
    thresholds: Iterable[Threshold] = IOU_THRESHOLDS,
) -> tuple[Matching, ...]:
    """Match true and predicted objects by IoU at each threshold.

    Parameters
    ----------
    truth, prediction : array_like of int
        Label images of the same shape, 0 = background.
    thresholds : iterable of float, str, Decimal or Fraction
        IoU thresholds in (0, 1]. Floats are read as their shortest decimal
        (0.55 means 11/20) and compared exactly, in integers.

    Returns
    -------
    tuple of Matching
        One record per threshold.

    Notes
    -----
    A pair is a candidate when IoU >= threshold. The chosen matching has the
    largest number of pairs and, among those, the largest IoU sum, as in
    StarDist's ``matching`` [1]_. For thresholds above 0.5 candidates never
    compete; the Hungarian algorithm runs only on competing groups.

    References
    ----------
    .. [1] U. Schmidt, M. Weigert, C. Broaddus, G. Myers, "Cell Detection with
       Star-convex Polygons", MICCAI 2018.
    """
    fracs = _fractions(thresholds)
    t, p = _labels_pair(truth, prediction)
    return _match(_label_overlap(t, p), fracs)


def _best_dice(ov: LabelOverlap, over_pred: bool) -> float:
    n_from, n_other = (ov.n_pred, ov.n_true) if over_pred else (ov.n_true, ov.n_pred)
    if n_from == 0:
        return 1.0 if n_other == 0 else 0.0
    best = np.zeros(n_from)
    np.maximum.at(best, ov.cols if over_pred else ov.rows, ov.pair_dice())
    return float(best.mean())


def _fg_dice(ov: LabelOverlap) -> float:
    total = int(ov.truth_areas.sum() + ov.pred_areas.sum())
    return 2.0 * float(ov.intersections.sum()) / total if total else 1.0


@dataclass(frozen=True)
class InstanceScore:
    """Every instance metric of one image, from one overlap table.

    Attributes
    ----------
    best_dice : float
        Best Dice averaged over predicted objects.
    best_dice_truth : float
        Best Dice averaged over true objects.
    sbd : float
        Symmetric best Dice, the smaller of the two.
    dic : int
        Predicted minus true object count.
    abs_dic : int
        ``|dic|``, never negative (1 for a legacy shape mismatch, where ``dic`` is -1).
    fg_dice : float
        Dice of the foregrounds.
    matches : tuple of Matching
        IoU matching at each threshold.
    """

    best_dice: float
    best_dice_truth: float
    sbd: float
    dic: int
    abs_dic: int
    fg_dice: float
    matches: tuple[Matching, ...]


def score_instances(
    truth: ArrayLike,
    prediction: ArrayLike,
    *,
    thresholds: Iterable[Threshold] = IOU_THRESHOLDS,
    legacy_cvppp: bool = False,
) -> InstanceScore:
    """Compute every instance metric of one image pair in one pass.

    Parameters
    ----------
    truth, prediction : array_like of int
        Label images, 0 = background.
    thresholds : iterable of float
        IoU thresholds for the matching.
    legacy_cvppp : bool
        Compute best Dice, SBD, DiC and foreground Dice as the 2017 CVPPP
        script does (see :mod:`scorers.legacy_cvppp`); the matching keeps the
        modern definition. A shape mismatch is then scored (best Dice 0, DiC
        -1, |DiC| 1, foreground Dice 0; every object unmatched) instead of
        raised.

    Returns
    -------
    InstanceScore

    References
    ----------
    .. [1] H. Scharr et al., Machine Vision and Applications 27 (2016) 585-606.
    .. [2] U. Schmidt et al., MICCAI 2018.
    """
    fracs = _fractions(thresholds)
    if legacy_cvppp:
        t_arr, p_arr = np.asarray(truth), np.asarray(prediction)
        if t_arr.shape != p_arr.shape:
            old = legacy_score(truth, prediction)
            t = as_labels(t_arr, "truth")
            p = as_labels(p_arr, "prediction")
            n_t = int(np.count_nonzero(np.bincount(t.ravel())[1:]))
            n_p = int(np.count_nonzero(np.bincount(p.ravel())[1:]))
            matches = tuple(Matching(float(f), 0, n_p, n_t, 0.0) for f in fracs)
        else:
            # One table for the script's numbers and the matching.
            t, p = _labels_pair(truth, prediction)
            ov = _label_overlap(t, p)
            old = legacy_from_overlap(
                ov, (int(t.min()), int(t.max())), (int(p.min()), int(p.max()))
            )
            matches = _match(ov, fracs)
        return InstanceScore(
            old.best_dice, old.best_dice_truth, old.sbd, old.dic, old.abs_dic, old.fg_dice, matches
        )
    t, p = _labels_pair(truth, prediction)
    ov = _label_overlap(t, p)
    bd_pred, bd_truth = _best_dice(ov, True), _best_dice(ov, False)
    d = ov.n_pred - ov.n_true
    return InstanceScore(
        best_dice=bd_pred,
        best_dice_truth=bd_truth,
        sbd=min(bd_pred, bd_truth),
        dic=d,
        abs_dic=abs(d),
        fg_dice=_fg_dice(ov),
        matches=_match(ov, fracs),
    )


def summarize_instances(
    scores: Sequence[InstanceScore], *, by_image: bool = False
) -> dict[str, float]:
    """Aggregate per-image scores over a dataset.

    Parameters
    ----------
    scores : sequence of InstanceScore
        One per image, all with the same thresholds.
    by_image : bool
        False (default): matching counts are pooled over images and the ratios
        computed once, as StarDist's ``matching_dataset(by_image=False)``.
        True: each ratio is the mean of the per-image ratios.

    Returns
    -------
    dict of str to float
        ``sbd``, ``best_dice``, ``best_dice_truth``, ``dic``, ``abs_dic``,
        ``fg_dice`` (means over images), ``n_images``, ``ap`` (mean AP over
        the thresholds) and per threshold ``tag`` (see :func:`threshold_tag`):
        ``tp_tag``, ``fp_tag``, ``fn_tag``, ``precision_tag``, ``recall_tag``,
        ``f1_tag``, ``aptag`` (e.g. ``ap50``), ``mean_iou_tag``, ``pq_tag``.
    """
    if not scores:
        raise ScorerError("no images to score")
    out: dict[str, float] = {"n_images": float(len(scores))}
    for key in ("sbd", "best_dice", "best_dice_truth", "dic", "abs_dic", "fg_dice"):
        out[key] = float(np.mean([getattr(s, key) for s in scores]))
    aps = []
    for k, first in enumerate(scores[0].matches):
        column = [s.matches[k] for s in scores]
        tag = threshold_tag(first.threshold)
        pooled = column[0]
        for m in column[1:]:
            pooled = pooled + m
        out[f"tp_{tag}"] = float(pooled.tp)
        out[f"fp_{tag}"] = float(pooled.fp)
        out[f"fn_{tag}"] = float(pooled.fn)
        for name, key in (
            ("precision", f"precision_{tag}"),
            ("recall", f"recall_{tag}"),
            ("f1", f"f1_{tag}"),
            ("ap", f"ap{tag}"),
            ("mean_iou", f"mean_iou_{tag}"),
            ("pq", f"pq_{tag}"),
        ):
            if by_image:
                out[key] = float(np.mean([getattr(m, name) for m in column]))
            else:
                out[key] = float(getattr(pooled, name))
        aps.append(out[f"ap{tag}"])
    out["ap"] = float(np.mean(aps))
    return out


def instance_segmentation(
    truth: ArrayLike,
    prediction: ArrayLike,
    *,
    thresholds: Iterable[Threshold] = IOU_THRESHOLDS,
    legacy_cvppp: bool = False,
    by_image: bool = False,
    stack: bool = False,
) -> dict[str, float]:
    """Every instance-segmentation metric of an image pair or a stack of pairs.

    Parameters
    ----------
    truth, prediction : array_like of int
        Label images, 0 = background.
    thresholds : iterable of float
        IoU thresholds, default 0.50, 0.55, ..., 0.95.
    legacy_cvppp : bool
        Best Dice, SBD, DiC and foreground Dice as the 2017 CVPPP script.
    by_image : bool
        With ``stack``, average ratios over frames instead of pooling counts.
    stack : bool
        Treat the first axis as frames (a time-lapse ``(T, H, W)``): each frame
        is one image and counts are pooled over frames.

    Returns
    -------
    dict of str to float
        See :func:`summarize_instances`.

    References
    ----------
    .. [1] H. Scharr et al., Machine Vision and Applications 27 (2016) 585-606.
    .. [2] U. Schmidt et al., MICCAI 2018.
    """
    thresholds = tuple(thresholds)
    if stack:
        t = np.asarray(truth)
        p = np.asarray(prediction)
        if t.ndim < 2:
            raise ScorerError(f"truth: a stack needs at least 2 dimensions, got shape {t.shape}")
        if legacy_cvppp and t.shape != p.shape:
            pairs: list[tuple[Any, Any]] = [(t, p)]
        else:
            t, p = _labels_pair(t, p)
            pairs = list(zip(t, p, strict=True))
    else:
        pairs = [(truth, prediction)]
    scores = [
        score_instances(a, b, thresholds=thresholds, legacy_cvppp=legacy_cvppp) for a, b in pairs
    ]
    return summarize_instances(scores, by_image=by_image)


def best_dice(truth: ArrayLike, prediction: ArrayLike, *, legacy_cvppp: bool = False) -> float:
    """Best Dice of the prediction against the truth.

    For each predicted object, the highest Dice coefficient with any true
    object; averaged over predicted objects (``BestDice(prediction, truth)``
    of [1]_). Swap the arguments for the other direction.

    Parameters
    ----------
    truth, prediction : array_like of int
        Label images of the same shape, 0 = background.
    legacy_cvppp : bool
        Reproduce the 2017 CVPPP script (see :mod:`scorers.legacy_cvppp`).

    Returns
    -------
    float
        In [0, 1]; 1.0 when neither image has an object (legacy: 0.0).

    References
    ----------
    .. [1] H. Scharr et al., "Leaf segmentation in plant phenotyping: a
       collation study", Machine Vision and Applications 27 (2016) 585-606.
    """
    if legacy_cvppp:
        return legacy_score(truth, prediction).best_dice
    t, p = _labels_pair(truth, prediction)
    return _best_dice(_label_overlap(t, p), over_pred=True)


def symmetric_best_dice(
    truth: ArrayLike, prediction: ArrayLike, *, legacy_cvppp: bool = False
) -> float:
    """Symmetric best Dice (SBD): the smaller best Dice of the two directions.

    Parameters
    ----------
    truth, prediction : array_like of int
        Label images of the same shape, 0 = background.
    legacy_cvppp : bool
        Reproduce the 2017 CVPPP script.

    Returns
    -------
    float
        ``min(best_dice(t, p), best_dice(p, t))`` in [0, 1]; 1.0 when neither
        image has an object (legacy: 0.0).

    References
    ----------
    .. [1] H. Scharr et al., "Leaf segmentation in plant phenotyping: a
       collation study", Machine Vision and Applications 27 (2016) 585-606.
    """
    if legacy_cvppp:
        return legacy_score(truth, prediction).sbd
    t, p = _labels_pair(truth, prediction)
    ov = _label_overlap(t, p)
    return min(_best_dice(ov, True), _best_dice(ov, False))


def dic(truth: ArrayLike, prediction: ArrayLike, *, legacy_cvppp: bool = False) -> int:
    """Difference in count (DiC): predicted minus true number of objects.

    Parameters
    ----------
    truth, prediction : array_like of int
        Label images of the same shape; objects are the distinct non-zero ids.
    legacy_cvppp : bool
        ``(max - min)`` of the prediction minus that of the truth; -1 on a
        shape mismatch.

    Returns
    -------
    int

    References
    ----------
    .. [1] H. Scharr et al., Machine Vision and Applications 27 (2016) 585-606.
    """
    if legacy_cvppp:
        return legacy_score(truth, prediction).dic
    t, p = _labels_pair(truth, prediction)
    ov = _label_overlap(t, p)
    return ov.n_pred - ov.n_true


def abs_dic(truth: ArrayLike, prediction: ArrayLike, *, legacy_cvppp: bool = False) -> int:
    """Absolute difference in count, ``|DiC|``.

    Parameters
    ----------
    truth, prediction : array_like of int
        Label images of the same shape.
    legacy_cvppp : bool
        ``AbsDiffFGLabels`` of the 2017 CVPPP script: ``|dic|`` of the legacy
        :func:`dic`, so 1 on a shape mismatch (where :func:`dic` is -1).

    Returns
    -------
    int
        Never negative.

    References
    ----------
    .. [1] H. Scharr et al., Machine Vision and Applications 27 (2016) 585-606.
    """
    if legacy_cvppp:
        return legacy_score(truth, prediction).abs_dic
    return abs(dic(truth, prediction))


def foreground_dice(
    truth: ArrayLike, prediction: ArrayLike, *, legacy_cvppp: bool = False
) -> float:
    """Dice coefficient of the foregrounds (all objects against background).

    Parameters
    ----------
    truth, prediction : array_like of int
        Label images of the same shape.
    legacy_cvppp : bool
        Background is each image's lowest value; two empty foregrounds give 0.

    Returns
    -------
    float
        In [0, 1]; 1.0 when both foregrounds are empty.

    References
    ----------
    .. [1] L. R. Dice, "Measures of the amount of ecologic association between
       species", Ecology 26 (1945) 297-302.
    .. [2] H. Scharr et al., Machine Vision and Applications 27 (2016) 585-606.
    """
    if legacy_cvppp:
        return legacy_score(truth, prediction).fg_dice
    t, p = _labels_pair(truth, prediction)
    return _fg_dice(_label_overlap(t, p))
