"""The results dataset: the ledger every leaderboard is built from.

Layout: ``evaluations/<id>/`` holds ``record.json`` and ``predictions/`` (and ``logs.age`` or
``logs.txt`` where the challenge's ``logs:`` setting publishes logs: jc_datalad.logs). Each
evaluation is one commit whose message is a DataLad run record, so ``datalad rerun`` (or
``jc runner reproduce ID``) redoes it; the rejections of one pass share one commit.

Crash safety (see docs/runner.md): only the holder of the dataset's lock
(:mod:`jc_datalad.lock`) writes. The dataset is created in a folder beside it
and renamed into place. An evaluation is assembled in ``.incoming/<id>``
(ignored by git); its ``record.json`` is written last, atomically, so a
folder with a record is complete. It is then renamed into ``evaluations/<id>``
and saved. :func:`recover`, run by the next holder of the lock, removes stale
git locks, undoes half-done changes to committed files, and saves every
complete evaluation a killed writer left unsaved; half-written ones are removed.
So a kill at any point loses nothing that was finished and never doubles a record.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shlex
import shutil
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from jc_datalad.errors import JcError
from jc_datalad.gitutil import git, git_out
from jc_datalad.records import Evaluation, Status

lgr = logging.getLogger(__name__)

EVALUATIONS = "evaluations"
INCOMING = ".incoming"
RECORD = "record.json"
# challenges/<id>/: the challenge's description and README, for the site (see jc_datalad.description)
CHALLENGES = "challenges"
DESCRIPTION = "description.json"
README = "README.md"

#: What a killed ``datalad create`` of the ledger may leave; such a folder is created again.
_CREATION_LEFTOVERS = frozenset({".git", ".datalad", ".gitattributes", ".gitignore", "README.md", INCOMING})
#: Lock files git leaves when killed; only the holder of the ledger lock may remove them.
_GIT_LOCKS = ("index.lock", "HEAD.lock", "ORIG_HEAD.lock", "FETCH_HEAD.lock", "packed-refs.lock",
              "config.lock", "shallow.lock", "annex/index.lock")
#: Suffix of an evaluation folder moved aside while a newer one takes its place.
_REPLACED = ".replaced"


def _complete(path: Path) -> bool:
    """Whether ``path`` is a results dataset with its first commit."""
    if not (path / ".datalad" / "config").is_file():
        return False
    return git(["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], path, check=False).returncode == 0


def _clear_failed_creation(path: Path) -> None:
    """Remove what a killed creation left at ``path``; refuse anything that may be someone's data."""
    entries = {p.name for p in path.iterdir()}
    has_commits = (path / ".git").exists() and git(
        ["rev-parse", "--verify", "--quiet", "HEAD^{commit}"], path, check=False).returncode == 0
    if not entries <= _CREATION_LEFTOVERS or has_commits:
        raise JcError(f"{path}: exists but is not a results dataset (it holds "
                      f"{', '.join(sorted(entries)[:5])}); point `results:` in runner.yaml at a new "
                      "folder or move this one away")
    lgr.warning("%s: removing an unfinished results dataset left by an interrupted creation", path)
    shutil.rmtree(path)


