"""A site that explains itself: compact metric tables, what every column means, the final winner,
readable plots of one or two points, no one's home folder, late submissions shown as such."""

from __future__ import annotations

import dataclasses
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from test_competition import at, board, contest, push_variant, signed_team  # noqa: F401 - fixtures
from test_site import finalize, ledger, make, write  # noqa: F401 - ledger is a fixture

from jc_datalad.records import Evaluation, Status
from site_generator import build_site, metrics, plots

TAGS = [str(t) for t in range(50, 100, 5)]
THRESHOLDS = [f"{t / 100:.2f}" for t in range(50, 100, 5)]
SCORE_FAMILIES = ["precision", "recall", "f1", "ap", "mean_iou", "pq"]


def instance_metrics(x: float) -> dict[str, float]:
    """Every metric the instance_segmentation scorer reports (scorers.summarize_instances)."""
    m = {"n_images": 3.0, "sbd": x, "best_dice": x, "best_dice_truth": x, "dic": -0.5, "abs_dic": 0.5,
         "fg_dice": x, "ap": x / 2}
    for n, t in enumerate(TAGS):
        m.update({f"tp_{t}": 10.0 - n, f"fp_{t}": 2.0 + n, f"fn_{t}": 1.0 + n, f"precision_{t}": x,
                  f"recall_{t}": x, f"f1_{t}": x, f"ap{t}": x - n / 100, f"mean_iou_{t}": x, f"pq_{t}": x})
    return m


def instance_record(team: str, commit: str, score: float, first_seen: str, phase: str = "dev") -> Evaluation:
    ev = make(team, commit, score=score, first_seen=first_seen, phase=phase)
    challenge = {**ev.challenge, "primary": "sbd", "columns": ["sbd", "abs_dic", "ap50"]}
    return dataclasses.replace(ev, challenge=challenge, scorer={"name": "instance_segmentation", "version": "1"},
                               public=instance_metrics(score), metrics=instance_metrics(score),
                               private=instance_metrics(score / 2),
                               items=[{"name": "img_001", "part": "public", "metrics": instance_metrics(score),
                                       "error": None}])


