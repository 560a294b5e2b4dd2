"""ledger.commit_many: many finished evaluations recorded in one go, as per-evaluation commits would.

Real git, git-annex and DataLad on ledgers in temporary folders; no challenge needed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from jc_datalad import bulkcommit, ledger
from jc_datalad.errors import JcError
from jc_datalad.gitutil import ensure_identity, env_with_annex_on_path, git_out
from jc_datalad.records import Evaluation, Status


def _evaluation(i: int, team: str | None = None) -> Evaluation:
    team = team or f"team{i % 3}"
    commit = f"{i:012x}" + "0" * 28
    eid = f"{team}--{commit[:12]}--dev"
    return Evaluation(
        id=eid, challenge={"id": "c", "title": "C", "commit": "a" * 40}, team=team,
        submission={"repository": f"/teams/{team}", "commit": commit, "branches": ["main"],
                    "first_seen": "2026-01-01T00:00:00Z"},
        phase="dev", split="test", status=Status.EVALUATED, metrics={"f1": 0.5 + i / 1000},
        public={"f1": 0.5}, items=[{"name": f"img_{k}", "part": "public", "metrics": {"f1": k / 10}} for k in range(4)],
        reproduce=[f"jc runner evaluate --output evaluations/{eid}"])


def _folder(results: Path, ev: Evaluation, i: int) -> Path:
    """A finished evaluation folder with the kinds of files evaluations write."""
    out = ledger.incoming_dir(results, ev.id)
    pred = out / "predictions" / "sub dir"
    pred.mkdir(parents=True)
    (out / "predictions" / "img_001.tif").write_bytes(b"II*\x00" + i.to_bytes(4, "little") + bytes(300))
    (out / "predictions" / "same.tif").write_bytes(b"II*\x00" + bytes(100))  # the same content in every folder
    (out / "predictions" / "table.csv").write_text(f"item,score\nimg_001,{i}\n")
    (out / "predictions" / "empty.tif").write_bytes(b"")
    (pred / "nöte ü.txt").write_text("UTF-8 name with a space\n")
    (pred / "utf16.txt").write_text("text in UTF-16\n", encoding="utf-16")
    (out / "predictions" / ".hidden").write_bytes(b"\x00\x01 binary dotfile")
    script = out / "predictions" / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o755)
    (out / "logs.age").write_bytes(b"age-encryption.org/v1\n-> X25519 abc\n" + bytes(range(256)))
    ledger.write_record(out, ev)
    return out


def _ledger(path: Path) -> Path:
    ensure_identity()
    ledger.create_results(path)
    return path


def _annex(results: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", "annex", *args], cwd=results, capture_output=True, text=True,
                          env=env_with_annex_on_path())


def _assert_clean(results: Path) -> None:
    """Worktree and index match HEAD, and git-annex has every annexed file's content."""
    assert git_out(["status", "--porcelain", "--untracked-files=all"], results) == ""
    fsck = _annex(results, "fsck", "--quiet")
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    proc = subprocess.run(["datalad", "status"], cwd=results, capture_output=True, text=True,
                          env=env_with_annex_on_path())
    assert proc.returncode == 0 and proc.stdout.strip() == "nothing to save, working tree clean", proc.stdout


def _items(results: Path, numbers: range) -> list[tuple[Path, Evaluation, list[str]]]:
    out = []
    for i in numbers:
        ev = _evaluation(i)
        out.append((_folder(results, ev, i), ev, ["jc", "runner", "evaluate", "--output", f"evaluations/{ev.id}"]))
    return out


def _messages(results: Path, count: int) -> list[str]:
    dsid = ledger.dataset_id(results)
    text = git_out(["log", f"-{count}", "--format=%B%x00"], results)
    return [m.strip().replace(dsid, "DSID") for m in text.split("\0") if m.strip()]


def test_many_merged_give_the_ledger_per_evaluation_commits_give(tmp_path):
    one = _ledger(tmp_path / "one")
    many = _ledger(tmp_path / "many")
    for folder, ev, cmd in _items(one, range(6)):
        ledger.commit(one, folder, ev, cmd)
    before = git_out(["rev-parse", "HEAD"], many)
    head = ledger.commit_many(many, _items(many, range(6)))

    assert head == git_out(["rev-parse", "HEAD"], many)
    assert git_out(["rev-list", "--count", f"{before}..HEAD"], many) == "6"
    # the same tree, byte for byte: the same files annexed (as symlinks to the same keys) and in git
    assert git_out(["rev-parse", "HEAD:evaluations"], many) == git_out(["rev-parse", "HEAD:evaluations"], one)
    assert _messages(many, 6) == _messages(one, 6)
    annexed = git_out(["annex", "find", "--format=${file}\\n", "evaluations"], many,)
    assert "predictions/img_001.tif" in annexed and "logs.age" in annexed and "table.csv" not in annexed
    # each commit adds exactly its own evaluation
    for i in range(6):
        eid = _evaluation(i).id
        commit = git_out(["log", "-1", "--format=%H", "--", f"evaluations/{eid}/record.json"], many)
        changed = git_out(["diff-tree", "--no-commit-id", "--name-only", "-r", commit], many).splitlines()
        assert {p.split("/")[1] for p in changed} == {eid}
    _assert_clean(many)


