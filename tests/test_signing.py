"""Signing: real SSH keys, real signed commits and tags, verified as the runner does."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from jc_datalad.errors import JcError
from jc_datalad.signing import (
    SignatureCheck,
    key_fingerprint,
    key_problems,
    normalize_key,
    verify_commit,
    verify_tag,
    write_allowed_signers,
)


def _env(home: Path, email: str = "ann@alpha.example", date: str = "2027-01-15T12:00:00+00:00") -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1",
               GIT_AUTHOR_NAME="Ann", GIT_AUTHOR_EMAIL=email, GIT_AUTHOR_DATE=date,
               GIT_COMMITTER_NAME="Ann", GIT_COMMITTER_EMAIL=email, GIT_COMMITTER_DATE=date)
    return env


def _git(repo: Path, *args: str, env: dict | None = None, input: str | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=repo, env=env or _env(repo.parent), input=input,
                          capture_output=True, text=True, check=True)
    return proc.stdout.strip()


def _signed(key: Path) -> tuple[str, ...]:
    return ("-c", "gpg.format=ssh", "-c", "gpg.ssh.program=ssh-keygen", "-c", f"user.signingkey={key}")


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    """Private key paths: alpha's two keys, beta's key, and a key nobody registered."""
    folder = tmp_path_factory.mktemp("keys")
    paths = {}
    for name in ("alpha1", "alpha2", "beta", "stranger"):
        paths[name] = folder / name
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@laptop",
                        "-f", str(paths[name])], check=True)
    return paths


def _pub(path: Path) -> str:
    return Path(f"{path}.pub").read_text()


@pytest.fixture(scope="module")
def registry(keys) -> dict[str, list[str]]:
    return {"alpha": [_pub(keys["alpha1"]), _pub(keys["alpha2"])], "beta": [_pub(keys["beta"])]}


@pytest.fixture
def repo(tmp_path) -> Path:
    path = tmp_path / "submission"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    (path / "README.md").write_text("hello\n")
    _git(path, "add", "README.md")
    _git(path, "commit", "-q", "-m", "start")
    return path


def _commit(repo: Path, key: Path | None, message: str = "predictions", **env_args: str) -> str:
    signing = _signed(key) if key else ()
    _git(repo, *signing, "commit", "-q", "--allow-empty", *(["-S"] if key else []), "-m", message,
         env=_env(repo.parent, **env_args))
    return _git(repo, "rev-parse", "HEAD")


def _check(repo: Path, commit: str, team: str, registry) -> SignatureCheck:
    return verify_commit(repo, commit, team, registry, workdir=repo.parent / "work")


def test_commit_signed_by_team_key_is_ok(repo, keys, registry):
    head = _commit(repo, keys["alpha2"])
    check = _check(repo, head, "alpha", registry)
    assert check == SignatureCheck(True, None, key_fingerprint(_pub(keys["alpha2"])), "alpha")
    # the runner may name the head by ref too
    assert _check(repo, "main", "alpha", registry).ok
    # the allowed-signers file lived only for the check
    assert list((repo.parent / "work").iterdir()) == []


def test_unsigned_commit(repo, registry):
    head = _git(repo, "rev-parse", "HEAD")
    check = _check(repo, head, "alpha", registry)
    assert check == SignatureCheck(
        False, f"the head commit {head[:12]} is not signed: sign it with `git commit -S` "
               "(see docs/signing.md)", None, None)


def test_commit_signed_by_another_team(repo, keys, registry):
    head = _commit(repo, keys["beta"])
    check = _check(repo, head, "alpha", registry)
    assert not check.ok
    assert check.reason == f"the head commit {head[:12]} is signed by a key of team beta, not of team alpha"
    assert check.signer_team == "beta"
    assert check.fingerprint == key_fingerprint(_pub(keys["beta"]))
    assert _check(repo, head, "beta", registry).ok


def test_commit_signed_by_unregistered_key(repo, keys, registry):
    head = _commit(repo, keys["stranger"])
    check = _check(repo, head, "alpha", registry)
    fingerprint = key_fingerprint(_pub(keys["stranger"]))
    assert (check.ok, check.fingerprint, check.signer_team) == (False, fingerprint, None)
    assert check.reason is not None
    assert check.reason.startswith(
        f"the head commit {head[:12]} is signed by a key registered for no team ({fingerprint})")


def test_tampered_commit_is_bad(repo, keys, registry):
    head = _commit(repo, keys["alpha1"], message="score 0.71")
    raw = _git(repo, "cat-file", "commit", head) + "\n"
    assert "gpgsig -----BEGIN SSH SIGNATURE-----" in raw
    forged = _git(repo, "hash-object", "-w", "-t", "commit", "--stdin",
                  input=raw.replace("score 0.71", "score 0.99"))
    assert forged != head
    check = _check(repo, forged, "alpha", registry)
    assert not check.ok
    assert check.fingerprint == key_fingerprint(_pub(keys["alpha1"]))
    assert check.reason is not None
    assert check.reason.startswith(f"the head commit {forged[:12]} has a signature by key "
                                   f"{check.fingerprint} that does not verify (")
    assert "git commit --amend -S --no-edit" in check.reason


def test_gpg_signature_is_not_verifiable(repo, registry):
    raw = _git(repo, "cat-file", "commit", "HEAD") + "\n"
    header, _, message = raw.partition("\n\n")
    pgp = ("gpgsig -----BEGIN PGP SIGNATURE-----\n \n iQEzBAABCAAdFiEEfake\n"
           " -----END PGP SIGNATURE-----")
    forged = _git(repo, "hash-object", "-w", "-t", "commit", "--stdin",
                  input=f"{header}\n{pgp}\n\n{message}")
    check = _check(repo, forged, "alpha", registry)
    assert (check.ok, check.fingerprint, check.signer_team) == (False, None, None)
    assert check.reason is not None
    assert "signed with an OpenPGP (GPG) key, which the runner does not verify" in check.reason


def test_repository_config_is_not_trusted(repo, keys, registry, tmp_path):
    """A clone whose config names its own signers file and program changes nothing."""
    evil = tmp_path / "evil_signers"
    evil.write_text(f'alpha namespaces="git" {normalize_key(_pub(keys["stranger"]))}\n')
    liar = tmp_path / "liar.sh"
    liar.write_text('#!/bin/sh\necho \'Good "git" signature for alpha with ED25519 key SHA256:x\'\n')
    liar.chmod(0o755)
    head = _commit(repo, keys["stranger"])
    _git(repo, "config", "gpg.ssh.allowedSignersFile", str(evil))
    _git(repo, "config", "gpg.ssh.program", str(liar))
    _git(repo, "config", "gpg.minTrustLevel", "ultimate")
    check = _check(repo, head, "alpha", registry)
    assert not check.ok and check.signer_team is None
    assert _check(repo, _commit(repo, keys["alpha1"]), "alpha", registry).ok


def test_committer_email_and_date_do_not_matter(repo, keys, registry):
    stranger_as_alpha = _commit(repo, keys["stranger"], email="ann@alpha.example")
    alpha_as_beta = _commit(repo, keys["alpha1"], email="bob@beta.example", date="1999-12-31T23:59:59+00:00")
    alpha_future = _commit(repo, keys["alpha1"], email="nobody@nowhere", date="2099-01-01T00:00:00+00:00")
    assert not _check(repo, stranger_as_alpha, "alpha", registry).ok
    assert _check(repo, alpha_as_beta, "alpha", registry).ok
    assert _check(repo, alpha_future, "alpha", registry).ok
    assert _check(repo, alpha_as_beta, "beta", registry).signer_team == "alpha"


def test_signed_tag(repo, keys, registry):
    head = _commit(repo, None)
    _git(repo, *_signed(Path(f"{keys['alpha1']}.pub")), "tag", "-s", "final/best", head, "-m", "final pick")
    check = verify_tag(repo, "final/best", "alpha", registry, workdir=repo.parent / "work")
    assert check == SignatureCheck(True, None, key_fingerprint(_pub(keys["alpha1"])), "alpha")
    assert verify_tag(repo, "refs/tags/final/best", "alpha", registry, workdir=repo.parent).ok
    other = verify_tag(repo, "final/best", "beta", registry, workdir=repo.parent)
    assert other.reason == "the tag final/best is signed by a key of team alpha, not of team beta"


def test_unsigned_tags_are_refused(repo, registry):
    _git(repo, "tag", "-a", "final/best", "-m", "final pick")
    _git(repo, "tag", "final/light")
    annotated = verify_tag(repo, "final/best", "alpha", registry, workdir=repo.parent)
    light = verify_tag(repo, "final/light", "alpha", registry, workdir=repo.parent)
    assert annotated == SignatureCheck(
        False, "the tag final/best is not signed: make it a signed tag with "
               "`git tag -f -s final/best <commit> -m ...` and push it again (see docs/signing.md)",
        None, None)
    assert not light.ok and light.reason is not None
    assert light.reason.startswith("the tag final/light is a lightweight tag")


def test_tag_object_made_for_another_name(repo, keys, registry):
    _git(repo, *_signed(keys["alpha1"]), "tag", "-s", "final/old", "-m", "old pick")
    _git(repo, "update-ref", "refs/tags/final/new", _git(repo, "rev-parse", "refs/tags/final/old"))
    check = verify_tag(repo, "final/new", "alpha", registry, workdir=repo.parent)
    assert not check.ok and check.reason is not None
    assert "made for the name 'final/old'" in check.reason


def test_missing_commit_or_tag_raises(repo, registry):
    with pytest.raises(JcError, match="not found"):
        _check(repo, "0" * 40, "alpha", registry)
    with pytest.raises(JcError, match="not found"):
        verify_tag(repo, "final/none", "alpha", registry, workdir=repo.parent)


def test_team_without_keys(repo, keys, registry):
    head = _commit(repo, keys["stranger"])
    check = _check(repo, head, "gamma", {**registry, "gamma": []})
    assert check.reason is not None and "team gamma has no registered key yet" in check.reason


def test_normalize_key(keys):
    text = _pub(keys["alpha1"])
    kind, blob, comment = text.split()
    assert comment == "alpha1@laptop"
    assert normalize_key(f"  {text}\n") == f"{kind} {blob}"
    assert normalize_key(f"{kind} {blob}") == f"{kind} {blob}"
    shown = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", f"{keys['alpha1']}.pub"],
                           capture_output=True, text=True, check=True).stdout.split()[1]
    assert key_fingerprint(text) == shown


@pytest.mark.parametrize("text, problem", [
    ("", "empty"),
    ("hello world", "not an SSH public key"),
    ("ssh-ed25519 not-base64!", "not base64"),
    ("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIMZ5", "another type"),
    ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMZ5", "not a valid SSH public key"),
    ("ssh-ed25519-cert-v01@openssh.com AAAA", "certificate"),
])
def test_normalize_key_rejects_garbage(text, problem):
    with pytest.raises(JcError, match=problem):
        normalize_key(text)


def test_normalize_key_rejects_private_key_and_two_keys(keys):
    with pytest.raises(JcError, match="private key"):
        normalize_key(keys["alpha1"].read_text())
    with pytest.raises(JcError, match="2 lines"):
        normalize_key(_pub(keys["alpha1"]) + _pub(keys["alpha2"]))


def test_allowed_signers_file(tmp_path, keys, registry):
    first = write_allowed_signers(tmp_path / "a", registry).read_bytes()
    shuffled = {"beta": registry["beta"], "alpha": list(reversed(registry["alpha"] * 2))}
    assert write_allowed_signers(tmp_path / "b", shuffled).read_bytes() == first
    lines = first.decode().splitlines()
    assert len(lines) == 3
    assert [line.split()[:2] for line in lines] == [["alpha", 'namespaces="git"']] * 2 + [["beta", 'namespaces="git"']]
    assert lines[2].endswith(normalize_key(_pub(keys["beta"])))


def test_key_of_two_teams_signs_for_neither(tmp_path, repo, keys, registry):
    shared = {**registry, "gamma": [_pub(keys["alpha1"])]}
    problems = key_problems(shared)
    assert set(problems) == {"alpha", "gamma"}
    assert "both team alpha and team gamma" in problems["alpha"][0]
    text = write_allowed_signers(tmp_path / "signers", shared).read_text()
    assert normalize_key(_pub(keys["alpha1"])) not in text
    assert normalize_key(_pub(keys["alpha2"])) in text and normalize_key(_pub(keys["beta"])) in text
    check = _check(repo, _commit(repo, keys["alpha1"]), "alpha", shared)
    assert not check.ok and "both team alpha and team gamma" in check.reason
    # alpha's other key and team beta are unaffected
    assert _check(repo, _commit(repo, keys["alpha2"]), "alpha", shared).ok
    assert _check(repo, _commit(repo, keys["beta"]), "beta", shared).ok


def test_team_name_must_be_a_safe_principal(tmp_path, keys):
    assert "cannot be a signing principal" in key_problems({"a*": [_pub(keys["beta"])]})["a*"][0]
    assert write_allowed_signers(tmp_path / "signers", {"a*": [_pub(keys["beta"])]}).read_text() == ""


MALFORMED = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMZ5 gamma@laptop"


def test_one_malformed_key_affects_only_its_team(repo, keys, registry):
    """A truncated key in gamma's registration: alpha and beta keep verifying, gamma is told why."""
    with_bad = {**registry, "gamma": [MALFORMED]}
    assert list(key_problems(with_bad)) == ["gamma"]
    assert _check(repo, _commit(repo, keys["alpha1"]), "alpha", with_bad).ok
    assert _check(repo, _commit(repo, keys["beta"]), "beta", with_bad).ok
    check = _check(repo, _commit(repo, keys["stranger"]), "gamma", with_bad)
    assert not check.ok
    assert "team gamma's registration has a key problem" in check.reason
    assert "not a valid SSH public key" in check.reason


