"""``jc demo``: an organizer, four teams and a reader, on this machine.

The organizer creates the bacteria challenge (development phase open, signed
submissions, quotas). Team *baseline* submits the starter kit, team
*watershed* a better solution, team *tinkerer* two variants and marks its
final choice with a signed tag, team *mallory* code that tries to read the
labels, reach the network and write outside its output folder. Participants
use only ``datalad``, ``git`` and ``ssh-keygen``. A runner pass during the
phase evaluates everything (public scores); then the phase ends and a second
pass writes the final leaderboard on the private part, with rank changes.
The site shows the leaderboard and, for mallory, why its entry failed.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import challenge_templates.bacteria as bacteria
from jc_datalad import participant
from jc_datalad.challenge import new_challenge
from jc_datalad.config import load_config
from jc_datalad.errors import JcError
from jc_datalad.gitutil import ensure_identity
from jc_datalad.runner import run_once
from jc_datalad.teams import add_team

SOLUTIONS = Path(bacteria.__file__).parent / "solutions"

TEAMS = (
    ("baseline", None, "The starter kit as it is"),
    ("watershed", SOLUTIONS / "better" / "predict.py", "Split touching cells with a watershed"),
    ("tinkerer", SOLUTIONS / "better" / "predict.py", "Watershed, borrowed"),
    ("mallory", SOLUTIONS / "cheat" / "predict.py", "Totally legitimate improvements"),
)


def run_demo(directory: Path, *, image: str = "full", progress: Callable[[str], None] | None = None) -> Path:
    """Play the whole flow in ``directory`` (replaced if it holds an earlier demo); return index.html."""
    say = progress or (lambda msg: None)
    ensure_identity()
    directory = directory.resolve()
    if directory.exists():
        if not (directory / "runner.yaml").exists():
            raise JcError(f"{directory}: exists and is not an earlier demo; choose another folder")
        say(f"removing the earlier demo in {directory}")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    directory.chmod(0o755)

    say("== organizer: create the challenge")
    made = new_challenge("bacteria", directory, challenge_id="bacteria-demo", image=image, progress=say)
    config = load_config(made.config)
    phase_end = _development_end(config.challenge)

    for name, solution, message in TEAMS:
        say(f"== participant {name}: key, clone, work, containers-run, signed push")
        key = participant.make_key(directory / "keys" / name, f"{name}@example.org")
        repo = participant.make_team_repository(directory / "teams" / f"{name}.git")
        add_team(made.private, name, str(repo), (f"{name}@example.org",), (str(key) + ".pub",))
        clone = participant.clone_challenge(made.public, directory / "participants" / name)
        participant.configure_signing(clone, key)
        files = {"code/predict.py": solution} if solution else None
        participant.record_prediction(clone, files=files, message=message)
        commit = participant.push_submission(clone, repo, f"{name}-1")
        say(f"   pushed {commit[:12]} to {repo}")
        if name == "tinkerer":
            participant.record_prediction(clone, files={"code/predict.py": SOLUTIONS.parent / "code" / "predict.py"},
                                          message="Back to the starter kit")
            participant.push_submission(clone, repo, f"{name}-2")
            participant.sh(["git", "tag", "-s", "final/choice", commit, "-m", "our final submission"], cwd=clone)
            participant.sh(["git", "push", "-q", "team", "final/choice"], cwd=clone)
            say(f"   pushed a second submission and the signed tag final/choice -> {commit[:12]}")

    say("== organizer: a runner pass during the development phase")
    report = run_once(config, progress=lambda m: say("   " + m))
    say(f"   pass: {len(report.evaluations)} evaluations in {report.wall_s:.1f} s")

    say(f"== the development phase ends ({phase_end:%Y-%m-%d %H:%M} UTC); the next pass ranks the private part")
    run_once(config, now=phase_end + dt.timedelta(seconds=1), progress=lambda m: say("   " + m))

    say("== reader: the site")
    from site_generator import build_site

    site = directory / "site"
    built = build_site(config.results, site)
    for problem in built.problems:
        say(f"   site problem: {problem}")
    return site / "index.html"


def _development_end(challenge: Path) -> dt.datetime:
    from jc_datalad.spec import load_spec

    return load_spec(challenge).phases[0].end


def final_leaderboard(results: Path) -> dict:
    return json.loads((results / "standings" / "development-final.json").read_text())
