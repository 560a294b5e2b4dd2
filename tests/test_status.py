"""Participants learn their status within minutes: status files on the site, `jc status`,
`jc runner serve` (a pass on an interval, the site published atomically after each)."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from browser_support import CHROMIUM, needs_chromium, serve
from click.testing import CliRunner
from test_site import make, write
from test_site_description import describe, description

from jc_datalad import lock, participant, standings
from jc_datalad.cli import main
from jc_datalad.errors import JcError
from jc_datalad.records import Status
from jc_datalad.serve import Stop, cycle, publish_site, slots
from jc_datalad.serve import serve as serve_loop
from jc_datalad.spec import Phase
from jc_datalad.status import Target, parse, read_status, render, resolve
from site_generator import build_site

DATA = Path(__file__).parent / "data"
DAY2 = dt.datetime(2024, 5, 2, 12, 0, tzinfo=dt.UTC)
HOSTILE = "\x1b[31mred\x1b[0m <script>alert(1)</script> " + "x" * 5000


# -- the quota helper agrees with admission ----------------------------------------------------------

def test_quota_is_what_admission_decides_with() -> None:
    phase = Phase("dev", dt.datetime(2024, 5, 1, tzinfo=dt.UTC), dt.datetime(2024, 6, 1, tzinfo=dt.UTC),
                  "test", per_day=3, total=4)
    history = []
    for n, (day, status) in enumerate([(1, Status.EVALUATED), (2, Status.FAILED), (2, Status.REJECTED),
                                       (2, Status.INFRASTRUCTURE), (2, Status.EVALUATED),
                                       (3, Status.EVALUATED)]):
        when = dt.datetime(2024, 5, day, 10, n, tzinfo=dt.UTC)
        q = standings.quota(history, team="alpha", phase=phase, when=when)
        admitted = standings.admit(history, team="alpha", phase=phase, first_seen=when).admitted
        assert admitted == (q.left_today != 0), (n, q)
        history.append(make("alpha", f"{n:02d}" * 20, score=0.5, first_seen=when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                            status=status))
    q = standings.quota(history, team="alpha", phase=phase, when=dt.datetime(2024, 5, 2, 23, tzinfo=dt.UTC))
    # rejected and platform errors never count; day 2 holds a failed and an evaluated one
    assert (q.used_today, q.used_total, q.left_today, q.left_total) == (2, 4, 0, 0)
    assert q.resets == dt.datetime(2024, 5, 3, tzinfo=dt.UTC)
    assert standings.quota(history, team="alpha", phase=phase, when=DAY2, count_failed=False).used_total == 3


# -- status files on the site -------------------------------------------------------------------------

def ledger_with_quotas(root: Path) -> Path:
    results = root / "results"
    data = description()
    data["phases"] = [
        {"name": "dev", "start": "2024-05-01T00:00:00Z", "end": "2024-06-01T00:00:00Z", "split": "test",
         "per_day": 3, "total": 10, "select": 1, "extended_from": None},
        {"name": "final", "start": "2024-06-01T00:00:00Z", "end": "2024-07-01T00:00:00Z", "split": "test",
         "per_day": None, "total": 2, "select": 1, "extended_from": None}]
    describe(results, data)
    for ev in (make("alpha", "a1" * 20, score=0.7, first_seen="2024-05-01T10:00:00Z"),
               make("alpha", "a2" * 20, score=0.8, first_seen="2024-05-02T09:00:00Z"),
               make("alpha", "a3" * 20, score=None, first_seen="2024-05-02T10:00:00Z", status=Status.FAILED,
                    reason=HOSTILE),
               make("alpha", "a4" * 20, score=None, first_seen="2024-05-02T11:00:00Z", status=Status.REJECTED,
                    reason="quota"),
               make("beta", "b1" * 20, score=0.9, first_seen="2024-05-02T08:00:00Z")):
        write(results, ev)
    seen = results / "submissions" / "seen.jsonl"
    seen.parent.mkdir(parents=True)
    seen.write_text(json.dumps({"team": "alpha", "commit": "a5" * 20, "branches": ["<b>late</b>"],
                                "repository": "/x", "first_seen": "2024-05-02T11:30:00Z"}) + "\n")
    return results


def test_status_file_holds_submissions_states_and_quotas(tmp_path: Path) -> None:
    results = ledger_with_quotas(tmp_path)
    out = tmp_path / "site"
    report = build_site(results, out, now=DAY2)
    assert report.problems == ()
    raw = (out / "bacteria" / "status" / "alpha.json").read_bytes()
    assert raw.isascii()
    st = json.loads(raw)
    assert st["team"] == "alpha" and st["as_of"] == "2024-05-02T12:00:00Z"
    assert st["phase"]["name"] == "dev"
    q = st["quota"]
    # counted: a1 (day 1), a2 and a3 (day 2); the rejection does not count
    assert (q["used_today"], q["left_today"], q["used_total"], q["left_total"]) == (2, 1, 3, 7)
    assert q["resets"] == "2024-05-03T00:00:00Z" and q["day"] == "2024-05-02"
    assert [s["commit"][:2] for s in st["submissions"]] == ["a4", "a3", "a2", "a1"]  # newest first
    assert [s["status"] for s in st["submissions"]] == ["rejected", "failed", "evaluated", "evaluated"]
    assert st["submissions"][2]["score"] == 0.8 and st["submissions"][1]["score"] is None
    assert len(st["submissions"][1]["reason"]) <= 2000  # bounded
    assert [p["commit"][:2] for p in st["pending"]] == ["a5"]
    assert st["counts"] == {"evaluated": 2, "failed": 1, "rejected": 1}
    beta = json.loads((out / "bacteria" / "status" / "beta.json").read_text())
    assert beta["quota"]["used_today"] == 1 and beta["pending"] == []

    page = (out / "bacteria" / "teams" / "alpha.html").read_text()
    assert "<caption>Quotas shown to participants</caption>" in page
    assert "<th scope=\"row\">Left today</th><td>1</td>" in page
    assert "<th scope=\"row\">Left in the phase</th><td>7</td>" in page
    assert "<th scope=\"row\">Used today (2024-05-02, UTC)</th><td>2 of 3</td>" in page
    assert "2024-05-03 00:00:00 UTC" in page  # when the day resets
    assert "<script>alert" not in page and "&lt;script&gt;" in page
    assert 'href="../status/alpha.json"' in page


def test_same_ledger_and_now_give_the_same_bytes_and_the_day_moves_with_now(tmp_path: Path) -> None:
    results = ledger_with_quotas(tmp_path)
    one, two, later = tmp_path / "one", tmp_path / "two", tmp_path / "later"
    build_site(results, one, now=DAY2)
    build_site(results, two, now=DAY2)
    for rel in ("bacteria/status/alpha.json", "bacteria/teams/alpha.html"):
        assert (one / rel).read_bytes() == (two / rel).read_bytes()
    build_site(results, later, now=DAY2 + dt.timedelta(days=1))
    q = json.loads((later / "bacteria/status/alpha.json").read_text())["quota"]
    assert (q["used_today"], q["left_today"], q["day"]) == (0, 3, "2024-05-03")
    # a rebuild of the same folder with a new now renders the team page again
    build_site(results, one, now=DAY2 + dt.timedelta(days=1))
    assert (one / "bacteria/teams/alpha.html").read_bytes() == (later / "bacteria/teams/alpha.html").read_bytes()
    # without now: the latest time the ledger records (seen.jsonl's 11:30 on day 2)
    default = tmp_path / "default"
    build_site(results, default)
    st = json.loads((default / "bacteria/status/alpha.json").read_text())
    assert st["as_of"] == "2024-05-02T11:30:00Z" and st["quota"]["used_today"] == 2


def test_no_open_phase_and_no_description(tmp_path: Path) -> None:
    results = ledger_with_quotas(tmp_path)
    out = tmp_path / "site"
    build_site(results, out, now=dt.datetime(2024, 4, 1, tzinfo=dt.UTC))
    st = json.loads((out / "bacteria/status/alpha.json").read_text())
    assert st["quota"] is None and st["next_phase"]["name"] == "dev"
    assert "no phase is open; phase dev opens 2024-05-01 00:00:00 UTC" in (out / "bacteria/teams/alpha.html").read_text()
    (results / "challenges" / "bacteria" / "description.json").unlink()
    build_site(results, out, now=DAY2)
    st = json.loads((out / "bacteria/status/alpha.json").read_text())
    assert st["quota"] is None and st["described"] is False


# -- jc status ---------------------------------------------------------------------------------------

@pytest.fixture
def site(tmp_path: Path) -> Path:
    out = tmp_path / "site"
    build_site(ledger_with_quotas(tmp_path), out, now=DAY2)
    return out


def test_jc_status_reads_a_folder_and_prints_quotas_safely(site: Path) -> None:
    result = CliRunner().invoke(main, ["status", "--site", str(site), "--team", "alpha", "--challenge", "bacteria"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "today (2024-05-02, UTC): 2 of 3 used, 1 left" in out
    assert "in the phase: 3 of 10 used, 7 left" in out
    assert "the day resets at 2024-05-03 00:00:00 UTC" in out
    assert "pending   a5a5a5a5a5a5" in out and "evaluated a2a2a2a2a2a2" in out and "aji 0.8000 (public)" in out
    assert "\x1b" not in out  # the reason's terminal escape is not passed on
    as_json = CliRunner().invoke(main, ["status", "--site", str(site), "--team", "alpha", "--challenge",
                                        "bacteria", "--json"])
    data = json.loads(as_json.output)
    assert data["quota"]["left_today"] == 1 and data["submissions"][0]["status"] == "rejected"


def test_jc_status_over_http_and_from_the_clone_config(site: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    (clone / "challenge.yaml").write_text("id: bacteria\n")
    subprocess.run(["git", "init", "-q", str(clone)], check=True)
    (clone / "code").mkdir()
    with serve(site) as url:
        subprocess.run(["git", "-C", str(clone), "config", "jc.site", url], check=True)
        subprocess.run(["git", "-C", str(clone), "config", "jc.team", "alpha"], check=True)
        result = CliRunner().invoke(main, ["status", "--dataset", str(clone / "code")])
        assert result.exit_code == 0, result.output
        assert "1 left" in result.output and "as of 2024-05-02 12:00:00 UTC" in result.output
        missing = CliRunner().invoke(main, ["status", "--dataset", str(clone), "--team", "nobody"])
        assert missing.exit_code == 1 and "no status for team nobody" in missing.output
        assert "bacteria/status/nobody.json" in missing.output
    unreachable = CliRunner().invoke(main, ["status", "--site", url, "--team", "alpha", "--challenge", "bacteria"])
    assert unreachable.exit_code == 1 and "cannot be read" in unreachable.output


def test_jc_status_refuses_what_is_no_status_file(tmp_path: Path) -> None:
    target = Target(str(tmp_path), "bacteria", "alpha")
    with pytest.raises(JcError, match="needs --site"):
        resolve(site=None, challenge="bacteria", team="alpha", dataset=tmp_path)
    with pytest.raises(JcError, match="not a name the site publishes"):
        resolve(site=str(tmp_path), challenge="bacteria", team="../etc", dataset=tmp_path)
    with pytest.raises(JcError, match="only http"):
        resolve(site="ftp://example.org/", challenge="bacteria", team="alpha", dataset=tmp_path)
    for data, why in ((b"[" * 100_000, "not JSON"), (b'{"format": 2}', "format 2"),
                      (b'{"format": 1, "team": "beta"}', "asked for 'alpha'"), (b"\xff", "not JSON")):
        with pytest.raises(JcError, match=why):
            parse(data, source="x", team="alpha")
    big = tmp_path / "bacteria" / "status" / "alpha.json"
    big.parent.mkdir(parents=True)
    big.write_bytes(b" " * (5 * 2**20))
    with pytest.raises(JcError, match="larger than"):
        read_status(target)


def test_render_bounds_and_cleans_every_string(site: Path) -> None:
    st = read_status(Target(str(site), "bacteria", "alpha"))
    lines = render(st, limit=1)
    assert all("\x1b" not in line and len(line) < 2200 for line in lines)
    assert lines[-1].startswith("... and 3 older submission(s)")


# -- publishing atomically -----------------------------------------------------------------------------

def test_publish_swaps_a_symlink_between_two_builds(tmp_path: Path) -> None:
    results = ledger_with_quotas(tmp_path)
    site = tmp_path / "www" / "site"
    site.parent.mkdir()
    site.mkdir()
    (site / "old.html").write_text("from an earlier jc site build")  # a real folder: moved aside once
    a, b = slots(site)
    publish_site([results], site, now=DAY2)
    assert site.is_symlink() and os.readlink(site) == b.name and (site / "bacteria/status/alpha.json").is_file()
    assert (a / "old.html").is_file()
    publish_site([results], site, now=DAY2)
    assert os.readlink(site) == a.name and (site / "bacteria/status/alpha.json").is_file()
    assert (site / "old.html").exists()  # a file no build wrote is never touched (site.md)
    # a build that fails leaves the published site as it was
    with pytest.raises(JcError):
        publish_site([tmp_path / "no-such-results"], site, now=DAY2)
    assert os.readlink(site) == a.name and (site / "index.html").is_file()


# -- jc runner serve over a real runner -----------------------------------------------------------------

def push(arena, name: str, branch: str = "s1") -> None:  # type: ignore[no-untyped-def]
    repo = arena.team(name)
    clone = arena.clone(name)
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    participant.push_submission(clone, repo, branch)


@pytest.mark.slow
def test_serve_once_runs_a_pass_and_publishes_status(arena, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    push(arena, "alpha")
    site = tmp_path / "www" / "site"
    result = CliRunner().invoke(main, ["runner", "serve", "--config", str(arena.config_path), "--site", str(site),
                                       "--once"])
    assert result.exit_code == 0, result.output
    assert "site published" in result.output
    st = json.loads((site / "bacteria-test" / "status" / "alpha.json").read_text())
    assert [s["status"] for s in st["submissions"]] == ["evaluated"]
    q = st["quota"]
    per_day = q["per_day"]
    assert q["used_today"] == 1 and (per_day is None or q["left_today"] == min(per_day - 1, q["left_total"]))
    status = CliRunner().invoke(main, ["status", "--site", str(site), "--team", "alpha", "--challenge",
                                       "bacteria-test"])
    assert status.exit_code == 0 and "evaluated" in status.output

    # another writer holds the lock: the pass is skipped with a message, the site still published
    with lock.hold(arena.config.results, what="a test"):
        c = cycle(arena.config, site)
    assert c.skipped and "a test" in c.skipped and c.pass_error is None and c.site is not None


@pytest.mark.slow
def test_serve_goes_on_after_a_failed_pass(arena, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    broken = dataclasses.replace(arena.config, challenge=tmp_path / "no-challenge")
    stop = Stop()
    seen = []

    def after(c) -> None:  # type: ignore[no-untyped-def]
        seen.append(c)
        if len(seen) == 2:
            stop.requested = True

    cycles = serve_loop(broken, tmp_path / "site", interval=1, stop=stop, on_cycle=after)
    assert len(cycles) == 2 and all(c.pass_error for c in cycles), cycles
    assert "no-challenge" in (cycles[0].pass_error or "")


@pytest.mark.slow
def test_serve_stops_on_sigterm_after_its_pass(arena, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    push(arena, "alpha")
    site = tmp_path / "site"
    jc = Path(sys.executable).parent / "jc"
    proc = subprocess.Popen([str(jc), "runner", "serve", "--config", str(arena.config_path), "--site", str(site),
                             "--interval", "1h"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:  # wait until the first pass has begun
            lines.append(line)
            if "submission head(s)" in line or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGTERM)  # during the pass: it finishes, publishes, then stops
        rest, _ = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert "stopped after 1 cycle(s)" in output, output
    st = json.loads((site / "bacteria-test" / "status" / "alpha.json").read_text())
    assert [s["status"] for s in st["submissions"]] == ["evaluated"]


# -- the team page in a real browser -----------------------------------------------------------------------

@needs_chromium
def test_team_page_shows_the_quota_left_in_a_browser(site: Path) -> None:
    from browser_support import launch, shot

    pytest.importorskip("playwright.sync_api")
    assert CHROMIUM.is_file()
    with serve(site) as url, launch(site.parent / "chromium-home") as browser:
        page = browser.new_page()
        page.goto(url + "bacteria/teams/alpha.html")
        table = page.get_by_role("table", name="Quotas shown to participants")
        assert table.is_visible()
        assert table.get_by_role("row", name="Left today").locator("td").inner_text() == "1"
        assert table.get_by_role("row", name="Left in the phase").locator("td").inner_text() == "7"
        shot(page, "team-quotas")
        # a reason of 5,000 characters without a space wraps instead of widening the page
        assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
        page.locator('a[href="../status/alpha.json"]').click()
        page.wait_for_url("**/bacteria/status/alpha.json")
        assert json.loads(page.locator("body").inner_text())["quota"]["left_today"] == 1


def test_a_status_file_stays_bounded_whatever_the_records_hold(tmp_path: Path) -> None:
    import dataclasses

    from site_generator import status as site_status
    from site_generator.leaderboard import challenges

    evs = []
    for n in range(600):
        ev = make("alpha", f"{n:040x}", score=None, first_seen=f"2024-05-{1 + n % 28:02d}T10:{n % 60:02d}:00Z",
                  status=Status.FAILED, reason="é\x1b" * 3000)
        evs.append(dataclasses.replace(ev, submission={**ev.submission, "branches": ["ü" * 300] * 50}))
    (challenge,), _ = challenges(tuple(evs), ())
    pending = [{"team": "alpha", "commit": f"{n:040x}f", "branches": ["x"], "first_seen": "2024-05-02T00:00:00Z"}
               for n in range(300)]
    st = site_status.team_statuses(challenge, pending, DAY2)["alpha"]
    text = site_status.to_json(st)
    assert len(text) <= site_status.MAX_FILE_BYTES and text.isascii()
    assert st["omitted"] + len(st["submissions"]) == 600 and st["submissions"]
    assert len(st["pending"]) == site_status.MAX_PENDING
    first = st["submissions"][0]
    assert len(first["reason"]) <= 2000 and len(first["branches"]) == 20
    assert all(len(b) <= 200 for b in first["branches"])
    shown = render(parse(text.encode(), source="x", team="alpha"))
    assert all("\x1b" not in line for line in shown)


def test_interval_parsing() -> None:
    from jc_datalad.serve import parse_interval

    assert [parse_interval(t) for t in ("30", "30s", "5m", "1h", "1.5m")] == [30, 30, 300, 3600, 90]
    for bad in ("", "5x", "0", "nan", "inf", "-1m", "8d"):
        with pytest.raises(JcError, match="--interval"):
            parse_interval(bad)
