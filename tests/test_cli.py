"""The ``jc`` command line: help everywhere, templates, teams and their keys, challenge warnings.

In-process with click's CliRunner, over real teams.yaml files in tmp_path and real keys made
with ssh-keygen.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import click
import jinja2
import pytest
import yaml
from click.testing import CliRunner

from jc_datalad.cli import main

ROOT = Path(__file__).parents[1]
TEMPLATE = ROOT / "challenge_templates" / "bacteria" / "challenge.yaml.j2"


def _spec_text(**changes: str) -> str:
    text = jinja2.Template(TEMPLATE.read_text()).render(
        challenge_id="bac-1", title="Bacteria", container="jc-env", seed=7, dev_start="2027-01-10T00:00:00Z",
        dev_end="2027-03-01T00:00:00Z", merge_deadline="2027-02-01T00:00:00Z") + "\n"
    for old, new in changes.items():
        assert old in text
        text = text.replace(old, new)
    return text


def _jc(*args: str | Path) -> click.testing.Result:
    return CliRunner().invoke(main, [str(a) for a in args], prog_name="jc", terminal_width=80)


def _fingerprint(pub: Path) -> str:
    """The fingerprint as ssh-keygen itself prints it (independent of jc_datalad.signing)."""
    out = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(pub)], capture_output=True, text=True,
                         check=True).stdout
    return out.split()[1]


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    """Public key files (.pub) made by ssh-keygen."""
    folder = tmp_path_factory.mktemp("keys")
    out = {}
    for name in ("ada", "bob", "cy", "new"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@laptop",
                        "-f", str(folder / name)], check=True)
        out[name] = folder / f"{name}.pub"
    return out


@pytest.fixture
def org(tmp_path) -> Path:
    """runner.yaml over a public challenge folder and a teams.yaml beside it; returns runner.yaml."""
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "challenge.yaml").write_text(_spec_text())
    (tmp_path / "teams.yaml").write_text("teams: {}\n")
    config = tmp_path / "runner.yaml"
    config.write_text("challenge: public\nprivate: .\nresults: results\nteams: teams.yaml\n")
    return config


def _teams(config: Path) -> dict:
    return yaml.safe_load((config.parent / "teams.yaml").read_text())["teams"]


# --- help -------------------------------------------------------------------------------------


def _walk(command: click.Command, path: tuple[str, ...]):
    yield path, command
    if isinstance(command, click.Group):
        for name, sub in sorted(command.commands.items()):
            yield from _walk(sub, (*path, name))


def test_every_command_and_option_has_help():
    missing = []
    for path, command in _walk(main, ("jc",)):
        if not (command.help or command.short_help):
            missing.append(" ".join(path))
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden and not (param.help or "").strip():
                missing.append(f"{' '.join(path)} {'/'.join(param.opts)}")
    assert not missing, "without help text: " + ", ".join(missing)
    # the walk reaches the nested groups, so a command added anywhere is covered
    paths = {" ".join(p) for p, _ in _walk(main, ("jc",))}
    assert {"jc team key add", "jc challenge templates", "jc score"} <= paths


def test_every_help_page_renders():
    for path, _ in _walk(main, ("jc",)):
        result = _jc(*path[1:], "--help")
        assert result.exit_code == 0, (path, result.output)
        assert "Usage: jc" in result.output


def test_score_help_paragraphs_are_not_indented():
    result = _jc("score", "--help")
    assert result.exit_code == 0
    description = result.output.split("Options:")[0].splitlines()[1:]
    text_lines = [line for line in description if line.strip()]
    # click indents help text by two spaces; a stray docstring indent shows as more
    assert text_lines and all(re.match(r"^  \S", line) for line in text_lines), result.output
    assert not any(re.search(r"\S {2,}\S", line) for line in text_lines), result.output
    assert "METRIC is a folder scorer" in result.output and "Metrics: abs_dic" in result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80


# --- templates --------------------------------------------------------------------------------


def test_challenge_templates_lists_each_with_its_description():
    from jc_datalad.challenge import TEMPLATES

    result = _jc("challenge", "templates")
    assert result.exit_code == 0, result.output
    line = next(row for row in result.output.splitlines() if row.startswith("bacteria "))
    doc = (ROOT / "challenge_templates" / "bacteria" / "__init__.py").read_text().split('"""')[1].strip()
    assert doc.splitlines()[0] in line and "inference" in line
    listed = json.loads(_jc("challenge", "templates", "--json").output)
    assert [t["name"] for t in listed] == list(TEMPLATES)
    # every template folder is one `jc challenge new` accepts, and so is listed
    folders = sorted(p.parent.name for p in (ROOT / "challenge_templates").glob("*/challenge.yaml.j2"))
    assert folders == sorted(TEMPLATES)
    assert all(t["description"] and t["type"] in ("results", "inference", "training") for t in listed)


