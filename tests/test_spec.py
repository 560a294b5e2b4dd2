"""challenge.yaml: typed loading, every problem reported at once, `jc challenge check`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from jc_datalad.cli import main
from jc_datalad.spec import (
    ChallengeType,
    SpecError,
    load_spec,
    parse_duration,
    parse_size,
    parse_spec,
)

TEMPLATE = Path(__file__).parents[1] / "challenge_templates" / "bacteria" / "challenge.yaml.j2"


def _template_spec() -> dict:
    import jinja2

    text = jinja2.Template(TEMPLATE.read_text()).render(
        challenge_id="bac-1", title="Bacteria", container="jc-env", seed=7, dev_start="2027-01-10T00:00:00Z",
        dev_end="2027-03-01T00:00:00Z", merge_deadline="2027-02-01T00:00:00Z")
    return yaml.safe_load(text)


def test_template_spec_loads_typed():
    spec = parse_spec(_template_spec())
    assert spec.type is ChallengeType.INFERENCE
    assert spec.interface.inputs == "inputs/test"
    assert spec.resources.time_s == 600
    assert spec.resources.memory_bytes == 4 * 2**30
    assert spec.metrics.primary == "sbd" and spec.metrics.columns[0] == "sbd"
    assert "inputs" in spec.denied_paths and ".datalad" in spec.denied_paths
    assert [p.name for p in spec.phases] == ["development"] and spec.phases[0].per_day == 5
    assert spec.submission.signed and spec.teams.merge_deadline.year == 2027


def test_every_problem_is_reported_at_once():
    data = _template_spec()
    data["type"] = "guessing"
    data["resources"]["time"] = "soon"
    data["metrics"]["scorer"] = "nope"
    data["interface"]["outputs"] = "../escape"
    data["colour"] = "blue"
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    keys = {p.key for p in info.value.problems}
    assert keys == {"type", "resources.time", "metrics.scorer", "interface.outputs", "colour"}
    text = str(info.value)
    assert "must be one of results, inference, training" in text
    assert "'soon'" in text


def test_phases_are_checked():
    data = _template_spec()
    data["phases"] = [{"name": "dev", "start": "2027-01-10", "end": "2027-01-01", "split": "test"}]
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert [p.key for p in info.value.problems] == ["phases[0].end"]


@pytest.mark.parametrize("text,seconds", [("30m", 1800), ("90s", 90), (45, 45), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text,size", [("4G", 4 * 2**30), ("512M", 512 * 2**20), ("1GiB", 2**30), (10, 10)])
def test_sizes(text, size):
    assert parse_size(text) == size


def test_cli_check_exit_codes(tmp_path):
    good = tmp_path / "good"
    good.mkdir()
    (good / "challenge.yaml").write_text(yaml.safe_dump(_template_spec()))
    result = CliRunner().invoke(main, ["challenge", "check", str(good)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output

    bad = tmp_path / "bad.yaml"
    data = _template_spec()
    del data["metrics"]["primary"]
    data["container"] = "jc-env"
    bad.write_text(yaml.safe_dump(data))
    result = CliRunner().invoke(main, ["challenge", "check", str(bad)])
    assert result.exit_code == 1
    assert "metrics.primary" in result.output and "container" in result.output


def test_unreadable_yaml_is_one_problem(tmp_path):
    path = tmp_path / "challenge.yaml"
    path.write_text("id: [unclosed\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.problems[0].key == "(syntax)"


def test_every_command_has_help():
    import click

    def walk(cmd, path):
        yield path, cmd
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from walk(sub, [*path, name])

    for path, cmd in walk(main, []):
        assert cmd.help or cmd.short_help, f"jc {' '.join(path)} has no help text"
        result = CliRunner().invoke(main, [*path, "--help"])
        assert result.exit_code == 0, (path, result.output)


def test_logs_and_evaluation_time():
    from jc_datalad.spec import LogVisibility

    data = _template_spec()
    spec = parse_spec(data)
    assert spec.logs is LogVisibility.ORGANIZERS
    assert spec.resources.evaluation_time_s == 4 * spec.resources.time_s
    data["logs"] = "team-encrypted"
    data["resources"]["evaluation_time"] = "2h"
    spec = parse_spec(data)
    assert spec.logs is LogVisibility.TEAM_ENCRYPTED and spec.resources.evaluation_time_s == 7200
    assert spec.as_dict()["logs"] == "team-encrypted" and spec.summary()["logs"] == "team-encrypted"
    assert spec.as_dict()["resources"]["evaluation_time_s"] == 7200
    data["logs"] = "everyone"
    data["resources"]["evaluation_time"] = "1s"
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    assert {p.key for p in info.value.problems} == {"logs", "resources.evaluation_time"}
