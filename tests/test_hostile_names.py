"""Untrusted names, paths, records and annexed content: refused at the boundary with a reason.

Each test makes the attack for real (git plumbing with bytes for names, git-annex
objects overwritten in the team's repository) and checks that it is refused for
its own team only: passes and site builds go on for everyone else.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DATA, sh

from jc_datalad import participant
from jc_datalad.gitutil import env_with_annex_on_path, ls_remote
from jc_datalad.records import Status

IMAGE = ".datalad/environments/jc-env/image"


def git_bytes(*args: bytes | str, cwd: Path) -> bytes:
    """git with byte arguments (names that are not UTF-8), as an attacker would run it."""
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, env=env_with_annex_on_path())
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def honest(arena, name: str, *, model: bool = False) -> tuple[Path, Path]:
    """A team with an honest recorded prediction (not yet pushed); with ``model``, an annexed model file
    whose content the runner fetches and checks against its key."""
    repo = arena.team(name)
    clone = arena.clone(name)
    if model:
        (clone / "code" / "model.bin").write_bytes(bytes(range(256)) * 4)
        sh("datalad", "save", "-m", "model", cwd=clone)
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    return repo, clone


def commit_message(clone: Path, message: str) -> None:
    (clone.parent / "message.txt").write_text(message)  # may be larger than one argument may be
    sh("git", "commit", "-q", "--allow-empty", "-F", str(clone.parent / "message.txt"), cwd=clone)


def run_record_message(body: str, title: str = "run") -> str:
    return f"[DATALAD RUNCMD] {title}\n\n=== Do not change lines below ===\n{body}\n^^^ Do not change lines above ^^^\n"


def call_format(clone: Path) -> str:
    """The organizer's call format of the challenge's container, as the clone has it."""
    return sh("git", "config", "-f", ".datalad/config", "datalad.containers.jc-env.cmdexec", cwd=clone).strip()


def by_team(report) -> dict:
    return {ev.team: ev for ev in report.evaluations}


@pytest.mark.slow
def test_non_utf8_branch_and_final_tag_beside_an_honest_team(arena):
    from jc_datalad.runner import final_tags

    repo_ok, clone_ok = honest(arena, "honest", model=True)
    participant.push_submission(clone_ok, repo_ok, "s1")
    sh("datalad", "push", "--to", "team", "--data", "anything", cwd=clone_ok)
    assert "E-s1024--" in sh("git", "annex", "lookupkey", "code/model.bin", cwd=clone_ok)  # MD5E, as datalad makes it
    sh("git", "tag", "final/best", cwd=clone_ok)
    sh("git", "push", "-q", "team", "final/best", cwd=clone_ok)
    repo_bad = arena.team("oddnames")
    clone_bad = arena.clone("oddnames")
    commit_message(clone_bad, "nothing")
    head = participant.push_submission(clone_bad, repo_bad, "s1")
    # refs whose names are not UTF-8, written straight into the team's repository
    git_bytes("update-ref", b"refs/heads/bad\xff\xfename", head, cwd=repo_bad)
    git_bytes("update-ref", b"refs/tags/final/\xff", head, cwd=repo_bad)
    git_bytes("update-ref", b"refs/heads/only\xff", git_bytes("commit-tree", "-m", "x", f"{head}^{{tree}}",
                                                              "-p", head, cwd=repo_bad).strip(), cwd=repo_bad)

    heads = ls_remote(str(repo_bad), "heads")
    assert {k: v for k, v in heads.refs.items() if k != "git-annex"} == {"s1": head}
    assert any("bad\\xff\\xfename" in r and "not UTF-8" in r for r in heads.refused)
    tags = ls_remote(str(repo_bad), "tags")
    assert tags.refs == {} and "final/\\xff" in tags.refused[0]

    report = arena.run()
    evs = by_team(report)
    assert evs["honest"].status is Status.EVALUATED, evs["honest"].reason  # the pass went on for everyone
    # the pass reports the ignored branches to the organizers, as the team's problem, not a team error
    assert any(p.startswith("team oddnames: branch 'bad\\xff\\xfename'") for p in report.problems), report.problems
    assert report.team_errors == []
    # (its annexed model was fetched and checked against its key's size and checksum on the way)
    assert evs["oddnames"].submission["branches"] == ["s1"]  # only the head under a readable name
    assert evs["oddnames"].status is Status.REFUSED
    config = arena.config
    from jc_datalad.config import load_teams
    from jc_datalad.spec import load_spec

    tagged = final_tags(config, load_spec(config.challenge), load_teams(config.teams_file))
    assert tagged == {"honest": [sh("git", "rev-parse", "HEAD", cwd=clone_ok).strip()]}


def test_a_path_2100_folders_deep_is_refused_before_checkout(arena):
    repo = arena.team("deep")
    clone = arena.clone("deep")
    head = sh("git", "rev-parse", "HEAD", cwd=clone).strip()
    blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=clone, input=b"x", capture_output=True,
                          check=True).stdout.decode().strip()
    # the tree is built bottom-up with git mktree: 2,100 folders, one file at the bottom
    tree = subprocess.run(["git", "mktree"], cwd=clone, input=f"100644 blob {blob}\tleaf\n".encode(),
                          capture_output=True, check=True).stdout.decode().strip()
    for _ in range(2100):
        tree = subprocess.run(["git", "mktree"], cwd=clone, input=f"040000 tree {tree}\td\n".encode(),
                              capture_output=True, check=True).stdout.decode().strip()
    top = subprocess.run(["git", "ls-tree", "HEAD"], cwd=clone, capture_output=True, check=True).stdout.decode()
    tree = subprocess.run(["git", "mktree"], cwd=clone, input=(top + f"040000 tree {tree}\tdeep\n").encode(),
                          capture_output=True, check=True).stdout.decode().strip()
    commit = sh("git", "commit-tree", "-m", "deep", "-p", head, tree, cwd=clone).strip()
    sh("git", "reset", "-q", "--soft", commit, cwd=clone)
    participant.push_submission(clone, repo, "s1")
    report = arena.run()
    (ev,) = report.evaluations
    assert ev.status is Status.REFUSED
    assert "nested 2101 folders deep; the limit is 64" in ev.reason
    assert "checkout" not in ev.stages  # refused at inspection: nothing was written
    assert len(ev.reason) < 1000


def test_checkout_total_over_the_limit_is_refused_before_checkout(arena, monkeypatch):
    from jc_datalad import evaluate as evaluate_module

    repo, clone = honest(arena, "bulky")
    for n in range(5):  # 5 x 0.9 MiB, each under a 1 MiB file limit; 4.5 MiB against a 4 MiB total
        (clone / f"weights-{n}.txt").write_text("0" * 900_000)
    sh("git", "add", ".", cwd=clone)  # text2git: in git itself, compressed to almost nothing
    sh("git", "commit", "-q", "-m", "weights", cwd=clone)
    participant.push_submission(clone, repo, "s1")
    original = evaluate_module.load_spec

    def small(path):
        spec = original(path)
        return dataclasses.replace(spec, submission=dataclasses.replace(spec.submission, max_file_bytes=2**20))

    monkeypatch.setattr(evaluate_module, "load_spec", small)
    (ev,) = arena.run().evaluations
    assert ev.status is Status.REFUSED
    assert "checking the submission out would write" in ev.reason and "the limit is 4194304" in ev.reason
    assert "checkout" not in ev.stages


def test_annexed_content_larger_than_its_key_is_cut_off_and_refused(arena):
    repo = arena.team("liar")
    clone = arena.clone("liar")
    (clone / "code" / "model.bin").write_bytes(b"\x00\x01" * 50)  # 100 bytes, annexed
    sh("datalad", "save", "-m", "model", cwd=clone)
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    participant.push_submission(clone, repo, "s1")
    sh("datalad", "push", "--to", "team", "--data", "anything", cwd=clone)
    key = sh("git", "annex", "lookupkey", "code/model.bin", cwd=clone).strip()
    assert "-s100--" in key
    (obj,) = [p for p in repo.glob(f"annex/objects/*/*/{key}/{key}")]
    obj.parent.chmod(0o755)
    obj.chmod(0o644)
    with open(obj, "wb") as fh:  # the key claims 100 bytes; the team's repository serves 40 MiB
        fh.truncate(40 * 2**20)
    (ev,) = arena.run().evaluations
    assert ev.status is Status.REFUSED
    if shutil.which("prlimit") is None:  # git-annex's own check still refuses it, after the whole transfer
        assert "code/model.bin: content not in the team repository" in ev.reason
        return
    assert "code/model.bin: its annexed content arrived larger than its key says (100 bytes)" in ev.reason
    assert "cut off at 33554432 bytes" in ev.reason


def test_content_that_is_not_its_key_is_refused(tmp_path):
    import hashlib

    from jc_datalad.inspection import verify_content

    data = b"model weights\n"
    digest = hashlib.sha256(data).hexdigest()
    key = f"SHA256E-s{len(data)}--{digest}.bin"
    path = tmp_path / "obj"
    path.write_bytes(data)
    assert verify_content(path, key) is None
    path.write_bytes(data.upper())  # same size, other bytes
    assert "does not have the checksum its key names (SHA256E)" in verify_content(path, key)
    path.write_bytes(data * 2)
    assert f"is {2 * len(data)} bytes, but its key says {len(data)}" in verify_content(path, key)
    assert "cannot be checked by the runner" in verify_content(path, f"SKEIN256E-s1--{digest}.bin")
    path.unlink()
    path.symlink_to("/etc/hostname")
    assert "not a regular file" in verify_content(path, key)


def test_forged_interpreter_word_is_refused_and_no_reproduce_command_is_published(arena, work):
    from site_generator import build_site

    repo = arena.team("forger")
    clone = arena.clone("forger")
    marker = work / "reader-machine-was-touched"
    # the interpreter word forged in a record of the portable format and of the older {python} one
    fmt = call_format(clone).replace("python3 ", "{python} ", 1)
    outer = fmt.format(python=f"$(touch {marker})", img_dspath=".", img=IMAGE,
                                      cmd="python code/predict.py {inputs} {outputs}")
    record = {"cmd": outer, "pwd": ".", "inputs": ["inputs/test"], "outputs": ["predictions"],
              "extra_inputs": [IMAGE], "exit": 0, "chain": []}
    commit_message(clone, run_record_message(json.dumps(record, indent=1)))
    participant.push_submission(clone, repo, "s1")
    (ev,) = arena.run().evaluations
    assert ev.status is Status.REFUSED
    assert "is not a plain path to an interpreter" in ev.reason
    assert not marker.exists()
    assert not any("datalad rerun" in line for line in ev.reproduce)  # nor kept in the ledger's record
    report = build_site(arena.config.results, work / "site")
    page = (work / "site" / ev.challenge["id"] / "evaluations" / f"{ev.id}.html").read_text()
    assert "datalad rerun --since=" not in page and "datalad clone" not in page
    assert not any("datalad rerun" in p for p in report.problems)


def test_newline_in_the_inner_command_is_refused(arena):
    repo = arena.team("newline")
    clone = arena.clone("newline")
    outer = call_format(clone).format(python=sys.executable, img_dspath=".", img=IMAGE,
                                      cmd="python code/predict.py {inputs} {outputs}\ncat /etc/passwd")
    record = {"cmd": outer, "pwd": ".", "inputs": ["inputs/test"], "outputs": ["predictions"],
              "extra_inputs": [IMAGE], "exit": 0, "chain": []}
    commit_message(clone, run_record_message(json.dumps(record)))
    participant.push_submission(clone, repo, "s1")
    (ev,) = arena.run().evaluations
    assert ev.status is Status.REFUSED
    assert "newline" in ev.reason


@pytest.mark.parametrize("what", ["inputs", "outputs", "depth", "sidecar"])
def test_hostile_records_are_refused_with_a_reason(arena, what):
    repo = arena.team(f"records-{what}")
    clone = arena.clone(f"records-{what}")
    outer = call_format(clone).format(python=sys.executable, img_dspath=".", img=IMAGE,
                                      cmd="python code/predict.py {inputs} {outputs}")
    record = {"cmd": outer, "pwd": ".", "inputs": ["inputs/test"], "outputs": ["predictions"],
              "extra_inputs": [IMAGE], "exit": 0, "chain": []}
    if what == "inputs":
        record["inputs"] = [f"inputs/test/f{i}.tif" for i in range(20_000)]
        body, expected = json.dumps(record), "names 20000 paths; the limit is 1000"
    elif what == "outputs":
        record["outputs"] = "."
        body, expected = json.dumps(record), "names the whole dataset"
    elif what == "depth":
        body, expected = "[" * 100_000 + "]" * 100_000, "nests JSON 100000 levels deep"
    else:  # an 80 kB xz sidecar that would decompress to 512 MiB, committed into git itself
        import lzma

        compressor = lzma.LZMACompressor(preset=0)
        bomb = b"".join([compressor.compress(b" " * 2**20) for _ in range(512)] + [compressor.flush()])
        record_id = "0123456789abcdef0123456789abcdef"
        blob = subprocess.run(["git", "hash-object", "-w", "--stdin"], cwd=clone, input=bomb, capture_output=True,
                              check=True).stdout.decode().strip()
        sh("git", "update-index", "--add", "--cacheinfo", f"100644,{blob},.datalad/runinfo/{record_id}", cwd=clone)
        body, expected = json.dumps(record_id), "decompresses to more than 1048576 bytes"
    commit_message(clone, run_record_message(body))
    participant.push_submission(clone, repo, "s1")
    (ev,) = arena.run().evaluations
    assert ev.status is Status.REFUSED, ev.reason
    assert expected in ev.reason


# -- the site: any record content gives a page or a per-page error, never a failed build --

def _record(**changes):
    sys.path.insert(0, str(Path(__file__).parent))
    from test_site import make

    ev = make("alpha", "a1" * 20, score=0.7, first_seen="2024-05-01T10:00:00Z")
    return dataclasses.replace(ev, **changes)


def _write(results: Path, ev) -> None:
    folder = results / "evaluations" / ev.id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "record.json").write_text(ev.to_json(), encoding="utf-8")


def test_non_utf8_prediction_file_name_in_a_record_does_not_stop_the_site_build(tmp_path):
    from site_generator import build_site

    odd = b"img_\xff\xfe.tif".decode("utf-8", "surrogateescape")  # as os.listdir gives it
    items = [{"name": odd, "part": "public", "metrics": {"aji": 0.7, "f1": 0.5}, "error": f"{odd}: unexpected"}]
    ev = _record(items=items, reason=None, submission={**_record().submission, "branches": [odd]})
    ok = dataclasses.replace(_record(), id="beta--b1b1b1b1b1b1--dev", team="beta")
    assert "\\udcff" in ev.to_json()  # the ledger keeps the escape; the page cannot be written with it
    _write(tmp_path / "results", ev)
    _write(tmp_path / "results", ok)
    report = build_site(tmp_path / "results", tmp_path / "site")
    page = (tmp_path / "site" / "bacteria" / "evaluations" / f"{ev.id}.html").read_text(encoding="utf-8")
    assert "img_\\xff\\xfe.tif" in page
    assert (tmp_path / "site" / "bacteria" / "evaluations" / f"{ok.id}.html").is_file()
    assert not any("UnicodeEncodeError" in p for p in report.problems)


def test_records_with_any_content_give_per_page_errors_not_a_failed_build(tmp_path):
    from site_generator import build_site

    good = _record()
    results = tmp_path / "results"
    _write(results, dataclasses.replace(good, id="beta--b1b1b1b1b1b1--dev", team="beta"))
    hostile = {
        "deep": "[" * 100_000 + "]" * 100_000,
        "phase": json.dumps({**good.as_dict(), "id": "phase", "phase": "../../outside"}),
        "long-team": json.dumps({**good.as_dict(), "id": "long-team", "team": "t" * 5000}),
        "types": json.dumps({**good.as_dict(), "id": "types", "submission": {
            **good.submission, "steps": [{"inputs": 12, "outputs": 3.5, "recorded_cmd": []}]}}),
        "surrogate-key": json.dumps({**good.as_dict(), "id": "surrogate-key", "stages": {"clone\udcff": 1.0}}),
        "latin1": '{"id": "\xff"}'.encode("latin-1"),
    }
    for folder, content in hostile.items():
        path = results / "evaluations" / folder / "record.json"
        path.parent.mkdir(parents=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    report = build_site(results, tmp_path / "site")
    assert (tmp_path / "site" / "bacteria" / "evaluations" / "beta--b1b1b1b1b1b1--dev.html").is_file()
    assert not (tmp_path / "outside-1.html").exists()
    shown = "\n".join(report.problems)
    for folder in ("deep", "phase", "types", "latin1"):
        assert f"evaluations/{folder}/record.json" in shown, folder
    assert "phase '../../outside': must be a file name" in shown
    assert all(len(p) < 2000 for p in report.problems)


def test_a_folder_that_is_not_a_results_dataset_is_a_clear_error(tmp_path, challenge):
    from jc_datalad.errors import JcError
    from site_generator import build_site

    with pytest.raises(JcError, match="not a results dataset"):
        build_site(challenge.public, tmp_path / "site")
    assert not (tmp_path / "site").exists()


def test_reproduce_lines_that_rerun_unchecked_records_are_not_published():
    from site_generator.gather import published_reproduce

    rerun = "datalad clone /teams/a.git submission && cd submission && git checkout c && datalad rerun --since= c"
    lines = ["jc runner evaluate --team a", "jc runner reproduce a--c--dev --config runner.yaml", rerun]
    launch = f"./.datalad/environments/jc-env/launch.py {IMAGE}"
    step = {"commit": "c", "command": "python x.py", "recorded_cmd": f"/usr/bin/python3 {launch} python x.py"}
    checked = _record(reproduce=lines, submission={**_record().submission, "steps": [step]})
    assert published_reproduce(checked) == lines
    refused = dataclasses.replace(checked, status=Status.REFUSED, submission={**checked.submission, "steps": []})
    assert published_reproduce(refused) == lines[:2]
    forged = {**step, "recorded_cmd": f"$(touch /tmp/x) {launch} python x.py"}  # a record of an older runner
    old = dataclasses.replace(checked, submission={**checked.submission, "steps": [forged]})
    assert published_reproduce(old) == lines[:2]


@pytest.mark.slow
def test_non_utf8_prediction_file_name_end_to_end_refused_and_the_site_builds(arena, work):
    """A command that writes a prediction whose name is not UTF-8: refused with a printable reason,
    recorded, and the site of the ledger still builds."""
    from site_generator import build_site

    repo = arena.team("oddfile")
    clone = arena.clone("oddfile")
    code = ("import os, sys\nfrom pathlib import Path\nout = Path(sys.argv[2]); out.mkdir(exist_ok=True)\n"
            "for p in sorted(Path(sys.argv[1]).glob('*.tif')):\n    (out / p.name).write_bytes(p.read_bytes())\n"
            "if any(p.name.startswith('hidden') for p in Path(sys.argv[1]).iterdir()):\n"  # on hidden data only
            "    open(os.path.join(os.fsencode(out), b'odd\\xff\\xfe.tif'), 'wb').close()\n")
    participant.record_prediction(clone, files={"code/predict.py": code})
    participant.push_submission(clone, repo, "s1")
    (ev,) = arena.run().evaluations
    assert ev.status in (Status.REFUSED, Status.FAILED), ev.reason
    assert "UTF-8" in ev.reason  # names made on hidden data are not echoed (leak-safe reasons)
    report = build_site(arena.config.results, work / "site")
    assert (work / "site" / ev.challenge["id"] / "evaluations" / f"{ev.id}.html").is_file()
    assert not any("Unicode" in p for p in report.problems)


def test_commit_messages_are_read_in_one_bounded_call(tmp_path, monkeypatch):
    from jc_datalad import inspection
    from jc_datalad.inspection import HistoryError, commit_messages

    repo = tmp_path / "repo"
    sh("git", "init", "-q", str(repo))
    ids = []
    for message in (b"first\n\nbody", "zweite \u00e9\n".encode(), b"x" * 5000):
        (repo / "msg").write_bytes(message)
        sh("git", "commit", "-q", "--allow-empty", "-F", "msg", cwd=repo)
        ids.append(sh("git", "rev-parse", "HEAD", cwd=repo).strip())
    messages = commit_messages(repo, ids)
    assert [messages[c].strip() for c in ids] == ["first\n\nbody", "zweite \u00e9", "x" * 5000]
    monkeypatch.setattr(inspection, "MAX_MESSAGE_BYTES", 4096)
    with pytest.raises(HistoryError, match=f"commit {ids[2][:12]}: its message is over 4096 bytes"):
        commit_messages(repo, ids)
    monkeypatch.setattr(inspection, "MAX_COMMITS", 2)
    with pytest.raises(HistoryError, match="3 commits between the challenge and the head; the limit is 2"):
        commit_messages(repo, ids)
    # a commit object written by hand (git commit itself would re-encode the message)
    tree = sh("git", "rev-parse", "HEAD^{tree}", cwd=repo).strip()
    who = b"A <a@example.org> 1700000000 +0000"
    body = b"tree " + tree.encode() + b"\nauthor " + who + b"\ncommitter " + who + b"\n\ncaf\xe9 in Latin-1\n"
    latin = subprocess.run(["git", "hash-object", "-t", "commit", "-w", "--stdin"], cwd=repo, input=body,
                           capture_output=True, check=True).stdout.decode().strip()
    with pytest.raises(HistoryError, match=f"commit {latin[:12]}: its message is not UTF-8 text"):
        commit_messages(repo, [latin])


def test_tree_totals_count_a_whole_tree_and_stop_at_the_limit(tmp_path):
    from jc_datalad.inspection import tree_totals

    repo = tmp_path / "repo"
    sh("git", "init", "-q", str(repo))
    for n in range(10):
        (repo / "sub").mkdir(exist_ok=True)
        (repo / "sub" / f"f{n}").write_bytes(b"x" * (n + 1))
    sh("git", "add", ".", cwd=repo)
    sh("git", "commit", "-q", "-m", "files", cwd=repo)
    assert tree_totals(repo, "HEAD", 100) == (55, 11)  # 10 files of 1..10 bytes, and their folder
    total, entries = tree_totals(repo, "HEAD", 5)
    assert entries > 5  # stopped once past the limit: enough to refuse


def test_a_flood_of_branches_is_cut_at_the_limit(tmp_path, monkeypatch):
    from jc_datalad import gitutil

    repo = tmp_path / "repo"
    sh("git", "init", "-q", "--bare", str(repo))
    tree = subprocess.run(["git", "mktree"], cwd=repo, input=b"", capture_output=True, check=True).stdout.strip()
    commit = git_bytes("commit-tree", "-m", "x", tree.decode(), cwd=repo).strip()
    refs = "".join(f"create refs/heads/b{n:03d} {commit.decode()}\n" for n in range(12))
    subprocess.run(["git", "update-ref", "--stdin"], cwd=repo, input=refs.encode(), check=True)
    monkeypatch.setattr(gitutil, "MAX_REFS", 10)
    heads = gitutil.ls_remote(str(repo), "heads")
    assert sorted(heads.refs) == [f"b{n:03d}" for n in range(10)]
    assert heads.refused == ("2 branches beyond the first 10 (by name) are ignored; delete the ones you no longer "
                             "need",)
