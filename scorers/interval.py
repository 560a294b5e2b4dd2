"""Interval-estimation score of the FAIR-Universe HiggsML uncertainty challenge.

Participants give, for each pseudo-experiment, an interval ``[p16, p84]``
meant to cover the true signal strength ``mu`` with probability
``confidence``. The score rewards narrow intervals and penalises coverage
outside the band that N pseudo-experiments can statistically resolve.

References
----------
.. [1] W. Bhimji, P. Calafiura, R. Chakkappai, et al., "FAIR Universe HiggsML
   Uncertainty Challenge Competition", arXiv:2410.02867 (2024).
.. [2] FAIR-Universe/HEP-Challenge, ``scoring_program/score.py``
   (``Quantiles_Score``), https://github.com/FAIR-Universe/HEP-Challenge
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from ._validate import as_finite, same_length
from .errors import ScorerError

__all__ = ["coverage_penalty", "coverage_score"]


def coverage_penalty(coverage: float, n: int, *, confidence: float = 0.68) -> float:
    """Penalty ``f(c)`` for a coverage outside the statistically expected band.

    Parameters
    ----------
    coverage : float
        Observed fraction of intervals containing the truth.
    n : int
        Number of pseudo-experiments.
    confidence : float
        Target coverage.

    Returns
    -------
    float
        1 inside ``confidence +/- 2 sigma`` (closed), with
        ``sigma = sqrt(confidence (1 - confidence) / n)``; above it
        ``1 + |(c - upper) / sigma|**3``; below it ``1 + |(c - lower) / sigma|**4``.

    References
    ----------
    .. [1] W. Bhimji et al., arXiv:2410.02867 (2024).
    """
    if n < 1:
        raise ScorerError("coverage_penalty: n must be at least 1")
    sigma = math.sqrt(confidence * (1.0 - confidence) / n)
    lower, upper = confidence - 2.0 * sigma, confidence + 2.0 * sigma
    if lower <= coverage <= upper:
        return 1.0
    if coverage > upper:
        return 1.0 + abs((coverage - upper) / sigma) ** 3
    return 1.0 + abs((coverage - lower) / sigma) ** 4


def coverage_score(
    mu_true: ArrayLike,
    p16: ArrayLike,
    p84: ArrayLike,
    *,
    confidence: float = 0.68,
    epsilon: float = 1e-2,
) -> dict[str, float]:
    """Width, coverage, penalty and score of a set of confidence intervals.

    Parameters
    ----------
    mu_true : array_like of float
        True parameter of each pseudo-experiment.
    p16, p84 : array_like of float
        Lower and upper interval bounds; ``p16 <= p84`` for every item.
    confidence : float
        Target coverage. The challenge proposal states 0.68; the released
        scoring program uses 0.6827.
    epsilon : float
        Added to the width inside the logarithm: 1e-2 in the proposal, 1e-3 in
        the released program.

    Returns
    -------
    dict
        ``width`` (mean ``p84 - p16``), ``coverage`` (fraction with
        ``p16 <= mu <= p84``), ``penalty`` (:func:`coverage_penalty`) and
        ``score = -ln((width + epsilon) * penalty)`` (higher is better).

    Raises
    ------
    ScorerError
        On unequal lengths, NaN/inf, inverted intervals, or parameters out of
        range.

    References
    ----------
    .. [1] W. Bhimji et al., "FAIR Universe HiggsML Uncertainty Challenge
       Competition", arXiv:2410.02867 (2024).
    """
    if not 0.0 < confidence < 1.0:
        raise ScorerError(f"confidence must lie in (0, 1), got {confidence}")
    if not (math.isfinite(epsilon) and epsilon > 0.0):
        raise ScorerError(f"epsilon must be positive and finite, got {epsilon}")
    mu = as_finite(mu_true, "mu_true")
    lo = as_finite(p16, "p16")
    hi = as_finite(p84, "p84")
    same_length(("mu_true", mu), ("p16", lo), ("p84", hi))
    inverted = np.flatnonzero(hi < lo)
    if len(inverted):
        raise ScorerError(
            f"p84 is below p16 for {len(inverted)} interval(s) (first at index "
            f"{int(inverted[0])}); give the lower bound as p16"
        )
    width = float(np.mean(hi - lo))
    coverage = float(np.mean((mu >= lo) & (mu <= hi)))
    penalty = coverage_penalty(coverage, len(mu), confidence=confidence)
    return {
        "width": width,
        "coverage": coverage,
        "penalty": penalty,
        "score": -math.log((width + epsilon) * penalty),
    }
