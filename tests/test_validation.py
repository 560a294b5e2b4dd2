"""One validation layer for the organizer's input files: challenge.yaml, runner.yaml, teams.yaml."""

from __future__ import annotations

from pathlib import Path

from jc_datalad.config import load_config


def _runner_yaml(folder: Path, extra: str = "") -> Path:
    path = folder / "runner.yaml"
    path.write_text("challenge: c\nprivate: p\nresults: r\n" + extra)
    return path


def test_runner_logs_folder_defaults_beside_runner_yaml(tmp_path):
    config = load_config(_runner_yaml(tmp_path))
    assert config.logs == (tmp_path / "private-logs").resolve()
    config = load_config(_runner_yaml(tmp_path, "logs: ../elsewhere/logs\n"))
    assert config.logs == (tmp_path.parent / "elsewhere" / "logs").resolve()


# --- challenge.yaml: one test per malformed-input class --------------------------------------

import time  # noqa: E402

import jinja2  # noqa: E402
import pytest  # noqa: E402
from click.testing import CliRunner  # noqa: E402

from jc_datalad.cli import main  # noqa: E402
from jc_datalad.config import ConfigError, TeamsError, read_teams  # noqa: E402
from jc_datalad.errors import JcError  # noqa: E402
from jc_datalad.spec import SpecError, load_spec  # noqa: E402

TEMPLATE = Path(__file__).parents[1] / "challenge_templates" / "bacteria" / "challenge.yaml.j2"


def _good() -> str:
    return jinja2.Template(TEMPLATE.read_text()).render(
        challenge_id="bac-1", title="Bacteria", container="jc-env", seed=7, dev_start="2027-01-10T00:00:00Z",
        dev_end="2027-03-01T00:00:00Z", merge_deadline="2027-02-01T00:00:00Z") + "\n"


def _spec_problems(tmp_path: Path, text: str | bytes) -> list:
    path = tmp_path / "challenge.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(path) in str(info.value)
    return info.value.problems


def test_good_template_loads(tmp_path):
    (tmp_path / "challenge.yaml").write_text(_good())
    assert load_spec(tmp_path).id == "bac-1"


def test_syntax_error_has_line_and_column(tmp_path):
    text = _good().replace("  format: label-tiff", "  format: [label-tiff")
    [problem] = _spec_problems(tmp_path, text)
    assert problem.key == "(syntax)"
    assert problem.line == 9  # where the unclosed '[' meets the next key
    assert "from line 8, column 11" in problem.fix and "fix the YAML syntax" in problem.fix


def test_latin1_bytes_are_a_clear_error(tmp_path):
    raw = _good().replace("title: Bacteria", "title: Bactéria").encode("latin-1")
    [problem] = _spec_problems(tmp_path, raw)
    assert problem.key == "(encoding)" and (problem.line, problem.column) == (3, 12)
    assert "not UTF-8" in problem.fix and "save the file as UTF-8" in problem.fix


def test_alias_bomb_is_refused_fast(tmp_path):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev, name = chr(96 + i), chr(97 + i)
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    start = time.perf_counter()
    [problem] = _spec_problems(tmp_path, "\n".join(lines) + "\n")
    assert time.perf_counter() - start < 2
    assert "alias" in problem.fix