def test_grouped_commits_record_the_same_tree_with_one_run_record_per_group(tmp_path):
    one = _ledger(tmp_path / "one")
    grouped = _ledger(tmp_path / "grouped")
    ledger.commit_many(one, _items(one, range(7)))
    before = git_out(["rev-parse", "HEAD"], grouped)
    ledger.commit_many(grouped, _items(grouped, range(7)), per_commit=3)
    assert git_out(["rev-list", "--count", f"{before}..HEAD"], grouped) == "3"
    assert git_out(["rev-parse", "HEAD:evaluations"], grouped) == git_out(["rev-parse", "HEAD:evaluations"], one)
    last = git_out(["log", "-1", "--format=%B"], grouped)
    record = json.loads(last.split("=== Do not change lines below ===\n")[1].split("\n^^^")[0])
    assert record["outputs"] == [f"evaluations/{_evaluation(6).id}"]
    middle = git_out(["log", "-1", "--skip=1", "--format=%B"], grouped)
    assert middle.count("jc runner evaluate") == 3 and " && " in middle
    _assert_clean(grouped)


def test_a_second_batch_replaces_an_evaluation_and_keeps_the_rest(tmp_path):
    results = _ledger(tmp_path / "r")
    ledger.commit_many(results, _items(results, range(3)))
    ev = _evaluation(1)
    redone = ledger.incoming_dir(results, ev.id)
    (redone / "predictions").mkdir()
    (redone / "predictions" / "img_001.tif").write_bytes(b"II*\x00 redone" + bytes(50))
    ledger.write_record(redone, ev)
    ledger.commit_many(results, [(redone, ev, ["true"]), *_items(results, range(3, 5))])
    files = git_out(["ls-tree", "-r", "--name-only", "HEAD", f"evaluations/{ev.id}"], results).splitlines()
    assert sorted(files) == [f"evaluations/{ev.id}/predictions/img_001.tif", f"evaluations/{ev.id}/record.json"]
    assert len(ledger.committed_ids(results)) == 5
    _assert_clean(results)


@pytest.mark.slow
@pytest.mark.parametrize("per_commit", [1, 2])
def test_datalad_rerun_of_a_merged_record_redoes_it(tmp_path, per_commit):
    results = _ledger(tmp_path / "r")
    # a stand-in for `jc runner evaluate`: what the run record holds is what datalad rerun runs
    items = [(folder, ev, [sys.executable, "-c", f"import pathlib; pathlib.Path("
                                                 f"'evaluations/{ev.id}/redone.txt').write_text('redone')"])
             for folder, ev, _ in _items(results, range(4))]
    eid = items[2][1].id
    marker = f"evaluations/{eid}/redone.txt"
    ledger.commit_many(results, items, per_commit=per_commit)
    commit = git_out(["log", "-1", "--format=%H", "--", f"evaluations/{eid}/record.json"], results)
    assert "redone.txt" in git_out(["log", "-1", "--format=%B", commit], results)
    proc = subprocess.run(["datalad", "rerun", commit], cwd=results, capture_output=True, text=True,
                          env=env_with_annex_on_path())
    assert proc.returncode == 0, proc.stderr
    assert (results / marker).read_text() == "redone"
    assert git_out(["log", "-1", "--format=%s"], results).startswith("[DATALAD RUNCMD]")
    _assert_clean(results)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def test_a_kill_mid_merge_leaves_the_ledger_at_its_commit_and_recover_records_all(tmp_path, monkeypatch):
    results = _ledger(tmp_path / "r")
    before = git_out(["rev-parse", "HEAD"], results)
    items = _items(results, range(8))
    real = bulkcommit._stream

    def killed_halfway(*args, **kwargs):
        for number, chunk in enumerate(real(*args, **kwargs)):
            if number == 40:  # a few commits into the stream: SIGKILL fast-import
                for child in _children(os.getpid()):
                    if b"fast-import" in Path(f"/proc/{child}/cmdline").read_bytes():
                        os.kill(child, signal.SIGKILL)
            yield chunk

    monkeypatch.setattr(bulkcommit, "_stream", killed_halfway)
    with pytest.raises(JcError, match="fast-import"):
        ledger.commit_many(results, items)
    monkeypatch.undo()
    assert git_out(["rev-parse", "HEAD"], results) == before
    assert git_out(["diff", "--cached", "--name-only"], results) == ""

    done = ledger.recover(results)
    assert sorted(done.saved) == sorted(ev.id for _, ev, _ in items)
    assert git_out(["rev-list", "--count", f"{before}..HEAD"], results) == "8"
    _assert_clean(results)


def test_a_failure_after_the_commits_are_written_leaves_the_branch_alone(tmp_path, monkeypatch):
    results = _ledger(tmp_path / "r")
    before = git_out(["rev-parse", "HEAD"], results)
    items = _items(results, range(3))

    def fail(*args, **kwargs):
        raise JcError("git-annex stopped")

    monkeypatch.setattr(bulkcommit, "record_present", fail)
    with pytest.raises(JcError, match="git-annex stopped"):
        ledger.commit_many(results, items)
    monkeypatch.undo()
    assert git_out(["rev-parse", "HEAD"], results) == before
    ledger.recover(results)
    assert len(ledger.committed_ids(results)) == 3
    assert git_out(["for-each-ref", bulkcommit.SCRATCH_REF], results) == ""
    _assert_clean(results)


