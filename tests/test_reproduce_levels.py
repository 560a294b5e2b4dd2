"""The three levels of reproduction (docs/reproduce.md), each run the way its reader runs it.

(a) a reader (the non-root account ``ada``, with no organizer file) runs the level-(a) command
    exactly as the built site prints it, against the public archive of submissions;
(b) the organizer's ``jc runner reproduce ID`` leaves the original record byte for byte as it
    was and writes the redo and its verdict to ``reproductions/ID/<n>/``;
(c) after ``jc challenge release-hidden``, the page's level-(c) command reproduces the score.

Also: records made with the older call format (an absolute interpreter path) still evaluate.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import DATA, sh
from test_docs import AS_ROOT, participant, tools_for  # noqa: F401  (participant: the fixture)

from jc_datalad import ledger
from jc_datalad.challenge import CALL_FORMAT, LEGACY_CALL_FORMAT
from jc_datalad.cli import main
from jc_datalad.records import Status

LATER = dt.datetime(2080, 1, 1, tzinfo=dt.UTC)  # after the fixture challenge's one phase


def _submit(arena, name: str, *, legacy: bool = False) -> str:
    """A team's recorded prediction pushed to its repository; ``legacy``: recorded with the older
    call format, whose run record names this machine's absolute interpreter path."""
    from jc_datalad import participant as p

    repo = arena.team(name)
    clone = arena.clone(name)
    if legacy:  # the participant's own config, as clones of challenges made before the change had
        sh("git", "config", "datalad.containers.jc-env.cmdexec", LEGACY_CALL_FORMAT % "jc-env", cwd=clone)
    p.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    return p.push_submission(clone, repo, "s1")


def _record_bytes(results: Path, eid: str) -> bytes:
    return ledger.record_path(results, eid).read_bytes()


def test_call_format_names_no_machine_path():
    assert not CALL_FORMAT.startswith("{python}")
    assert CALL_FORMAT.split(" ", 1)[0] == "python3"


@pytest.mark.slow
def test_old_record_with_absolute_interpreter_still_evaluates(arena):
    _submit(arena, "oldstyle", legacy=True)
    (ev,) = arena.run().evaluations
    assert ev.status is Status.EVALUATED, ev.reason
    recorded = ev.submission["steps"][0]["recorded_cmd"]
    assert recorded.startswith("/") and recorded.split(" ", 1)[0].endswith(("python", "python3")), recorded
    _submit(arena, "newstyle")
    (new,) = arena.run().evaluations
    assert new.status is Status.EVALUATED, new.reason
    assert new.submission["steps"][0]["recorded_cmd"].startswith("python3 ./.datalad/environments/jc-env/launch.py ")


@pytest.mark.slow
def test_level_b_reproduce_never_touches_the_original(arena):
    _submit(arena, "auditee")
    (ev,) = arena.run().evaluations
    assert ev.status is Status.EVALUATED, ev.reason
    results = arena.config.results
    before = _record_bytes(results, ev.id)
    log_before = sh("git", "log", "--format=%H", "--", f"evaluations/{ev.id}", cwd=results)
    private_logs = arena.config.logs / ev.id / "logs.txt"  # the organizer's full step logs
    private_before = private_logs.read_bytes()
    out = CliRunner().invoke(main, ["runner", "reproduce", ev.id, "--config", str(arena.config_path)])
    assert out.exit_code == 0, out.output
    assert "identical" in out.output and f"reproductions/{ev.id}/1/" in out.output
    assert _record_bytes(results, ev.id) == before
    assert sh("git", "log", "--format=%H", "--", f"evaluations/{ev.id}", cwd=results) == log_before
    verdict = json.loads((results / "reproductions" / ev.id / "1" / "verdict.json").read_text())
    assert verdict["reproduced"] is True and verdict["first_difference"] is None
    assert (results / "reproductions" / ev.id / "1" / "record.json").is_file()
    assert sorted(p.name for p in (results / "reproductions" / ev.id / "1" / "predictions").iterdir()) == \
        sorted(p.name for p in (results / "evaluations" / ev.id / "predictions").iterdir())
    assert sh("git", "status", "--porcelain", cwd=results) == ""
    assert private_logs.read_bytes() == private_before
    assert (arena.config.logs / "reproductions" / ev.id / "1" / ev.id / "logs.txt").is_file()
    # a second reproduction gets the next number; the first stays
    out = CliRunner().invoke(main, ["runner", "reproduce", ev.id, "--config", str(arena.config_path)])
    assert out.exit_code == 0, out.output
    assert (results / "reproductions" / ev.id / "2" / "verdict.json").is_file()
    assert _record_bytes(results, ev.id) == before