# --- teams ------------------------------------------------------------------------------------


def test_team_add_key_without_repository_new_team_says_what_to_add(org, keys):
    result = _jc("team", "add", "alpha", "--key", keys["ada"], "--config", org)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "team alpha is not registered yet" in result.output and "add --repository URL" in result.output
    assert "git init --bare /srv/teams/alpha.git" in result.output
    assert _teams(org) == {}


def test_team_add_key_without_repository_keeps_a_registered_teams_repository(org, keys):
    assert _jc("team", "add", "alpha", "--repository", "/srv/alpha.git", "--key", keys["ada"],
               "--config", org).exit_code == 0
    result = _jc("team", "add", "alpha", "--key", keys["bob"], "--member", "bob@example.org", "--config", org)
    assert result.exit_code == 0, result.output
    entry = _teams(org)["alpha"]
    assert entry["repository"] == "/srv/alpha.git" and len(entry["keys"]) == 2
    assert entry["members"] == ["bob@example.org"]
    # and --repository still moves it
    assert _jc("team", "add", "alpha", "--repository", "/srv/alpha2.git", "--config", org).exit_code == 0
    assert _teams(org)["alpha"]["repository"] == "/srv/alpha2.git"


def test_team_add_without_repository_for_a_broken_entry_says_to_replace_it(org, keys):
    (org.parent / "teams.yaml").write_text("teams:\n  alpha:\n    members: [ada]\n")
    result = _jc("team", "add", "alpha", "--key", keys["ada"], "--config", org)
    assert result.exit_code == 1 and "the entry of team alpha has problems" in result.output
    assert "teams.alpha.repository" in result.output and "register it again with --repository" in result.output
    result = _jc("team", "add", "alpha", "--repository", "/r/a", "--key", keys["ada"], "--config", org)
    assert result.exit_code == 0 and _teams(org)["alpha"]["repository"] == "/r/a"


def test_team_add_refuses_a_malformed_key_naming_the_fix(org, tmp_path):
    for bad, says in (("ada.pub", "no such file"), ("ssh-ed25519 AAAAnotbase64!", "not base64"),
                      (str(tmp_path / "runner.yaml"), "where one SSH public key was expected")):
        result = _jc("team", "add", "alpha", "--repository", "/r/a", "--key", bad, "--config", org)
        assert result.exit_code == 1, (bad, result.output)
        assert says in result.output and ".pub file" in result.output, (bad, result.output)
    assert _teams(org) == {}


