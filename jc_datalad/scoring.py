"""Sealed scoring: one evaluation's predictions scored in a sandbox that holds nothing else.

A prediction file can name other files (an OME-TIFF's ``TiffData`` naming
``../labels/img.tif`` or another team's stored predictions). The scorer's
readers never open them (:mod:`scorers.tiff`), and, should a reader ever try,
the scorer runs through :func:`jc_datalad.sandbox.run_python` and sees only:

* this evaluation's copied predictions, read-only at :data:`PREDICTIONS_AT`;
* the labels it scores, copied as regular files, read-only at :data:`LABELS_AT`;
* the Python installation and the project's packages.

No ledger, no other evaluation, no private dataset. Its result comes back as
JSON on stdout, read with a size bound and checked field by field: it is made
from participant data.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jc_datalad import sandbox
from jc_datalad.errors import JcError

__all__ = [
    "LABELS_AT",
    "PREDICTIONS_AT",
    "RESULT_BYTES",
    "SCORE_TIME_S",
    "ItemRow",
    "ScoreResult",
    "score_sealed",
    "scoring_limits",
    "stage_labels",
]

lgr = logging.getLogger(__name__)

PREDICTIONS_AT = "/predictions"
LABELS_AT = "/labels"
#: Bound on the scorer's JSON result (stdout): per-item rows of a few thousand items fit.
RESULT_BYTES = 32 * 2**20
#: Time limit of one scoring run.
SCORE_TIME_S = 600.0
#: Bounds on what the result may hold.
_MAX_TEXT = 4000
_MAX_METRICS = 1000

Metrics = dict[str, float | None]


@dataclass(frozen=True)
class ItemRow:
    """The score of one item, or why it could not be scored."""

    name: str
    metrics: Metrics
    error: str | None


@dataclass(frozen=True)
class ScoreResult:
    """What scoring one evaluation gave.

    ``reason`` is set when the predictions cannot be scored (invalid files, or the
    scorer ran out of time or memory on them); the metrics are then empty.
    """

    scorer: str
    version: str
    metrics: Metrics
    public: Metrics
    private: Metrics
    items: tuple[ItemRow, ...]
    errors: tuple[str, ...]
    reason: str | None
    step: sandbox.StepResult

    @property
    def ok(self) -> bool:
        return self.reason is None


def scoring_limits(memory_bytes: int, *, time_s: float = SCORE_TIME_S) -> sandbox.Limits:
    """Limits of one scoring run: the challenge's memory, ``time_s``, a bounded result, one core."""
    return sandbox.Limits(time_s=time_s, memory_bytes=memory_bytes, file_bytes=RESULT_BYTES,
                          processes=64, cpus=1, open_files=256)


def stage_labels(labels: Path, items: Sequence[str], dest: Path) -> Path:
    """Copy the truth files of ``items`` from ``labels`` into ``dest`` once, as regular files.

    ``labels`` is the organizer's dataset: annexed files are symlinks into its
    ``.git``, which the scorer's sandbox does not hold, so they are copied, links
    followed, here on the host. ``dest`` names a version (e.g. the labels commit);
    an existing copy is used as it is.
    """
    if not dest.is_dir():
        dest.parent.mkdir(parents=True, exist_ok=True)
        # a folder of this call's own: two workers staging the same version do not meet
        tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".", suffix=".tmp", dir=dest.parent))
        try:
            for name in items:
                source = labels / name
                if "/" in name or name.startswith(".") or not source.is_file():
                    raise JcError(f"{source}: the truth file of item {name!r} is missing or not a file; "
                                  "`datalad get` the labels dataset")
                shutil.copyfile(source, tmp / name)
            sandbox.make_readable(tmp)
            with contextlib.suppress(OSError):  # another worker was first: its copy is the same
                os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    sandbox.make_readable(dest)
    return dest


