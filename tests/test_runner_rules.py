"""One test per runner rule (DESIGN.md threat model): each fails if the rule is removed.

Every attack is a real commit pushed to a team repository; the runner must
record it with a clear reason and never run it on the host.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import DATA, sh

from jc_datalad import participant
from jc_datalad.records import Status

RUN = "python code/predict.py {inputs} {outputs}"




def honest(arena, name: str) -> tuple[Path, Path]:
    """A team whose clone has an honest recorded prediction (not yet pushed)."""
    repo = arena.team(name)
    clone = arena.clone(name)
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    return repo, clone


def only(report):
    assert len(report.evaluations) == 1
    return report.evaluations[0]


def commit_run_record(clone: Path, record: dict, title: str = "[DATALAD RUNCMD] run") -> None:
    body = json.dumps(record, indent=1)
    msg = f"{title}\n\n=== Do not change lines below ===\n{body}\n^^^ Do not change lines above ^^^\n"
    sh("git", "commit", "-q", "--allow-empty", "-m", msg, cwd=clone)


def test_hand_written_record_is_never_run_on_the_host(arena, work):
    repo = arena.team("forger")
    clone = arena.clone("forger")
    marker = work / "host-was-touched"
    commit_run_record(clone, {"cmd": f"touch {marker}; cp -r ../*-private/hidden predictions", "pwd": ".",
                              "inputs": [], "outputs": ["predictions"], "extra_inputs": [], "exit": 0})
    participant.push_submission(clone, repo, "s1")
    ev = only(arena.run())
    assert ev.status is Status.REFUSED
    assert "not recorded with the challenge's container" in ev.reason
    assert not marker.exists()
    assert ev.metrics == {}


def test_edited_container_config_is_refused(arena):
    repo, clone = honest(arena, "launcher-editor")
    cfg = clone / ".datalad" / "config"
    cfg.write_text(cfg.read_text().replace("cmdexec = ", "cmdexec = sh -c 'cat /etc/shadow'; "))
    sh("git", "commit", "-q", "-am", "tweak", cwd=clone)
    participant.push_submission(clone, repo, "s1")
    ev = only(arena.run())
    assert ev.status is Status.REFUSED
    assert ".datalad/config: changes a protected path" in ev.reason


def test_gitmodules_pointing_at_hidden_data_is_refused(arena):
    repo, clone = honest(arena, "submoduler")
    gm = clone / ".gitmodules"
    gm.write_text(gm.read_text() + f'[submodule "labels"]\n\tpath = extra/labels\n\turl = '
                  f'{arena.challenge.private}/hidden/test/labels\n')
    sh("git", "commit", "-q", "-am", "more data", cwd=clone)
    participant.push_submission(clone, repo, "s1")
    ev = only(arena.run())
    assert ev.status is Status.REFUSED
    assert ".gitmodules: changes a protected path" in ev.reason


def test_new_gitlink_is_refused(arena):
    repo, clone = honest(arena, "gitlinker")
    sha = sh("git", "rev-parse", "HEAD", cwd=clone).strip()
    sh("git", "update-index", "--add", "--cacheinfo", f"160000,{sha},models/sub", cwd=clone)
    sh("git", "commit", "-q", "-m", "gitlink", cwd=clone)
    participant.push_submission(clone, repo, "s1")
    ev = only(arena.run())
    assert ev.status is Status.REFUSED
    assert "models/sub: adds or changes a subdataset" in ev.reason


def test_symlink_out_of_the_annex_is_refused(arena):
    repo, clone = honest(arena, "linker")
    (clone / "model.npz").symlink_to(f"{arena.challenge.private}/hidden/test/labels/hidden_000.tif")
    sh("git", "add", "model.npz", cwd=clone)
    sh("git", "commit", "-q", "-m", "model", cwd=clone)
    participant.push_submission(clone, repo, "s1")
    ev = only(arena.run())
    assert ev.status is Status.REFUSED
    assert "model.npz: symlink to" in ev.reason and "does not point into the annex" in ev.reason


def test_annex_key_without_checksum_is_refused(arena):
    repo, clone = honest(arena, "urlkey")
    sh("git", "annex", "fromkey", "--force", "URL--file&c%%%%labels.tif", "model.bin", cwd=clone)
    sh("git", "commit", "-q", "-m", "model", cwd=clone)
    participant.push_submission(clone, repo, "s1")
    ev = only(arena.run())
    assert ev.status is Status.REFUSED
    assert "model.bin: annex key backend URL is not a checksum" in ev.reason


def test_file_over_the_size_limit_is_refused(arena):
    repo, clone = honest(arena, "bigfile")
    (clone / "weights.txt").write_text("0" * (101 * 2**20))
    sh("git", "add", "weights.txt", cwd=clone)  # text2git: goes into git itself
    sh("git", "commit", "-q", "-m", "weights", cwd=clone)
    participant.push_submission(clone, repo, "s1")
    ev = only(arena.run())
    assert ev.status is Status.REFUSED
    assert "weights.txt" in ev.reason and "exceeds" in ev.reason


def test_autoenabled_special_remote_is_not_used(arena, work):
    """A model whose content sits only in the participant's autoenable special remote is not fetched."""
    repo = arena.team("autoenable")
    clone = arena.clone("autoenable")
    store = work / "store"
    store.mkdir()
    sh("git", "annex", "initremote", "mine", "type=directory", f"directory={store}", "encryption=none",
       "autoenable=true", cwd=clone)
    (clone / "code" / "model.bin").write_bytes(b"\x00\x01" * 100)
    sh("datalad", "save", "-m", "model", cwd=clone)
    sh("git", "annex", "move", "code/model.bin", "--to", "mine", cwd=clone)
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    participant.push_submission(clone, repo, "s1")
    ev = only(arena.run())
    assert ev.status is Status.REFUSED
    assert "code/model.bin: content not in the team repository" in ev.reason


