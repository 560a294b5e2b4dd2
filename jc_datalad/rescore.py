"""Rescoring: the stored predictions of evaluations scored again with the current scorer.

``jc runner rescore`` re-executes nothing. For each evaluated record it copies the
predictions the ledger keeps (``evaluations/<id>/predictions/``, annexed), with the
bounds of a pass, and scores them sealed (:func:`jc_datalad.scoring.score_sealed`)
against the labels the evaluation was scored against (the labels commit in its
record). The result is written beside the record, never over it:
``evaluations/<id>/scores/<scorer>-<version>.json``. ``record.json`` keeps the scores
of the pass. Readers (the site) use the scores of the newest scorer version
(:func:`newest`). See docs/reproduce.md, section "Rescoring".
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import scorers
from jc_datalad import hiddenversion, ledger, lock, logs, sandbox, scoring
from jc_datalad.config import RunnerConfig
from jc_datalad.errors import JcError
from jc_datalad.gitutil import git_out
from jc_datalad.records import Evaluation, Status, utcnow
from jc_datalad.spec import ChallengeSpec, load_spec

lgr = logging.getLogger(__name__)

#: ``evaluations/<id>/scores/``: one file per scorer version that rescored the evaluation
SCORES = "scores"
SCORE_FORMAT = "jc-rescore/1"
#: A score file larger than this is not read (per-item rows of a few thousand items fit).
MAX_SCORE_FILE = 8 * 2**20
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class ScoreSet:
    """The scores of one evaluation by one scorer version: the pass's (``rescored`` False) or a rescore's."""

    scorer: str
    version: str
    challenge_commit: str
    scored: str  # when: the record's finished time, or the rescore's
    metrics: dict[str, Any]
    public: dict[str, Any]
    private: dict[str, Any]
    items: list[dict[str, Any]]
    reason: str | None
    rescored: bool

    @property
    def key(self) -> str:
        return score_key(self.scorer, self.version)

    def as_dict(self) -> dict[str, Any]:
        return {"format": SCORE_FORMAT, "scorer": {"name": self.scorer, "version": self.version},
                "challenge_commit": self.challenge_commit, "scored": self.scored, "metrics": self.metrics,
                "public": self.public, "private": self.private, "items": self.items, "reason": self.reason}


def score_key(scorer: str, version: str) -> str:
    """The file name stem of a scorer version: ``<scorer>-<version>``, one safe path component."""
    return _SAFE.sub("_", f"{scorer}-{version}")[:120]


def version_order(version: str) -> tuple[tuple[int, Any], ...]:
    """Sort key of version strings: numeric parts as numbers (0.10 after 0.9), others as text."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+_-]", version))


def of_record(ev: Evaluation) -> ScoreSet:
    """The scores the pass recorded in ``ev``."""
    return ScoreSet(str(ev.scorer.get("name", "")), str(ev.scorer.get("version", "")),
                    str(ev.challenge.get("commit", "")), ev.finished, dict(ev.metrics), dict(ev.public),
                    dict(ev.private), [dict(i) for i in ev.items], None, False)


def _numbers(value: Any) -> dict[str, float | None]:
    if not isinstance(value, dict) or len(value) > 1000:
        raise ValueError("scores: an object of at most 1000 metrics is expected")
    out: dict[str, float | None] = {}
    for k, v in value.items():
        if not isinstance(k, str) or len(k) > 100:
            raise ValueError("scores: metric names are short strings")
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float)):
            raise ValueError(f"scores: {k[:40]!r} is not a number")
        out[k] = None if v is None else float(v)
    return out


def read_score_file(path: Path) -> ScoreSet:
    """One rescore's scores, checked field by field; ValueError or OSError when broken."""
    with open(path, "rb") as fh:
        raw = fh.read(MAX_SCORE_FILE + 1)
    if len(raw) > MAX_SCORE_FILE:
        raise ValueError(f"larger than {MAX_SCORE_FILE} bytes")
    data = json.loads(raw)
    if not isinstance(data, dict) or data.get("format") != SCORE_FORMAT:
        raise ValueError(f"format {SCORE_FORMAT!r} expected")
    scorer = data.get("scorer")
    if not isinstance(scorer, dict) or not all(isinstance(scorer.get(k), str) for k in ("name", "version")):
        raise ValueError("scorer: name and version expected")
    items = data.get("items")
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError("items: a list of objects expected")
    reason = data.get("reason")
    texts = [data.get("challenge_commit"), data.get("scored")]
    if not all(isinstance(t, str) for t in texts) or not (reason is None or isinstance(reason, str)):
        raise ValueError("challenge_commit, scored, reason: text expected")
    return ScoreSet(scorer["name"], scorer["version"], data["challenge_commit"], data["scored"],
                    _numbers(data.get("metrics")), _numbers(data.get("public")), _numbers(data.get("private")),
                    [{"name": str(i.get("name", "")), "part": str(i.get("part", "")),
                      "metrics": _numbers(i.get("metrics", {})),
                      "error": None if i.get("error") is None else str(i.get("error"))[:200]} for i in items],
                    reason, True)


