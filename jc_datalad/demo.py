"""``jc demo``: an organizer, three teams and a reader, on this machine.

The organizer creates the bacteria challenge; team *baseline* submits the
starter kit, team *watershed* a better solution, team *mallory* code that
tries to read the labels, reach the network and write outside its output
folder. Participants use only ``datalad`` and ``git``. One runner pass
evaluates everything; the site shows the leaderboard and, for mallory, why
its entry failed.
"""

from __future__ import annotations

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
    private = made.private

    for name, solution, message in TEAMS:
        say(f"== participant {name}: clone, work, containers-run, push")
        repo = participant.make_team_repository(directory / "teams" / f"{name}.git")
        add_team(private, name, str(repo), (f"{name}@example.org",))
        clone = participant.clone_challenge(made.public, directory / "participants" / name)
        files = {"code/predict.py": solution} if solution else None
        participant.record_prediction(clone, files=files, message=message)
        commit = participant.push_submission(clone, repo, f"{name}-1")
        say(f"   pushed {commit[:12]} to {repo}")

    say("== organizer: one runner pass")
    config = load_config(made.config)
    report = run_once(config, progress=lambda m: say("   " + m))
    say(f"   pass: {len(report.evaluations)} evaluations in {report.wall_s:.1f} s")

    say("== reader: the site")
    from site_generator import build_site

    site = directory / "site"
    built = build_site(config.results, site)
    for problem in built.problems:
        say(f"   site problem: {problem}")
    return site / "index.html"
