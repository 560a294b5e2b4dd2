"""The challenge spec: ``challenge.yaml`` loaded into a typed object.

Loading validates everything at once: :func:`load_spec` returns a
:class:`ChallengeSpec` or raises :class:`SpecError` listing every problem
with its line and column, its key, the offending value and the fix. The
file is read by :mod:`jc_datalad.validation` (UTF-8, bounded, duplicate keys
refused); numbers have bounds and metric names are checked against the
scorer that reports them.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

from jc_datalad.validation import Checker, InputError, Problem, finite, read_yaml, suggest, whole
from jc_datalad.validation import text as _text

__all__ = ["ChallengeSpec", "ChallengeType", "Direction", "LogVisibility", "Problem", "SpecError", "Training", "Verify",
           "load_spec", "parse_duration", "parse_size", "parse_spec"]

SPEC_FILE = "challenge.yaml"

#: Paths a submission may never change: the organizer's launcher, image and
#: configuration, git's own control files, and the public input data.
DENIED_PATHS = (".datalad", ".gitmodules", ".gitattributes", ".git", ".noannex")


class ChallengeType(StrEnum):
    RESULTS = "results"
    INFERENCE = "inference"
    TRAINING = "training"


class Verify(StrEnum):
    """What the runner does besides scoring a ``results`` submission (``verify:`` in challenge.yaml)."""

    NONE = "none"  #: score the committed predictions as submitted (the default)
    RERUN = "rerun"  #: also re-execute the recorded steps on the public inputs and compare byte for byte


class Publish(StrEnum):
    """When the runner copies an evaluated submission into the public archive (``submission.publish``)."""

    AFTER_PHASE = "after-phase"  #: once the phase it was evaluated for has ended (the default)
    IMMEDIATELY = "immediately"  #: as soon as it is evaluated
    NEVER = "never"  #: never: no level-(a) reproduction by readers


class Direction(StrEnum):
    MAX = "max"
    MIN = "min"


OUTPUT_FORMATS = ("label-tiff", "csv", "intervals-csv")


class LogVisibility(StrEnum):
    """Who may read the full logs of steps that ran on hidden data (``logs:`` in challenge.yaml)."""

    ORGANIZERS = "organizers"  #: the organizer's private store only (the default)
    TEAM_ENCRYPTED = "team-encrypted"  #: encrypted to the team's registered SSH keys (age format)
    PUBLIC = "public"  #: on the public site; for development-only phases


class SpecError(InputError):
    """``challenge.yaml`` is invalid; :attr:`problems` lists every problem, with line and column."""


@dataclass(frozen=True)
class Interface:
    inputs: str
    outputs: str
    format: str
    #: ``interface.names``: the prediction of input ``<stem><from>`` is ``<stem><to>`` (leaves:
    #: ``plant001_rgb.png`` -> ``plant001_label.tif``); None: predictions are named as the inputs
    names: tuple[str, str] | None = None

    def prediction_name(self, input_name: str) -> str | None:
        """The prediction file expected for the input file ``input_name``; None: not an item."""
        if self.names is None:
            return input_name if input_name.lower().endswith((".tif", ".tiff")) else None
        source, target = self.names
        return input_name[: -len(source)] + target if input_name.endswith(source) else None

    def as_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "outputs": self.outputs, "format": self.format,
                **({"names": {"from": self.names[0], "to": self.names[1]}} if self.names else {})}


@dataclass(frozen=True)
class Resources:
    time_s: int = 1800
    memory_bytes: int = 4 * 2**30
    cpus: int = 2
    gpus: int = 0
    output_bytes: int = 2**30
    processes: int = 256
    #: limit for the whole evaluation, all steps together; 0 means ``time_s`` x 4
    evaluation_time_s: int = 0

    def __post_init__(self) -> None:
        if self.evaluation_time_s <= 0:
            object.__setattr__(self, "evaluation_time_s", self.time_s * 4)


@dataclass(frozen=True)
class Training:
    """``training:`` of a training challenge (options 2.2 and 2.3, docs/workflows/training.md)."""

    inputs: str  #: the public training data; the hidden training set is bound here for the training step
    model: str  #: the folder the training step writes and the prediction step reads
    resources: Resources  #: the training step's own limits (``resources`` are the prediction step's)
    pretrained: str | None = None  #: option 2.2: committed weights the training step may start from

    def as_dict(self) -> dict[str, Any]:
        return {"inputs": self.inputs, "model": self.model, "pretrained": self.pretrained,
                "resources": {k: v for k, v in vars(self.resources).items() if k != "evaluation_time_s"}}


@dataclass(frozen=True)
class Metrics:
    scorer: str
    primary: str
    direction: Direction
    columns: tuple[str, ...]
    #: ``metrics.options``: passed to the scorer as JSON data (e.g. ``{legacy_cvppp: true}``)
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Leaderboard:
    public_fraction: float = 0.3
    seed: int = 0


@dataclass(frozen=True)
class Phase:
    name: str
    start: dt.datetime
    end: dt.datetime
    split: str
    per_day: int | None = None
    total: int | None = None
    select: int = 1


@dataclass(frozen=True)
class SubmissionRules:
    max_file_bytes: int = 100 * 2**20
    denied_paths: tuple[str, ...] = DENIED_PATHS
    signed: bool = False  #: head commits must be signed with a key registered for the team
    count_failed: bool = True  #: failed evaluations count toward the quota, as on Codabench
    #: when evaluated submissions enter the public archive (jc_datalad.archive, docs/reproduce.md)
    publish: Publish = Publish.AFTER_PHASE


@dataclass(frozen=True)
class TeamRules:
    merge_deadline: dt.datetime | None = None


@dataclass(frozen=True)
class ChallengeSpec:
    id: str
    title: str
    type: ChallengeType
    interface: Interface
    container: str
    resources: Resources
    metrics: Metrics
    leaderboard: Leaderboard = field(default_factory=Leaderboard)
    phases: tuple[Phase, ...] = ()
    submission: SubmissionRules = field(default_factory=SubmissionRules)
    teams: TeamRules = field(default_factory=TeamRules)
    logs: LogVisibility = LogVisibility.ORGANIZERS
    training: Training | None = None  #: set exactly when ``type`` is training
    verify: Verify = Verify.NONE  #: results challenges only

    @property
    def denied_paths(self) -> tuple[str, ...]:
        """Paths a submission must not change: fixed ones plus the public inputs."""
        inputs_top = PurePosixPath(self.interface.inputs).parts[0]
        return (*self.submission.denied_paths, inputs_top)

    def summary(self) -> dict[str, Any]:
        """What every evaluation record repeats about its challenge (plus the commit)."""
        return {
            "id": self.id,
            "title": self.title,
            "type": self.type.value,
            "primary": self.metrics.primary,
            "direction": self.metrics.direction.value,
            "columns": list(self.metrics.columns),
            **({"scorer_options": dict(self.metrics.options)} if self.metrics.options else {}),
            "logs": self.logs.value,
            "verify": self.verify.value,
            **({"training": self.training.as_dict()} if self.training else {}),
        }

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "type": self.type.value,
            "interface": self.interface.as_dict(),
            "container": self.container,
            "metrics": {
                "scorer": self.metrics.scorer,
                "primary": self.metrics.primary,
                "direction": self.metrics.direction.value,
                "columns": list(self.metrics.columns),
                **({"options": dict(self.metrics.options)} if self.metrics.options else {}),
            },
            "resources": vars(self.resources),
            "logs": self.logs.value,
            "verify": self.verify.value,
            **({"training": self.training.as_dict()} if self.training else {}),
        }


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*$", re.IGNORECASE)
_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")

#: Bounds that no real challenge reaches: beyond them a value is a typo or an attack on the runner.
MAX_DURATION_S = 30 * 86400
MAX_SIZE_BYTES = 2**40
MAX_COUNT = 1_000_000


def parse_duration(value: Any) -> int:
    """``"30m"`` -> 1800; plain numbers are seconds; at most 30 days."""
    if isinstance(value, bool):
        raise ValueError("not a duration")
    if isinstance(value, int | float):
        seconds = finite(value)
    else:
        m = _DURATION.match(str(value))
        if not m:
            raise ValueError("not a duration")
        seconds = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if not math.isfinite(seconds) or seconds > MAX_DURATION_S:
        raise ValueError("must be at most 30d")
    if seconds < 1:
        raise ValueError("must be at least 1 second")
    return int(seconds)


def parse_size(value: Any) -> int:
    """``"4G"`` -> 4 GiB in bytes; plain numbers are bytes; at most 1 TiB."""
    if isinstance(value, bool):
        raise ValueError("not a size")
    if isinstance(value, int | float):
        size = finite(value)
    else:
        m = _SIZE.match(str(value))
        if not m:
            raise ValueError("not a size")
        size = float(m.group(1)) * 1024 ** "_KMGT".index(m.group(2).upper() or "_")
    if not math.isfinite(size) or size > MAX_SIZE_BYTES:
        raise ValueError("must be at most 1T")
    if size < 1:
        raise ValueError("must be at least 1 byte")
    return int(size)


def _parse_time(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        when = value
    elif isinstance(value, dt.date):
        when = dt.datetime(value.year, value.month, value.day)
    elif isinstance(value, str):
        when = dt.datetime.fromisoformat(value)
    else:
        raise ValueError("not a date")
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC)


def _relpath(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a relative path inside the dataset")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts or str(path) in ("", "."):
        raise ValueError("must be a relative path inside the dataset")
    return str(path)


def _choice(options: tuple[str, ...]) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str) or value not in options:
            raise ValueError(f"must be one of {', '.join(options)}{suggest(str(value), options)}")
        return value

    return convert


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("must be true or false")
    return value


def _identifier(value: Any) -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise ValueError("must be lower-case letters, digits, '.', '_' or '-'")
    return value


def _fraction(value: Any) -> float:
    f = finite(value)
    if not 0.0 < f < 1.0:
        raise ValueError("must lie strictly between 0 and 1")
    return f


def _metric_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValueError("must be a list such as [sbd, abs_dic], not a single text")
    if not isinstance(value, list) or not all(isinstance(x, str) and x.strip() for x in value):
        raise ValueError("must be a list of metric names")
    return tuple(dict.fromkeys(x.strip() for x in value))


_TOP = ("id", "title", "type", "interface", "container", "resources", "metrics", "leaderboard", "phases",
        "submission", "teams", "logs", "verify", "training")


def parse_spec(data: Any, source: Path | str = SPEC_FILE, *,
               marks: dict[str, tuple[int, int]] | None = None,
               problems: list[Problem] | None = None) -> ChallengeSpec:
    """Validate a parsed ``challenge.yaml`` mapping; raise :class:`SpecError` listing all problems.

    ``marks`` (key path -> line, column) and ``problems`` found while reading come from
    :func:`jc_datalad.validation.read_yaml`.
    """
    c = Checker(data, marks, problems or ())
    if not isinstance(data, dict):  # nothing else can be checked
        raise SpecError(source, c.problems)
    top = c.data
    c.unknown(top, "", _TOP)
    cid = c.get(top, "id", _identifier, "a short id such as 'bacteria-2026'")
    title = c.get(top, "title", _text, "a human-readable title")
    ctype = c.get(top, "type", _choice(tuple(t.value for t in ChallengeType)), "the challenge type")

    iface = c.section("interface")
    c.unknown(iface, "interface", {"inputs", "outputs", "format", "names"})
    inputs = c.get(iface, "interface.inputs", _relpath, "the path of the inputs, e.g. inputs/test")
    outputs = c.get(iface, "interface.outputs", _relpath, "the output folder, e.g. predictions")
    fmt = c.get(iface, "interface.format", _choice(OUTPUT_FORMATS), "the output format")
    if inputs and outputs and (
        PurePosixPath(outputs).parts[0] == PurePosixPath(inputs).parts[0]
        or PurePosixPath(outputs).parts[0] in DENIED_PATHS
    ):
        c.problem("interface.outputs", outputs, "must not lie under the inputs or a protected path")
    names = _parse_names(c, iface)

    container_section = top.get("container")
    container = None
    if isinstance(container_section, dict):
        c.unknown(container_section, "container", {"name"})
        container = c.get(container_section, "container.name", _identifier, "the container name, e.g. jc-env")
    else:
        c.problem("container", container_section, "must be a mapping like {name: jc-env}")

    raw_resources = c.section("resources", required=False)
    resources = _parse_resources(c, raw_resources)
    training = _parse_training(c, top, ctype, inputs, outputs)
    if training is not None and not raw_resources.get("evaluation_time"):
        # the one limit of the whole evaluation covers the training step and the prediction step
        resources = Resources(**{**vars(resources), "evaluation_time_s": training.resources.time_s
                                 + resources.time_s})
    elif training is not None and resources.evaluation_time_s < training.resources.time_s:
        c.problem("resources.evaluation_time", raw_resources.get("evaluation_time"),
                  "must be at least training.resources.time (it bounds the training and the prediction step "
                  "together)")

    met = c.section("metrics")
    c.unknown(met, "metrics", {"scorer", "primary", "direction", "columns", "options"})
    scorer = c.get(met, "metrics.scorer", _text, "the scorer name, see `jc score --help`")
    primary = c.get(met, "metrics.primary", _text, "the metric that ranks the leaderboard")
    direction = c.get(met, "metrics.direction", _choice(("max", "min")), "max or min", "max")
    columns: tuple[str, ...] = c.get(met, "metrics.columns", _metric_list, "the metrics shown on the leaderboard",
                                     (primary,) if primary else ()) or ()
    if primary and columns and primary not in columns:
        columns = (primary, *columns)
    if scorer:
        _check_metrics(c, scorer, primary, columns)
    options = _parse_options(c, met, scorer)
    if scorer == "regression":
        _check_value_columns(c, primary, columns, options)

    lb = c.section("leaderboard", required=False)
    c.unknown(lb, "leaderboard", {"public_fraction", "seed"})
    leaderboard = Leaderboard(
        public_fraction=c.get(lb, "leaderboard.public_fraction", _fraction, "a fraction such as 0.3", 0.3),
        seed=c.get(lb, "leaderboard.seed", whole(0, 2**63 - 1), "a whole-number seed", 0),
    )

    phases = _parse_phases(c, top.get("phases"))

    sub = c.section("submission", required=False)
    c.unknown(sub, "submission", {"max_file_size", "signed", "count_failed", "publish"})
    submission = SubmissionRules(
        max_file_bytes=c.get(sub, "submission.max_file_size", parse_size, "a size such as 100M",
                             SubmissionRules().max_file_bytes),
        signed=c.get(sub, "submission.signed", _bool, "true or false", False),
        count_failed=c.get(sub, "submission.count_failed", _bool, "true or false", True),
        # a bad value is a problem of the spec (raised below with every other); None stands in until then
        publish=Publish(c.get(sub, "submission.publish", _choice(tuple(v.value for v in Publish)),
                              "when evaluated submissions enter the public archive", Publish.AFTER_PHASE.value)
                        or Publish.AFTER_PHASE.value),
    )
    tm = c.section("teams", required=False)
    c.unknown(tm, "teams", {"merge_deadline"})
    teams = TeamRules(
        merge_deadline=c.get(tm, "teams.merge_deadline", _parse_time, "an ISO date or time (UTC)", None),
    )
    logs = c.get(top, "logs", _choice(tuple(v.value for v in LogVisibility)),
                 "who reads the logs of steps run on hidden data", LogVisibility.ORGANIZERS.value)
    verify = c.get(top, "verify", _choice(tuple(v.value for v in Verify)),
                   "rerun: re-execute the recorded steps on the public inputs and compare", Verify.NONE.value)
    if verify == Verify.RERUN.value and ctype and ctype != ChallengeType.RESULTS.value:
        # inference and training evaluations re-execute every submission anyway
        c.problem("verify", verify, "applies to type results only; remove it or set type: results")

    if c.problems:
        raise SpecError(source, c.problems)
    return ChallengeSpec(
        id=cid,
        title=title,
        type=ChallengeType(ctype),
        interface=Interface(inputs=inputs, outputs=outputs, format=fmt, names=names),
        container=container or "",
        resources=resources,
        metrics=Metrics(scorer=scorer, primary=primary, direction=Direction(direction), columns=columns,
                        options=options),
        leaderboard=leaderboard,
        phases=phases,
        submission=submission,
        teams=teams,
        logs=LogVisibility(logs),
        training=training,
        verify=Verify(verify),
    )


def _parse_resources(c: Checker, res: dict[str, Any], where: str = "resources") -> Resources:
    """``resources`` (the prediction step's, and the whole evaluation's limit), or
    ``training.resources`` (``where``): the same keys and bounds, less ``evaluation_time``."""
    keys = {"time", "memory", "cpus", "gpus", "output", "processes"}
    c.unknown(res, where, keys | {"evaluation_time"} if where == "resources" else keys)
    d = Resources()
    time_s = c.get(res, f"{where}.time", parse_duration, "a duration such as 30m", d.time_s)
    evaluation_time_s = 0
    if where == "resources":
        evaluation_time_s = c.get(res, "resources.evaluation_time", parse_duration,
                                  "a duration such as 2h for all steps together (default: time x 4; type "
                                  "training: training.resources.time + time)", 0)
    if time_s and evaluation_time_s and evaluation_time_s < time_s:
        c.problem("resources.evaluation_time", res.get("evaluation_time"),
                  "must be at least resources.time (it bounds all steps together)")
    return Resources(
        time_s=time_s or d.time_s,
        evaluation_time_s=evaluation_time_s or 0,
        memory_bytes=c.get(res, f"{where}.memory", parse_size, "a size such as 4G", d.memory_bytes),
        cpus=c.get(res, f"{where}.cpus", whole(1, 1024), "a whole number of CPUs", d.cpus),
        gpus=c.get(res, f"{where}.gpus", whole(0, 64), "a whole number of GPUs", d.gpus),
        output_bytes=c.get(res, f"{where}.output", parse_size, "a size such as 1G", d.output_bytes),
        processes=c.get(res, f"{where}.processes", whole(1, 100_000), "a process limit", d.processes),
    )


def _overlap(a: str, b: str) -> bool:
    """Is one of two dataset paths the other or inside it?"""
    pa, pb = PurePosixPath(a).parts, PurePosixPath(b).parts
    return pa[:len(pb)] == pb or pb[:len(pa)] == pa


def _parse_training(c: Checker, top: dict[str, Any], ctype: str | None, inputs: str | None,
                    outputs: str | None) -> Training | None:
    """``training:``, required exactly when ``type`` is training (docs/workflows/training.md)."""
    if ctype != ChallengeType.TRAINING.value:
        if "training" in top and ctype:
            c.problem("training", None, f"only a challenge of type training has this section (type is {ctype}); "
                                        "remove it or set type: training")
        return None
    if top.get("training") is None:
        c.problem("training", None, "missing: type training needs it, e.g. training: {inputs: inputs/train, "
                                    "model: model, resources: {time: 20m, memory: 8G}}")
        return None
    section = c.section("training")
    c.unknown(section, "training", {"inputs", "model", "pretrained", "resources"})
    t_inputs = c.get(section, "training.inputs", _relpath,
                     "the public training data, e.g. inputs/train (the hidden training set is bound there)")
    model = c.get(section, "training.model", _relpath, "the folder the training step writes, e.g. model")
    pretrained = c.get(section, "training.pretrained", _relpath,
                       "a committed folder of weights, e.g. weights (option 2.2); leave it out for code only", None)
    resources = _parse_resources(
        c, c.section("resources", required=False, mapping=section, path="training.resources"),
        "training.resources")
    if t_inputs and inputs:
        if PurePosixPath(t_inputs).parts[0] != PurePosixPath(inputs).parts[0]:
            c.problem("training.inputs", t_inputs, f"must lie beside interface.inputs under "
                                                   f"{PurePosixPath(inputs).parts[0]}/ (public data that "
                                                   "submissions do not change), e.g. inputs/train")
        elif _overlap(t_inputs, inputs):
            c.problem("training.inputs", t_inputs, "must not be, contain or lie inside interface.inputs: the "
                                                   "hidden training set and the hidden test inputs are bound apart")
    protected = [(name, path) for name, path in (("interface.inputs", inputs), ("interface.outputs", outputs),
                                                 ("training.inputs", t_inputs)) if path]
    for key, path in (("training.model", model), ("training.pretrained", pretrained)):
        if not path:
            continue
        if PurePosixPath(path).parts[0] in DENIED_PATHS or (
                inputs and PurePosixPath(path).parts[0] == PurePosixPath(inputs).parts[0]):
            c.problem(key, path, "must not lie under the inputs or a protected path")
            continue
        for name, other in protected:
            if _overlap(path, other):
                c.problem(key, path, f"must not be, contain or lie inside {name} ({other})")
                break
    if model and pretrained and _overlap(model, pretrained):
        c.problem("training.pretrained", pretrained, f"must lie apart from training.model ({model}): the "
                                                     "committed model folder is hidden from every step")
    if not (t_inputs and model):
        return None
    return Training(inputs=t_inputs, model=model, resources=resources, pretrained=pretrained)


def _reported_metrics(scorer: str) -> tuple[str, ...]:
    """Metric names ``scorer`` is known to report (for suggestions; the check is :func:`scorers.describe`)."""
    from scorers import registry

    own = getattr(registry, "_BY_SCORER", {}).get(scorer)
    return tuple(own) if own else (scorer, "n_items")


def _check_metrics(c: Checker, scorer: str, primary: str | None, columns: tuple[str, ...]) -> None:
    """The scorer exists and reports every named metric (a typo would score nan for everyone)."""
    import scorers

    known = sorted({*scorers.names(), *scorers.folder_scorers()})
    if scorer not in known:
        c.problem("metrics.scorer", scorer, f"unknown scorer{suggest(scorer, known)} (known: {', '.join(known)})")
        return
    folder = scorer in scorers.folder_scorers()

    def reports(metric: str) -> bool:
        if folder:
            return scorers.describe(metric, scorer) is not None
        return metric in (scorer, "n_items")  # a single metric, averaged over files

    reported = _reported_metrics(scorer)
    hint = f"; {scorer} reports {', '.join(reported)}" + (" and per-threshold names such as ap50, f1_50"
                                                           if scorer == "instance_segmentation" else "")
    if primary and not reports(primary):
        c.problem("metrics.primary", primary,
                  f"scorer {scorer} reports no such metric{suggest(primary, reported)}{hint}")
    raw = c.data.get("metrics", {}).get("columns") if isinstance(c.data.get("metrics"), dict) else None
    for i, column in enumerate(columns):
        if column != primary and not reports(column):
            where = f"metrics.columns[{raw.index(column)}]" if isinstance(raw, list) and column in raw else \
                f"metrics.columns[{i}]"
            c.problem(where, column, f"scorer {scorer} reports no such metric{suggest(column, reported)}{hint}")


def _check_value_columns(c: Checker, primary: str | None, columns: tuple[str, ...], options: dict[str, Any]) -> None:
    """Per-column regression metrics (``r2_roots``) name a column that ``options.columns`` scores;
    ``column`` and ``columns`` together would be refused by the scorer at the first evaluation."""
    from scorers.registry import _REGRESSION_COLUMN

    named = options.get("columns")
    if "column" in options and named is not None:
        c.problem("metrics.options", "column, columns", "give either column (one value column) or columns "
                                                        "(several), not both")
    scored = set(named) if isinstance(named, list | tuple) else set()
    raw = c.data.get("metrics", {}).get("columns") if isinstance(c.data.get("metrics"), dict) else None
    for i, metric in enumerate(dict.fromkeys((primary, *columns) if primary else columns)):
        found = _REGRESSION_COLUMN.match(metric)
        column = found.group(2) if found else None
        if metric == "mean_r2" and not scored:
            problem = "needs metrics.options.columns: the mean over several value columns"
        elif column is not None and column not in scored:
            problem = (f"scores value column {column!r}, which metrics.options.columns does not name"
                       + (f" (it names {', '.join(sorted(scored))})" if scored else "; add columns: [...]"))
        else:
            continue
        where = ("metrics.primary" if metric == primary else
                 f"metrics.columns[{raw.index(metric)}]" if isinstance(raw, list) and metric in raw else
                 f"metrics.columns[{i}]")
        c.problem(where, metric, problem)


_NAME_SUFFIX = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _parse_names(c: Checker, iface: dict[str, Any]) -> tuple[str, str] | None:
    """``interface.names: {from: _rgb.png, to: _label.tif}``: how a prediction is named after its input."""
    raw = iface.get("names")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        c.problem("interface.names", raw, "must be a mapping like {from: _rgb.png, to: _label.tif}")
        return None
    c.unknown(raw, "interface.names", {"from", "to"})
    found: list[str] = []
    for key in ("from", "to"):
        value = raw.get(key)
        if not isinstance(value, str) or not _NAME_SUFFIX.match(value):
            c.problem(f"interface.names.{key}", value, "a file name ending such as _rgb.png or _label.tif "
                      "(letters, digits, _ . -)")
        else:
            found.append(value)
    return (found[0], found[1]) if len(found) == 2 else None


#: Types of the scorer options a challenge may set (others: a number, a string or true/false).
_OPTION_TYPES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "legacy_cvppp": (lambda v: isinstance(v, bool), "true or false"),
    "by_image": (lambda v: isinstance(v, bool), "true or false"),
    "thresholds": (lambda v: isinstance(v, list) and 0 < len(v) <= 100 and all(
        isinstance(x, int | float) and not isinstance(x, bool) and 0 < x <= 1 for x in v),
        "a list of IoU thresholds in (0, 1], e.g. [0.5, 0.75]"),
    "confidence": (lambda v: isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < 1,
                   "a number between 0 and 1, e.g. 0.68"),
    "epsilon": (lambda v: isinstance(v, int | float) and not isinstance(v, bool) and v >= 0,
                "a small non-negative number"),
    "columns": (lambda v: _value_columns_problem(v) is None,
                "a list of distinct value column names of the label tables (letters, digits, _ . -), "
                "e.g. [length_mm, roots]"),
}


def _value_columns_problem(value: Any) -> str | None:
    # the regression scorer's own check of its columns option: spec and scorer refuse the same values
    from scorers.folder import value_columns_problem

    return value_columns_problem(value)


def _parse_options(c: Checker, met: dict[str, Any], scorer: str | None) -> dict[str, Any]:
    """``metrics.options``: each must be an option ``scorer`` accepts (:func:`scorers.folder.scorer_options`);
    the values are plain data, handed to the sealed scorer as JSON."""
    raw = met.get("options")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        c.problem("metrics.options", raw, "must be a mapping of scorer options, e.g. {legacy_cvppp: true}")
        return {}
    from scorers.errors import ScorerError
    from scorers.folder import scorer_options

    try:
        accepted = scorer_options(scorer) if scorer else frozenset()
    except ScorerError:
        return {}  # the unknown scorer is named under metrics.scorer
    options: dict[str, Any] = {}
    for key, value in raw.items():
        where = f"metrics.options.{key}"
        if key not in accepted:
            known = sorted(accepted)
            c.problem(where, value, f"scorer {scorer} takes no option {key!r}{suggest(str(key), known)} "
                      f"(it accepts: {', '.join(known) or 'none'})")
            continue
        check, fix = _OPTION_TYPES.get(key, (
            lambda v: isinstance(v, str | bool) or (isinstance(v, int | float) and math.isfinite(v)),
            "a number, a string or true/false"))
        if not check(value):
            c.problem(where, value, f"must be {fix}")
            continue
        options[key] = value
    return options


def _parse_phases(c: Checker, raw: Any) -> tuple[Phase, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        c.problem("phases", raw, "must be a list of phases, one '- name: ...' entry each")
        return ()
    phases = []
    names: set[str] = set()
    count = whole(0, MAX_COUNT)
    for i, item in enumerate(raw):
        where = f"phases[{i}]"
        if not isinstance(item, dict):
            c.problem(where, item, "must be a mapping with name, start, end, split")
            continue
        c.unknown(item, where, {"name", "start", "end", "split", "per_day", "total", "select"})
        name = c.get(item, f"{where}.name", _identifier, "a phase name such as development")
        start = c.get(item, f"{where}.start", _parse_time, "an ISO date or time (UTC)")
        end = c.get(item, f"{where}.end", _parse_time, "an ISO date or time (UTC)")
        split = c.get(item, f"{where}.split", _identifier, "the hidden split evaluated in this phase")
        per_day = c.get(item, f"{where}.per_day", count, "submissions per team and UTC day", None)
        total = c.get(item, f"{where}.total", count, "submissions per team in this phase", None)
        select = c.get(item, f"{where}.select", whole(0, 1000), "submissions a team may select", 1)
        if start and end and end <= start:
            c.problem(f"{where}.end", str(end), "must be after the start")
        if name in names:
            c.problem(f"{where}.name", name, "phase names must be unique")
        names.add(name)
        if None not in (name, start, end, split):
            phases.append(Phase(name, start, end, split, per_day, total, select))
    return tuple(phases)


def load_spec(path: Path | str) -> ChallengeSpec:
    """Load ``challenge.yaml`` (or the one inside a dataset folder)."""
    path = Path(path)
    if path.is_dir():
        path = path / SPEC_FILE
    try:
        doc = read_yaml(path, missing="create it with `jc challenge new`")
    except InputError as exc:
        raise SpecError(path, exc.problems) from None
    if doc.data is None and not doc.problems:
        raise SpecError(path, [Problem("(top level)", None, "the file is empty: write the challenge's keys "
                                                            "(see docs/organizers.md)")])
    return parse_spec(doc.data, path, marks=doc.marks, problems=doc.problems)