def test_team_list_shows_members_and_fingerprints(org, keys):
    _jc("team", "add", "alpha", "--repository", "/r/a", "--member", "ada@example.org", "--member", "bob",
        "--key", keys["ada"], "--key", keys["bob"], "--config", org)
    _jc("team", "add", "beta", "--repository", "/r/b", "--config", org)
    result = _jc("team", "list", "--config", org)
    assert result.exit_code == 0, result.output
    assert "members:    ada@example.org, bob" in result.output
    for name in ("ada", "bob"):
        assert f"key:        {_fingerprint(keys[name])} (ssh-ed25519)" in result.output
    assert "beta\n  repository: /r/b\n  members:    (none)\n  keys:       (none)" in result.output
    data = json.loads(_jc("team", "list", "--json", "--config", org).output)
    alpha = data["teams"]["alpha"]
    assert alpha["members"] == ["ada@example.org", "bob"] and alpha["repository"] == "/r/a"
    assert [k["fingerprint"] for k in alpha["keys"]] == [_fingerprint(keys["ada"]), _fingerprint(keys["bob"])]


def test_team_list_marks_a_malformed_key(org, keys):
    (org.parent / "teams.yaml").write_text(
        f"teams:\n  alpha:\n    repository: /r/a\n    keys: ['ssh-ed25519 AAAA', '{keys['ada'].read_text().strip()}']\n")
    result = _jc("team", "list", "--config", org)
    assert result.exit_code == 0, result.output
    assert "MALFORMED (ssh-ed25519)" in result.output and _fingerprint(keys["ada"]) in result.output
    alpha = json.loads(_jc("team", "list", "--json", "--config", org).output)["teams"]["alpha"]
    assert alpha["keys"][0]["fingerprint"] is None and alpha["keys"][0]["problem"]


def test_team_remove(org, keys):
    _jc("team", "add", "alpha", "--repository", "/r/a", "--config", org)
    _jc("team", "add", "beta", "--repository", "/r/b", "--config", org)
    result = _jc("team", "remove", "gamma", "--config", org)
    assert result.exit_code == 1 and "not registered" in result.output and "alpha, beta" in result.output
    assert _jc("team", "merge", "alpha", "beta", "--config", org).exit_code == 0
    result = _jc("team", "remove", "alpha", "--config", org)
    assert result.exit_code == 1 and "beta merged into it" in result.output and "remove beta first" in result.output
    assert _jc("team", "remove", "beta", "--config", org).exit_code == 0
    result = _jc("team", "remove", "alpha", "--config", org)
    assert result.exit_code == 0, result.output
    assert _teams(org) == {}


def test_team_key_rotation(org, keys):
    _jc("team", "add", "alpha", "--repository", "/r/a", "--key", keys["ada"], "--config", org)
    _jc("team", "add", "beta", "--repository", "/r/b", "--key", keys["cy"], "--config", org)
    # add the new key (a file, or its text), then remove the old one by fingerprint
    result = _jc("team", "key", "add", "alpha", keys["new"].read_text().strip(), "--config", org)
    assert result.exit_code == 0 and _fingerprint(keys["new"]) in result.output, result.output
    assert "already registered" in _jc("team", "key", "add", "alpha", keys["new"], "--config", org).output
    result = _jc("team", "key", "remove", "alpha", _fingerprint(keys["ada"]), "--config", org)
    assert result.exit_code == 0 and "1 key(s) left" in result.output and "warning" not in result.output
    assert _teams(org)["alpha"]["keys"] == [" ".join(keys["new"].read_text().split()[:2])]
    # another team's key, a malformed key, an unknown team, a key the team does not have
    result = _jc("team", "key", "add", "alpha", keys["cy"], "--config", org)
    assert result.exit_code == 1 and "already registered for team beta" in result.output
    result = _jc("team", "key", "add", "alpha", "ssh-rsa hello", "--config", org)
    assert result.exit_code == 1 and "not base64" in result.output and ".pub file" in result.output
    private = keys["ada"].with_suffix("")
    result = _jc("team", "key", "add", "alpha", private, "--config", org)
    assert result.exit_code == 1 and "this is a private key" in result.output
    result = _jc("team", "key", "add", "gamma", keys["bob"], "--config", org)
    assert result.exit_code == 1 and "jc team add gamma --repository URL" in result.output
    result = _jc("team", "key", "remove", "alpha", keys["bob"], "--config", org)
    assert result.exit_code == 1 and "has no key" in result.output and _fingerprint(keys["new"]) in result.output


