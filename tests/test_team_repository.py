"""A team repository holds only the team's work after the documented `datalad push --to team`.

The challenge's own annexed content (the container image under ``.datalad/environments``, the public
inputs) comes to the runner from the organizer's challenge, never from a team; a push of the starter
kit must not copy it into the team's repository. Each test measures the repository after the push:
the annex keys it holds and its size on disk.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from conftest import DATA, sh

from jc_datalad import participant
from jc_datalad.records import Status

DOCS = Path(__file__).parent.parent / "docs" / "participants.md"
MODEL = "models/weights.npz"


def _starter_kit(clone: Path) -> None:
    """The starter kit as a participant submits it: a model of a few KB, code, a recorded prediction."""
    sh("datalad", "get", "inputs/train", cwd=clone)  # docs: participants get both public splits
    (clone / "models").mkdir()
    (clone / MODEL).write_bytes(os.urandom(6000))
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"},
                                  message="Threshold model")


def _key(repo: Path, path: str) -> str:
    return sh("git", "annex", "lookupkey", path, cwd=repo).strip()


def _challenge_keys(clone: Path) -> tuple[str, set[str]]:
    """The image's key and the keys of the public inputs present in the participant's clone."""
    image = _key(clone, ".datalad/environments/jc-env/image")
    inputs: set[str] = set()
    for split in ("inputs/test", "inputs/train"):
        inputs |= set(sh("git", "annex", "find", "--format=${key}\\n", cwd=clone / split).split())
    assert inputs, "the clone has no public inputs to compare against"
    return image, inputs


def _objects(root: Path) -> dict[str, int]:
    """Annex objects stored under ``root`` (a bare repository or a RIA store): key -> bytes."""
    return {p.name: p.stat().st_size for p in root.rglob("*") if p.is_file() and "annex" in p.parts
            and "objects" in p.parts and p.parent.name == p.name}


def _du(*paths: Path) -> int:
    return sum(p.stat().st_size for path in paths for p in path.rglob("*") if p.is_file())


def test_documented_push_leaves_the_challenge_out_of_the_team_repository(arena):
    repo = arena.team("lean")
    clone = arena.clone("lean")
    _starter_kit(clone)
    image, inputs = _challenge_keys(clone)
    model = _key(clone, MODEL)
    predictions = {_key(clone, f"predictions/{p.name}") for p in (clone / "predictions").iterdir()}
    assert (clone / ".datalad/environments/jc-env/image").stat().st_size > 10 * 2**20  # present, ready to leak

    # docs/participants.md, "Submit", word for word
    sh("datalad", "siblings", "add", "-s", "team", "--url", str(repo), "--fetch", cwd=clone)
    assert sh("git", "annex", "wanted", "team", cwd=clone).strip() == participant.TEAM_WANTED
    sh("git", "checkout", "-b", "submission-1", cwd=clone)
    sh("datalad", "push", "--to", "team", cwd=clone)

    here = set(sh("git", "annex", "whereis", "--all", "--in", "here", "--format=${key}\\n", cwd=repo).split())
    stored = _objects(repo)
    assert set(stored) == here == {model, *predictions}, (stored, here)
    assert image not in stored and not inputs & set(stored)
    size = _du(repo / "objects", repo / "annex")
    assert sum(stored.values()) < 100_000, stored
    assert size < 2 * 2**20, f"team repository holds {size} bytes"  # the image alone is tens of MB

    # the runner still gets everything it needs: the model from the team, the image from the challenge
    (ev,) = arena.run().evaluations
    assert ev.status is Status.EVALUATED, ev.reason


def test_a_repository_without_the_setting_receives_the_image_until_the_one_extra_command(work, challenge):
    """A bare repository made with plain git and git-annex (as a participant may make one) wants
    everything: the push copies the image. The documented `git annex wanted team ...` fixes it."""
    clone = participant.clone_challenge(challenge.public, work / "clone")
    _starter_kit(clone)
    image, inputs = _challenge_keys(clone)
    model = _key(clone, MODEL)
    sh("git", "checkout", "-b", "submission-1", cwd=clone)

    plain = work / "plain.git"
    sh("git", "init", "--bare", "--quiet", str(plain))
    sh("git", "annex", "init", "--quiet", cwd=plain)
    sh("datalad", "siblings", "add", "-s", "plain", "--url", str(plain), "--fetch", cwd=clone)
    sh("datalad", "push", "--to", "plain", cwd=clone)
    assert image in _objects(plain)  # the behaviour this module guards against

    own = work / "own.git"
    sh("git", "init", "--bare", "--quiet", str(own))
    sh("git", "annex", "init", "--quiet", cwd=own)
    sh("datalad", "siblings", "add", "-s", "team", "--url", str(own), "--fetch", cwd=clone)
    sh("git", "annex", "wanted", "team", participant.TEAM_WANTED, cwd=clone)
    sh("datalad", "push", "--to", "team", cwd=clone)
    stored = _objects(own)
    assert model in stored and image not in stored and not inputs & set(stored), stored


def test_ria_store_with_the_one_extra_command_holds_only_the_team_work(work, challenge):
    clone = participant.clone_challenge(challenge.public, work / "clone")
    _starter_kit(clone)
    image, inputs = _challenge_keys(clone)
    model = _key(clone, MODEL)
    sh("git", "checkout", "-b", "submission-1", cwd=clone)
    store = work / "store"
    sh("datalad", "create-sibling-ria", "-s", "team", "--new-store-ok", f"ria+file://{store}", cwd=clone)
    sh("git", "annex", "wanted", "team-storage", participant.TEAM_WANTED, cwd=clone)
    sh("datalad", "push", "--to", "team", cwd=clone)
    stored = _objects(store)
    assert model in stored and image not in stored and not inputs & set(stored), stored
    assert _du(store) < 2 * 2**20


def test_the_docs_show_the_expression_team_repositories_use():
    text = DOCS.read_text()
    assert f'git annex wanted team "{participant.TEAM_WANTED}"' in text
    # the sibling is added with --fetch (any URL), then its expression is checked
    assert re.search(r"^datalad siblings add -s team --url \S+ --fetch\ngit annex wanted team\n", text, re.M)