def test_malformed_key_in_teams_yaml_rejects_only_that_team_at_admission(tmp_path, keys):
    """teams.yaml with a truncated key for gamma: admission admits alpha and beta, rejects gamma with the reason."""
    from jc_datalad.admission import Candidate, decide
    from jc_datalad.config import RunnerConfig, load_teams, read_teams
    from jc_datalad.spec import parse_spec

    repos = {}
    for team, key in (("alpha", keys["alpha1"]), ("beta", keys["beta"]), ("gamma", keys["stranger"])):
        repos[team] = tmp_path / team
        repos[team].mkdir()
        _git(repos[team], "init", "-q", "-b", "main")
        _commit(repos[team], key, "predictions")
    teams_yaml = tmp_path / "teams.yaml"
    teams_yaml.write_text(
        "teams:\n"
        f"  alpha:\n    repository: {repos['alpha']}\n    keys: ['{_pub(keys['alpha1']).strip()}']\n"
        f"  beta:\n    repository: {repos['beta']}\n    keys: ['{_pub(keys['beta']).strip()}']\n"
        f"  gamma:\n    repository: {repos['gamma']}\n    keys: ['{MALFORMED}']\n")
    found = read_teams(teams_yaml)
    assert list(found.by_team) == ["gamma"] and not found.suspended
    problem = found.by_team["gamma"][0]
    assert (problem.key, problem.line) == ("teams.gamma.keys[0]", 10)
    teams = load_teams(teams_yaml)
    assert sorted(teams) == ["alpha", "beta", "gamma"]

    config = RunnerConfig(path=tmp_path / "runner.yaml", challenge=tmp_path, private=tmp_path,
                          results=tmp_path / "results", work=tmp_path / "work")
    spec = parse_spec({"id": "c", "title": "C", "type": "results", "container": {"name": "jc-env"},
                       "interface": {"inputs": "inputs/test", "outputs": "predictions", "format": "csv"},
                       "metrics": {"scorer": "regression", "primary": "r2"}, "submission": {"signed": True}})
    candidates = [Candidate(teams[name], _git(repos[name], "rev-parse", "HEAD"), ("main",)) for name in teams]
    seen = {(c.team.name, c.commit): {"first_seen": "2027-01-15T12:00:00.000000Z"} for c in candidates}
    decisions = {d.team: d for d in decide(candidates, config=config, spec=spec, teams=teams, seen=seen,
                                           records=[], overrides=[], done=set())}
    assert decisions["alpha"].admitted and decisions["beta"].admitted
    assert not decisions["gamma"].admitted
    assert "team gamma's registration has a key problem" in decisions["gamma"].reason
    assert "not a valid SSH public key" in decisions["gamma"].reason
