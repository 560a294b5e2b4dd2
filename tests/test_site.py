"""The static site, built from a synthetic ledger written straight into tmp_path (no datalad)."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest

from jc_datalad.errors import JcError
from jc_datalad.records import Evaluation, Status
from site_generator import build_site, stats

SECRET = "987654.3219"  # a private score that must never reach a page
PRIVATE_ITEM = "private-item-sentinel-7f3a"


def make(team: str, commit: str, *, score: float | None, first_seen: str, phase: str = "dev",
         status: Status = Status.EVALUATED, reason: str | None = None, direction: str = "max",
         challenge_id: str = "bacteria") -> Evaluation:
    eid = f"{team}--{commit[:12]}--{phase}"
    evaluated = status is Status.EVALUATED
    public = {"aji": score, "f1": 0.5} if evaluated else {}
    return Evaluation(
        id=eid,
        challenge={"id": challenge_id, "title": f"Challenge {challenge_id}", "type": "inference",
                   "primary": "aji", "direction": direction, "columns": ["aji", "f1"],
                   "commit": "c" * 40},
        team=team,
        submission={"repository": f"https://example.org/{team}.git", "commit": commit,
                    "branches": ["main"], "first_seen": first_seen,
                    "steps": [{"commit": commit, "recorded_cmd": "datalad containers-run -n env python predict.py",
                               "command": "python predict.py", "inputs": ["inputs/test"],
                               "outputs": ["predictions"]}]},
        phase=phase,
        split="test",
        status=status,
        reason=reason,
        hidden={"inputs": {"dataset_id": "in-uuid", "commit": "a" * 40},
                "labels": {"dataset_id": "lab-uuid", "commit": "b" * 40},
                "public_items": ["img_001"]},
        image={"name": "env", "key": "MD5E-s1--0123.sif", "path": ".datalad/environments/env/image"},
        scorer={"name": "instance", "version": "0.1.0"},
        runner={"version": "0.1.0", "backend": "local", "sandbox": "bubblewrap"},
        metrics={"aji": float(SECRET) + 1, "f1": 0.5} if evaluated else {},
        public=public,
        private={"aji": float(SECRET), "f1": float(SECRET)} if evaluated else {},
        items=[{"name": "img_001", "part": "public", "metrics": {"aji": score, "f1": 0.5}, "error": None},
               {"name": PRIVATE_ITEM, "part": "private", "metrics": {"aji": float(SECRET)}, "error": None}]
        if evaluated else [],
        steps=[{"number": 1, "command": "python predict.py", "status": "ok" if evaluated else "failed",
                "exit_code": 0 if evaluated else 1, "wall_s": 1.5, "cpu_s": 1.25,
                "peak_rss_bytes": 3 * 2**20, "stdout_tail": "done <b>", "stderr_tail": ""}],
        stages={"clone": 0.5, "run": 1.5},
        started=first_seen,
        finished=first_seen,
        reproduce=[f"jc runner reproduce {eid} --config runner.yaml"],
    )


def write(results: Path, ev: Evaluation | str, folder: str | None = None) -> Path:
    name = folder or (ev.id if isinstance(ev, Evaluation) else "broken")
    path = results / "evaluations" / name / "record.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(ev.to_json() if isinstance(ev, Evaluation) else ev, encoding="utf-8")
    return path


def phase_dev() -> list[Evaluation]:
    """Phase dev of challenge bacteria: ties, a failed and a refused submission (omega is [5])."""
    return [
        # alpha: two submissions; the later one is its best
        make("alpha", "a1" * 20, score=0.70, first_seen="2024-05-01T10:00:00Z"),
        make("alpha", "a2" * 20, score=0.80, first_seen="2024-05-02T10:00:00Z"),
        # beta ties alpha's 0.80 but was first seen earlier: beta ranks above alpha
        make("beta", "b1" * 20, score=0.80, first_seen="2024-05-01T12:00:00Z"),
        # gamma and delta tie on score and time: team name decides (delta before gamma)
        make("gamma", "c1" * 20, score=0.60, first_seen="2024-05-03T00:00:00Z"),
        make("delta", "d1" * 20, score=0.60, first_seen="2024-05-03T00:00:00Z"),
        make("omega", "e1" * 20, score=None, first_seen="2024-05-04T00:00:00Z", status=Status.FAILED,
             reason="step 1 (python predict.py) exited with code 1: boom"),
        make("sneaky", "f1" * 20, score=None, first_seen="2024-05-04T01:00:00Z", status=Status.REFUSED,
             reason="changes .gitmodules, which submissions may not touch"),
    ]


def late(commit: str, challenge: dict) -> Evaluation:
    """Team late's submission, rejected as the runner records it: the submission, the phase, the reason."""
    return Evaluation(
        id=f"late--{commit[:12]}--dev", challenge=challenge, team="late",
        submission={"repository": "https://example.org/late.git", "commit": commit,
                    "branches": ["main"], "first_seen": "2024-07-01T00:00:00Z"},
        phase="dev", split="test", status=Status.REJECTED,
        reason="first seen at 2024-07-01T00:00:00Z, outside every phase of the challenge",
        started="2024-07-01T00:00:00Z", finished="2024-07-01T00:00:00Z")


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    records = [
        *phase_dev(),
        make("alpha", "a3" * 20, score=0.10, first_seen="2024-06-01T00:00:00Z", phase="final"),
        make("zeta", "z1" * 20, score=1.5, first_seen="2024-05-01T00:00:00Z", direction="min",
             challenge_id="cells"),
        make("eta", "y1" * 20, score=0.5, first_seen="2024-05-02T00:00:00Z", direction="min",
             challenge_id="cells"),
    ]
    for ev in [*records, late("90" * 20, records[0].challenge)]:
        write(results, ev)
    logs = results / "evaluations" / records[1].id / "logs"
    logs.mkdir()
    (logs / "step-1.stdout").write_text("done <b>\n")
    return results


