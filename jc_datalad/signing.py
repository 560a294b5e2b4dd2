"""Who signed a submission: git SSH signatures checked against the teams' registered keys.

Participants sign their head commit (and their final-selection tag) with git's SSH
signing (``gpg.format=ssh``). The runner writes an allowed-signers file in which every
registered key has its team's name as principal, and asks git to verify. Only the key
decides: the committer e-mail and the commit date are the participant's to choose, so
neither takes part (the allowed-signers lines carry no validity interval).

The runner's clone is not trusted to configure anything here: git runs with
:func:`jc_datalad.gitutil.safe_env` and command-line settings that override every
signing-related setting a repository could hold. Only SSH signatures are verified; an
OpenPGP or X.509 signature is reported as not verifiable without running gpg.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import logging
import re
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from jc_datalad.errors import JcError
from jc_datalad.gitutil import git

log = logging.getLogger(__name__)

#: Same rule as team names in teams.yaml; it also keeps names safe as allowed-signers
#: principals, which are comma-separated patterns where ``*`` and ``?`` are wildcards.
_TEAM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

#: Plain public key types (no certificates: an allowed-signers line names a key, not a CA).
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)

_NAMESPACE = "git"
_DOCS = "docs/signing.md"

_SSH_BEGIN = "-----BEGIN SSH SIGNATURE-----"
_SSH_END = "-----END SSH SIGNATURE-----"
_BEGIN_MARKERS = {
    _SSH_BEGIN: "ssh",
    "-----BEGIN PGP SIGNATURE-----": "openpgp",
    "-----BEGIN PGP MESSAGE-----": "openpgp",
    "-----BEGIN SIGNED MESSAGE-----": "x509",
}
_FOREIGN = {
    "openpgp": "an OpenPGP (GPG) key",
    "x509": "an X.509 (gpgsm) certificate",
}

_GOOD = re.compile(r'^Good "git" signature for (\S+) with \S+ key (SHA256:[A-Za-z0-9+/]+)\s*$', re.M)
_UNKNOWN = re.compile(r"^No principal matched\.?\s*$", re.M)


@dataclass(frozen=True)
class SignatureCheck:
    """The verdict on one signed object (head commit or tag)."""

    ok: bool  #: signed by one of the expected team's keys
    reason: str | None  #: None when ok; else a sentence for the participant
    fingerprint: str | None  #: SHA256:... of the signing key, when there is a signature
    signer_team: str | None  #: the team whose key signed, when known


class _Verdict(StrEnum):
    GOOD = "good"
    UNKNOWN_KEY = "unknown-key"
    BAD = "bad"


# --- keys -----------------------------------------------------------------------------------


def normalize_key(text: str) -> str:
    """``"ssh-ed25519 AAAA... [comment]"`` -> ``"ssh-ed25519 AAAA..."``.

    Raises :class:`JcError` naming the problem for anything that is not exactly one SSH
    public key of a known type, as ``ssh-keygen -l`` reads it.
    """
    return _inspect_key(text.strip())


@functools.lru_cache(maxsize=1024)
def _inspect_key(text: str) -> str:
    shown = text if len(text) <= 60 else text[:57] + "..."
    if "PRIVATE KEY" in text:
        raise JcError("this is a private key: send the public key instead (the .pub file, "
                      "e.g. ~/.ssh/id_ed25519.pub) and keep the private key to yourself")
    lines = [line for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise JcError("empty SSH public key: give the content of a .pub file, e.g. ~/.ssh/id_ed25519.pub")
    if len(lines) > 1:
        raise JcError(f"{len(lines)} lines where one SSH public key was expected: "
                      "register each key on its own")
    fields = lines[0].split()
    if len(fields) < 2 or fields[0] not in KEY_TYPES:
        if fields and "-cert-v01@openssh.com" in fields[0]:
            raise JcError(f"{shown!r} is an SSH certificate: register the plain public key")
        raise JcError(f"{shown!r} is not an SSH public key: expected '<type> <base64> [comment]' "
                      f"with a type among {', '.join(KEY_TYPES)}")
    key = f"{fields[0]} {fields[1]}"
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except binascii.Error:
        raise JcError(f"{shown!r} is not an SSH public key: its key part is not base64") from None
    try:
        declared = _ssh_string(blob, 0)[0]
    except ValueError:
        declared = b""
    if declared != fields[0].encode():
        raise JcError(f"{shown!r} is not a valid SSH public key: it says {fields[0]} "
                      "but its key data is of another type")
    with tempfile.TemporaryDirectory(prefix="jc-key-") as tmp:
        keyfile = Path(tmp) / "key.pub"
        keyfile.write_text(key + "\n")
        proc = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(keyfile)],
                              capture_output=True, text=True, timeout=30)
    if proc.returncode != 0 or not proc.stdout.strip():
        raise JcError(f"{shown!r} is not a valid SSH public key: ssh-keygen says "
                      f"{(proc.stderr or proc.stdout).strip() or 'nothing'}")
    if key_fingerprint_of_blob(blob) not in proc.stdout:
        raise JcError(f"{shown!r}: ssh-keygen reads another fingerprint than expected "
                      f"({proc.stdout.strip()})")
    return key


def key_fingerprint(key: str) -> str:
    """The ``SHA256:...`` fingerprint of a public key, as ``ssh-keygen -l`` and git print it."""
    normalized = normalize_key(key)
    return key_fingerprint_of_blob(base64.b64decode(normalized.split()[1]))


def key_fingerprint_of_blob(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def _ssh_string(data: bytes, pos: int) -> tuple[bytes, int]:
    """One SSH wire-format string (uint32 length + bytes) at ``pos``; ``ValueError`` if cut short."""
    if pos + 4 > len(data):
        raise ValueError("truncated")
    size = int.from_bytes(data[pos:pos + 4], "big")
    end = pos + 4 + size
    if end > len(data):
        raise ValueError("truncated")
    return data[pos + 4:end], end


def _owners(keys_by_team: Mapping[str, Sequence[str]]) -> tuple[dict[str, str], dict[str, list[str]]]:
    """(fingerprint -> team for every usable key, problems by team).

    A key that is not a public key, a key registered for two teams, or a team name that
    cannot be a principal is a problem of that team (of both teams, for a shared key) and
    signs for no one; every other team's keys are unaffected.
    """
    owner: dict[str, str] = {}
    problems: dict[str, list[str]] = {}
    shared: set[str] = set()
    for team in sorted(keys_by_team):
        if not _TEAM.match(team):
            problems.setdefault(team, []).append(
                f"team name {team!r} cannot be a signing principal: use letters, digits, '.', '_' or '-'")
            continue
        for key in keys_by_team[team]:
            try:
                fingerprint = key_fingerprint(key)
            except JcError as exc:
                problems.setdefault(team, []).append(f"a registered key is malformed: {exc}")
                continue
            other = owner.get(fingerprint)
            if other is not None and other != team:
                for who in (other, team):
                    problems.setdefault(who, []).append(
                        f"key {fingerprint} is registered for both team {other} and team {team}: "
                        "a key may belong to one team only")
                shared.add(fingerprint)
            owner.setdefault(fingerprint, team)
    for fingerprint in shared:
        del owner[fingerprint]
    return owner, problems


def key_problems(keys_by_team: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Problems of the registered keys, by team (a team without problems is absent)."""
    return _owners(keys_by_team)[1]