class Tables(HTMLParser):
    """Every table of a page: caption, header cells, and rows of cell texts."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: list[dict] = []
        self._cell: list[str] | None = None
        self._caption = False
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag == "table":
            self.tables.append({"class": dict(attrs).get("class", ""), "caption": "", "rows": []})
        elif tag == "caption":
            self._caption = True
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th") and self.tables:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "caption":
            self._caption = False
        elif tag in ("td", "th") and self._cell is not None:
            self.tables[-1]["rows"][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._caption:
            self.tables[-1]["caption"] += data
        elif self._cell is not None:
            self._cell.append(data)


def grid(page: str, caption_start: str) -> dict[str, list[str]]:
    """The grid table whose caption starts so: header row under '', then family -> cells."""
    (table,) = [t for t in Tables(page).tables if t["caption"].startswith(caption_start)]
    head, *rows = table["rows"]
    return {"": head, **{r[0]: r[1:] for r in rows}}


@pytest.fixture
def instance_site(tmp_path: Path) -> tuple[Path, Path]:
    results = tmp_path / "results"
    for ev in (instance_record("alpha", "a1" * 20, 0.7, "2024-05-01T10:00:00Z"),
               instance_record("beta", "b1" * 20, 0.6, "2024-05-02T10:00:00Z")):
        write(results, ev)
    out = tmp_path / "site"
    assert build_site(results, out, strict=True).problems == ()
    return results, out


# -- compact metric tables ------------------------------------------------------------------------

def test_evaluation_page_shows_metrics_times_thresholds_with_counts_apart(instance_site) -> None:
    _, out = instance_site
    page = (out / "bacteria" / "evaluations" / f"alpha--{'a1' * 6}--dev.html").read_text()
    scores = grid(page, "Scores per IoU threshold on the public part")
    assert scores[""] == ["Metric", "Better", *THRESHOLDS]
    assert list(scores)[1:] == SCORE_FAMILIES  # the registry's order, not the record's
    assert scores["ap"] == ["higher", *(f"{0.7 - n / 100:.4f}" for n in range(10))]
    counts = grid(page, "Matched and unmatched objects per IoU threshold on the public part")
    assert list(counts)[1:] == ["tp", "fp", "fn"]
    assert counts["fp"] == ["lower", *(str(2 + n) for n in range(10))]  # whole numbers
    assert "n_images: <strong>3</strong>" in page
    # the scores without a threshold stay a plain table; no metric of a grid is a row of its own
    (plain,) = [t for t in Tables(page).tables if t["caption"].startswith("Scores on the public part")]
    names = [r[0] for r in plain["rows"][1:]]
    assert names == ["sbd (primary)", "abs_dic", "ap", "best_dice", "best_dice_truth", "dic", "fg_dice"]
    assert not re.search(r'<th scope="row">(precision|tp|fn|pq)_\d+|<th scope="row">ap50', page)
    # per public item: the plain scores only, not a hundred columns
    (items,) = [t for t in Tables(page).tables if t["caption"] == "Scores per public item"]
    assert len(items["rows"][0]) == 2 + 8


def test_private_metrics_get_the_same_compact_table_once_the_phase_ended(tmp_path: Path) -> None:
    from jc_datalad.standings import Row, Standings

    results = tmp_path / "results"
    ev = instance_record("alpha", "a1" * 20, 0.7, "2024-05-01T10:00:00Z")
    write(results, ev)
    out = tmp_path / "site"
    build_site(results, out, strict=True)
    page = (out / "bacteria" / "evaluations" / f"{ev.id}.html").read_text()
    assert "Scores per IoU threshold on the private part" not in page
    row = Row(rank=1, team="alpha", evaluation_id=ev.id, score=0.35, first_seen="2024-05-01T10:00:00Z",
              submissions=1, previous_rank=1, selected=(ev.id,))
    (results / "standings").mkdir()
    (results / "standings" / "dev-final.json").write_text(json.dumps(Standings(
        phase="dev", part="private", final=True, rows=(row,), rule="best private sbd").as_dict()))
    build_site(results, out, strict=True)
    page = (out / "bacteria" / "evaluations" / f"{ev.id}.html").read_text()
    private = grid(page, "Scores per IoU threshold on the private part")
    assert private["f1"] == ["higher", *["0.3500"] * 10]


def test_the_grid_comes_from_the_registry_for_any_names() -> None:
    """Thresholded names the registry knows make a grid (any thresholds); unknown names stay plain."""
    lay = metrics.layout(["f1_50", "f1_52.5", "recall_50", "tp_50", "tp_75", "n_images", "aji", "ap50"],
                         "instance_segmentation")
    assert lay.grid is not None and lay.grid.headers == ("0.50", "0.525")
    assert [f for f, _, _ in lay.grid.rows] == ["f1"]  # recall and ap at one threshold only stay plain rows
    assert [c.name for c in lay.scores] == ["recall_50", "aji", "ap50"]
    assert lay.count_grid is not None and [f for f, _, _ in lay.count_grid.rows] == ["tp"]
    assert [c.name for c in lay.counts] == ["n_images"]
    # another scorer's names with digits are not IoU thresholds
    plain = metrics.layout(["f1_50", "f1_75", "mae"], "regression")
    assert plain.grid is None and [c.name for c in plain.scores] == ["f1_50", "f1_75", "mae"]
    assert plain.scores[2].better == "min" and plain.scores[0].better is None


# -- every column explained -----------------------------------------------------------------------

def definitions(page: str) -> dict[str, str]:
    """dt text -> dd text of every definition list of a page."""
    pairs = re.findall(r"<dt>(.*?)</dt>\s*<dd>(.*?)</dd>", page, re.S)
    return {re.sub(r"<[^>]+>", "", dt_).strip(): re.sub(r"<[^>]+>", "", dd).strip() for dt_, dd in pairs}


def test_leaderboard_and_statistics_columns_have_definition_and_direction(instance_site) -> None:
    _, out = instance_site
    shown = definitions((out / "bacteria" / "leaderboard.html").read_text())
    assert shown["sbd (higher is better)"].startswith("Symmetric best Dice")
    assert shown["abs_dic (lower is better)"].startswith("|DiC|")
    assert shown["ap50 (higher is better)"].startswith("Average precision at IoU 0.5")
    for column in ("Rank", "Team", "Submissions", "Last submission"):
        assert shown[column]
    stats = definitions((out / "bacteria" / "statistics.html").read_text())
    assert stats["sbd_public (higher is better)"].startswith("Public sbd: Symmetric best Dice")
    for column in ("day", "submissions", "new_teams", "teams", "low", "high", "first_seen"):
        assert stats[column]
    page = definitions((out / "bacteria" / "evaluations" / f"alpha--{'a1' * 6}--dev.html").read_text())
    assert page["dic (closer to 0 is better)"].startswith("Difference in count")
    assert page["fn at IoU t (lower is better)"].startswith("False negatives at IoU t")
    assert page["n_images"].startswith("Number of images")


def test_a_min_challenge_says_lower_is_better_for_its_primary(tmp_path: Path) -> None:
    results = tmp_path / "results"
    ev = make("zeta", "z1" * 20, score=1.5, first_seen="2024-05-01T00:00:00Z", direction="min")
    write(results, dataclasses.replace(ev, scorer={"name": "regression", "version": "1"}))
    build_site(results, tmp_path / "site", strict=True)
    shown = definitions((tmp_path / "site" / "bacteria" / "leaderboard.html").read_text())
    assert "aji (lower is better)" in shown  # unknown to the registry: the challenge's direction
    assert shown["aji (lower is better)"] == "No definition in the scorer library."


# -- the final winner -----------------------------------------------------------------------------

def test_index_names_the_final_winner_once_the_phase_ended(ledger: Path, tmp_path: Path) -> None:  # noqa: F811
    build_site(ledger, tmp_path / "before")
    index = (tmp_path / "before" / "index.html").read_text()
    assert "dev: <span class=\"score\">0.8000</span> aji by beta (best public so far)" in index
    finalize(ledger)  # beta ranks first on the private part
    build_site(ledger, tmp_path / "after")
    index = (tmp_path / "after" / "index.html").read_text()
    row = index.split("Challenge bacteria", 1)[1].split("</tr>", 1)[0]
    winner = json.loads((ledger / "standings" / "dev-final.json").read_text())["rows"][0]
    assert f"dev (ended): won by <strong>{winner['team']}</strong> with <span class=\"score\">" \
           f"{winner['score']:.4f}</span> aji on the private part" in row
    # phase final has no standings: its best public score so far
    assert "final: <span class=\"score\">0.1000</span> aji by alpha (best public so far)" in row


# -- plots of one or two points -------------------------------------------------------------------

def ticks(svg: str) -> list[str]:
    return [re.sub(r"<[^>]+>", "", t) for t in re.findall(r"<text[^>]*>[^<]*</text>", svg)]


def numbers(labels: list[str]) -> list[float]:
    return [float(x) for x in labels if re.fullmatch(r"−?-?\d+(\.\d+)?", x.replace("−", "-"))]


@pytest.mark.parametrize("value", [1, 2])
def test_count_plots_of_one_point_have_whole_number_axes_from_zero(value: int) -> None:
    import datetime as dt

    when = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    svg = str(plots.steps("t", "teams", [("teams", [when], [value])], ylabel="teams", counts=True))
    ys = numbers(ticks(svg))
    assert ys and all(y == int(y) for y in ys) and min(ys) == 0 and max(ys) >= value, ys
    bars = str(plots.bars("b", "per day", ["2024-05-01"], [value], ylabel="submissions"))
    assert all(y == int(y) for y in numbers(ticks(bars))), ticks(bars)


def test_a_score_plot_of_one_value_gets_a_rounded_axis() -> None:
    import datetime as dt

    when = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
    svg = str(plots.steps("s", "best", [("phase dev", [when, when + dt.timedelta(hours=1)], [2.0, 2.0])],
                          ylabel="best", markers=True))
    ys = numbers(ticks(svg))
    assert min(ys) <= 1.0 and max(ys) >= 3.0, ys  # 1-3 around 2.0, not matplotlib's 1.90-2.10
    assert plots.rounded_range(2.0, 2.0) == (1.0, 3.0)
    assert plots.rounded_range(0.7, 0.7) == pytest.approx((0.6, 0.8))
    assert plots.rounded_range(0.62, 0.81) == pytest.approx((0.6, 0.9))


def test_team_and_statistics_plots_of_one_submission(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write(results, make("solo", "a1" * 20, score=2.0, first_seen="2024-05-01T10:00:00Z"))
    build_site(results, tmp_path / "site", strict=True)
    team = (tmp_path / "site" / "bacteria" / "teams" / "solo.html").read_text()
    ys = numbers(ticks(team))
    assert min(ys) <= 1.0 and max(ys) >= 3.0, ys
    stats = (tmp_path / "site" / "bacteria" / "statistics.html").read_text()
    assert "1.9" not in ticks(stats) and "2.1" not in ticks(stats)
    assert "1.5–1.6" not in stats  # numpy's ±0.5 bins around a single score


# -- no one's home folder -------------------------------------------------------------------------

HOME = "/home/alice"


def test_no_home_folder_on_any_page_or_export(tmp_path: Path) -> None:
    results = tmp_path / "results"
    ev = make("alpha", "a1" * 20, score=0.7, first_seen="2024-05-01T10:00:00Z")
    cmd = f"{HOME}/venv/bin/python3 -m datalad_container.adapters.docker run . python predict.py"
    step = {**ev.submission["steps"][0], "recorded_cmd": cmd}
    ev = dataclasses.replace(
        ev, submission={**ev.submission, "repository": f"{HOME}/teams/alpha.git", "steps": [step]},
        reproduce=[f"jc runner reproduce {ev.id} --config /root/challenges/runner.yaml",
                   f"datalad clone {HOME}/teams/alpha.git submission"])
    failed = make("beta", "b1" * 20, score=None, first_seen="2024-05-02T10:00:00Z", status=Status.FAILED,
                  reason=f"step 1 ({HOME}/venv/bin/python3 predict.py) exited with code 1")
    for record in (ev, failed):
        write(results, record)
    bad = json.loads(ev.to_json())
    bad.update(id="gamma--c1c1c1c1c1c1--dev", team="gamma", split=f"{HOME}/oops")
    bad["submission"]["first_seen"] = f"{HOME}/not-a-time"
    write(results, json.dumps(bad), folder="gamma--c1c1c1c1c1c1--dev")
    # the description pages: a clone URL that is a path in the organizer's home
    from test_site_description import describe, description

    data = description()
    data["challenge"].update(clone_url=f"{HOME}/ch", clone=[f"datalad clone {HOME}/ch bacteria"])
    describe(results, data)
    out = tmp_path / "site"
    report = build_site(results, out)
    assert any("gamma" in p for p in report.problems)  # an error page of a bad record too
    assert "datalad clone ~/ch bacteria" in (out / "bacteria" / "data.html").read_text()
    files = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith(".")]
    kinds = {p.suffix for p in files}
    assert {".html", ".json", ".csv"} <= kinds
    leaked = [str(p.relative_to(out)) for p in files if HOME in p.read_text() or "/root/" in p.read_text()]
    assert leaked == []
    page = (out / "bacteria" / "evaluations" / f"{ev.id}.html").read_text()
    assert "<code>python3 -m datalad_container.adapters.docker run . python predict.py</code>" in page
    assert "~/teams/alpha.git" in page and "--config ~/challenges/runner.yaml" in page
    assert "https://example.org/beta.git" in (out / "bacteria" / "evaluations" / f"{failed.id}.html").read_text()


# -- late submissions -----------------------------------------------------------------------------

def late_record(split: str, late_for: str | None) -> Evaluation:
    ev = make("late", "90" * 20, score=None, first_seen="2024-07-01T00:00:00Z", phase="closed",
              status=Status.REJECTED, reason="first seen at 2024-07-01T00:00:00Z, when no phase of the "
              "challenge was open")
    submission = {k: v for k, v in ev.submission.items() if k != "steps"}
    if late_for:
        submission["late_for"] = late_for
    return dataclasses.replace(ev, split=split, submission=submission, steps=[], items=[], stages={})


@pytest.mark.parametrize(("split", "late_for"), [("", None), ("closed", "dev")])
def test_a_late_submission_shows_as_late_and_builds_strictly(tmp_path: Path, split: str,
                                                             late_for: str | None) -> None:
    """Both what older runners wrote (split '') and what the runner writes now build in strict mode."""
    results = tmp_path / "results"
    write(results, make("alpha", "a1" * 20, score=0.7, first_seen="2024-05-01T10:00:00Z"))
    late = late_record(split, late_for)
    write(results, late)
    out = tmp_path / "site"
    assert build_site(results, out, strict=True).problems == ()
    shown = (out / "bacteria" / "leaderboard.html").read_text()
    assert "<h2>Late submissions</h2>" in shown and "Phase closed" not in shown
    assert ("(after phase dev ended)" in shown) == bool(late_for)
    page = (out / "bacteria" / "evaluations" / f"{late.id}.html").read_text()
    assert "late submission" in page and "<strong>Late:</strong>" in page
    assert "ran on no hidden split" in page
    assert ("after phase dev ended" in page) == bool(late_for)
    index = (out / "index.html").read_text()
    assert ">closed<" not in index
    listed = (out / "bacteria" / "submissions" / "closed-1.html").read_text()
    assert "<h1>Late submissions</h1>" in listed and "phase closed" not in listed


def test_the_site_knows_the_runners_phase_for_late_heads() -> None:
    from jc_datalad import admission
    from site_generator.leaderboard import OUTSIDE

    assert OUTSIDE == admission.CLOSED


@pytest.mark.slow
def test_the_runner_records_a_late_head_that_the_strict_site_shows(board, tmp_path: Path) -> None:  # noqa: F811
    repo, clone, _ = signed_team(board, "tardy")
    head = push_variant(clone, repo, "late", "too late")
    report = board.run(now=at("2027-01-21T00:00:00"))  # phase development ended 2027-01-20
    (ev,) = [e for e in report.evaluations if e.submission["commit"] == head]
    assert ev.status is Status.REJECTED and ev.phase == "closed" and ev.split == "closed"
    assert ev.submission["late_for"] == "development"
    assert "late, after phase development ended at 2027-01-20T00:00:00Z" in ev.reason
    out = tmp_path / "site"
    build_site(board.config.results, out, strict=True)
    page = (out / ev.challenge["id"] / "evaluations" / f"{ev.id}.html").read_text()
    assert "after phase development ended" in page