def _build_site(results: Path, site: Path) -> None:
    out = CliRunner().invoke(main, ["site", "build", str(results), "--output", str(site)])
    assert out.exit_code == 0, out.output


def _page_command(site: Path, eid: str, level: str) -> str:
    """The command of ``level`` as the evaluation's page prints it (HTML unescaped)."""
    pages = [p for p in site.rglob("*.html") if eid in p.read_text()]
    for page in pages:
        m = re.search(rf'<pre class="reproduce-{level}"><code>(.*?)</code></pre>', page.read_text(), re.DOTALL)
        if m:
            return html.unescape(m.group(1)).strip()
    raise AssertionError(f"no level-({level}) command for {eid} on any page of {site}")


def _as(user: str, tools: Path, cwd: Path, command: str, timeout: float = 900) -> subprocess.CompletedProcess:
    script = f"umask 022\ncd {cwd}\n{command}\n"
    env = {"HOME": str(cwd), "PATH": f"{tools}:/usr/local/bin:/usr/bin:/bin", "USER": user, "LOGNAME": user,
           "LANG": "C.UTF-8", "GIT_CONFIG_NOSYSTEM": "1"}
    argv = ["runuser", "-u", user, "--", "env", "-i", *(f"{k}={v}" for k, v in env.items()),
            "bash", "--noprofile", "--norc", "-e", "-c", script]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _ensure_user(user: str) -> None:
    """Another test session on this machine may have removed the shared account meanwhile."""
    import pwd

    try:
        pwd.getpwnam(user)
    except KeyError:
        subprocess.run(["useradd", "--no-create-home", "--shell", "/bin/bash", user], check=False)


def _reader_home(work: Path, user: str) -> Path:
    _ensure_user(user)
    home = work / f"{user}-home"
    home.mkdir()
    shutil.chown(home, user)
    return home


@pytest.mark.slow
@AS_ROOT
def test_level_a_reader_reruns_the_page_command(arena, work, participant):  # noqa: F811
    tools = tools_for(participant, work)
    _submit(arena, "legacyteam", legacy=True)  # an old record: the page's command must work for it too
    (ev,) = arena.run().evaluations
    assert ev.status is Status.EVALUATED, ev.reason
    site = work / "site"
    _build_site(arena.config.results, site)
    with pytest.raises(AssertionError):  # not published while the phase runs (publish: after-phase)
        _page_command(site, ev.id, "a")
    arena.run(now=LATER)  # the phase has ended: the submission enters the public archive
    index = json.loads((arena.config.results / "archive.json").read_text())
    assert ev.id in index["evaluations"]
    shutil.rmtree(site)
    _build_site(arena.config.results, site)
    command = _page_command(site, ev.id, "a")
    assert command.startswith("jc reproduce submission ")
    home = _reader_home(work, participant)
    proc = _as(participant, tools, home, command)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "identical" in proc.stdout
    # the reader's clone holds the committed predictions; the rerun wrote the same bytes
    assert any((home / ev.id / "predictions").iterdir())


@pytest.mark.slow
@AS_ROOT
def test_level_c_after_release_the_page_command_reproduces_the_score(arena, work, participant):  # noqa: F811
    tools = tools_for(participant, work)
    _submit(arena, "scored")
    (ev,) = arena.run().evaluations
    assert ev.status is Status.EVALUATED, ev.reason
    arena.run(now=LATER)  # the phase has ended: the submission is in the public archive
    release = ["challenge", "release-hidden", "--config", str(arena.config_path)]
    early = CliRunner().invoke(main, release)  # today: the phase still runs, nothing may be released
    assert early.exit_code != 0 and "nothing can be released yet" in early.output
    site = work / "site"
    _build_site(arena.config.results, site)
    with pytest.raises(AssertionError):
        _page_command(site, ev.id, "c")
    out = CliRunner().invoke(main, [*release, "--at", "2080-01-01T00:00:00Z"])
    assert out.exit_code == 0, out.output
    released = work / "bacteria-test-hidden-released"
    files = {p.relative_to(released).as_posix() for p in released.rglob("*") if ".git" not in p.parts}
    assert {f.split("/")[0] for f in files} == {".datalad", ".gitattributes", "README.md", "hidden", "release.json"}
    assert {f.split("/")[2] for f in files if f.startswith("hidden/") and f.count("/") >= 2} == {"inputs", "labels"}
    assert not any("teams" in f or f.endswith((".pub", "keys")) for f in files)
    shutil.rmtree(site)
    _build_site(arena.config.results, site)
    command = _page_command(site, ev.id, "c")
    assert command.startswith("jc reproduce score ") and "--expect" in command
    home = _reader_home(work, participant)
    proc = _as(participant, tools, home, command)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "identical" in proc.stdout and "as recorded" in proc.stdout
    # a wrong expectation is caught: the command compares, it does not just print
    name, value = next(iter(sorted(ev.metrics.items())))
    wrong = command.replace(f"{name}={value!r}", f"{name}={value + 0.5!r}")
    assert wrong != command
    again = _as(participant, tools, home, wrong.replace(ev.id, ev.id, 1) + f" --into {home}/again")
    assert again.returncode == 1 and "not reproduced" in again.stdout, again.stdout + again.stderr


