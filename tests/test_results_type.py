"""Submission type ``results`` (option 1): committed predictions scored as submitted, ``verify: rerun``
re-executes the recorded run on the public inputs and compares, and hostile predictions are refused."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
import yaml
from conftest import Arena, Challenge, sh

from jc_datalad import participant
from jc_datalad.records import Evaluation, Status
from jc_datalad.spec import SpecError, Verify, parse_spec
from jc_datalad.submit import check_submission
from jc_datalad.workflows.results import first_difference, verification

TEMPLATE = Path(__file__).parent.parent / "challenge_templates" / "coatings"
COMMAND = "python code/predict.py inputs/train inputs/test predictions"


@pytest.fixture(scope="session")
def coatings(session_dir, minimal_image) -> Challenge:
    """The coatings template at its default size, with the minimal image (numpy is all it needs)."""
    import datalad.api as dl

    from jc_datalad.challenge import new_challenge

    made = new_challenge("coatings", session_dir / "coatings-org", challenge_id="coatings-test",
                         image=str(minimal_image), start=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), weeks=52 * 50)
    spec = made.public / "challenge.yaml"
    # unsigned, and an output limit small enough that a test can exceed it cheaply
    text = spec.read_text().replace("signed: true", "signed: false").replace("output: 10M", "output: 1M")
    spec.write_text(text)
    dl.save(dataset=str(made.public), message="Unsigned submissions, 1M outputs, for the tests",
            result_renderer="disabled")
    return Challenge(session_dir / "coatings-org", made.public, made.private, made.config)


@pytest.fixture
def arena(coatings, work) -> Arena:
    config = work / "runner.yaml"
    teams = work / "teams.yaml"
    teams.write_text("teams: {}\n")
    config.write_text(yaml.safe_dump({
        "challenge": str(coatings.public), "private": str(coatings.private),
        "results": str(work / "results"), "work": str(work / "jc-work"), "teams": str(teams), "workers": 2,
    }))
    return Arena(coatings, work, config, teams)


def _clone(arena: Arena, name: str) -> Path:
    return participant.clone_challenge(arena.challenge.public, arena.root / "participants" / name, inputs="inputs")


def _record(clone: Path, solution: Path | None = None) -> None:
    """The run of the template's participant.yaml, recorded with ``datalad containers-run``."""
    steps = yaml.safe_load((TEMPLATE / "participant.yaml").read_text())["steps"]
    assert [s["command"] for s in steps] == [COMMAND]
    participant.record_prediction(clone, inputs="inputs", outputs="predictions", command=COMMAND,
                                  files={"code/predict.py": solution} if solution else None)


def _submit(arena: Arena, name: str, solution: Path | None = None) -> Path:
    clone = _clone(arena, name)
    _record(clone, solution)
    return clone


def _by_team(report) -> dict[str, Evaluation]:
    return {ev.team: ev for ev in report.evaluations}


def test_verify_is_parsed_for_results_challenges_only():
    base = {"id": "c", "title": "C", "type": "results", "container": {"name": "jc-env"},
            "interface": {"inputs": "inputs/test", "outputs": "predictions", "format": "csv"},
            "metrics": {"scorer": "regression", "primary": "r2", "columns": ["r2", "mean_relative_error"]}}
    assert parse_spec(base).verify is Verify.NONE
    spec = parse_spec({**base, "verify": "rerun"})
    assert spec.verify is Verify.RERUN
    assert spec.as_dict()["verify"] == "rerun" and spec.summary()["verify"] == "rerun"
    with pytest.raises(SpecError, match="verify.*must be one of"):
        parse_spec({**base, "verify": "always"})
    with pytest.raises(SpecError, match="applies to type results only"):
        parse_spec({**base, "type": "inference", "verify": "rerun"})


def test_old_records_read_without_verification():
    ev = Evaluation.from_dict({"id": "a", "challenge": {}, "team": "t", "submission": {}, "phase": "p",
                               "split": "test", "status": "evaluated"})
    assert ev.verification == {}