def test_deep_nesting_is_refused(tmp_path):
    [problem] = _spec_problems(tmp_path, "id: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested" in problem.fix


def test_duplicate_keys_are_errors(tmp_path):
    text = _good().replace("  primary: sbd\n", "  primary: sbd\n  primary: ap50\n") + "id: again\n"
    problems = _spec_problems(tmp_path, text)
    found = {(p.key, p.line) for p in problems}
    assert found == {("metrics.primary", 14), ("id", 25)}
    assert all("duplicate key (first at line" in p.fix for p in problems)


def test_unknown_key_suggests_the_known_one(tmp_path):
    problems = _spec_problems(tmp_path, _good().replace("  direction: max", "  directon: max"))
    [problem] = problems
    assert problem.key == "metrics.directon" and problem.line == 14
    assert "did you mean 'direction'?" in problem.fix


def test_string_where_a_list_belongs(tmp_path):
    [problem] = _spec_problems(tmp_path, _good().replace("columns: [sbd, abs_dic, f1_50, ap50]",
                                                         "columns: sbd, abs_dic"))
    assert problem.key == "metrics.columns" and "not a single text" in problem.fix


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1e400", "1.0e+400", "9" * 400, "40d", "0"])
def test_bad_durations_are_clear_errors(tmp_path, value):
    [problem] = _spec_problems(tmp_path, _good().replace("time: 10m", f"time: {value}"))
    assert problem.key == "resources.time" and problem.line == 10
    assert "duration" in problem.fix or "30d" in problem.fix or "at least" in problem.fix


@pytest.mark.parametrize("old, new, key", [
    ("memory: 4G", "memory: 5T", "resources.memory"),
    ("memory: 4G", "memory: -1", "resources.memory"),
    ("cpus: 2", "cpus: 100000", "resources.cpus"),
    ("cpus: 2", "cpus: 0", "resources.cpus"),
    ("processes: 256", "processes: -5", "resources.processes"),
    ("per_day: 5", "per_day: 10000000", "phases[0].per_day"),
    ("seed: 7", "seed: -1", "leaderboard.seed"),
    ("public_fraction: 0.3", "public_fraction: .inf", "leaderboard.public_fraction"),
    ("max_file_size: 100M", "max_file_size: 2e400", "submission.max_file_size"),
])
def test_numbers_have_bounds(tmp_path, old, new, key):
    [problem] = _spec_problems(tmp_path, _good().replace(old, new))
    assert problem.key == key and problem.line is not None


def test_unknown_metric_names_are_errors(tmp_path):
    text = _good().replace("primary: sbd", "primary: sbdx").replace("[sbd, abs_dic, f1_50, ap50]",
                                                                     "[sbd, abs_dicc, ap50]")
    problems = {p.key: p for p in _spec_problems(tmp_path, text)}
    assert set(problems) == {"metrics.primary", "metrics.columns[1]"}
    assert "reports no such metric; did you mean 'sbd'?" in problems["metrics.primary"].fix
    assert "did you mean 'abs_dic'?" in problems["metrics.columns[1]"].fix


def test_unknown_scorer_suggests(tmp_path):
    [problem] = _spec_problems(tmp_path, _good().replace("scorer: instance_segmentation",
                                                         "scorer: instance_segmentaton"))
    assert problem.key == "metrics.scorer" and "did you mean 'instance_segmentation'?" in problem.fix


def test_every_problem_at_once_in_file_order_with_places(tmp_path):
    text = _good().replace("type: inference", "type: guessing").replace("time: 10m", "time: soon")
    problems = _spec_problems(tmp_path, text)
    assert [(p.key, p.line) for p in problems] == [("type", 4), ("resources.time", 10)]


# --- runner.yaml ------------------------------------------------------------------------------


def test_runner_yaml_problems_have_places(tmp_path):
    path = _runner_yaml(tmp_path, "workers: .inf\nprotocols: file\nteam: t.yaml\nworkers: 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    found = {p.key: p for p in info.value.problems}
    assert set(found) == {"workers", "protocols", "team"}
    assert found["protocols"].line == 5 and "not a single text" in found["protocols"].fix
    assert "did you mean 'teams'?" in found["team"].fix
    assert sorted(p.line for p in info.value.problems if p.key == "workers") == [4, 7]  # .inf, the duplicate
    assert "duplicate key" in str(info.value)


def test_runner_yaml_refuses_ext_transport(tmp_path):
    with pytest.raises(ConfigError, match="'ext' runs commands"):
        load_config(_runner_yaml(tmp_path, "protocols: [file, ext]\n"))


def test_runner_yaml_latin1(tmp_path):
    path = tmp_path / "runner.yaml"
    path.write_bytes("challenge: défi\nprivate: p\nresults: r\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"runner.yaml:1:13: \(encoding\)"):
        load_config(path)


# --- teams.yaml -------------------------------------------------------------------------------


def _teams(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "teams.yaml"
    path.write_text(text)
    return path


def test_missing_teams_file_is_an_error_and_empty_file_is_zero_teams(tmp_path):
    with pytest.raises(JcError, match="not found: `jc challenge new` writes an empty one"):
        read_teams(tmp_path / "teams.yaml")
    assert read_teams(tmp_path / "teams.yaml", missing_ok=True).teams == {}
    assert read_teams(_teams(tmp_path, "teams: {}\n")).teams == {}
    with pytest.raises(TeamsError, match="teams: missing"):
        read_teams(_teams(tmp_path, "team: {}\n"))


def test_duplicate_teams_suspend_that_team_only(tmp_path):
    found = read_teams(_teams(tmp_path, "teams:\n  a:\n    repository: /r/a\n  b:\n    repository: /r/b\n"
                                        "  a:\n    repository: /r/a2\n"))
    assert sorted(found.teams) == ["b"] and found.suspended == {"a"}
    [problem] = found.by_team["a"]
    assert (problem.key, problem.line) == ("teams.a", 6) and "duplicate key (first at line 2)" in problem.fix


def test_team_entry_unknown_key_and_string_for_list(tmp_path):
    found = read_teams(_teams(tmp_path, "teams:\n  a:\n    repository: /r/a\n    key: ['ssh-ed25519 AAAA']\n"
                                        "  b:\n    repository: /r/b\n    members: ann\n  c:\n    repository: /r/c\n"))
    assert sorted(found.teams) == ["c"] and found.suspended == {"a", "b"}
    assert "did you mean 'keys'?" in found.by_team["a"][0].fix and found.by_team["a"][0].line == 4
    assert "not a single text" in found.by_team["b"][0].fix


def test_merged_into_unknown_team(tmp_path):
    found = read_teams(_teams(tmp_path, "teams:\n  a:\n    repository: /r/a\n    merged_into: bb\n"
                                        "  b:\n    repository: /r/b\n  c:\n    repository: /r/c\n"
                                        "    merged_into: a\n"))
    # a merged into a team that does not exist; c merged into a, so it waits with a
    assert sorted(found.teams) == ["b"] and found.suspended == {"a", "c"}
    [problem] = found.by_team["a"]
    assert (problem.key, problem.line) == ("teams.a.merged_into", 4)
    assert "no such team; did you mean 'b'?" in problem.fix or "no such team" in problem.fix


def test_teams_yaml_syntax_and_bomb(tmp_path):
    with pytest.raises(TeamsError, match=r"teams.yaml:4:1: \(syntax\): .* \(from line 3, column 17\)"):
        read_teams(_teams(tmp_path, "teams:\n  a:\n    repository: [x\n"))
    bomb = "x: &a [1,1,1,1,1,1,1,1,1,1]\n" + "".join(
        f"x{i}: &{chr(98 + i)} [" + ",".join([f"*{chr(97 + i)}"] * 10) + "]\n" for i in range(7))
    start = time.perf_counter()
    with pytest.raises(TeamsError, match="alias"):
        read_teams(_teams(tmp_path, bomb + "teams: {}\n"))
    assert time.perf_counter() - start < 2


# --- the CLI: a clean error, never a traceback ------------------------------------------------


def _runner_setup(tmp_path: Path, challenge: str, teams: str) -> Path:
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "challenge.yaml").write_text(challenge)
    (tmp_path / "teams.yaml").write_text(teams)
    config = tmp_path / "runner.yaml"
    config.write_text("challenge: public\nprivate: .\nresults: results\nteams: teams.yaml\n")
    return config


BAD_CHALLENGES = {
    "syntax": "id: [x\n",
    "latin1": "title: Bact\xe9ria\n",
    "inf": "resources: {time: .inf}\n",
    "dupes": "id: a\nid: b\n",
    "list": "- a\n- b\n",
}
BAD_TEAMS = {
    "syntax": "teams: [x\n",
    "latin1": "teams:\n  caf\xe9: {repository: /r}\n",
    "not-a-mapping": "teams: [a, b]\n",
    "unknown": "tems: {}\n",
}


@pytest.mark.parametrize("kind", sorted(BAD_CHALLENGES))
def test_cli_bad_challenge_yaml_is_a_clean_error(tmp_path, kind):
    text = BAD_CHALLENGES[kind]
    config = _runner_setup(tmp_path, "", "teams: {}\n")
    (tmp_path / "public" / "challenge.yaml").write_bytes(text.encode("latin-1"))
    for args in (["challenge", "check", str(tmp_path / "public")],
                 ["team", "merge", "a", "b", "--config", str(config)]):
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
        assert "Traceback" not in result.output and "challenge.yaml" in result.output


@pytest.mark.parametrize("kind", sorted(BAD_TEAMS))
def test_cli_bad_teams_yaml_is_a_clean_error(tmp_path, kind):
    config = _runner_setup(tmp_path, _good(), "")
    (tmp_path / "teams.yaml").write_bytes(BAD_TEAMS[kind].encode("latin-1"))
    for args in (["team", "check"], ["team", "list"], ["team", "add", "z", "--repository", "/r/z"],
                 ["team", "merge", "a", "b"]):
        result = CliRunner().invoke(main, [*args, "--config", str(config)])
        assert result.exit_code == 1, (args, result.output)
        assert isinstance(result.exception, SystemExit), (args, result.exception)
        assert "Traceback" not in result.output and "teams.yaml" in result.output, (args, result.output)


def test_cli_bad_runner_yaml_is_a_one_line_error(tmp_path):
    config = _runner_setup(tmp_path, _good(), "teams: {}\n")
    config.write_bytes(b"challenge: public\nprivate: .\nresults: results\nworkers: .inf\n")
    for args in (["team", "check"], ["team", "list"], ["runner", "run", "--once"],
                 ["runner", "override", "disqualify-team", "a", "--reason", "x"]):
        result = CliRunner().invoke(main, [*args, "--config", str(config)])
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ") and "runner.yaml:4:10: workers" in lines[0]


def test_cli_team_check_reports_every_team_problem(tmp_path):
    config = _runner_setup(tmp_path, _good(), "teams:\n  a:\n    repository: /r/a\n    merged_into: nobody\n"
                                              "  b:\n    repository: /r/b\n    keys: ['ssh-ed25519 AAAA']\n")
    result = CliRunner().invoke(main, ["team", "check", "--config", str(config)])
    assert result.exit_code == 1
    assert "teams.yaml:4:18: teams.a.merged_into: 'nobody': no such team" in result.output
    assert "teams.yaml:7:12: teams.b.keys[0]" in result.output
    assert "suspended until fixed (their submissions wait): a" in result.output


def test_cli_team_check_without_teams_says_how_to_add(tmp_path):
    config = _runner_setup(tmp_path, _good(), "teams: {}\n")
    result = CliRunner().invoke(main, ["team", "check", "--config", str(config)])
    assert result.exit_code == 0 and "no teams registered yet" in result.output
    (tmp_path / "teams.yaml").unlink()
    result = CliRunner().invoke(main, ["team", "check", "--config", str(config)])
    assert result.exit_code == 1 and "not found" in result.output and "jc team add" in result.output


@pytest.mark.parametrize("text, key, fix", [
    ("a: !!bool maybe\n", "a", "without a YAML tag"),
    ("a: !foo x\n", "a", "without a YAML tag"),
    ("a: 2027-02-30\n", "a", "day is out of range"),
    ("a: 1\nb: '\x07'\n", "(encoding)", "control character"),
    ("a: 1\n---\nb: 2\n", "(file)", "one YAML document"),
])
def test_odd_yaml_is_a_problem_not_a_crash(text, key, fix):
    from jc_datalad.validation import parse_yaml

    try:
        problems = parse_yaml(text.encode()).problems
    except JcError as exc:
        problems = exc.problems
    assert [p.key for p in problems] == [key] and fix in problems[0].fix


def test_saving_teams_never_writes_through_a_symlink(tmp_path):
    """An annexed teams.yaml is a link into the annex: saving replaces the link, the object stays."""
    from jc_datalad.config import Team, load_teams, save_teams

    obj = tmp_path / "annex-object"
    obj.write_text("teams: {}\n")
    obj.chmod(0o444)
    (tmp_path / "teams.yaml").symlink_to(obj)
    save_teams(tmp_path / "teams.yaml", {"a": Team("a", str(tmp_path / "a.git"))})
    assert obj.read_text() == "teams: {}\n"
    assert not (tmp_path / "teams.yaml").is_symlink()
    assert list(load_teams(tmp_path / "teams.yaml")) == ["a"]