def score_sealed(
    predictions: Path,
    labels: Path,
    *,
    scorer: str,
    items: Sequence[str],
    public_items: Collection[str],
    limits: sandbox.Limits,
    log_dir: Path,
    options: Mapping[str, Any] | None = None,
    who: sandbox.Identity | None = None,
) -> ScoreResult:
    """Score the folder ``predictions`` against ``labels`` in the sandbox; whole, public and private.

    Parameters
    ----------
    predictions : Path
        This evaluation's copied predictions (regular files); bound read-only.
    labels : Path
        The truth files, regular files (see :func:`stage_labels`); bound read-only.
    scorer : str
        A folder scorer or metric name of :mod:`scorers`.
    items, public_items
        Every item to score (truth file names) and those of the public part.
    limits : sandbox.Limits
        See :func:`scoring_limits`.
    log_dir : Path
        Where the scorer's stdout and stderr are written (``score.stdout``/``.stderr``).
    options : mapping, optional
        Scorer options, passed as JSON.
    who : sandbox.Identity, optional
        The evaluation's sandbox uid (a root runner).

    Raises
    ------
    JcError
        When the request cannot proceed: broken truth, unknown scorer, a crash of
        the scorer, or a result that is not what the scorer writes. A submission's
        invalid predictions are not an error: they come back as ``reason``.
    """
    from scorers import sealed

    sandbox.make_readable(predictions)
    sandbox.make_readable(labels)
    args = ["-m", "scorers.sealed", *sealed.request_args(
        predictions=PREDICTIONS_AT, labels=LABELS_AT, scorer=scorer, items=items,
        public_items=sorted(public_items), options=dict(options or {}))]
    binds = [sandbox.Bind(predictions, PREDICTIONS_AT), sandbox.Bind(labels, LABELS_AT)]
    step = sandbox.run_python(args, binds=binds, limits=limits, log_dir=log_dir, name="score", who=who)
    if step.status is sandbox.StepStatus.TIMEOUT:
        return _refused(scorer, step, f"scoring the predictions exceeded its time limit of {limits.time_s:g} s; "
                                      "write predictions of the size and type the challenge asks for")
    if step.status is sandbox.StepStatus.MEMORY:
        return _refused(scorer, step, f"scoring the predictions ran out of memory "
                                      f"({limits.memory_bytes / 2**30:.1f} GiB); write predictions "
                                      "of the size and type the challenge asks for")
    if step.status is sandbox.StepStatus.INFRASTRUCTURE:
        raise sandbox.InfrastructureError("the scorer's sandbox could not be started (a platform fault)")
    if step.status is not sandbox.StepStatus.OK:
        lgr.warning("scorer %s stopped (%s, exit %s): %s", scorer, step.status.value, step.exit_code,
                    step.stderr_tail[-2000:])
        raise JcError(f"the scorer stopped ({step.status.value}, exit code {step.exit_code}); "
                      "its error output is in the runner's log")
    payload = _read_result(log_dir / "score.stdout")
    return _parse(payload, scorer, step)


def _refused(scorer: str, step: sandbox.StepResult, reason: str) -> ScoreResult:
    return ScoreResult(scorer, "", {}, {}, {}, (), (), reason, step)


def _read_result(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(RESULT_BYTES + 1)
    except OSError as exc:
        raise JcError(f"{path}: the scorer's result cannot be read ({exc.strerror})") from exc
    if len(raw) > RESULT_BYTES:
        raise JcError(f"{path}: the scorer's result is over {RESULT_BYTES} bytes")
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise JcError(f"{path}: the scorer's result is not JSON ({type(exc).__name__})") from exc


class _Shape(JcError):
    """The result is not what :mod:`scorers.sealed` writes."""


def _text(value: Any, field: str, *, optional: bool = False) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise _Shape(f"{field}: a string of at most {_MAX_TEXT} characters is expected")
    return value


def _metrics(value: Any, field: str) -> Metrics:
    if not isinstance(value, dict) or len(value) > _MAX_METRICS:
        raise _Shape(f"{field}: an object of at most {_MAX_METRICS} metrics is expected")
    out: Metrics = {}
    for key, number in value.items():
        if not isinstance(key, str) or len(key) > 100:
            raise _Shape(f"{field}: metric names are short strings")
        if number is None:
            out[key] = None
        elif isinstance(number, int | float) and not isinstance(number, bool) and math.isfinite(number):
            out[key] = float(number)
        else:
            raise _Shape(f"{field}.{key}: a finite number or null is expected")
    return out


def _parse(payload: Any, scorer: str, step: sandbox.StepResult) -> ScoreResult:
    from scorers import sealed

    try:
        if not isinstance(payload, dict) or payload.get("format") != sealed.FORMAT:
            raise _Shape(f"format: {sealed.FORMAT!r} is expected")
        error = _text(payload.get("error"), "error", optional=True)
        if error is not None:
            raise JcError(f"scorer {scorer!r} cannot score this split: {error}")
        version = _text(payload.get("version"), "version") or ""
        raw_items = payload.get("items")
        if not isinstance(raw_items, list):
            raise _Shape("items: a list is expected")
        items = []
        for index, row in enumerate(raw_items):
            if not isinstance(row, dict):
                raise _Shape(f"items[{index}]: an object is expected")
            items.append(ItemRow(_text(row.get("name"), f"items[{index}].name") or "",
                                 _metrics(row.get("metrics"), f"items[{index}].metrics"),
                                 _text(row.get("error"), f"items[{index}].error", optional=True)))
        raw_errors = payload.get("errors")
        if not isinstance(raw_errors, list):
            raise _Shape("errors: a list is expected")
        errors = tuple(_text(e, f"errors[{i}]") or "" for i, e in enumerate(raw_errors))
        metrics = _metrics(payload.get("metrics"), "metrics")
        public = _metrics(payload.get("public"), "public")
        private = _metrics(payload.get("private"), "private")
    except _Shape as exc:
        raise JcError(f"the scorer's result is malformed: {exc}") from exc
    if errors:
        reason = "invalid predictions: " + "; ".join(errors[:5])
        return ScoreResult(scorer, version, {}, {}, {}, tuple(items), errors, reason, step)
    return ScoreResult(scorer, version, metrics, public, private, tuple(items), errors, None, step)