def html(out: Path, rel: str) -> str:
    return (out / rel).read_text(encoding="utf-8")


def ranked_teams(page: str, phase: str) -> list[str]:
    section = page.split(f'id="phase-{phase}"', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a></th>', section)


def test_pages_exist_and_link_relatively(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    report = build_site(ledger, out)
    assert report.problems == ()
    for rel in ("index.html", "static/style.css", "bacteria/leaderboard.html", "cells/leaderboard.html",
                f"bacteria/evaluations/alpha--{'a2' * 6}--dev.html"):
        assert rel in report.pages and (out / rel).is_file()
    assert len([p for p in report.pages if "/evaluations/" in p]) == 11
    for rel in report.pages:
        if rel.endswith(".html"):
            text = html(out, rel)
            assert "StrictUndefined" not in text
            links = re.findall(r'(?:href|src)="([^"]+)"', text)
            assert links and all(not re.match(r"^(/|[a-z]+:)", link) for link in links), rel
            for link in (link for link in links if not link.startswith("#")):  # each resolves
                assert (out / rel).parent.joinpath(link.split("#")[0]).resolve().is_file(), (rel, link)
    index = html(out, "index.html")
    assert "Challenge bacteria" in index and 'href="bacteria/leaderboard.html"' in index
    assert "0.8000" in index and "beta" in index  # best public primary with its team


def test_leaderboard_order_and_tie_rule(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(ledger, out)
    page = html(out, "bacteria/leaderboard.html")
    assert ranked_teams(page, "dev") == ["beta", "alpha", "delta", "gamma"]
    assert ranked_teams(page, "final") == ["alpha"]
    assert "earlier first-seen time" in page and "then by team name" in page
    # direction min: the lower score ranks first
    assert ranked_teams(html(out, "cells/leaderboard.html"), "dev") == ["eta", "zeta"]
    # alpha's row: best is its second submission, two submissions, last one on May 2
    row = page.split(f"alpha--{'a2' * 6}--dev.html", 1)[1].split("</tr>", 1)[0]
    assert "0.8000" in row and ">2<" in row and "2024-05-02 10:00:00 UTC" in row


def test_failed_and_refused_show_reason_and_no_score(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(ledger, out)
    board = html(out, "bacteria/leaderboard.html")
    assert "omega" not in ranked_teams(board, "dev") and "sneaky" not in ranked_teams(board, "dev")
    assert '<a href="submissions/dev-1.html">the list</a>' in board
    listed = html(out, "bacteria/submissions/dev-1.html")
    assert "exited with code 1: boom" in listed and "changes .gitmodules" in listed
    assert "outside every phase" in listed
    for eid, reason in ((f"late--{'90' * 6}--dev", "outside every phase"),
                        (f"omega--{'e1' * 6}--dev", "exited with code 1: boom"),
                        (f"sneaky--{'f1' * 6}--dev", "changes .gitmodules")):
        page = html(out, f"bacteria/evaluations/{eid}.html")
        assert reason in page
        assert "Public metrics" not in page and 'class="score"' not in page


def test_evaluation_page_shows_provenance_and_escapes(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(ledger, out)
    page = html(out, f"bacteria/evaluations/alpha--{'a2' * 6}--dev.html")
    for expected in ("a2" * 20, "lab-uuid", "b" * 40, "MD5E-s1--0123.sif", "instance 0.1.0", "bubblewrap",
                     "datalad containers-run -n env python predict.py", "3.0",  # MiB
                     f"jc runner reproduce alpha--{'a2' * 6}--dev --config runner.yaml", "<pre><code>"):
        assert expected in page, expected
    # the step ran on hidden data: neither the record's old tails nor the ledger's old logs/ are shown
    # (tests/test_logs.py: what is shown with logs: public and team-encrypted)
    assert "logs/step-1.stdout" not in page and "done &lt;b&gt;" not in page and "done <b>" not in page
    assert "kept for the organizers only" in page


def test_private_scores_never_appear(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(ledger, out)
    shown = [f"{float(SECRET):.4f}", f"{float(SECRET):.4g}", SECRET, "987654", "987655", "9.877e+05", PRIVATE_ITEM]
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            for needle in shown:
                assert needle not in text, (path, needle)


def test_corrupt_record_is_reported_and_build_succeeds(ledger: Path, tmp_path: Path) -> None:
    write(ledger, "{not json", folder="broken")
    bad = make("kappa", "k1" * 20, score=0.9, first_seen="2024-05-05T00:00:00Z")
    data = bad.to_json().replace('"aji": 0.9', '"aji": "high"')
    write(ledger, data, folder=bad.id)
    out = tmp_path / "site"
    report = build_site(ledger, out)
    assert {p.split(": ", 1)[0].rsplit("/", 2)[-2] for p in report.problems} == {"broken", bad.id}
    assert any("evaluations/broken/record.json" in p and "cannot be read" in p for p in report.problems)
    assert any(bad.id in p and "public.aji 'high'" in p for p in report.problems)
    assert "evaluations/broken/record.json" in html(out, "index.html")  # no id: listed on the index
    error_page = html(out, f"bacteria/evaluations/{bad.id}.html")  # has an id: an error page
    assert "public.aji" in error_page
    assert "kappa" not in ranked_teams(html(out, "bacteria/leaderboard.html"), "dev")
    assert ranked_teams(html(out, "bacteria/leaderboard.html"), "dev")[0] == "beta"


def test_strict_mode_raises_and_writes_nothing(ledger: Path, tmp_path: Path) -> None:
    write(ledger, "[]", folder="broken")
    out = tmp_path / "site"
    with pytest.raises(JcError, match=r"(?s)strict mode: 1 problem.*evaluations/broken/record.json"):
        build_site(ledger, out, strict=True)
    assert not out.exists() or not any(out.iterdir())


def test_two_builds_are_byte_identical(ledger: Path, tmp_path: Path) -> None:
    write(ledger, "{not json", folder="broken")
    first, second = tmp_path / "one", tmp_path / "two"
    build_site(ledger, first)
    # a copy of the ledger elsewhere builds the same bytes too
    copy = tmp_path / "copy"
    for path in sorted(p for p in ledger.rglob("*") if p.is_file()):
        target = copy / path.relative_to(ledger)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    build_site(copy, second)

    def tree(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert tree(first) == tree(second)


def test_rebuild_removes_only_its_own_stale_files(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    out.mkdir()
    (out / "mine.txt").write_text("not the site's")
    gone = make("theta", "t1" * 20, score=0.1, first_seen="2024-05-06T00:00:00Z", challenge_id="old")
    record = write(ledger, gone)
    build_site(ledger, out)
    assert (out / "old" / "leaderboard.html").is_file()
    record.unlink()
    record.parent.rmdir()
    report = build_site(ledger, out)
    assert not (out / "old").exists()
    assert (out / "mine.txt").read_text() == "not the site's"
    assert "old/leaderboard.html" not in report.pages


def test_unsafe_ids_do_not_escape_the_site(ledger: Path, tmp_path: Path) -> None:
    ev = make("mu", "m1" * 20, score=0.2, first_seen="2024-05-07T00:00:00Z", challenge_id="../../x")
    write(ledger, ev)
    out = tmp_path / "site"
    report = build_site(ledger, out)
    assert any("challenge.id '../../x'" in p for p in report.problems)
    assert all(".." not in rel for rel in report.pages)
    assert not (tmp_path / "x").exists()


def test_missing_results_folder_raises(tmp_path: Path) -> None:
    with pytest.raises(JcError, match="no such results dataset"):
        build_site(tmp_path / "nope", tmp_path / "site")




def test_a_page_that_fails_to_render_is_named_and_replaced(
        ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from site_generator import pages

    real = pages.evaluation_context
    broken = f"omega--{'e1' * 6}--dev"

    def flaky(ev: Evaluation, *args: object) -> dict:
        if ev.id == broken:
            raise ValueError("cannot lay out this record")
        return real(ev, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(pages, "evaluation_context", flaky)
    out = tmp_path / "site"
    report = build_site(ledger, out)
    assert report.problems == (f"page bacteria/evaluations/{broken}.html: ValueError: cannot lay out this record",)
    assert "cannot lay out this record" in html(out, f"bacteria/evaluations/{broken}.html")
    assert ranked_teams(html(out, "bacteria/leaderboard.html"), "dev")[0] == "beta"
    with pytest.raises(JcError, match="cannot lay out"):
        build_site(ledger, tmp_path / "strict", strict=True)


# -- final standings of an ended phase ------------------------------------------------------------

# private aji per team in phase dev of bacteria: the private order beta, delta, alpha, gamma
# against the public order beta, alpha, delta, gamma gives =, ▲1, ▼1, =
FINAL_PRIVATE = {f"beta--{'b1' * 6}--dev": 0.9137, f"delta--{'d1' * 6}--dev": 0.8521,
                 f"alpha--{'a2' * 6}--dev": 0.7049, f"alpha--{'a1' * 6}--dev": 0.6502,
                 f"gamma--{'c1' * 6}--dev": 0.6083}
FINAL_RULE = "Final standings of phase dev: best private aji among <selected> submissions & ties"


def finalize(results: Path, **changes: object) -> Path:
    """Give the bacteria dev records private scores and write the standings the runner would."""
    from dataclasses import replace

    from jc_datalad.standings import Row, Standings

    for eid, score in FINAL_PRIVATE.items():
        path = results / "evaluations" / eid / "record.json"
        ev = Evaluation.from_dict(json.loads(path.read_text(encoding="utf-8")))
        path.write_text(replace(ev, private={"aji": score, "f1": 0.25}).to_json(), encoding="utf-8")
    entries = [("beta", f"beta--{'b1' * 6}--dev", 1, [f"beta--{'b1' * 6}--dev"]),
               ("delta", f"delta--{'d1' * 6}--dev", 3, [f"delta--{'d1' * 6}--dev"]),
               ("alpha", f"alpha--{'a2' * 6}--dev", 2, [f"alpha--{'a2' * 6}--dev", f"alpha--{'a1' * 6}--dev"]),
               ("gamma", f"gamma--{'c1' * 6}--dev", 4, [f"gamma--{'c1' * 6}--dev"])]
    rows = tuple(Row(rank=n, team=team, evaluation_id=eid, score=FINAL_PRIVATE[eid],
                     first_seen="2024-05-01T00:00:00Z", submissions=1, previous_rank=previous,
                     selected=tuple(selected))
                 for n, (team, eid, previous, selected) in enumerate(entries, 1))
    data = {**Standings(phase="dev", part="private", final=True, rows=rows, rule=FINAL_RULE).as_dict(),
            **changes}
    path = results / "standings" / "dev-final.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def final_section(page: str, phase: str) -> str:
    return page.split(f'id="final-{phase}"', 1)[1].split("</section>", 1)[0]


def test_final_standings_show_the_private_leaderboard(ledger: Path, tmp_path: Path) -> None:
    finalize(ledger)
    out = tmp_path / "site"
    report = build_site(ledger, out)
    assert report.problems == ()
    board = html(out, "bacteria/leaderboard.html")
    dev = board.split('id="phase-dev"', 1)[1]
    # above the public table of the phase
    assert dev.index("Final leaderboard (private part)") < dev.index("Leaderboard of phase dev (public part)")
    final = final_section(board, "dev")
    teams = re.findall(r'<th scope="row"><a href="([^"]+)">([^<]+)</a></th>\n<td class="num primary"'
                       r'[^>]*><a href="([^"]+)">', final)
    assert teams == [(f"teams/{team}.html", team, f"evaluations/{eid}.html") for team, eid in (
        ("beta", f"beta--{'b1' * 6}--dev"), ("delta", f"delta--{'d1' * 6}--dev"),
        ("alpha", f"alpha--{'a2' * 6}--dev"), ("gamma", f"gamma--{'c1' * 6}--dev"))]
    for score in ("0.9137", "0.8521", "0.7049", "0.6083"):
        assert score in final
    changes = re.findall(r'<span aria-hidden="true" title="([^"]+)">([^<]+)</span>'
                         r'<span class="sr-only">([^<]+)</span>', final)
    assert changes == [("unchanged", "=", "unchanged"), ("up 1 place", "▲1", "up 1 place"),
                       ("down 1 place", "▼1", "down 1 place"), ("unchanged", "=", "unchanged")]
    assert f"<code>alpha--{'a1' * 6}--dev</code>" in final  # every selected id, linked
    assert f'href="evaluations/alpha--{"a1" * 6}--dev.html"' in final
    assert "among &lt;selected&gt; submissions &amp; ties" in final and "<selected>" not in board
    assert "standings/dev-final.json" in final
    # the public ranking is unchanged, and only phase dev of bacteria is final
    public = dev.split("Leaderboard of phase dev (public part)", 1)[1].split("</table>", 1)[0]
    assert re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a></th>', public) == [
        "beta", "alpha", "delta", "gamma"]
    assert 'id="final-final"' not in board
    assert "Final leaderboard" not in html(out, "cells/leaderboard.html")  # dev of another challenge

    beta = html(out, f"bacteria/evaluations/beta--{'b1' * 6}--dev.html")
    assert "Private metrics" in beta and "0.9137" in beta and "0.2500" in beta
    assert 'href="../leaderboard.html#final-dev"' in beta
    assert PRIVATE_ITEM not in beta  # private items stay hidden
    for rel in (f"bacteria/evaluations/alpha--{'a3' * 6}--final.html",  # phase final has not ended
                f"cells/evaluations/eta--{'y1' * 6}--dev.html",  # same phase name, other challenge
                f"bacteria/evaluations/omega--{'e1' * 6}--dev.html"):  # failed: no scores at all
        assert "Private metrics" not in html(out, rel), rel
    # the other private scores and `metrics` (all items) are still never shown
    for path in out.rglob("*"):
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            for needle in (SECRET, "987654", "987655", "9.877e+05", PRIVATE_ITEM):
                assert needle not in text, (path, needle)


def test_rank_change_words() -> None:
    from site_generator.leaderboard import FinalRow
    from site_generator.pages import rank_change

    def row(rank: int, previous: int | None) -> FinalRow:
        return FinalRow(rank=rank, team="t", evaluation_id="e", evaluation=None, score=0.5,
                        previous_rank=previous, selected=())

    assert rank_change(row(1, 3)) == {"symbol": "▲2", "words": "up 2 places", "kind": "up"}
    assert rank_change(row(4, 3)) == {"symbol": "▼1", "words": "down 1 place", "kind": "down"}
    assert rank_change(row(2, 2))["symbol"] == "="
    assert rank_change(row(2, None)) == {"symbol": "—", "words": "no public rank", "kind": "none"}


def test_malformed_standings_are_reported_and_build_succeeds(ledger: Path, tmp_path: Path) -> None:
    standings = finalize(ledger, part="public")
    text = standings.read_text(encoding="utf-8").replace('"score": 0.9137', '"score": "high"')
    standings.write_text(text, encoding="utf-8")
    (ledger / "standings" / "final-final.json").write_text("{nope", encoding="utf-8")
    out = tmp_path / "site"
    report = build_site(ledger, out)
    dev = [p for p in report.problems if "standings/dev-final.json" in p]
    assert any("part 'public'" in p for p in dev) and any("rows[0].score" in p for p in dev)
    assert all("0.9137" not in p and "high" not in p for p in dev)  # a score is named, never echoed
    assert any("standings/final-final.json: cannot be read" in p for p in report.problems)
    board = html(out, "bacteria/leaderboard.html")
    assert "Final leaderboard" not in board and "0.8521" not in board
    assert "Private metrics" not in html(out, f"bacteria/evaluations/beta--{'b1' * 6}--dev.html")
    assert ranked_teams(board, "dev") == ["beta", "alpha", "delta", "gamma"]
    with pytest.raises(JcError, match=r"(?s)strict mode.*standings/dev-final.json"):
        build_site(ledger, tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict").exists()


def test_standings_naming_an_unknown_evaluation_are_reported(ledger: Path, tmp_path: Path) -> None:
    path = finalize(ledger)
    path.write_text(path.read_text(encoding="utf-8").replace(f"gamma--{'c1' * 6}--dev", "gamma--gone--dev"),
                    encoding="utf-8")
    out = tmp_path / "site"
    report = build_site(ledger, out)
    # with two challenges holding phase dev, the file matches neither: it names an id of none
    assert any("standings/dev-final.json" in p and "several challenges (bacteria, cells)" in p
               for p in report.problems)
    assert "Final leaderboard" not in html(out, "bacteria/leaderboard.html")
    # one challenge with phase dev: the file is matched, the unknown id reported and not linked
    cells = ledger / "evaluations"
    for folder in sorted(cells.iterdir()):
        if "--dev" in folder.name and folder.name.startswith(("zeta", "eta")):
            for f in sorted(folder.iterdir()):
                f.unlink()
            folder.rmdir()
    report = build_site(ledger, out)
    assert any("'gamma--gone--dev' is no readable evaluation of phase dev" in p for p in report.problems)
    final = final_section(html(out, "bacteria/leaderboard.html"), "dev")
    assert "<code>gamma--gone--dev</code>" in final and "gamma--gone--dev.html" not in final


def test_two_builds_with_final_standings_are_byte_identical(ledger: Path, tmp_path: Path) -> None:
    finalize(ledger)
    first, second = tmp_path / "one", tmp_path / "two"
    build_site(ledger, first)
    build_site(ledger, second)

    def tree(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    assert tree(first) == tree(second)
    assert "Final leaderboard (private part)" in html(first, "bacteria/leaderboard.html")


def test_team_page_lists_every_submission_with_status_and_reason(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    report = build_site(ledger, out)
    assert report.problems == ()
    board = html(out, "bacteria/leaderboard.html")
    assert ranked_teams(board, "dev") == ["beta", "alpha", "delta", "gamma"]
    assert '<a href="teams/alpha.html">alpha</a>' in board
    assert '<a href="../teams/omega.html">omega</a>' in html(out, "bacteria/submissions/dev-1.html")
    alpha = html(out, "bacteria/teams/alpha.html")
    rows = re.findall(r'<a href="\.\./evaluations/([^"]+)\.html">', alpha)
    assert rows == [f"alpha--{'a1' * 6}--dev", f"alpha--{'a2' * 6}--dev", f"alpha--{'a3' * 6}--final"]
    for score in ("0.7000", "0.8000", "0.1000"):
        assert score in alpha
    assert '<svg role="img" aria-labelledby=' in alpha and "<title id=" in alpha  # score history
    assert 'href="alpha.json"' in alpha and 'href="alpha.csv"' in alpha
    omega = html(out, "bacteria/teams/omega.html")
    assert "failed" in omega and "exited with code 1: boom" in omega and "<svg" not in omega
    assert "changes .gitmodules" in html(out, "bacteria/teams/sneaky.html")
    late = html(out, "bacteria/teams/late.html")
    assert "rejected" in late and "outside every phase of the challenge" in late
    for page in report.pages:
        if "/teams/" in page or "statistics" in page:
            text = (out / page).read_text(encoding="utf-8")
            assert SECRET not in text and PRIVATE_ITEM not in text, page


def test_exports_hold_what_the_tables_show(ledger: Path, tmp_path: Path) -> None:
    import csv
    out = tmp_path / "site"
    build_site(ledger, out)
    board = html(out, "bacteria/leaderboard.html")
    assert 'href="leaderboard-dev.json"' in board and 'href="leaderboard-dev.csv"' in board
    data = json.loads(html(out, "bacteria/leaderboard-dev.json"))
    assert [r["team"] for r in data["rows"]] == ranked_teams(board, "dev")
    assert [r["aji"] for r in data["rows"]] == [0.8, 0.8, 0.6, 0.6]
    rows = list(csv.DictReader(html(out, "bacteria/leaderboard-dev.csv").splitlines()))
    assert [(r["rank"], r["team"], r["evaluation_id"]) for r in rows] == [
        (str(r["rank"]), r["team"], r["evaluation_id"]) for r in data["rows"]]
    team = json.loads(html(out, "bacteria/teams/omega.json"))
    assert team["rows"] == [{"evaluation_id": f"omega--{'e1' * 6}--dev", "phase": "dev",
                             "first_seen": "2024-05-04T00:00:00Z", "commit": "e1" * 20, "status": "failed",
                             "reason": "step 1 (python predict.py) exited with code 1: boom",
                             "aji_public": None}]
    per_day = list(csv.reader(html(out, "bacteria/statistics-submissions-per-day.csv").splitlines()))
    assert per_day[0] == ["day", "submissions"]
    counts = {day: int(n) for day, n in per_day[1:]}
    assert counts["2024-05-01"] == 2 and counts["2024-05-04"] == 2 and counts["2024-06-01"] == 1
    assert sum(counts.values()) == 9 and counts["2024-05-20"] == 0  # every day in between
    teams = json.loads(html(out, "bacteria/statistics-teams-over-time.json"))["rows"]
    assert teams[-1]["teams"] == 7
    best = json.loads(html(out, "bacteria/statistics-best-over-time.json"))["rows"]
    assert [(r["phase"], r["team"], r["aji_public"]) for r in best] == [
        ("dev", "alpha", 0.7), ("dev", "beta", 0.8), ("final", "alpha", 0.1)]
    dist = json.loads(html(out, "bacteria/statistics-score-distribution.json"))["rows"]
    assert sum(r["submissions"] for r in dist) == 6


def test_statistics_page_has_labelled_deterministic_plots(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(ledger, out)
    page = html(out, "bacteria/statistics.html")
    svgs = re.findall(r"<svg .*?</svg>", page, flags=re.S)
    assert len(svgs) == 4
    for svg in svgs:
        assert svg.startswith('<svg role="img" aria-labelledby="plot-') and "<title id=" in svg
        assert "<dc:date>" not in svg and "<text" in svg  # no build date; text as text
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))  # four inline plots share one id space
    for name in ("submissions-per-day", "teams-over-time", "best-over-time", "score-distribution"):
        assert f'href="statistics-{name}.csv"' in page
    assert 'href="statistics.html"' in html(out, "bacteria/leaderboard.html")
    again = tmp_path / "again"
    build_site(ledger, again)
    assert html(again, "bacteria/statistics.html") == page
    assert html(again, "bacteria/teams/alpha.html") == html(out, "bacteria/teams/alpha.html")


def test_evaluation_page_estimates_energy_from_cpu_seconds(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(ledger, out)
    page = html(out, f"bacteria/evaluations/alpha--{'a2' * 6}--dev.html")
    # 1.25 CPU seconds x 10 W per core = 12.5 J = 0.00347 Wh
    assert "Estimated energy: <strong>0.00347 Wh</strong> (12.5 J), from 1.25 CPU seconds × 10 W per core" in page
    assert "Estimated energy" not in html(out, f"bacteria/evaluations/late--{'90' * 6}--dev.html")


def test_final_leaderboard_export_and_phases_that_would_share_a_file(ledger: Path, tmp_path: Path) -> None:
    finalize(ledger)
    # phase "dev-final" must not take the file of the final leaderboard of phase "dev"
    write(ledger, make("kappa", "k1" * 20, score=0.5, first_seen="2024-05-05T00:00:00Z", phase="dev-final"))
    out = tmp_path / "site"
    report = build_site(ledger, out)
    assert report.problems == ()
    board = html(out, "bacteria/leaderboard.html")
    assert 'href="final-leaderboard-dev.csv"' in board and 'href="leaderboard-dev-final.csv"' in board
    final = json.loads(html(out, "bacteria/final-leaderboard-dev.json"))
    assert [r["team"] for r in final["rows"]] == ["beta", "delta", "alpha", "gamma"]
    assert [r["team"] for r in json.loads(html(out, "bacteria/leaderboard-dev-final.json"))["rows"]] == [
        "kappa"]
    assert "final-leaderboard-final.json" not in report.pages  # phase final has not ended


def test_a_team_name_that_is_no_file_name_gets_no_page(ledger: Path, tmp_path: Path) -> None:
    import dataclasses
    ev = make("a/b", "u1" * 20, score=0.99, first_seen="2024-05-05T00:00:00Z")
    write(ledger, dataclasses.replace(ev, id="ab--u1u1u1u1u1u1--dev"))
    out = tmp_path / "site"
    report = build_site(ledger, out)
    assert report.problems == ()
    board = html(out, "bacteria/leaderboard.html")
    assert '<th scope="row">a/b</th>' in board and ranked_teams(board, "dev")[0] == "beta"
    assert not [p for p in report.pages if "/teams/a" in p and "alpha" not in p]


def test_plots_drawn_once_are_reused_and_give_the_same_bytes(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(ledger, out)
    cache = out / ".jc-site-plots"
    kept = sorted(p.name for p in cache.iterdir())
    assert len(kept) == 14  # 4 + 4 statistics plots, 6 teams with a score history
    assert ".jc-site-plots" not in (out / ".jc-site-manifest").read_text()
    first = {p: (out / p).read_bytes() for p in ("bacteria/statistics.html", "bacteria/teams/alpha.html")}
    # a cached plot is used as it is: the build does not draw it again
    name = next(p for p in kept if "plot-team-bacteria-alpha" in (cache / p).read_text())
    (cache / name).write_text((cache / name).read_text().replace("</svg>", "<!-- from cache --></svg>"))
    (out / ".jc-site-pages").unlink()  # else the unchanged team page is not rendered again
    build_site(ledger, out)
    assert "<!-- from cache -->" in html(out, "bacteria/teams/alpha.html")
    # without the cache, the same bytes as the first build; a plot no longer used is removed
    shutil.rmtree(cache)
    write(ledger, make("alpha", "a4" * 20, score=0.9, first_seen="2024-05-09T00:00:00Z"))
    build_site(ledger, out)
    again = tmp_path / "again"
    build_site(ledger, again)
    assert html(out, "bacteria/teams/alpha.html") == html(again, "bacteria/teams/alpha.html")
    assert html(out, "bacteria/teams/alpha.html").encode() != first["bacteria/teams/alpha.html"]
    assert len(list(cache.iterdir())) == 14
    (cache / "stale.svg").write_text("<svg/>")
    build_site(ledger, out)
    assert not (cache / "stale.svg").exists()


def test_incremental_rebuild_equals_a_fresh_full_build(ledger: Path, tmp_path: Path) -> None:
    def tree(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    write(ledger, "{not json", folder="broken")
    out = tmp_path / "site"
    build_site(ledger, out)
    keys = json.loads((out / ".jc-site-pages").read_text())
    untouched = "bacteria/evaluations/" + make("beta", "b1" * 20, score=0.8, first_seen="x").id + ".html"
    assert untouched in keys and "bacteria/teams/beta.html" in keys
    (out / untouched).write_text("kept as it is")  # shows the page is not rendered again
    stamp = (out / "bacteria/teams/beta.html").stat().st_mtime_ns
    # a new evaluation, a changed record, a removed record, a new log, a new final standings file
    # (all within the times and scores the team plots show, so beta's page stays as it is)
    write(ledger, make("alpha", "a4" * 20, score=0.75, first_seen="2024-05-09T00:00:00Z"))
    write(ledger, make("gamma", "c1" * 20, score=0.65, first_seen="2024-05-03T00:00:00Z"))
    gone = ledger / "evaluations" / make("delta", "d1" * 20, score=0.6, first_seen="x").id
    shutil.rmtree(gone)
    alpha = make("alpha", "a1" * 20, score=0.7, first_seen="x").id
    (ledger / "evaluations" / alpha / "logs").mkdir()
    (ledger / "evaluations" / alpha / "logs" / "step-1.stderr").write_text("oops\n")
    build_site(ledger, out)
    assert (out / untouched).read_text() == "kept as it is"
    assert (out / "bacteria/teams/beta.html").stat().st_mtime_ns == stamp
    (out / untouched).unlink()  # a missing page is rendered again
    build_site(ledger, out)
    fresh = tmp_path / "fresh"
    build_site(ledger, fresh)
    assert tree(out) == tree(fresh)
    # with final standings the evaluation pages of the phase change: rendered again, still the same bytes
    standings = ledger / "standings"
    standings.mkdir()
    (standings / "final-final.json").write_text(json.dumps({
        "phase": "final", "part": "private", "final": True, "rule": "best",
        "rows": [{"rank": 1, "team": "alpha", "evaluation_id": make("alpha", "a3" * 20, score=0.1,
                  first_seen="x", phase="final").id, "score": 1.0, "first_seen": "2024-06-01T00:00:00Z",
                  "submissions": 1, "previous_rank": 1, "selected": []}]}))
    build_site(ledger, out)
    shutil.rmtree(fresh)
    build_site(ledger, fresh)
    assert tree(out) == tree(fresh)
    # a score above every other widens what the team plots show: every team page is rendered again
    write(ledger, make("alpha", "a5" * 20, score=0.95, first_seen="2024-05-10T00:00:00Z"))
    build_site(ledger, out)
    assert (out / "bacteria/teams/beta.html").stat().st_mtime_ns != stamp
    shutil.rmtree(fresh)
    build_site(ledger, fresh)
    assert tree(out) == tree(fresh)


def test_a_points_plot_is_the_same_bytes_on_the_reused_figure() -> None:
    import datetime as dt

    from site_generator import plots

    day = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    one = [("phase dev", [day, day + dt.timedelta(days=3)], [0.5, 0.7]),
           ("phase test", [day + dt.timedelta(days=40)], [0.2])]
    other = [("phase dev", [day + dt.timedelta(hours=n) for n in range(30)], [n * 10.0 for n in range(30)])]
    span = (day, day + dt.timedelta(days=40), 0.2, 290.0)
    plots._POINTS.clear()
    fresh = plots.points("a", "A", one, "aji", span)
    assert plots.points("b", "B", other, "aji", span) != fresh
    assert plots.points("a", "A", one, "aji", span) == fresh
    plots._POINTS.clear()
    assert plots.points("b", "B", other, "aji", span) == plots.points("b", "B", other, "aji", span)
    # the axes are drawn once for a span, the lines for each plot: ids stay unique on a page
    ids = re.findall(r'\bid="([^"]+)"', str(fresh) + str(plots.points("b", "B", other, "aji", span)))
    assert len(ids) == len(set(ids)) and any(i.startswith("plot-a-data-") for i in ids)


def test_plots_and_pages_made_in_workers_give_the_same_site(ledger: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from site_generator import workers

    def tree(root: Path) -> dict[str, bytes]:
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}

    build_site(ledger, tmp_path / "here")
    monkeypatch.setattr(workers, "PARALLEL_MIN", 1)
    monkeypatch.setattr(workers.os, "cpu_count", lambda: 2)
    report = build_site(ledger, tmp_path / "workers")
    assert tree(tmp_path / "here") == tree(tmp_path / "workers")
    assert "bacteria/teams/alpha.html" in report.pages and f"bacteria/evaluations/alpha--{'a2' * 6}--dev.html" in report.pages


def test_submission_lists_are_paged_and_a_new_submission_renders_only_the_last_page(
        ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stats, "SUBMISSIONS_PER_PAGE", 3)
    out = tmp_path / "site"
    report = build_site(ledger, out)
    dev = sorted(p for p in report.pages if p.startswith("bacteria/submissions/dev-") and p.endswith(".html"))
    board = html(out, "bacteria/leaderboard.html")
    assert len(dev) >= 2 and all(f'<a href="{p.removeprefix("bacteria/")}">page ' in board for p in dev)
    listed = [re.findall(r'<a href="\.\./evaluations/([^"]+)\.html">', html(out, p)) for p in dev]
    assert all(len(ids) == 3 for ids in listed[:-1]) and 1 <= len(listed[-1]) <= 3
    every = [i for ids in listed for i in ids]
    assert len(every) == len(set(every)) and all(i.endswith("--dev") for i in every)
    assert '<a href="dev-1.html" aria-current="page">1</a>' in html(out, dev[0])
    json_rows = json.loads((out / dev[0].replace(".html", ".json")).read_text(encoding="utf-8"))["rows"]
    assert [r["evaluation_id"] for r in json_rows] == listed[0]

    if len(listed[-1]) == 3:  # room for one more on the last page: the next one opens a new page
        pytest.skip("the fixture fills its last page")
    times = {p: (out / p).stat().st_mtime_ns for p in dev}
    write(ledger, make("zeta", "b9" * 20, score=0.5, first_seen="2024-05-09T00:00:00Z"))
    build_site(ledger, out)
    changed = [p for p in dev if (out / p).stat().st_mtime_ns != times[p]]
    assert changed == [dev[-1]] and f"zeta--{'b9' * 6}--dev" in html(out, dev[-1])


def test_one_site_from_several_results_datasets(ledger: Path, tmp_path: Path) -> None:
    """Each challenge's runner has its own results dataset; one site shows them all."""
    other = tmp_path / "roots-results"
    write(other, make("rho", "r1" * 20, score=0.9, first_seen="2024-05-05T00:00:00Z", challenge_id="roots"))
    logs = other / "evaluations" / f"rho--{'r1' * 6}--dev" / "logs"
    logs.mkdir()
    (logs / "step-1.stdout").write_text("roots log\n")
    # the same challenge id in a later dataset is reported, and the first one shown
    write(other, make("intruder", "i1" * 20, score=0.99, first_seen="2024-05-05T00:00:00Z"))
    out = tmp_path / "site"
    report = build_site([ledger, other], out)
    index = html(out, "index.html")
    for title in ("Challenge bacteria", "Challenge cells", "Challenge roots"):
        assert title in index
    assert "roots/leaderboard.html" in report.pages and "roots/statistics.html" in report.pages
    page = html(out, f"roots/evaluations/rho--{'r1' * 6}--dev.html")
    assert "logs/step-1.stdout" not in page and "roots log" not in page  # old ledger logs: never shown
    assert f"bacteria/evaluations/alpha--{'a2' * 6}--dev.html" in report.pages  # logs of the first ledger
    assert [p for p in report.problems if "challenge 'bacteria' is in" in p and str(other) in p]
    assert "intruder" not in html(out, "bacteria/leaderboard.html")
    assert not (out / f"bacteria/evaluations/intruder--{'i1' * 6}--dev.html").exists()
    # the same again: the same bytes; a dataset given twice is refused
    again = tmp_path / "again"
    build_site([ledger, other], again)
    assert all((out / p).read_bytes() == (again / p).read_bytes() for p in report.pages)
    with pytest.raises(JcError, match="given twice"):
        build_site([ledger, ledger], tmp_path / "twice")


def test_records_found_good_are_not_checked_again_and_a_changed_one_is(
        ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from site_generator import gather

    checked: list[str] = []
    check = gather.check
    monkeypatch.setattr(gather, "check", lambda ev, folder: checked.append(folder) or check(ev, folder=folder))
    out = tmp_path / "site"
    assert build_site(ledger, out).problems == ()
    assert len(checked) == len(list((ledger / "evaluations").iterdir()))
    assert gc.get_freeze_count() == 0  # the records frozen for the build are let go
    checked.clear()
    assert build_site(ledger, out).problems == () and checked == []
    # the same record with a score that is no number: checked again, and reported
    bad = make("beta", "b1" * 20, score=0.8, first_seen="2024-05-01T12:00:00Z")
    write(ledger, dataclasses.replace(bad, public={"aji": "high", "f1": 0.5}))
    report = build_site(ledger, out)
    assert checked == [bad.id]
    assert [p for p in report.problems if bad.id in p and "public.aji 'high'" in p]


def test_a_hostile_manifest_removes_nothing_outside_the_site(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    build_site(ledger, out)
    outside = tmp_path / "outside.txt"
    outside.write_text("keep")
    manifest = out / ".jc-site-manifest"
    manifest.write_text(manifest.read_text() + f"../outside.txt\n{outside}\nbacteria/../../outside.txt\n"
                        "./index.html\nbacteria//x\n")
    build_site(ledger, out)
    assert outside.read_text() == "keep" and (out / "index.html").is_file()


def test_a_build_that_stops_leaves_every_page_it_wrote_listed(
        ledger: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Evaluation pages are written as they are rendered: the manifest lists them before, no key is kept."""
    from site_generator import build

    out = tmp_path / "site"

    def stop(*args: object) -> None:
        raise RuntimeError("killed")

    with monkeypatch.context() as m:
        m.setattr(build, "_write", stop)
        with pytest.raises(RuntimeError):
            build_site(ledger, out)
    evaluation = f"bacteria/evaluations/alpha--{'a2' * 6}--dev.html"
    assert (out / evaluation).is_file() and evaluation in (out / ".jc-site-manifest").read_text().split()
    assert not (out / ".jc-site-pages").exists()
    # that record goes: the next build removes its page, as one it wrote itself
    shutil.rmtree(ledger / "evaluations" / f"alpha--{'a2' * 6}--dev")
    build_site(ledger, out)
    assert not (out / evaluation).exists()


def test_team_plots_share_a_rounded_span(ledger: Path, tmp_path: Path) -> None:
    import datetime as dt

    from site_generator.gather import gather
    from site_generator.leaderboard import challenges

    found, _ = challenges(gather(ledger).evaluations, ())
    bacteria = next(c for c in found if c.id == "bacteria")
    # first seen 2024-05-01 (a Wednesday) to 2024-06-01; public aji 0.1 to 0.8
    first, last, low, high = bacteria.scored_span  # type: ignore[misc]
    assert first == dt.datetime(2024, 4, 29, tzinfo=dt.UTC) and last == dt.datetime(2024, 6, 3, tzinfo=dt.UTC)
    assert (low, high) == pytest.approx((0.1, 0.8))
    cells = next(c for c in found if c.id == "cells")  # zeta 1.5, eta 0.5: a magnitude of 1
    assert cells.scored_span[2:] == (0.0, 2.0)  # type: ignore[index]


def test_times_are_shown_in_utc_to_the_second() -> None:
    from site_generator.pages import fmt_time

    assert fmt_time("2024-05-01T10:00:00Z") == "2024-05-01 10:00:00 UTC"
    assert fmt_time("2024-05-01T10:00:00.123456Z") == "2024-05-01 10:00:00 UTC"
    assert fmt_time("2024-05-01T12:00:00+02:00") == "2024-05-01 10:00:00 UTC"
    assert fmt_time("not a time") == "not a time" and fmt_time("") == "—"