def test_removing_the_last_key_of_a_signed_challenge_warns(org, keys):
    _jc("team", "add", "alpha", "--repository", "/r/a", "--key", keys["ada"], "--config", org)
    result = _jc("team", "key", "remove", "alpha", keys["ada"], "--config", org)
    assert result.exit_code == 0, result.output
    assert "warning: team alpha has no signing key left" in result.output
    assert "requires signed submissions" in result.output and "jc team key add alpha KEY" in result.output
    assert _teams(org)["alpha"]["keys"] == []
    # unsigned challenge: no warning
    (org.parent / "public" / "challenge.yaml").write_text(_spec_text(**{"signed: true": "signed: false"}))
    _jc("team", "key", "add", "alpha", keys["ada"], "--config", org)
    result = _jc("team", "key", "remove", "alpha", keys["ada"], "--config", org)
    assert result.exit_code == 0 and "warning" not in result.output


def test_removing_a_malformed_key_as_written(org, keys):
    (org.parent / "teams.yaml").write_text("teams:\n  alpha:\n    repository: /r/a\n    keys: ['ssh-ed25519 AAAA']\n")
    result = _jc("team", "key", "remove", "alpha", "ssh-ed25519 AAAA", "--config", org)
    assert result.exit_code == 0 and "a malformed key removed" in result.output, result.output
    assert _teams(org)["alpha"]["keys"] == []


# --- challenge check --------------------------------------------------------------------------


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=T", "-c", "user.email=t@example.org", *args], cwd=repo, check=True,
                   capture_output=True)


def _challenge(tmp_path: Path, items: int, fraction: str = "0.3") -> Path:
    """A committed challenge dataset, its private dataset with ``items`` hidden labels, and the
    runner.yaml that `jc challenge new` writes beside them; returns the challenge folder."""
    public = tmp_path / "bac"
    public.mkdir()
    (public / "challenge.yaml").write_text(_spec_text(**{"public_fraction: 0.3": f"public_fraction: {fraction}"}))
    _git(public, "init", "-q")
    _git(public, "add", "challenge.yaml")
    _git(public, "commit", "-q", "-m", "challenge")
    labels = tmp_path / "bac-private" / "hidden" / "test" / "labels"
    labels.mkdir(parents=True)
    for i in range(items):
        (labels / f"item_{i:03d}.tif").write_bytes(b"")
    (tmp_path / "runner.yaml").write_text("challenge: bac\nprivate: bac-private\nresults: bac-results\n")
    return public


def test_challenge_check_warns_about_an_uncommitted_challenge_yaml(tmp_path):
    public = _challenge(tmp_path, items=40)
    result = _jc("challenge", "check", public)
    assert result.exit_code == 0 and "warning" not in result.output, result.output
    spec = public / "challenge.yaml"
    spec.write_text(spec.read_text().replace("title: Bacteria", "title: Bacteria, edited"))
    result = _jc("challenge", "check", public)
    assert result.exit_code == 0, result.output
    assert "challenge.yaml: changed and not committed" in result.output and "datalad save" in result.output
    _git(public, "rm", "-q", "--cached", "challenge.yaml")
    _git(public, "commit", "-q", "-m", "untrack")
    result = _jc("challenge", "check", spec, "--json")
    assert result.exit_code == 0
    [warning] = json.loads(result.output)["warnings"]
    assert "untracked" in warning


def test_challenge_check_warns_when_the_public_part_is_one_or_two_items(tmp_path):
    from jc_datalad.evaluate import public_part

    public = _challenge(tmp_path, items=4)
    names = tuple(f"item_{i:03d}.tif" for i in range(4))
    assert len(public_part(names, 0.3, 7)) <= 2
    result = _jc("challenge", "check", public)
    assert result.exit_code == 0, result.output
    assert re.search(r"warning: split 'test': the public leaderboard rests on [12] of 4 hidden item", result.output)
    assert "raise leaderboard.public_fraction" in result.output