def test_output_symlinks_are_not_followed(arena):
    repo = arena.team("symlinker")
    clone = arena.clone("symlinker")
    code = ("import os, sys\nfrom pathlib import Path\nout = Path(sys.argv[2]); out.mkdir(exist_ok=True)\n"
            "for p in sorted(Path(sys.argv[1]).glob('*.tif')):\n"
            "    os.symlink('/etc/hostname', out / p.name)\n")
    participant.record_prediction(clone, files={"code/predict.py": code})
    participant.push_submission(clone, repo, "s1")
    ev = only(arena.run())
    assert ev.status is Status.REFUSED
    # made on hidden data: the rule in public, the link's target in the organizer's logs only
    assert ev.reason.startswith("refused after the steps ran: outputs must be regular files, not symbolic links")
    assert "/etc/hostname" not in ev.reason
    private = (arena.config.logs / ev.id / "logs.txt").read_text()
    assert "is a symlink to '/etc/hostname'; write regular files only" in private
    assert ev.metrics == {}


def test_cheat_fails_with_reason_and_no_score(arena):
    from jc_datalad.templates import templates_folder

    repo = arena.team("mallory")
    clone = arena.clone("mallory")
    cheat = templates_folder() / "bacteria" / "solutions" / "cheat" / "predict.py"
    participant.record_prediction(clone, files={"code/predict.py": cheat})
    participant.push_submission(clone, repo, "s1")
    ev = only(arena.run())
    assert ev.status is Status.FAILED
    assert ev.reason.startswith("step 1 exited with code ")  # what it printed stays private
    private = (arena.config.logs / ev.id / "logs.txt").read_text()
    assert "Read-only file system" in private and "code/planted.txt" in private
    assert "labels found: 0" in private and "network unreachable" in private
    assert ev.metrics == {} and ev.public == {} and ev.private == {}


def test_only_the_organizers_transports(arena):
    arena.teams_file.write_text("teams:\n  sneaky:\n    repository: 'ext::sh -c touch% /tmp/jc-ext-pwned'\n")
    report = arena.run()
    assert report.evaluations == []
    assert report.team_errors and "sneaky" in report.team_errors[0]
    assert not Path("/tmp/jc-ext-pwned").exists()


def test_one_broken_submission_does_not_stop_the_pass(arena):
    repo_ok, clone_ok = honest(arena, "good")
    participant.push_submission(clone_ok, repo_ok, "s1")
    repo_bad = arena.team("crasher")
    clone_bad = arena.clone("crasher")
    # writes predictions for the public inputs only: fine locally, missing files on the hidden ones
    code = ("import sys\nfrom pathlib import Path\nout = Path(sys.argv[2]); out.mkdir(exist_ok=True)\n"
            "for p in Path(sys.argv[1]).glob('test_*.tif'):\n    (out / p.name).write_bytes(b'')\n")
    participant.record_prediction(clone_bad, files={"code/predict.py": code})
    participant.push_submission(clone_bad, repo_bad, "s1")
    by_team = {ev.team: ev for ev in arena.run().evaluations}
    assert by_team["good"].status is Status.EVALUATED
    assert by_team["crasher"].status is Status.FAILED
    assert "missing" in by_team["crasher"].reason


def test_time_limit_from_the_spec_applies(arena, monkeypatch):
    from dataclasses import replace

    from jc_datalad import evaluate as evaluate_module

    repo = arena.team("sleeper")
    clone = arena.clone("sleeper")
    # sleeps only on the hidden inputs, so the participant's own run is quick
    code = ("import sys, time\nfrom pathlib import Path\nout = Path(sys.argv[2]); out.mkdir(exist_ok=True)\n"
            "(out / 'done.txt').write_text('done')\n"
            "if any(p.name.startswith('hidden') for p in Path(sys.argv[1]).iterdir()):\n    time.sleep(30)\n")
    participant.record_prediction(clone, files={"code/predict.py": code})
    participant.push_submission(clone, repo, "s1")
    original = evaluate_module.load_spec

    def one_second(path):
        spec = original(path)
        return replace(spec, resources=replace(spec.resources, time_s=1))

    monkeypatch.setattr(evaluate_module, "load_spec", one_second)
    ev = only(arena.run())
    assert ev.status is Status.FAILED
    assert "exceeded the time limit of 1 s" in ev.reason
