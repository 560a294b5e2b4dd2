"""The scorer library's own error type."""

from __future__ import annotations

__all__ = ["ScorerError"]


class ScorerError(ValueError):
    """A scoring request cannot proceed: malformed inputs or an unknown scorer.

    The message names what is wrong and, where possible, how to fix it, e.g.
    ``"prediction: labels must be integers, got float32: save labels as uint16"``.
    It subclasses :class:`ValueError` so callers that already catch bad-value
    errors keep working.
    """