def create_results(path: Path) -> None:
    """Create the results dataset if it does not exist: built beside it, then renamed into place.

    Call with the ledger lock held. A folder left by a creation that was killed
    (a bare ``.git`` and no commit) is removed and the dataset created again.
    """
    import datalad.api as dl

    path = Path(os.path.abspath(path))
    if _complete(path):
        return
    if path.is_dir():
        _clear_failed_creation(path)
    tmp = path.parent / f".{path.name}.creating"
    shutil.rmtree(tmp, ignore_errors=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    dl.create(path=str(tmp), cfg_proc=["text2git"], description=f"results ledger {path}",
              result_renderer="disabled")
    (tmp / ".gitignore").write_text(f"/{INCOMING}/\n")
    (tmp / "README.md").write_text(
        "# Results ledger\n\nOne folder per evaluation under `evaluations/`, each saved with a "
        "DataLad run record. Build the leaderboard site with `jc site build`.\n"
    )
    git(["add", ".gitignore", "README.md"], tmp)
    git(["commit", "--quiet", "--no-verify", "-m", "Set up the results ledger"], tmp)
    os.rename(tmp, path)


def incoming_dir(results: Path, eval_id: str) -> Path:
    path = results / INCOMING / eval_id
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


# -- jobs submitted to a cluster (jc_datalad.backends.slurm): incoming state, kept by recover() --------

#: ``.incoming/.jobs/<id>.json``: one file per submitted evaluation, written by temp file and rename
JOBS = ".jobs"


def write_jobs(results: Path, entries: Mapping[str, dict]) -> None:
    """Keep (or update) the job entry of each evaluation id: what a later pass needs to adopt it."""
    folder = results / INCOMING / JOBS
    folder.mkdir(parents=True, exist_ok=True)
    for eval_id, entry in entries.items():
        tmp = folder / f".{eval_id}.json.tmp"
        tmp.write_text(json.dumps(entry, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, folder / f"{eval_id}.json")


def read_jobs(results: Path) -> dict[str, dict]:
    """Evaluation id -> its job entry, for every evaluation submitted and not collected yet."""
    folder = results / INCOMING / JOBS
    out: dict[str, dict] = {}
    if folder.is_dir():
        for path in sorted(folder.glob("*.json")):
            try:
                entry = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # only the runner writes these, by rename; an unreadable one is a leftover
            if isinstance(entry, dict):
                out[path.name.removesuffix(".json")] = entry
    return out


def remove_job(results: Path, eval_id: str) -> None:
    """Forget a job entry: its evaluation is in the ledger, or will be submitted again."""
    (results / INCOMING / JOBS / f"{eval_id}.json").unlink(missing_ok=True)


def record_path(results: Path, eval_id: str) -> Path:
    return results / EVALUATIONS / eval_id / RECORD


# -- reproductions (jc_datalad.reproduction): a redo and its verdict, beside the original -----------

#: ``reproductions/<id>/<n>/``: the n-th redo of evaluation <id> (record.json, predictions/, verdict.json);
#: ``evaluations/<id>/`` is never written by a reproduction
REPRODUCTIONS = "reproductions"
VERDICT = "verdict.json"


def valid_eval_id(eval_id: str) -> bool:
    """Whether ``eval_id`` can name a folder of the ledger (no separators, no dot-dot)."""
    return (0 < len(eval_id) <= 200 and eval_id.isascii() and eval_id[0].isalnum() and ".." not in eval_id
            and all(c.isalnum() or c in "._-" for c in eval_id))


def next_reproduction(results: Path, eval_id: str) -> int:
    """The number the next reproduction of ``eval_id`` gets: one more than the highest committed."""
    out = git_out(["ls-tree", "-d", "--name-only", "HEAD", f"{REPRODUCTIONS}/{eval_id}/"], results, check=False)
    numbers = [int(n) for n in (line.rsplit("/", 1)[-1] for line in out.splitlines()) if n.isdigit()]
    return max(numbers, default=0) + 1


def commit_reproduction(results: Path, folder: Path, eval_id: str, number: int, message: str) -> Path:
    """Copy a finished reproduction into ``reproductions/<id>/<n>/`` and save it in one commit.

    A writer killed before the commit leaves an untracked folder, which :func:`recover` removes.
    """
    final = results / REPRODUCTIONS / eval_id / str(number)
    if os.path.lexists(final):
        raise JcError(f"{final}: exists already; a reproduction is never written over")
    final.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(folder, final, symlinks=True)
    _save(results, [final], message)
    return final


def committed_ids(results: Path) -> set[str]:
    """Evaluation ids whose record is committed."""
    out = git_out(["ls-tree", "-d", "--name-only", "HEAD", f"{EVALUATIONS}/"], results, check=False)
    return {line.split("/", 1)[1] for line in out.splitlines() if "/" in line}


def dataset_id(path: Path) -> str:
    proc = git(["config", "-f", str(path / ".datalad" / "config"), "datalad.dataset.id"], check=False)
    return proc.stdout.strip()


def run_record_message(results: Path, evaluation: Evaluation, cmd: list[str], *, dsid: str | None = None) -> str:
    """A commit message holding a DataLad run record that redoes ``evaluation``.

    ``dsid``: the dataset's id when the caller has it (one git call less per evaluation).
    """
    record = {
        "chain": [],
        "cmd": " ".join(shlex.quote(c) for c in cmd),
        "dsid": dsid if dsid is not None else dataset_id(results),
        "exit": 0,
        "extra_inputs": [],
        "inputs": [],
        "outputs": [f"{EVALUATIONS}/{evaluation.id}"],
        "pwd": ".",
    }
    body = json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False)
    title = f"[DATALAD RUNCMD] Evaluate {evaluation.team} {evaluation.submission['commit'][:12]} " \
            f"({evaluation.phase}): {evaluation.status.value}"
    return f"{title}\n\n=== Do not change lines below ===\n{body}\n^^^ Do not change lines above ^^^\n"


def write_record(folder: Path, evaluation: Evaluation) -> None:
    """Write ``record.json`` atomically: a folder with a record holds a finished evaluation."""
    tmp = folder / (RECORD + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(evaluation.to_json())
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / RECORD)


def _read_record(folder: Path) -> Evaluation | None:
    """The record in ``folder``, or None when there is none or it cannot be read."""
    try:
        return Evaluation.from_dict(json.loads((folder / RECORD).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError, RecursionError):
        return None


def _place(results: Path, folder: Path, eval_id: str) -> Path:
    """Rename a finished evaluation folder into ``evaluations/<id>``, replacing an older one.

    The older one is first moved aside in one rename, so ``evaluations/<id>`` is always
    either the old complete folder, absent, or the new complete one.
    """
    final = results / EVALUATIONS / eval_id
    final.parent.mkdir(exist_ok=True)
    if os.path.lexists(final):
        aside = results / INCOMING / (eval_id + _REPLACED)
        shutil.rmtree(aside, ignore_errors=True)
        aside.parent.mkdir(exist_ok=True)
        os.replace(final, aside)
        shutil.rmtree(aside)
    os.replace(folder, final)
    return final


def commit(results: Path, incoming: Path, evaluation: Evaluation, cmd: list[str]) -> None:
    """Move a finished evaluation into place and save it with its run record."""
    final = _place(results, incoming, evaluation.id)
    _save(results, [final], run_record_message(results, evaluation, cmd))


def commit_rejections(results: Path, evaluations: list[Evaluation]) -> None:
    """Save the records of rejected heads, all in one commit (they ran nothing to redo)."""
    if not evaluations:
        return
    folders = []
    for ev in evaluations:
        folder = incoming_dir(results, ev.id)
        write_record(folder, ev)
        folders.append(_place(results, folder, ev.id))
    _save(results, folders, _rejections_message(evaluations))


#: An evaluation id as the runner makes them (records.evaluation_id: team--commit--phase), one path component.
_EVAL_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
#: Problems listed in one refusal of :func:`commit_many`; the rest are counted.
_MAX_PROBLEMS = 20


def commit_many(results: Path, items: Sequence[tuple[Path, Evaluation, list[str]]], *, per_commit: int = 1) -> str:
    """Record many finished evaluations at once: one commit each, with its run record, chained on
    the ledger's branch in one ``git fast-import`` stream (:mod:`jc_datalad.bulkcommit`).

    ``per_commit`` > 1 records that many evaluations per commit, whose run record redoes them all
    (their commands joined by ``&&``): each commit rewrites the tree of ``evaluations/``, so the
    cost grows with evaluations × ledger size, and grouping divides it; ``datalad rerun`` of one
    of them then redoes its whole group.

    ``items``: (finished folder, its evaluation, the command its run record holds), in the order
    the commits are to be made. A folder holds ``record.json`` (whose id is the evaluation's) and
    what the evaluation wrote; it must be on the ledger's file system (it is renamed into
    ``evaluations/<id>``, replacing an older folder of that id). Large files are annexed and
    small ones go to git, as :func:`commit` (``git annex add``) does. Returns the new head.

    Every item is checked before anything changes; problems (an id that is not one path
    component, a folder without its record, a symlink, a name git or the file system refuses)
    raise :class:`JcError`, naming each. The branch moves only at the end: a writer killed
    before that leaves it at its previous commit, and :func:`recover` records the placed
    folders. Call with the ledger lock held.
    """
    from jc_datalad import bulkcommit

    if not items:
        return git_out(["rev-parse", "HEAD"], results)
    t0 = time.perf_counter()
    files = _batch_files(results, items)
    dsid = dataset_id(results)
    for folder, ev, _ in items:
        if Path(os.path.abspath(folder)) != results / EVALUATIONS / ev.id:
            _place(results, folder, ev.id)
    commits = []
    step = max(1, per_commit)
    for start in range(0, len(items), step):
        group = [(ev, cmd, names) for (_, ev, cmd), names in
                 zip(items[start:start + step], files[start:start + step], strict=True)]
        if len(group) == 1:
            message = run_record_message(results, group[0][0], group[0][1], dsid=dsid)
        else:
            message = _group_message(group, dsid)
        rels = [f"{EVALUATIONS}/{ev.id}" for ev, _, _ in group]
        commits.append(bulkcommit.NewCommit(message, tuple(rels), tuple(
            f"{rel}/{n}" for rel, (_, _, names) in zip(rels, group, strict=True) for n in names)))
    try:
        t1 = time.perf_counter()
        annexed = bulkcommit.annex_files(results, [f for c in commits for f in c.files])
        t2 = time.perf_counter()
        # git-annex records the content as present while fast-import writes the commits
        with ThreadPoolExecutor(max_workers=1) as pool:
            present = pool.submit(bulkcommit.record_present, results, annexed.keys)
            head = bulkcommit.write_commits(results, commits, links=annexed.links, before_moving=present.result)
        lgr.info("%s: recorded %d evaluation(s) in %.1f s (checked and placed %.1f s, annexed %d file(s) %.1f s, "
                 "%d commit(s) %.1f s)", results, len(items), time.perf_counter() - t0, t1 - t0, len(annexed.links),
                 t2 - t1, len(commits), time.perf_counter() - t2)
        return head
    except JcError as exc:
        raise JcError(f"{results}: recording {len(items)} evaluation(s) failed: {exc}") from None


def _group_message(group: list[tuple[Evaluation, list[str], list[str]]], dsid: str) -> str:
    """A run record that redoes every evaluation of ``group``, one command after the other."""
    record = {
        "chain": [],
        "cmd": " && ".join(" ".join(shlex.quote(c) for c in cmd) for _, cmd, _ in group),
        "dsid": dsid,
        "exit": 0,
        "extra_inputs": [],
        "inputs": [],
        "outputs": [f"{EVALUATIONS}/{ev.id}" for ev, _, _ in group],
        "pwd": ".",
    }
    body = json.dumps(record, indent=1, sort_keys=True, ensure_ascii=False)
    lines = "\n".join(f"- {ev.team} {ev.submission['commit'][:12]} ({ev.phase}): {ev.status.value}"
                      for ev, _, _ in group)
    return (f"[DATALAD RUNCMD] Evaluate {len(group)} submission heads\n\n{lines}\n\n"
            f"=== Do not change lines below ===\n{body}\n^^^ Do not change lines above ^^^\n")


def _batch_files(results: Path, items: Sequence[tuple[Path, Evaluation, list[str]]]) -> list[list[str]]:
    """The files of each item's folder (relative to it), after checking every item; raise naming each problem."""
    from jc_datalad.bulkcommit import annex_link_problem

    problems: list[str] = []
    out: list[list[str]] = []
    seen: set[str] = set()
    for folder, ev, _ in items:
        eid = ev.id
        names: list[str] = []
        out.append(names)
        if not isinstance(eid, str) or not _EVAL_ID.fullmatch(eid) or eid in seen:
            problems.append(f"evaluation id {str(eid)[:80]!r}: " + ("given twice" if eid in seen else
                            "not an id the runner makes (letters, digits, '.', '_', '-'; at most 200)"))
            continue
        seen.add(eid)
        record = _read_record(folder)
        if record is None or record.id != eid:
            problems.append(f"{folder}: no {RECORD} of {eid} (the folder must hold a finished evaluation)")
            continue
        where = Path(os.path.abspath(folder))
        placed = where == results / EVALUATIONS / eid
        if not placed and (results / EVALUATIONS) in where.parents:
            problems.append(f"{folder}: inside {EVALUATIONS}/ but not {EVALUATIONS}/{eid}")
            continue
        problems += [f"{folder}/{p}" for p in _folder_problems(results, Path(folder), eid, placed, names,
                                                                annex_link_problem)]
    if problems:
        more = f" (and {len(problems) - _MAX_PROBLEMS} more)" if len(problems) > _MAX_PROBLEMS else ""
        raise JcError(f"{results}: nothing recorded: " + "; ".join(problems[:_MAX_PROBLEMS]) + more)
    return out


def _folder_problems(results: Path, folder: Path, eid: str, placed: bool, names: list[str],
                     link_problem: Callable[[Path, str], str | None]) -> list[str]:
    """Walk ``folder`` (bounded: depth, name lengths, file count), appending its files to ``names``."""
    from jc_datalad.inspection import MAX_CHECKOUT_FILES, MAX_PATH_DEPTH, path_problem

    problems: list[str] = []
    stack = [""]
    while stack:
        sub = stack.pop()
        try:
            entries = sorted(os.scandir(folder / sub), key=lambda e: e.name)
        except OSError as exc:
            return [f"{sub or '.'}: cannot be read ({exc.strerror})"]
        for entry in entries:
            rel = f"{sub}/{entry.name}" if sub else entry.name
            problem = path_problem(f"{EVALUATIONS}/{eid}/{rel}")
            if problem is None and entry.name.lower().startswith(".git"):
                problem = "a .git name would change how git reads the ledger"
            if problem is None and entry.is_symlink():
                problem = link_problem(results, f"{EVALUATIONS}/{eid}/{rel}") if placed else "is a symlink"
                if problem is None:
                    names.append(rel)
                    continue
            if problem is None and entry.is_dir(follow_symlinks=False):
                if rel.count("/") >= MAX_PATH_DEPTH:
                    problem = f"nested deeper than {MAX_PATH_DEPTH} folders"
                else:
                    stack.append(rel)
                    continue
            elif problem is None and not entry.is_file(follow_symlinks=False):
                problem = "is not a regular file"
            if problem:
                problems.append(f"{rel}: {problem}")
            else:
                names.append(rel)
            if len(names) > MAX_CHECKOUT_FILES or len(problems) > _MAX_PROBLEMS:
                return problems + [f"more than {MAX_CHECKOUT_FILES} files or {_MAX_PROBLEMS} problems; stopped"]
    return problems


def _rejections_message(evaluations: list[Evaluation]) -> str:
    lines = [f"- {ev.team} {ev.submission['commit'][:12]} ({ev.phase}): {ev.reason}" for ev in evaluations]
    return f"Rejected {len(evaluations)} submission head(s)\n\n" + "\n".join(lines) + "\n"


def save_files(results: Path, paths: list[Path], message: str) -> None:
    """Commit files written beside committed records (a rescore's score files) in one commit."""
    _save(results, paths, message)


def _save(results: Path, paths: list[Path], message: str) -> None:
    """Commit ``paths``: large and binary files annexed, text in git (the dataset's text2git rules).

    git-annex and git directly: a tenth of what ``datalad save`` costs per evaluation, and the
    commit is the same DataLad sees (its message carries the run record).
    """
    rel = [str(p.relative_to(results)) for p in paths]
    present = [r for r, p in zip(rel, paths, strict=True) if os.path.lexists(p)]  # others: removed
    try:
        if present:
            git(["annex", "add", "--quiet", "--", *present], results)
        git(["commit", "--quiet", "--no-verify", "-m", message, "--", *rel], results)
    except JcError as exc:
        raise JcError(f"{results}: saving {', '.join(rel)} failed: {exc}") from None


# -- recovery: what the next holder of the lock does about a writer that died ---------------------


@dataclass
class Recovery:
    """What :func:`recover` repaired."""

    saved: list[str] = field(default_factory=list)  # evaluation ids saved from an interrupted writer
    removed: list[str] = field(default_factory=list)  # half-written folders and files removed
    restored: list[str] = field(default_factory=list)  # committed files put back as committed
    git_locks: list[str] = field(default_factory=list)  # stale git lock files removed


def _stale_git_locks(results: Path) -> list[Path]:
    gitdir = results / ".git"
    found = [gitdir / name for name in _GIT_LOCKS if (gitdir / name).exists()]
    for sub in ("refs", "logs"):
        if (gitdir / sub).is_dir():
            found += sorted((gitdir / sub).rglob("*.lock"))
    return found


def _worktree_changes(results: Path) -> list[tuple[str, str]]:
    """(status, path) of every file that differs from HEAD or is untracked (not ignored)."""
    out = git(["status", "--porcelain=v1", "-z", "--untracked-files=all", "--no-renames"], results).stdout
    changes = []
    for entry in out.split("\0"):
        if len(entry) > 3:
            changes.append((entry[:2], entry[3:]))
    return changes


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def recover(results: Path) -> Recovery:
    """Finish or undo what a killed writer left, so that the ledger is as if it had stopped cleanly.

    Only call with the ledger lock held (:func:`jc_datalad.lock.hold`): the lock proves no
    other writer lives, so git's lock files are stale and unsaved changes are leftovers.
    """
    done = Recovery()
    for path in _stale_git_locks(results):
        path.unlink()
        done.git_locks.append(str(path.relative_to(results)))
    if done.git_locks:
        lgr.warning("%s: removed stale git lock(s) of an interrupted writer: %s", results, ", ".join(done.git_locks))
    # a kill between git's ref update and its index update leaves an index that disagrees with HEAD
    git(["reset", "--quiet"], results)
    committed = committed_ids(results)

    # finished evaluations waiting to be saved come first: they replace what they were to replace
    incoming = results / INCOMING
    if incoming.is_dir():
        for folder in sorted(incoming.iterdir()):
            if folder.name == JOBS:
                continue  # jobs submitted to a cluster, still to be collected: the next pass adopts them
            if folder.name.endswith(_REPLACED) or not folder.is_dir() or _read_record(folder) is None:
                _remove(folder)
                done.removed.append(f"{INCOMING}/{folder.name}")
            else:
                _place(results, folder, folder.name)
        if not any(incoming.iterdir()):
            incoming.rmdir()

    by_evaluation: dict[str, list[tuple[str, str]]] = {}
    other: list[tuple[str, str]] = []
    for status, rel in _worktree_changes(results):
        parts = rel.split("/")
        if parts[0] == EVALUATIONS and len(parts) > 2:
            by_evaluation.setdefault(parts[1], []).append((status, rel))
        else:
            other.append((status, rel))

    to_save: list[Evaluation] = []
    for eid, changes in sorted(by_evaluation.items()):
        folder = results / EVALUATIONS / eid
        record = _read_record(folder)
        if record is not None and record.id == eid and (eid not in committed or _record_changed(results, eid)):
            to_save.append(record)
            continue
        _undo(results, [(s, r) for s, r in changes], done)
        if eid not in committed:
            _remove(folder)
    _undo(results, other, done)

    rejected = [ev for ev in to_save if ev.status is Status.REJECTED]
    if rejected:
        _save(results, [results / EVALUATIONS / ev.id for ev in rejected], _rejections_message(rejected))
    # the first reproduce line is the command the run record holds
    finished = [(results / EVALUATIONS / ev.id, ev, shlex.split(ev.reproduce[0]) if ev.reproduce else ["true"])
                for ev in to_save if ev.status is not Status.REJECTED]
    fit = [item for item in finished if _fits_batch(results, item)]
    commit_many(results, fit)  # all in one go: a Slurm collection may have left thousands
    for folder, ev, cmd in finished:
        if all(item[1] is not ev for item in fit):
            _save(results, [folder], run_record_message(results, ev, cmd))
    done.saved = [ev.id for ev in to_save]
    return done


def _fits_batch(results: Path, item: tuple[Path, Evaluation, list[str]]) -> bool:
    """Whether :func:`commit_many` takes this item; one it refuses is saved as before, alone."""
    try:
        _batch_files(results, [item])
    except JcError as exc:
        lgr.warning("%s", exc)
        return False
    return True


def _record_changed(results: Path, eid: str) -> bool:
    rel = f"{EVALUATIONS}/{eid}/{RECORD}"
    proc = git(["diff", "--quiet", "HEAD", "--", rel], results, check=False)
    return proc.returncode != 0


def _undo(results: Path, changes: list[tuple[str, str]], done: Recovery) -> None:
    """Put changed committed files back as committed; remove files that were never committed."""
    tracked = [rel for status, rel in changes if status != "??"]
    for status, rel in changes:
        if status == "??":
            _remove(results / rel)
            done.removed.append(rel)
    if tracked:
        git(["checkout", "--quiet", "HEAD", "--", *tracked], results)
        done.restored += tracked
    if changes:
        lgr.warning("%s: undid unsaved changes of an interrupted writer: %s", results,
                    ", ".join(rel for _, rel in changes[:10]) + (" ..." if len(changes) > 10 else ""))


def iter_records(results: Path) -> Iterator[tuple[Path, Evaluation | Exception]]:
    """Every record in the ledger, or the error reading it (one bad record never stops a reader)."""
    evaluations = results / EVALUATIONS
    if not evaluations.is_dir():
        return
    for folder in sorted(evaluations.iterdir()):
        path = folder / RECORD
        try:
            yield path, Evaluation.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            yield path, exc


# -- first-seen times and organizer overrides: append-only, committed ---------------------

SEEN = "submissions/seen.jsonl"
OVERRIDES = "overrides.jsonl"


@dataclass(frozen=True)
class BadLine:
    """A line of an append-only ledger file that was skipped, and why."""

    file: str  # relative to the results dataset
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}; line skipped (fix or remove it with a commit)"


def _read_jsonl(results: Path, rel: str, check: Callable[[dict], str | None]) -> tuple[list[dict], list[BadLine]]:
    """The entries of a JSON-lines file; lines that are not a valid entry are reported and skipped."""
    path = results / rel
    try:
        text = path.read_bytes().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return [], []
    entries: list[dict] = []
    bad: list[BadLine] = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if len(line) > _MAX_LINE:
            bad.append(BadLine(rel, number, f"line of {len(line)} characters (at most {_MAX_LINE})"))
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError) as exc:
            bad.append(BadLine(rel, number, f"not JSON ({str(exc)[:80]})"))
            continue
        problem = "not a JSON object" if not isinstance(entry, dict) else check(entry)
        if problem:
            bad.append(BadLine(rel, number, problem))
            continue
        entries.append(entry)
    for b in bad:
        lgr.warning("%s", b)
    return entries, bad