def write_allowed_signers(path: Path, keys_by_team: Mapping[str, Sequence[str]]) -> Path:
    """Write git's allowed-signers file: one line per usable key, the team name as principal.

    Lines are sorted by team, then key, so the same teams always give the same bytes. A
    malformed key, a key of two teams or a team name unfit as a principal is left out (see
    :func:`key_problems`): one team's bad registration never stops another team's checks.
    """
    owner, problems = _owners(keys_by_team)
    for team, found in sorted(problems.items()):
        log.warning("signing keys of team %s: %s", team, "; ".join(found))
    usable: set[tuple[str, str]] = set()
    for team in keys_by_team:
        for key in keys_by_team[team]:
            try:
                normalized = normalize_key(key)
            except JcError:
                continue
            if owner.get(key_fingerprint(normalized)) == team:
                usable.add((team, normalized))
    path = Path(path)
    path.write_text("".join(f'{team} namespaces="{_NAMESPACE}" {key}\n' for team, key in sorted(usable)))
    return path


# --- signatures in git objects --------------------------------------------------------------


def _commit_signature(raw: bytes) -> str | None:
    """The ``gpgsig`` header of a commit object, unfolded; None when unsigned."""
    header = raw.split(b"\n\n", 1)[0].decode("utf-8", errors="replace")
    found: list[str] | None = None
    for line in header.split("\n"):
        if found is not None:
            if line.startswith(" "):
                found.append(line[1:])
                continue
            break
        name, _, value = line.partition(" ")
        if name in ("gpgsig", "gpgsig-sha256"):
            found = [value]
    return "\n".join(found) + "\n" if found is not None else None


def _tag_signature(raw: bytes) -> str | None:
    """The signature at the end of a tag object's message, found as git finds it."""
    _, _, body = raw.partition(b"\n\n")
    lines = body.decode("utf-8", errors="replace").split("\n")
    start = None
    for i, line in enumerate(lines):
        if any(line.startswith(marker) for marker in _BEGIN_MARKERS):
            start = i
    return "\n".join(lines[start:]) if start is not None else None