# -- fast checks: which command a page shows, the setting, hostile index files ---------------------


def _ev(**changes):
    import dataclasses
    import sys as _sys

    _sys.path.insert(0, str(Path(__file__).parent))
    from test_site import make

    ev = make("alpha", "a1" * 20, score=0.7, first_seen="2024-05-01T10:00:00Z")
    return dataclasses.replace(ev, **changes)


def test_site_shows_each_level_only_where_it_works(tmp_path):
    from site_generator.reproduce_levels import commands, gather_levels

    ev = _ev()
    organizer = [f"jc runner reproduce {ev.id} --config runner.yaml"]
    (tmp_path / "archive.json").write_text(json.dumps({"archive": "/srv/a b", "evaluations": ["other"]}))
    levels = gather_levels(tmp_path)
    assert [c["level"] for c in commands(ev, levels, organizer)] == ["b"]  # not archived: no (a), no (c)
    (tmp_path / "archive.json").write_text(json.dumps({"archive": "/srv/a b", "evaluations": [ev.id]}))
    shown = commands(ev, gather_levels(tmp_path), organizer)
    assert [c["level"] for c in shown] == ["a", "b"]
    assert shown[0]["command"] == f"jc reproduce submission '/srv/a b' {ev.id}"  # quoted for the shell
    (tmp_path / "release.json").write_text(json.dumps({"dataset": "/srv/rel", "splits": [ev.split]}))
    shown = commands(ev, gather_levels(tmp_path), organizer)
    assert [c["level"] for c in shown] == ["a", "b", "c"]
    assert f"--split {ev.split}" in shown[2]["command"] and "--expect" in shown[2]["command"]
    # a release of other hidden commits than the evaluation's (new hidden data since): no (c)
    hidden = {"inputs": {"commit": "1" * 40}, "labels": {"commit": "2" * 40}}
    (tmp_path / "release.json").write_text(json.dumps({"dataset": "/srv/rel", "splits": [ev.split], "versions": {
        ev.split: {"inputs": {"commit": "1" * 40}, "labels": {"commit": "3" * 40}}}}))
    assert "c" not in [c["level"] for c in commands(_ev(hidden=hidden), gather_levels(tmp_path), organizer)]
    (tmp_path / "release.json").write_text(json.dumps({"dataset": "/srv/rel", "splits": [ev.split], "versions": {
        ev.split: {"inputs": {"commit": "1" * 40}, "labels": {"commit": "2" * 40}}}}))
    assert "c" in [c["level"] for c in commands(_ev(hidden=hidden), gather_levels(tmp_path), organizer)]
    refused = _ev(status=Status.REFUSED)
    assert commands(refused, gather_levels(tmp_path), organizer) == []  # nothing ran: nothing to redo


def test_hostile_index_files_show_no_reader_command(tmp_path):
    from site_generator.reproduce_levels import commands, gather_levels

    ev = _ev()
    (tmp_path / "archive.json").write_text(json.dumps({"archive": "/srv/a\n$(touch /tmp/x)", "evaluations": [ev.id]}))
    (tmp_path / "release.json").write_text("[1, 2")
    levels = gather_levels(tmp_path)
    assert commands(ev, levels, []) == []
    assert len(levels.problems) == 2


def test_publish_setting_is_validated():
    from test_spec import _template_spec

    from jc_datalad.spec import Publish, SpecError, parse_spec

    data = _template_spec()
    assert parse_spec(data).submission.publish is Publish.AFTER_PHASE
    data.setdefault("submission", {})["publish"] = "immediately"
    assert parse_spec(data).submission.publish is Publish.IMMEDIATELY
    data["submission"]["publish"] = "later"
    with pytest.raises(SpecError, match="submission.publish"):
        parse_spec(data)