def score_files(folder: Path) -> list[Path]:
    """The rescore files of the evaluation folder ``folder``, by name."""
    try:
        names = sorted(os.listdir(folder / SCORES))
    except OSError:
        return []
    return [folder / SCORES / n for n in names if n.endswith(".json") and not n.startswith(".")]


def score_sets(folder: Path, ev: Evaluation, problems: list[str] | None = None) -> list[ScoreSet]:
    """Every score set of the evaluation in ``folder``: the pass's first, then each rescore by file name.

    A broken score file is reported in ``problems`` and left out.
    """
    sets = [of_record(ev)]
    for path in score_files(folder):
        try:
            sets.append(read_score_file(path))
        except (OSError, ValueError, RecursionError) as exc:
            if problems is not None:
                problems.append(f"{path}: left out: {exc}")
    return sets


def newest(sets: Iterable[ScoreSet]) -> ScoreSet:
    """The score set of the newest scorer version (a rescore over the pass's at the same version)."""
    return max(sets, key=lambda s: (version_order(s.version), s.rescored, s.scored))


def apply(ev: Evaluation, scores: ScoreSet) -> Evaluation:
    """``ev`` as the leaderboard shows it under ``scores``: scorer, scores and (for a rescore) status."""
    if not scores.rescored:
        return ev
    status, reason = ev.status, ev.reason
    if scores.reason is not None:
        status, reason = Status.FAILED, scores.reason
    return replace(ev, scorer={**ev.scorer, "name": scores.scorer, "version": scores.version},
                   metrics=scores.metrics, public=scores.public, private=scores.private, items=scores.items,
                   status=status, reason=reason)


# -- the command -------------------------------------------------------------------------------


@dataclass
class RescoreReport:
    """What one ``jc runner rescore`` did."""

    scorer: str = ""
    version: str = ""
    rescored: list[str] = field(default_factory=list)  # ids with a new score file
    unchanged: list[str] = field(default_factory=list)  # already scored by this version
    failed: list[str] = field(default_factory=list)  # "<id>: why" (nothing written for them)
    commit: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"scorer": self.scorer, "version": self.version, "rescored": self.rescored,
                "unchanged": self.unchanged, "failed": self.failed, "commit": self.commit}


def rescore(config: RunnerConfig, *, ids: Collection[str] = (), phase: str | None = None, wait: bool = False,
            progress: Callable[[str], None] | None = None) -> RescoreReport:
    """Score the stored predictions of every evaluated record (or of ``ids`` / ``phase``) with the current scorer.

    Holds the ledger's lock; writes one score file per evaluation and commits them all in one
    commit. An evaluation already scored by this scorer version is left as it is. One that
    cannot be rescored (its predictions' content is missing, the labels version is gone) is
    reported in ``failed`` and does not stop the others.
    """
    from jc_datalad.runner import start_writing

    say = progress or (lambda msg: None)
    with lock.hold(config.results, wait=wait, what="jc runner rescore") as holding:
        start_writing(config, holding, say)
        return _rescore(config, set(ids), phase, say)


def _selected(config: RunnerConfig, ids: set[str], phase: str | None) -> list[tuple[Path, Evaluation]]:
    for eid in ids:
        if not ledger.valid_eval_id(eid) or not ledger.record_path(config.results, eid).is_file():
            raise JcError(f"{eid}: no such evaluation in {config.results}")
    chosen = []
    for path, ev in ledger.iter_records(config.results):
        if not isinstance(ev, Evaluation) or ev.status is not Status.EVALUATED:
            continue
        if (ids and ev.id not in ids) or (phase is not None and ev.phase != phase):
            continue
        chosen.append((path.parent, ev))
    return chosen


def _rescore(config: RunnerConfig, ids: set[str], phase: str | None, say: Callable[[str], None]) -> RescoreReport:
    spec = load_spec(config.challenge)
    report = RescoreReport(spec.metrics.scorer, scorers.__version__)
    key = score_key(report.scorer, report.version)
    commit = git_out(["rev-parse", "HEAD"], config.challenge)
    written: list[Path] = []
    labels_repos: dict[str, Path] = {}  # split -> the organizer's labels dataset, staged once per command
    for folder, ev in _selected(config, ids, phase):
        if any(s.key == key for s in score_sets(folder, ev)):
            report.unchanged.append(ev.id)
            continue
        try:
            scores = _score_one(config, spec, folder, ev, commit, report, labels_repos)
        except (JcError, OSError) as exc:
            report.failed.append(f"{ev.id}: {exc}")
            say(f"{ev.id}: not rescored: {exc}")
            continue
        target = folder / SCORES / f"{key}.json"
        target.parent.mkdir(exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(scores.as_dict(), indent=1, sort_keys=True, allow_nan=False) + "\n",
                       encoding="utf-8")
        os.replace(tmp, target)
        written.append(target)
        report.rescored.append(ev.id)
        say(f"{ev.id}: rescored with {report.scorer} {report.version}" + (f": {scores.reason}" if scores.reason else ""))
    if written:
        ledger.save_files(config.results, written,
                          f"Rescore {len(written)} evaluation(s) with {report.scorer} {report.version}\n\n"
                          + "\n".join(f"- {eid}" for eid in report.rescored) + "\n")
        report.commit = git_out(["rev-parse", "HEAD"], config.results)
    return report