def _signature_format(signature: str) -> str:
    first = signature.lstrip().split("\n", 1)[0].strip()
    return _BEGIN_MARKERS.get(first, "unknown")


def _signature_fingerprint(signature: str) -> str | None:
    """Fingerprint of the public key inside an armored SSHSIG blob; None if it cannot be read."""
    text = signature.strip()
    if not (text.startswith(_SSH_BEGIN) and text.endswith(_SSH_END)):
        return None
    body = "".join(text[len(_SSH_BEGIN):-len(_SSH_END)].split())
    try:
        blob = base64.b64decode(body, validate=True)
        if blob[:6] != b"SSHSIG":
            return None
        public_key, _ = _ssh_string(blob, 10)  # magic (6) + version (4)
    except (binascii.Error, ValueError):
        return None
    return key_fingerprint_of_blob(public_key) if public_key else None


# --- verification ---------------------------------------------------------------------------


def _run_verify(repo: Path, verb: str, oid: str, keys_by_team: Mapping[str, Sequence[str]],
                workdir: Path) -> tuple[int, str]:
    """``git verify-commit|verify-tag --raw OID`` with our own signing settings; (rc, output)."""
    workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jc-signers-", dir=workdir) as tmp:
        allowed = write_allowed_signers(Path(tmp) / "allowed_signers", keys_by_team)
        revoked = Path(tmp) / "revoked_keys"
        revoked.write_text("")
        settings = {
            "gpg.format": "ssh",
            "gpg.ssh.program": "ssh-keygen",
            "gpg.ssh.allowedSignersFile": str(allowed),
            # a repository could name its own revocation file or trust level: neutralize both
            "gpg.ssh.revocationFile": str(revoked),
            "gpg.minTrustLevel": "undefined",
            # never run gpg or gpgsm: we refuse those signatures before asking git
            "gpg.program": "false",
            "gpg.openpgp.program": "false",
            "gpg.x509.program": "false",
        }
        args = [arg for name, value in settings.items() for arg in ("-c", f"{name}={value}")]
        proc = git([*args, verb, "--raw", oid], repo, check=False, timeout=120)
    return proc.returncode, f"{proc.stdout}\n{proc.stderr}"


def _classify(rc: int, output: str, fingerprint: str) -> tuple[_Verdict, str | None, str]:
    """(verdict, principal, detail) from git's raw output."""
    good = _GOOD.search(output)
    if rc == 0 and good:
        if good.group(2) != fingerprint:
            return _Verdict.BAD, None, f"git reports key {good.group(2)}, the signature holds {fingerprint}"
        return _Verdict.GOOD, good.group(1), ""
    if _UNKNOWN.search(output) and 'Good "git" signature with' in output:
        return _Verdict.UNKNOWN_KEY, None, ""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return _Verdict.BAD, None, lines[-1] if lines else f"git exited with {rc} and said nothing"


def _check(repo: Path, verb: str, oid: str, subject: str, fixes: tuple[str, str],
           signature: str | None, team: str, keys_by_team: Mapping[str, Sequence[str]], workdir: Path) -> SignatureCheck:
    owner, problems = _owners(keys_by_team)
    check = _decide(repo, verb, oid, subject, fixes, signature, team, keys_by_team, workdir, owner)
    if not check.ok and problems.get(team):
        check = SignatureCheck(
            ok=False,
            reason=f"{check.reason} (team {team}'s registration has a key problem that the organizers must "
                   f"fix in teams.yaml: {'; '.join(problems[team])})",
            fingerprint=check.fingerprint, signer_team=check.signer_team)
    elif not check.ok and not keys_by_team.get(team):
        check = SignatureCheck(
            ok=False,
            reason=f"{check.reason} (team {team} has no registered key yet: the organizers add one "
                   f"with `jc team add {team} --key KEYFILE`)",
            fingerprint=check.fingerprint, signer_team=check.signer_team)
    log.debug("%s for team %s: %s", subject, team, check)
    return check