@pytest.mark.parametrize("eid", ["../escape", "a/b", "", ".git", "x\ny", "a" * 300, "-dash", "tab\tname"])
def test_a_hostile_id_is_refused_and_nothing_changes(tmp_path, eid):
    results = _ledger(tmp_path / "r")
    before = git_out(["rev-parse", "HEAD"], results)
    good = _items(results, range(1))
    folder = ledger.incoming_dir(results, "held")
    ev = Evaluation(**{**good[0][1].__dict__, "id": eid})
    (folder / ledger.RECORD).write_text(ev.to_json())
    with pytest.raises(JcError, match="not an id the runner makes"):
        ledger.commit_many(results, [*good, (folder, ev, ["true"])])
    assert git_out(["rev-parse", "HEAD"], results) == before
    assert good[0][0].is_dir() and not (results / "evaluations").exists()


def test_hostile_files_in_a_folder_are_refused_naming_each(tmp_path):
    results = _ledger(tmp_path / "r")
    before = git_out(["rev-parse", "HEAD"], results)
    items = _items(results, range(3))
    (items[0][0] / "predictions" / "labels.tif").symlink_to("/etc/passwd")
    (items[1][0] / "predictions" / ".gitattributes").write_text("* filter=evil\n")
    deep = items[2][0] / "predictions"
    for _ in range(70):
        deep = deep / "d"
    deep.mkdir(parents=True)
    twice = items[0]
    with pytest.raises(JcError) as refused:
        ledger.commit_many(results, [*items, twice])
    text = str(refused.value)
    assert "labels.tif: is a symlink" in text and ".gitattributes" in text and "nested 65 folders deep" in text
    assert "given twice" in text
    assert git_out(["rev-parse", "HEAD"], results) == before


def test_a_folder_without_its_record_is_refused(tmp_path):
    results = _ledger(tmp_path / "r")
    items = _items(results, range(2))
    (items[1][0] / ledger.RECORD).unlink()
    with pytest.raises(JcError, match="no record.json of"):
        ledger.commit_many(results, items)
    other = _evaluation(7)
    with pytest.raises(JcError, match="no record.json of"):
        ledger.commit_many(results, [(items[0][0], other, ["true"])])
    ledger.commit_many(results, items[:1], per_commit=0)
    placed = results / "evaluations" / items[0][1].id
    ev = Evaluation(**{**items[0][1].__dict__, "id": "team9--000000000009--dev"})
    ledger.write_record(placed, ev)
    with pytest.raises(JcError, match="inside evaluations/ but not"):  # would move a committed folder away
        ledger.commit_many(results, [(placed, ev, ["true"])])


def test_large_or_small_is_decided_as_git_annex_add_decides(tmp_path):
    """The libmagic decision against git-annex's own, file by file, on awkward content."""
    results = _ledger(tmp_path / "r")
    samples = {"ascii.txt": b"plain\n", "latin1.txt": "caf\xe9\n".encode("latin-1"), "nul.bin": b"a\x00b",
               "utf16.txt": "hello".encode("utf-16"), "png.png": b"\x89PNG\r\n\x1a\n" + bytes(20),
               "json.json": json.dumps({"a": [1, 2]}).encode(), "empty": b"", "ctrl.txt": b"\x1b[31mred\n",
               "gz.gz": b"\x1f\x8b\x08\x00" + bytes(30)}
    for name, data in samples.items():
        (results / name).write_bytes(data)
    large, small, unknown = bulkcommit._classify(results, sorted(samples))
    assert not unknown
    annexed = subprocess.run(["git", "annex", "add", "--json", *samples], cwd=results, capture_output=True,
                             text=True, env=env_with_annex_on_path()).stdout
    by_annex = {json.loads(line)["file"] for line in annexed.splitlines() if json.loads(line).get("key")}
    assert set(large) == by_annex
    assert set(small) == set(samples) - by_annex


def test_rules_it_does_not_know_are_left_to_git_annex_add(tmp_path):
    """An organizer's own annex.largefiles: files are annexed by git-annex itself, with the same result."""
    one = _ledger(tmp_path / "one")
    many = _ledger(tmp_path / "many")
    for results in (one, many):
        subprocess.run(["git", "config", "annex.largefiles", "largerthan=200b"], cwd=results, check=True)
    for folder, ev, cmd in _items(one, range(3)):
        ledger.commit(one, folder, ev, cmd)
    ledger.commit_many(many, _items(many, range(3)))
    assert git_out(["rev-parse", "HEAD:evaluations"], many) == git_out(["rev-parse", "HEAD:evaluations"], one)
    annexed = git_out(["annex", "find", "--format=${file}\\n", "evaluations"], many)
    assert "record.json" in annexed and "table.csv" not in annexed
    _assert_clean(many)