def test_challenge_check_no_warning_for_a_large_public_part(tmp_path):
    from jc_datalad.evaluate import public_part

    public = _challenge(tmp_path, items=40)
    assert len(public_part(tuple(f"item_{i:03d}.tif" for i in range(40)), 0.3, 7)) > 2
    result = _jc("challenge", "check", public, "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["warnings"] == [] and json.loads(result.output)["notes"] == []


def test_challenge_check_public_part_from_private_or_config_option(tmp_path):
    public = _challenge(tmp_path, items=3)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "runner.yaml").rename(elsewhere / "runner.yaml")
    (elsewhere / "runner.yaml").write_text("challenge: ../bac\nprivate: ../bac-private\nresults: r\n")
    # without the private dataset the count is unknown, and the note says how to give it
    result = _jc("challenge", "check", public)
    assert result.exit_code == 0 and "warning" not in result.output
    assert "note: public leaderboard size not checked" in result.output and "--private" in result.output
    for option in (["--private", tmp_path / "bac-private"], ["--config", elsewhere / "runner.yaml"]):
        result = _jc("challenge", "check", public, *option)
        assert result.exit_code == 0 and "of 3 hidden item" in result.output, (option, result.output)


# --- demo -------------------------------------------------------------------------------------

_NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6}


def test_readme_and_demo_help_agree_with_the_demo_on_the_number_of_teams():
    from jc_datalad.demo import TEAMS

    readme = re.search(r"`make demo` creates the bacteria segmentation challenge and (\w+) teams",
                       (ROOT / "README.md").read_text())
    helped = re.search(r"(\w+) teams", " ".join(_jc("demo", "--help").output.split()))
    assert readme and helped
    assert _NUMBERS[readme.group(1)] == _NUMBERS[helped.group(1)] == len(TEAMS)


def test_team_changes_are_saved_in_the_private_dataset(tmp_path, keys):
    import datalad.api as dl

    private = tmp_path / "private"
    dl.create(path=str(private), cfg_proc=["text2git"], result_renderer="disabled")
    (private / "teams.yaml").write_text("teams: {}\n")
    dl.save(dataset=str(private), message="No teams yet", result_renderer="disabled")
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "challenge.yaml").write_text(_spec_text())
    config = tmp_path / "runner.yaml"
    config.write_text("challenge: public\nprivate: private\nresults: results\n")
    for args in (["team", "add", "alpha", "--repository", "/r/a"], ["team", "key", "add", "alpha", keys["ada"]],
                 ["team", "key", "remove", "alpha", keys["ada"]], ["team", "remove", "alpha"]):
        result = _jc(*args, "--config", config)
        assert result.exit_code == 0, (args, result.output)
    log = subprocess.run(["git", "log", "--format=%s"], cwd=private, capture_output=True, text=True).stdout
    fingerprint = _fingerprint(keys["ada"])
    assert log.splitlines()[:4] == ["Remove team alpha", f"Remove signing key {fingerprint} from team alpha",
                                    f"Add signing key {fingerprint} to team alpha", "Register team alpha"]
    assert not subprocess.run(["git", "status", "--porcelain"], cwd=private, capture_output=True, text=True).stdout


def test_every_argument_is_named_in_its_commands_help():
    # click arguments take no help text: the command's help must say what each one is
    unnamed = []
    for path, command in _walk(main, ("jc",)):
        for param in command.params:
            if isinstance(param, click.Argument) and not isinstance(param.type, click.Choice):
                name = (param.metavar or param.name or "").upper()
                if name not in (command.help or ""):
                    unnamed.append(f"{' '.join(path)} {name}")
    assert not unnamed, "arguments not explained in their command's help: " + ", ".join(unnamed)
