"""The results dataset: the ledger every leaderboard is built from.

Layout: ``evaluations/<id>/record.json`` plus ``logs/`` and ``predictions/``
next to it. Each evaluation is one commit whose message is a DataLad run
record, so ``datalad rerun`` (or ``jc runner reproduce ID``) redoes it.

Crash safety: an evaluation is assembled in ``.incoming/<id>`` (ignored by
git), renamed into ``evaluations/<id>`` when complete, then saved. A pass
that finds a complete but unsaved evaluation saves it; half-written incoming
folders are removed. So a kill at any point loses nothing that was finished
and never doubles a record.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path

from jc_datalad.errors import JcError
from jc_datalad.gitutil import git, git_out
from jc_datalad.records import Evaluation

lgr = logging.getLogger(__name__)

EVALUATIONS = "evaluations"
INCOMING = ".incoming"
RECORD = "record.json"
# challenges/<id>/: the challenge's description and README, for the site (see jc_datalad.description)
CHALLENGES = "challenges"
DESCRIPTION = "description.json"
README = "README.md"


def create_results(path: Path) -> None:
    """Create the results dataset if it does not exist."""
    import datalad.api as dl

    if (path / ".datalad" / "config").exists():
        return
    dl.create(path=str(path), cfg_proc=["text2git"], result_renderer="disabled")
    (path / ".gitignore").write_text(f"/{INCOMING}/\n")
    (path / "README.md").write_text(
        "# Results ledger\n\nOne folder per evaluation under `evaluations/`, each saved with a "
        "DataLad run record. Build the leaderboard site with `jc site build`.\n"
    )
    dl.save(dataset=str(path), message="Set up the results ledger", result_renderer="disabled")


def incoming_dir(results: Path, eval_id: str) -> Path:
    path = results / INCOMING / eval_id
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def record_path(results: Path, eval_id: str) -> Path:
    return results / EVALUATIONS / eval_id / RECORD


def committed_ids(results: Path) -> set[str]:
    """Evaluation ids whose record is committed."""
    out = git_out(["ls-tree", "-d", "--name-only", "HEAD", f"{EVALUATIONS}/"], results, check=False)
    return {line.split("/", 1)[1] for line in out.splitlines() if "/" in line}


def dataset_id(path: Path) -> str:
    proc = git(["config", "-f", str(path / ".datalad" / "config"), "datalad.dataset.id"], check=False)
    return proc.stdout.strip()


def run_record_message(results: Path, evaluation: Evaluation, cmd: list[str]) -> str:
    """A commit message holding a DataLad run record that redoes ``evaluation``."""
    record = {
        "chain": [],
        "cmd": " ".join(shlex.quote(c) for c in cmd),
        "dsid": dataset_id(results),
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
    tmp = folder / (RECORD + ".tmp")
    tmp.write_text(evaluation.to_json(), encoding="utf-8")
    os.replace(tmp, folder / RECORD)


def commit(results: Path, incoming: Path, evaluation: Evaluation, cmd: list[str]) -> None:
    """Move a finished evaluation into place and save it with its run record."""
    final = results / EVALUATIONS / evaluation.id
    final.parent.mkdir(exist_ok=True)
    if final.exists():
        # left by a crash between rename and save: the new one replaces it
        shutil.rmtree(final)
    os.replace(incoming, final)
    _save(results, [final], run_record_message(results, evaluation, cmd))


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


def recover(results: Path) -> list[str]:
    """Save complete evaluations a crash left unsaved; drop half-assembled ones. Returns saved ids."""
    shutil.rmtree(results / INCOMING, ignore_errors=True)
    evaluations = results / EVALUATIONS
    if not evaluations.is_dir():
        return []
    committed = committed_ids(results)
    saved = []
    for folder in sorted(evaluations.iterdir()):
        if folder.name in committed:
            continue
        record = folder / RECORD
        if not record.is_file():
            shutil.rmtree(folder)
            continue
        evaluation = Evaluation.from_dict(json.loads(record.read_text()))
        # the first reproduce line is the command the run record holds
        cmd = shlex.split(evaluation.reproduce[0]) if evaluation.reproduce else ["true"]
        _save(results, [folder], run_record_message(results, evaluation, cmd))
        saved.append(folder.name)
    return saved


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


def _read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _append_jsonl(results: Path, rel: str, entries: list[dict], message: str) -> None:
    path = results / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        for entry in entries:
            fh.write(json.dumps(entry, sort_keys=True) + "\n")
    _save(results, [path], message)


def load_seen(results: Path) -> dict[tuple[str, str], dict]:
    """(repository team, commit) -> the entry written when the runner first saw that head.

    The runner's clock decides; an entry is written once and never rewritten.
    """
    seen: dict[tuple[str, str], dict] = {}
    for entry in _read_jsonl(results / SEEN):
        seen.setdefault((entry["team"], entry["commit"]), entry)
    return seen


def record_seen(results: Path, entries: list[dict]) -> None:
    if entries:
        _append_jsonl(results, SEEN, entries, f"First seen: {len(entries)} new submission head(s)")


def load_overrides(results: Path) -> list[dict]:
    return _read_jsonl(results / OVERRIDES)


def record_override(results: Path, entry: dict) -> None:
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