def _decide(repo: Path, verb: str, oid: str, subject: str, fixes: tuple[str, str],
            signature: str | None, team: str, keys_by_team: Mapping[str, Sequence[str]],
            workdir: Path, owner: Mapping[str, str]) -> SignatureCheck:
    sign, resign = fixes
    if signature is None:
        return SignatureCheck(False, f"{subject} is not signed: {sign} (see {_DOCS})", None, None)
    kind = _signature_format(signature)
    if kind in _FOREIGN:
        return SignatureCheck(
            False, f"{subject} is signed with {_FOREIGN[kind]}, which the runner does not verify: "
                   f"sign it with your team's registered SSH key (`git config gpg.format ssh`, see {_DOCS})",
            None, None)
    fingerprint = _signature_fingerprint(signature) if kind == "ssh" else None
    if fingerprint is None:
        return SignatureCheck(
            False, f"{subject} has a signature that cannot be read as an SSH signature: "
                   f"{resign} (see {_DOCS})", None, None)
    signer = owner.get(fingerprint)
    rc, output = _run_verify(repo, verb, oid, keys_by_team, workdir)
    verdict, principal, detail = _classify(rc, output, fingerprint)
    if verdict is _Verdict.GOOD and principal != signer:
        verdict, detail = _Verdict.BAD, f"git names signer {principal}, the key belongs to {signer}"
    if verdict is _Verdict.UNKNOWN_KEY and signer is not None:
        verdict, detail = _Verdict.BAD, f"git found no team for key {fingerprint} of team {signer}"
    if verdict is _Verdict.BAD:
        return SignatureCheck(
            False, f"{subject} has a signature by key {fingerprint} that does not verify ({detail}): "
                   f"it may have been changed after signing; {resign} (see {_DOCS})", fingerprint, signer)
    if verdict is _Verdict.UNKNOWN_KEY:
        return SignatureCheck(
            False, f"{subject} is signed by a key registered for no team ({fingerprint}): "
                   f"send its public key to the organizers, or sign with your team's registered key "
                   f"(see {_DOCS})", fingerprint, None)
    if signer != team:
        return SignatureCheck(False, f"{subject} is signed by a key of team {signer}, not of team {team}",
                              fingerprint, signer)
    return SignatureCheck(True, None, fingerprint, signer)


def _resolve(repo: Path, name: str, what: str) -> str:
    if not name or name.startswith("-") or any(c.isspace() for c in name):
        raise JcError(f"{what} {name!r} is not a git object name")
    proc = git(["rev-parse", "--verify", "--quiet", name], repo, check=False)
    oid = str(proc.stdout).strip()
    if proc.returncode != 0 or not oid:
        raise JcError(f"{what} {name!r} not found in {repo}")
    return oid


def _raw_object(repo: Path, kind: str, oid: str) -> bytes:
    return bytes(git(["cat-file", kind, oid], repo, binary=True).stdout)


def verify_commit(repo: Path, commit: str, team: str, keys_by_team: Mapping[str, Sequence[str]],
                  *, workdir: Path) -> SignatureCheck:
    """Is ``commit`` in ``repo`` signed by one of ``keys_by_team[team]``?

    ``workdir`` receives the allowed-signers file for the time of the check. Raises
    :class:`JcError` when the commit does not exist; every verdict on the signature itself
    is a :class:`SignatureCheck`. A registered key that is malformed or shared by two teams
    signs for no one, and a failed check of that team's submission names the problem.
    """
    oid = _resolve(Path(repo), f"{commit}^{{commit}}", "commit")
    subject = f"the head commit {oid[:12]}"
    signature = _commit_signature(_raw_object(Path(repo), "commit", oid))
    fixes = ("sign it with `git commit -S`", "sign it again with `git commit --amend -S --no-edit`")
    return _check(Path(repo), "verify-commit", oid, subject, fixes, signature, team, keys_by_team, Path(workdir))


def verify_tag(repo: Path, tag: str, team: str, keys_by_team: Mapping[str, Sequence[str]],
               *, workdir: Path) -> SignatureCheck:
    """Is the tag ``tag`` (e.g. ``final/best``) in ``repo`` a tag object signed by the team?

    A lightweight tag, or a tag object made for another name, is refused with a reason.
    Raises :class:`JcError` when the tag does not exist.
    """
    name = tag[len("refs/tags/"):] if tag.startswith("refs/tags/") else tag
    oid = _resolve(Path(repo), f"refs/tags/{name}", "tag")
    subject = f"the tag {name}"
    resign = f"make it a signed tag with `git tag -f -s {name} <commit> -m ...` and push it again"
    kind = str(git(["cat-file", "-t", oid], Path(repo)).stdout).strip()
    if kind != "tag":
        return SignatureCheck(False, f"{subject} is a lightweight tag, which cannot be signed: "
                                     f"{resign} (see {_DOCS})", None, None)
    raw = _raw_object(Path(repo), "tag", oid)
    header = raw.split(b"\n\n", 1)[0].decode("utf-8", errors="replace").split("\n")
    inner = next((line[4:] for line in header if line.startswith("tag ")), "")
    if inner != name:
        return SignatureCheck(False, f"{subject} holds a tag object made for the name {inner!r}: "
                                     f"{resign} (see {_DOCS})", None, None)
    return _check(Path(repo), "verify-tag", oid, subject, (resign, resign), _tag_signature(raw),
                  team, keys_by_team, Path(workdir))
