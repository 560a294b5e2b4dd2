"""The public archive of submissions: what lets anyone redo a submission's recorded steps (level a).

Team repositories are private; the archive is the one public, read-only place a reader
clones a submission from. It is a DataLad dataset beside the ledger,
``<results>/../<challenge id>-submissions`` (:func:`archive_path`), that the runner fills:

- its branch follows the public challenge (a clone of it), with the public inputs and the
  container image present, so a clone of the archive resolves ``inputs/*`` from it;
- each published evaluation's submission commit is fetched into ``refs/submissions/<id>``
  (only that commit and its ancestors: never the team repository's other branches), with the
  annexed content it changed (code, weights, committed predictions), checked against its keys;
- the ledger's ``archive.json`` (:data:`INDEX`) says where the archive is and which
  evaluations are in it, for the site.

When a submission is published is the challenge's ``submission.publish`` setting
(:class:`jc_datalad.spec.Publish`): after its phase ends (the default), at once, or never.
Only evaluations that ran (evaluated or failed, with checked run records) are published.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from jc_datalad import ledger
from jc_datalad.config import RunnerConfig
from jc_datalad.errors import JcError
from jc_datalad.evaluate import annex_get
from jc_datalad.gitutil import git, git_out
from jc_datalad.inspection import inspect_submission, merge_base
from jc_datalad.records import Evaluation, Status
from jc_datalad.spec import ChallengeSpec, ChallengeType, Publish

lgr = logging.getLogger(__name__)

#: In the ledger: the archive's location and the evaluations published in it (read by the site).
INDEX = "archive.json"
#: The ref namespace of published submissions in the archive.
REF_PREFIX = "refs/submissions/"


def archive_path(config: RunnerConfig, spec: ChallengeSpec) -> Path:
    """Where the archive lies: beside the ledger, named after the challenge."""
    return config.results.parent / f"{spec.id}-submissions"


def due(ev: Evaluation, spec: ChallengeSpec, now: dt.datetime) -> bool:
    """Whether ``ev`` may enter the archive now under the challenge's ``submission.publish``."""
    steps = ev.submission.get("steps") if isinstance(ev.submission, dict) else None
    if ev.status not in (Status.EVALUATED, Status.FAILED) or not steps:
        return False  # nothing that ran from checked run records: nothing a reader could redo
    policy = spec.submission.publish
    if policy is Publish.NEVER:
        return False
    if policy is Publish.IMMEDIATELY:
        return True
    phase = next((p for p in spec.phases if p.name == ev.phase), None)
    return phase is not None and phase.end <= now


def anything_due(spec: ChallengeSpec, now: dt.datetime) -> bool:
    """Whether any evaluation can be due at ``now`` (a pass reads no records otherwise)."""
    if spec.submission.publish is Publish.NEVER:
        return False
    return spec.submission.publish is Publish.IMMEDIATELY or any(p.end <= now for p in spec.phases)


def publish(config: RunnerConfig, spec: ChallengeSpec, records: Iterable[Evaluation], now: dt.datetime) -> list[str]:
    """Copy every due evaluation's submission into the archive; return the ids newly published.

    Call with the ledger lock held (a runner pass). A submission that cannot be copied (its
    commit gone from the team repository, its committed predictions refused) is logged and
    listed under ``refused`` in the ledger's ``archive.json`` with the reason, and not tried
    again; it never stops the pass.
    """
    records = [ev for ev in records if due(ev, spec, now)]
    if not records:
        return []
    target = archive_path(config, spec)
    present = published_ids(target)
    earlier = load_index(config.results).get("refused")
    refused: dict[str, str] = dict(earlier) if isinstance(earlier, dict) else {}
    fresh = sorted((ev for ev in records if ev.id not in present and ev.id not in refused), key=lambda e: e.id)
    if fresh:
        ensure_archive(config, target)
    added = []
    for ev in fresh:
        try:
            add_submission(config, spec, target, ev)
        except JcError as exc:
            lgr.warning("%s: not copied into the archive %s: %s", ev.id, target, exc)
            refused[ev.id] = str(exc)[:500]
            continue
        added.append(ev.id)
    ids = sorted(present | set(added))
    ledger.write_json(config.results, INDEX, {"archive": str(target), "evaluations": ids,
                                              **({"refused": refused} if refused else {})},
                      f"Public archive of submissions: {len(ids)} evaluation(s)")
    return added


