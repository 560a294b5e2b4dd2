"""Every template, end to end: its starter kit and its better solution go through the real runner.

For each template in ``jc_datalad.challenge.TEMPLATES`` a challenge is made at the default size,
the starter kit and the better solution are recorded with the steps of the template's
``participant.yaml`` (``datalad containers-run``) and pushed as two teams, and one runner pass
evaluates both on the hidden data: the better solution must score better on the primary metric.
A template whose type the runner cannot evaluate yet fails here; it is not skipped.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from jc_datalad import participant
from jc_datalad.challenge import TEMPLATES
from jc_datalad.demo import solution_files
from jc_datalad.records import Status
from jc_datalad.templates import iter_templates, templates_folder

#: Modules beyond numpy, tifffile and the standard library: a template whose code imports one of
#: them runs in the ``full`` image, the others in the small ``minimal`` one.
_FULL_ONLY = re.compile(r"^\s*(?:import|from)\s+(scipy|skimage)\b", re.M)


def needs_full_image(template: str) -> bool:
    folder = templates_folder() / template
    sources = [*(folder / "code").rglob("*.py"), *(folder / "solutions" / "better").rglob("*.py")]
    return any(_FULL_ONLY.search(p.read_text(encoding="utf-8")) for p in sources)


@pytest.fixture(scope="session")
def full_image() -> Path:
    from jc_datalad import image
    from jc_datalad.config import default_cache_dir

    return image.build_image(image.RECIPES["full"], cache_dir=default_cache_dir() / "images")


def test_templates_command_lists_every_template_on_one_line():
    from jc_datalad.cli import main

    result = CliRunner().invoke(main, ["challenge", "templates"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    described = {t.name: t for t in iter_templates()}
    assert set(described) == set(TEMPLATES) and TEMPLATES
    for name in TEMPLATES:
        mine = [line for line in lines if line.split()[:1] == [name]]
        assert len(mine) == 1, (name, result.output)
        assert described[name].description in mine[0]
        assert described[name].type in ("results", "inference", "training"), (name, described[name].type)


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_is_complete(name):
    """The files of docs/templates.md, steps that parse, and a better solution that changes code/."""
    folder = templates_folder() / name
    for required in ("__init__.py", "generate.py", "challenge.yaml.j2", "README.md.j2", "participant.yaml"):
        assert (folder / required).is_file(), f"{folder}/{required} missing"
    assert any((folder / "code").iterdir())
    assert participant.template_steps(name)
    better = solution_files(name, "better")
    starter = folder / "code"
    assert any(not (starter / rel.removeprefix("code/")).is_file()
               or (starter / rel.removeprefix("code/")).read_bytes() != path.read_bytes()
               for rel, path in better.items()), "solutions/better/ changes nothing"


@pytest.mark.slow
@pytest.mark.parametrize("name", TEMPLATES)
def test_better_solution_outranks_the_starter_kit_on_hidden_data(name, work, request):
    from jc_datalad.challenge import new_challenge
    from jc_datalad.config import load_config
    from jc_datalad.runner import run_once
    from jc_datalad.spec import load_spec
    from jc_datalad.teams import add_team

    fixture = "full_image" if needs_full_image(name) else "minimal_image"
    image = request.getfixturevalue(fixture)
    made = new_challenge(name, work / "org", challenge_id=f"{name}-t", image=str(image),
                         start=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), weeks=52 * 50)
    spec_file = made.public / "challenge.yaml"
    spec_file.write_text(spec_file.read_text().replace("signed: true", "signed: false"))
    participant.sh(["datalad", "save", "-m", "Unsigned submissions for the test"], cwd=made.public)
    teams = work / "teams.yaml"
    teams.write_text("teams: {}\n")
    config_file = work / "runner.yaml"
    config_file.write_text(yaml.safe_dump({
        "challenge": str(made.public), "private": str(made.private), "results": str(work / "results"),
        "work": str(work / "jc-work"), "teams": str(teams), "workers": 2,
    }))

    steps = participant.template_steps(name)
    for team, files in (("baseline", None), ("better", solution_files(name, "better"))):
        # a clone each: a training submission holds exactly its two recorded steps
        clone = participant.clone_challenge(made.public, work / "participants" / team)
        repo = participant.make_team_repository(work / "teams" / f"{team}.git")
        add_team(teams, team, str(repo))
        participant.record_steps(clone, steps, files=files, message=f"{team} solution")
        participant.push_submission(clone, repo, f"{team}-1")

    report = run_once(load_config(config_file))
    by_team = {ev.team: ev for ev in report.evaluations}
    assert set(by_team) == {"baseline", "better"}, report
    for ev in by_team.values():
        assert ev.status is Status.EVALUATED, (ev.team, ev.status, ev.reason)
    spec = load_spec(made.public)
    primary = spec.metrics.primary
    better, baseline = by_team["better"].metrics[primary], by_team["baseline"].metrics[primary]
    assert better is not None and baseline is not None, (primary, better, baseline)
    if spec.metrics.direction.value == "max":
        assert better > baseline, (primary, better, baseline)
    else:
        assert better < baseline, (primary, better, baseline)


def test_demo_teams_follow_the_template():
    from jc_datalad.demo import demo_teams

    assert [t.name for t in demo_teams("bacteria")] == ["baseline", "better", "tinkerer", "mallory"]
    for name in TEMPLATES:
        teams = {t.name: t for t in demo_teams(name)}
        assert teams["baseline"].files == {}
        assert teams["better"].files == solution_files(name, "better")
        assert ("mallory" in teams) == (templates_folder() / name / "solutions" / "cheat").is_dir()


@pytest.mark.parametrize(("rows", "error"), [
    ([{"team": "better", "rank": 1}, {"team": "baseline", "rank": 2}], None),
    ([{"team": "better", "rank": 1}, {"team": "tinkerer", "rank": 1}, {"team": "baseline", "rank": 3}], None),
    ([{"team": "baseline", "rank": 1}, {"team": "better", "rank": 2}], "does not lead"),
    ([{"team": "baseline", "rank": 1}], "no rank for team better"),
    ([{"team": "tinkerer", "rank": 1}, {"team": "better", "rank": 2}, {"team": "baseline", "rank": 3}],
     "not first"),
])
def test_the_demo_fails_loudly_unless_the_better_solution_leads(rows, error):
    from jc_datalad.demo import check_better_leads
    from jc_datalad.errors import JcError

    if error is None:
        check_better_leads({"rows": rows})
    else:
        with pytest.raises(JcError, match=error):
            check_better_leads({"rows": rows})


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("name", ["roots", "hep"])
def test_generator_is_deterministic_and_hidden_labels_match_inputs(name, tmp_path):
    import importlib

    gen = importlib.import_module(f"challenge_templates.{name}.generate")
    small = gen.SIZES["default"].__class__(**{**vars(gen.SIZES["default"]), "items": 2, "hidden_items": 3})
    gen.write_data(tmp_path / "a", small, 3)
    gen.write_data(tmp_path / "b", small, 3)
    first = _tree(tmp_path / "a")
    assert first == _tree(tmp_path / "b")
    assert first != _tree(gen.write_data(tmp_path / "c", small, 4) or tmp_path / "c")
    hidden = tmp_path / "a" / "hidden" / "test"
    labels = sorted(p.stem for p in (hidden / "labels").glob("*.csv"))
    inputs = sorted(p.stem for p in (hidden / "inputs").iterdir() if p.suffix in (".csv", ".tif"))
    assert labels == inputs and len(labels) == 3
    public = {p.read_bytes() for p in (tmp_path / "a" / "public" / "test").iterdir()
              if p.suffix in (".csv", ".tif")}
    assert not public & {p.read_bytes() for p in (hidden / "inputs").iterdir() if p.suffix in (".csv", ".tif")}
    # a truth table the scorers read: an id column equal to the file's stem and the scored value columns
    # (roots: length and count, both scored with the regression scorer's columns option)
    value_columns = {"roots": ["length_mm", "roots"], "hep": None}[name]
    for path in (hidden / "labels").glob("*.csv"):
        header, row = path.read_text().splitlines()
        assert row.split(",")[0] == path.stem
        if value_columns is None:
            assert len(header.split(",")) == 2
        else:
            assert header.split(",")[1:] == value_columns


def test_demo_of_an_unknown_template_names_the_templates_and_touches_nothing(tmp_path):
    from jc_datalad.cli import main

    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "runner.yaml").write_text("earlier demo\n")
    result = CliRunner().invoke(main, ["demo", str(tmp_path / "demo"), "--template", "nope"])
    assert result.exit_code != 0
    assert "unknown template 'nope'" in result.output and "bacteria" in result.output
    assert (tmp_path / "demo" / "runner.yaml").read_text() == "earlier demo\n"