def test_first_difference_names_the_first_differing_or_missing_file(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for root in (a, b):
        (root / "sub").mkdir(parents=True)
        (root / "x.csv").write_text("1\n")
        (root / "sub" / "y.csv").write_text("2\n")
    assert first_difference(a, b) is None
    (b / "sub" / "y.csv").write_text("2.0\n")
    assert first_difference(a, b) == "sub/y.csv"
    (a / "w.csv").write_text("")
    assert first_difference(a, b) == "sub/y.csv"  # sorted: 'sub/y.csv' < 'w.csv'
    (b / "sub" / "y.csv").write_text("2\n")
    assert first_difference(a, b) == "w.csv"
    assert verification(False, "x" * 1000)["first_difference"] == "x" * 255


def test_site_note_escapes_and_bounds_the_participants_file_name():
    from site_generator.build import environment
    from site_generator.pages import scored_as

    def record(kind: str, verification: object) -> Evaluation:
        return Evaluation.from_dict({"id": "t--0--p", "challenge": {"type": kind}, "team": "t", "submission": {},
                                     "phase": "p", "split": "test", "status": "evaluated",
                                     "verification": verification})

    assert scored_as(record("inference", {})) == ""
    assert scored_as(record("results", {})) == "scored as submitted"
    assert scored_as(record("results", "junk")) == "scored as submitted"
    ok = {"mode": "rerun", "reproduced": True, "first_difference": None}
    assert scored_as(record("results", ok)) == "scored as submitted, reproduced"
    failed = {"mode": "rerun", "reproduced": False, "first_difference": None}
    assert scored_as(record("results", failed)) == "scored as submitted, not reproduced (the rerun did not finish)"
    hostile = {"mode": "rerun", "reproduced": False, "first_difference": "<script>alert(1)</script>\x1b[2J" + "a" * 500}
    note = scored_as(record("results", hostile))
    assert "\x1b" not in note and len(note) < 140 and note.endswith("…)")
    html = environment().from_string("{{ ev | scored_as }}").render(ev=record("results", hostile))
    assert "<script>" not in html and "&lt;script&gt;" in html


@pytest.mark.slow
def test_better_solution_outranks_the_starter_kit_and_both_reproduce(arena):
    for name, solution in (("starter", None), ("better", TEMPLATE / "solutions" / "better" / "predict.py")):
        clone = _submit(arena, name, solution)
        participant.push_submission(clone, arena.team(name), "s1")
    # the same predictions, annexed: fetched from the team's repository and checked against their keys
    clone = _submit(arena, "annexed")
    sh("git", "rm", "-q", "--cached", "-r", "predictions", cwd=clone)
    sh("git", "annex", "add", "--force-large", "predictions", cwd=clone)
    sh("git", "commit", "-q", "-m", "predictions into the annex", cwd=clone)
    assert (clone / "predictions" / "campaign_000.csv").is_symlink()
    participant.push_submission(clone, arena.team("annexed"), "s1")
    # code broken after the run: the committed predictions still count, the rerun fails
    clone = _submit(arena, "broken")
    (clone / "code" / "predict.py").write_text("raise SystemExit(3)\n")
    sh("datalad", "save", "-m", "broken after the recorded run", cwd=clone)
    participant.push_submission(clone, arena.team("broken"), "s1")

    found = _by_team(arena.run())
    broken = found.pop("broken")
    assert broken.status is Status.EVALUATED, broken.reason
    assert broken.verification["reproduced"] is False and broken.verification["first_difference"] is None
    assert "the re-executed steps failed: step 1" in broken.verification["reason"]
    assert broken.metrics == found["starter"].metrics
    assert found["annexed"].metrics == found["starter"].metrics
    for ev in found.values():
        assert ev.status is Status.EVALUATED, ev.reason
        assert ev.challenge["type"] == "results"
        assert ev.verification == {"mode": "rerun", "reproduced": True, "first_difference": None}
        assert ev.metrics["n"] == 30  # every test sample of the 6 campaigns, scored
    assert found["better"].metrics["r2"] > found["starter"].metrics["r2"]
    assert found["better"].metrics["mean_relative_error"] < found["starter"].metrics["mean_relative_error"]


@pytest.mark.slow
def test_predictions_edited_after_the_run_are_scored_but_not_reproduced(arena):
    clone = _submit(arena, "editor")
    edited = clone / "predictions" / "campaign_001.csv"
    sh("git", "annex", "unlock", "predictions", cwd=clone)  # a no-op where the CSVs are in git
    lines = edited.read_text().splitlines()
    sample = lines[1].split(",")[0]
    lines[1] = f"{sample},1500.0"
    edited.write_text("\n".join(lines) + "\n")
    sh("datalad", "save", "-m", "a better number by hand", cwd=clone)
    participant.push_submission(clone, arena.team("editor"), "s1")

    # jc submit check says so before the push reaches the runner
    check = check_submission(clone, run=True)
    assert check.ok, check.problems
    assert any("not reproduced" in w and "campaign_001.csv" in w for w in check.warnings), check.warnings

    (ev,) = arena.run().evaluations
    assert ev.status is Status.EVALUATED, ev.reason  # scored as submitted
    assert ev.verification == {"mode": "rerun", "reproduced": False, "first_difference": "campaign_001.csv"}
    assert ev.metrics["r2"] is not None

    from site_generator.build import build_site

    site = arena.root / "site"
    report = build_site(arena.config.results, site, strict=True)
    assert not report.problems
    note = "scored as submitted, not reproduced (first difference: campaign_001.csv)"
    assert note in (site / "coatings-test" / "evaluations" / f"{ev.id}.html").read_text()
    assert note in (site / "coatings-test" / "leaderboard.html").read_text()


@pytest.mark.slow
def test_predictions_without_a_run_record_are_refused(arena):
    clone = _clone(arena, "norecord")
    sh("python3", "code/predict.py", "inputs/train", "inputs/test", "predictions", cwd=clone)
    sh("datalad", "save", "-m", "predictions made outside containers-run", cwd=clone)
    participant.push_submission(clone, arena.team("norecord"), "s1")
    (ev,) = arena.run().evaluations
    assert ev.status is Status.REFUSED
    assert "no `datalad containers-run` record" in ev.reason
    assert "scored only with the run record that wrote them" in ev.reason
    check = check_submission(clone)
    assert not check.ok and any("containers-run" in p for p in check.problems)


def _add(clone: Path, kind: str) -> None:
    out = clone / "predictions"
    if kind == "symlink":
        os.symlink("../inputs/train/coatings_train.csv", out / "campaign_009.csv")
    elif kind == "huge":
        (out / "campaign_009.csv").write_text("sample_id,cycles_to_failure\n" + "x,1\n" * 400_000)
    elif kind == "many":
        for i in range(60):
            (out / f"extra_{i:03d}.csv").write_text("sample_id,cycles_to_failure\n")
    elif kind == "odd":
        (out / "campaign_\x1b[31m.csv").write_text("sample_id,cycles_to_failure\n")
    elif kind == "hidden":
        (out / ".campaign_000.csv").write_text("sample_id,cycles_to_failure\n")
    sh("datalad", "save", "-m", f"hostile predictions: {kind}", cwd=clone)


@pytest.mark.slow
def test_hostile_committed_predictions_are_refused_with_a_reason(arena):
    expected = {
        "symlink": "does not point into the annex",
        "huge": "exceed the 1048576-byte output limit",
        "many": "more than 28 files",
        "odd": "its name holds a control character",
        "hidden": "is a hidden name",
    }
    for kind, words in expected.items():
        clone = _submit(arena, kind)
        _add(clone, kind)
        # jc submit check collects the committed predictions as the runner does: the same reason
        check = check_submission(clone)
        assert not check.ok and any(words in p for p in check.problems), (kind, check.problems)
        participant.push_submission(clone, arena.team(kind), "s1")
    found = _by_team(arena.run())
    for kind, words in expected.items():
        ev = found[kind]
        assert ev.status is Status.REFUSED, (kind, ev.status, ev.reason)
        assert words in ev.reason, (kind, ev.reason)


@pytest.mark.slow
def test_without_verify_nothing_is_executed(work, minimal_image):
    """``verify`` left out: the committed predictions are scored and no step runs, not even on public data."""
    import datalad.api as dl

    from jc_datalad.challenge import new_challenge

    made = new_challenge("coatings", work / "org", challenge_id="coatings-noverify", image=str(minimal_image),
                         start=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), weeks=52 * 50)
    spec = made.public / "challenge.yaml"
    text = spec.read_text().replace("signed: true", "signed: false")
    spec.write_text("\n".join(line for line in text.splitlines() if not line.startswith("verify:")) + "\n")
    dl.save(dataset=str(made.public), message="No rerun", result_renderer="disabled")
    teams = work / "teams.yaml"
    teams.write_text("teams: {}\n")
    config = work / "runner.yaml"
    config.write_text(yaml.safe_dump({
        "challenge": str(made.public), "private": str(made.private), "results": str(work / "results"),
        "work": str(work / "jc-work"), "teams": str(teams)}))
    arena = Arena(Challenge(work / "org", made.public, made.private, made.config), work, config, teams)
    clone = _submit(arena, "plain")
    (clone / "code" / "predict.py").write_text("raise SystemExit(3)\n")  # would fail if it ran
    sh("datalad", "save", "-m", "broken after the recorded run", cwd=clone)
    participant.push_submission(clone, arena.team("plain"), "s1")
    (ev,) = arena.run().evaluations
    assert ev.status is Status.EVALUATED, ev.reason
    assert ev.challenge["verify"] == "none"
    assert ev.steps == [] and ev.verification == {}
    assert ev.metrics["n"] == 30 and ev.submission["steps"][0]["command"] == COMMAND