def published_ids(target: Path) -> set[str]:
    if not (target / ".git").exists():
        return set()
    out = git_out(["for-each-ref", "--format=%(refname)", REF_PREFIX], target, check=False)
    return {line[len(REF_PREFIX):] for line in out.splitlines() if line.startswith(REF_PREFIX)}


def ensure_archive(config: RunnerConfig, target: Path) -> None:
    """Create the archive as a clone of the public challenge, or bring it up to the challenge's
    head; either way with the public inputs and the image present, world-readable."""
    import datalad.api as dl

    if not (target / ".git").exists():
        tmp = target.with_name(target.name + ".creating")
        shutil.rmtree(tmp, ignore_errors=True)
        dl.clone(source=str(config.challenge), path=str(tmp), result_renderer="disabled")
        os.replace(tmp, target)
    else:
        head = git_out(["rev-parse", "HEAD"], config.challenge)
        if git_out(["rev-parse", "HEAD"], target) != head:
            dl.update(dataset=str(target), how="merge", recursive=True, result_renderer="disabled")
    dl.get(dataset=str(target), path=[str(target)], recursive=True, result_renderer="disabled",
           on_failure="ignore")
    _readable(target)


def add_submission(config: RunnerConfig, spec: ChallengeSpec, target: Path, ev: Evaluation) -> None:
    """Fetch ``ev``'s submission commit into ``refs/submissions/<id>`` with its annexed content."""
    if not ledger.valid_eval_id(ev.id):
        raise JcError(f"{ev.id!r} cannot name a ref")
    commit = ev.submission["commit"]
    repository = ev.submission["repository"]
    protocols = config.protocols
    with tempfile.TemporaryDirectory(prefix="jc-archive-", dir=config.work if config.work.is_dir() else None) as tmp:
        clone = Path(tmp) / "clone"
        git(["clone", "--quiet", "--no-checkout", "--no-tags", "--no-recurse-submodules", repository, str(clone)],
            protocols=protocols, timeout=600)
        if git(["cat-file", "-e", f"{commit}^{{commit}}"], clone, check=False).returncode:
            raise JcError(f"commit {commit[:12]} is no longer in the team repository")
        git(["fetch", "--quiet", "--no-tags", str(config.challenge), "+HEAD:refs/jc/challenge"], clone,
            protocols=("file",))
        base = merge_base(clone, commit, "refs/jc/challenge")
        if base is None:
            raise JcError(f"commit {commit[:12]} does not build on the challenge")
        # the committed predictions too (an inference challenge's inspection leaves them out, as
        # the runner regenerates them): level (a) compares a rerun with them; checked like a results
        # challenge's (checksum keys, sizes)
        inspection = inspect_submission(clone, base, commit, dataclasses.replace(spec, type=ChallengeType.RESULTS))
        if not inspection.ok:
            raise JcError("; ".join(inspection.problems))
        objects = annex_get(clone, list(inspection.annexed), protocols)
        git(["update-ref", "refs/jc/submission", commit], clone)
        git(["fetch", "--quiet", "--no-tags", str(clone), f"+refs/jc/submission:{REF_PREFIX}{ev.id}"], target,
            protocols=("file",))
        keys = {link.key: objects[link.path] for link in inspection.annexed}
        _store(target, keys)
    _readable(target)


def _store(target: Path, keys: dict[str, Path]) -> None:
    """Put checked annex objects into the archive's annex and record them present there.

    Copied by hand, not with ``git annex get --from`` the team's clone: that would merge the
    team repository's git-annex branch (its remotes, every branch's keys) into a public one.
    """
    if not keys:
        return
    uuid = git_out(["config", "annex.uuid"], target)
    for key, source in sorted(keys.items()):
        rel = git_out(["annex", "examinekey", "--format=${hashdirmixed}${key}/${key}", key], target)
        dest = target / ".git" / "annex" / "objects" / rel
        if not dest.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".tmp")
            shutil.copyfile(source, tmp)
            tmp.chmod(0o444)
            os.replace(tmp, dest)
        git(["annex", "setpresentkey", key, uuid, "1"], target)


def _readable(target: Path) -> None:
    """Everyone may read and enter the archive (it is public); no one but its owner writes."""
    for dirpath, dirnames, filenames in os.walk(target):
        for name in dirnames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o555)
        for name in filenames:
            path = Path(dirpath) / name
            if not path.is_symlink():
                path.chmod(path.stat().st_mode | 0o444)
    target.chmod(target.stat().st_mode | 0o555)


def load_index(results: Path) -> dict:
    """The ledger's ``archive.json``: ``{"archive": path, "evaluations": [ids]}``, empty without one."""
    path = results / INDEX
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