def copy_predictions(results: Path, stored: Path, dest: Path, *, max_files: int, max_bytes: int) -> None:
    """Copy an evaluation's stored predictions to ``dest`` as regular files, within a pass's bounds.

    Annexed files are followed only into the ledger's own annex; anything else that is a link,
    too many files or too many bytes stops the copy with the reason.
    """
    annex = (results / ".git" / "annex" / "objects").resolve()
    count = size = 0
    if not stored.is_dir() or stored.is_symlink():
        raise JcError(f"{stored}: the evaluation's predictions are not in the ledger")
    for dirpath, dirnames, filenames in os.walk(stored):
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                raise JcError(f"{os.path.join(dirpath, d)}: a link among stored predictions; not rescored")
        for name in filenames:
            source = Path(dirpath) / name
            rel = source.relative_to(stored)
            if source.is_symlink():
                real = source.resolve()
                if not real.is_relative_to(annex):
                    raise JcError(f"{source}: links outside the ledger's annex; not rescored")
                if not real.is_file():
                    raise JcError(f"{source}: its annexed content is not here; "
                                  f"`git -C {results} annex get {source.relative_to(results)}` first")
                source = real
            count += 1
            size += source.stat().st_size
            if count > max_files or size > max_bytes:
                raise JcError(f"{stored}: more than {max_files} files or {max_bytes} bytes; not rescored")
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, dest / rel)


def _score_one(config: RunnerConfig, spec: ChallengeSpec, folder: Path, ev: Evaluation, challenge_commit: str,
               report: RescoreReport, labels_repos: dict[str, Path]) -> ScoreSet:
    from jc_datalad.evaluate import public_part

    memory, output_bytes, output_format = spec.resources.memory_bytes, spec.resources.output_bytes, \
        spec.interface.format
    labels_commit = str(ev.hidden.get("labels", {}).get("commit", ""))
    if not labels_commit:
        raise JcError("its record names no labels version")
    if ev.split not in labels_repos:
        labels_repos[ev.split] = labels_dataset(config, spec, ev.split)
    labels_repo = labels_repos[ev.split]
    items = hiddenversion.items_at(labels_repo, labels_commit)
    labels = hiddenversion.materialize(labels_repo, labels_commit,
                                       config.work / "hidden" / f"{ev.split}-labels-{labels_commit[:12]}-all",
                                       recursive=False, names=items)
    # the pass's public part; records written before it was kept: the same seeded split the pass made
    public = frozenset(ev.hidden.get("public_items") or
                       public_part(items, spec.leaderboard.public_fraction, spec.leaderboard.seed))
    scratch = config.work / "rescore" / ev.id
    shutil.rmtree(scratch, ignore_errors=True)
    try:
        predictions = scratch / "predictions"
        predictions.mkdir(parents=True)
        copy_predictions(config.results, folder / "predictions", predictions,
                         max_files=2 * len(items) + 16, max_bytes=output_bytes)
        with sandbox.identity() as who:
            result = scoring.score_sealed(predictions, labels, scorer=report.scorer, items=items,
                                          public_items=public, limits=scoring.scoring_limits(memory),
                                          log_dir=scratch / "score", options=spec.metrics.options, who=who)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    # the scorer read predictions made on hidden data: what it says about them is kept as classes only
    reason = None if result.reason is None else (
        logs.public_reason(Status.FAILED.value, result.reason, output_format=output_format)
        or "the stored predictions cannot be scored by this scorer version")
    rows = [{"name": r.name, "part": "public" if r.name in public else "private", "metrics": r.metrics,
             "error": logs.public_item_error(r.error)} for r in result.items]
    return ScoreSet(report.scorer, report.version, challenge_commit, utcnow(), dict(result.metrics),
                    dict(result.public), dict(result.private), rows if result.reason is None else [], reason, True)


def labels_dataset(config: RunnerConfig, spec: ChallengeSpec, split: str) -> Path:
    """The organizer's labels dataset of ``split`` (results challenges keep theirs in the challenge)."""
    from jc_datalad import evaluate

    return evaluate.stage_hidden(config, spec, split).labels


def by_key(sets: Iterable[ScoreSet]) -> Mapping[str, ScoreSet]:
    return {s.key: s for s in sets}