_MAX_LINE = 1 << 16


def _check_seen(entry: dict) -> str | None:
    for key in ("team", "commit", "first_seen"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            return f"`{key}` missing or not a text"
    from jc_datalad.standings import parse_time

    try:
        parse_time(entry["first_seen"])
    except ValueError:
        return f"first_seen {entry['first_seen'][:40]!r} is not an ISO time"
    return None


def _check_override(entry: dict) -> str | None:
    from jc_datalad.admission import OVERRIDE_ACTIONS
    from jc_datalad.standings import parse_time

    action = entry.get("action")
    if action not in OVERRIDE_ACTIONS:
        return f"action {str(action)[:40]!r} is not one of {', '.join(OVERRIDE_ACTIONS)}"
    for key in ("target", "reason"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            return f"`{key}` missing or not a text"
    if action == "extend":
        try:
            parse_time(str(entry.get("end")))
        except ValueError:
            return f"extend needs `end`, an ISO time (got {str(entry.get('end'))[:40]!r})"
    return None


def _append_jsonl(results: Path, rel: str, entries: list[dict], message: str) -> None:
    path = results / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as fh:
        # a line cut short by a killed writer must not swallow the next entry
        if fh.tell() and path.read_bytes()[-1:] != b"\n":
            fh.write(b"\n")
        for entry in entries:
            fh.write((json.dumps(entry, sort_keys=True) + "\n").encode("utf-8"))
    _save(results, [path], message)


def read_seen(results: Path) -> tuple[dict[tuple[str, str], dict], list[BadLine]]:
    """(repository team, commit) -> the entry written when the runner first saw that head.

    The runner's clock decides; an entry is written once and never rewritten. Broken lines
    are returned, not raised: one bad line never stops a pass.
    """
    seen: dict[tuple[str, str], dict] = {}
    entries, bad = _read_jsonl(results, SEEN, _check_seen)
    for entry in entries:
        seen.setdefault((entry["team"], entry["commit"]), entry)
    return seen, bad


def load_seen(results: Path) -> dict[tuple[str, str], dict]:
    return read_seen(results)[0]


def record_seen(results: Path, entries: list[dict]) -> None:
    if entries:
        _append_jsonl(results, SEEN, entries, f"First seen: {len(entries)} new submission head(s)")


def read_overrides(results: Path) -> tuple[list[dict], list[BadLine]]:
    """The organizer's overrides, in order; broken lines are returned with their line numbers."""
    return _read_jsonl(results, OVERRIDES, _check_override)


def load_overrides(results: Path) -> list[dict]:
    return read_overrides(results)[0]


def record_override(results: Path, entry: dict) -> None:
    problem = _check_override(entry)
    if problem:
        raise JcError(f"override not recorded: {problem}")
    what = entry["action"] + " " + str(entry.get("target", ""))
    _append_jsonl(results, OVERRIDES, [entry], f"Organizer override: {what.strip()}: {entry['reason']}")


def write_json(results: Path, rel: str, data: dict, message: str) -> bool:
    """Write and commit a JSON file when its content changed; True if it did."""
    path = results / rel
    text = json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    _save(results, [path], message)
    return True


def write_files(results: Path, files: Mapping[str, str | None], message: str) -> bool:
    """Write the text files that changed and commit them in one commit; True if any did.

    ``files``: path relative to ``results`` -> its text, or None to remove the file.
    """
    changed = []
    for rel, text in sorted(files.items()):
        path = results / rel
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old == text:
            continue
        if text is None:
            git(["rm", "--quiet", "--ignore-unmatch", "--", rel], results)
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        changed.append(path)
    if changed:
        _save(results, changed, message)
    return bool(changed)
