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


def test_key_of_two_teams_is_refused(tmp_path, repo, keys, registry):
    shared = {**registry, "gamma": [_pub(keys["alpha1"])]}
    with pytest.raises(JcError, match="both team alpha and team gamma"):
        write_allowed_signers(tmp_path / "signers", shared)
    with pytest.raises(JcError, match="both team alpha and team gamma"):
        _check(repo, _commit(repo, keys["alpha1"]), "alpha", shared)


def test_team_name_must_be_a_safe_principal(tmp_path, keys):
    with pytest.raises(JcError, match="cannot be a signing principal"):
        write_allowed_signers(tmp_path / "signers", {"a*": [_pub(keys["beta"])]})
