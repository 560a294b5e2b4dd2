"""``jc demo``: an organizer, its teams and a reader, on this machine, for any template.

The organizer creates a challenge from a template (development phase open,
signed submissions, quotas). Team *baseline* submits the starter kit, team
*better* the template's better solution (``solutions/better/``: files that
replace those of ``code/`` with the same relative paths). Where the template
has them, team *mallory* submits ``solutions/cheat/`` (code that tries to read
the labels, reach the network and write outside its output folder), and for
bacteria team *tinkerer* submits two variants and marks its final choice with a
signed tag. Each team records the steps of the template's ``participant.yaml``
with ``datalad containers-run``; participants use only ``datalad``, ``git``
and ``ssh-keygen``. A runner pass during the phase evaluates everything
(public scores); then the phase ends and a second pass writes the final
leaderboard on the private part. The demo checks that the better solution
leads it, and fails loudly if not. The site shows the leaderboard and, for
mallory, why its entry failed.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from jc_datalad import participant
from jc_datalad.challenge import new_challenge
from jc_datalad.config import load_config
from jc_datalad.errors import JcError
from jc_datalad.gitutil import ensure_identity
from jc_datalad.runner import run_once
from jc_datalad.teams import add_team
from jc_datalad.templates import templates_folder

#: The template ``make demo`` and ``jc demo`` play when none is named.
DEFAULT_TEMPLATE = "bacteria"


@dataclass(frozen=True)
class DemoTeam:
    name: str
    files: Mapping[str, Path]  #: relative path in the dataset -> file to copy there (empty: starter kit)
    message: str


def solution_files(template: str, solution: str) -> dict[str, Path]:
    """``solutions/<solution>/`` of a template as ``{"code/<rel>": file}``: they replace the starter
    kit's files of the same relative paths."""
    folder = templates_folder() / template / "solutions" / solution
    if not folder.is_dir():
        raise JcError(f"{folder}: missing; every template has solutions/better/ (docs/templates.md)")
    files = {f"code/{p.relative_to(folder).as_posix()}": p for p in sorted(folder.rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts}
    if not files:
        raise JcError(f"{folder}: holds no files; put the files that replace those of code/ there")
    return files


def demo_teams(template: str) -> tuple[DemoTeam, ...]:
    """The teams of the demo of ``template``: baseline and better always, mallory where the template
    has ``solutions/cheat/``, tinkerer for bacteria."""
    better = solution_files(template, "better")
    teams = [DemoTeam("baseline", {}, "The starter kit as it is"),
             DemoTeam("better", better, "The template's better solution")]
    if template == "bacteria":
        teams.append(DemoTeam("tinkerer", better, "The better solution, borrowed"))
    if (templates_folder() / template / "solutions" / "cheat").is_dir():
        teams.append(DemoTeam("mallory", solution_files(template, "cheat"), "Totally legitimate improvements"))
    return tuple(teams)


#: The teams of ``make demo`` (bacteria): baseline, better, tinkerer and mallory.
TEAMS = demo_teams(DEFAULT_TEMPLATE)


def run_demo(directory: Path, *, template: str = DEFAULT_TEMPLATE, image: str = "full",
             progress: Callable[[str], None] | None = None) -> Path:
    """Play the whole flow of ``template`` in ``directory`` (replaced if it holds an earlier demo).

    Returns the site's index.html. Raises :class:`JcError` when the better solution does not lead
    the final leaderboard: a template whose better solution loses is broken.
    """
    say = progress or (lambda msg: None)
    ensure_identity()
    # before anything is removed: an unknown or incomplete template changes nothing
    steps = participant.template_steps(template)
    teams = demo_teams(template)
    directory = directory.resolve()
    if directory.exists():
        if not (directory / "runner.yaml").exists():
            raise JcError(f"{directory}: exists and is not an earlier demo; choose another folder")
        say(f"removing the earlier demo in {directory}")
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    directory.chmod(0o755)

    say(f"== organizer: create the challenge from template {template}")
    made = new_challenge(template, directory, challenge_id=f"{template}-demo", image=image, progress=say)
    config = load_config(made.config)
    phase_end = _development_end(config.challenge)
    starter = made.public / "code"

    for team in teams:
        say(f"== participant {team.name}: key, clone, work, containers-run ({len(steps)} step(s)), signed push")
        key = participant.make_key(directory / "keys" / team.name, f"{team.name}@example.org")
        repo = participant.make_team_repository(directory / "teams" / f"{team.name}.git")
        add_team(made.private, team.name, str(repo), (f"{team.name}@example.org",), (str(key) + ".pub",))
        clone = participant.clone_challenge(made.public, directory / "participants" / team.name)
        participant.configure_signing(clone, key)
        participant.record_steps(clone, steps, files=team.files or None, message=team.message)
        commit = participant.push_submission(clone, repo, f"{team.name}-1")
        say(f"   pushed {commit[:12]} to {repo}")
        if team.name == "tinkerer":
            back = {rel: starter / rel.removeprefix("code/") for rel in team.files
                    if (starter / rel.removeprefix("code/")).is_file()}
            participant.record_steps(clone, steps, files=back, message="Back to the starter kit")
            participant.push_submission(clone, repo, f"{team.name}-2")
            participant.sh(["git", "tag", "-s", "final/choice", commit, "-m", "our final submission"], cwd=clone)
            participant.sh(["git", "push", "-q", "team", "final/choice"], cwd=clone)
            say(f"   pushed a second submission and the signed tag final/choice -> {commit[:12]}")

    say("== organizer: a runner pass during the development phase")
    report = run_once(config, progress=lambda m: say("   " + m))
    say(f"   pass: {len(report.evaluations)} evaluations in {report.wall_s:.1f} s")

    say(f"== the development phase ends ({phase_end:%Y-%m-%d %H:%M} UTC); the next pass ranks the private part")
    run_once(config, now=phase_end + dt.timedelta(seconds=1), progress=lambda m: say("   " + m))

    board = final_leaderboard(config.results)
    say("== final leaderboard (private part)")
    for row in board.get("rows", []):
        say(f"   {row.get('rank')}. {row.get('team')}: {row.get('score')}")
    check_better_leads(board)

    say("== reader: the site")
    from site_generator import build_site

    site = directory / "site"
    built = build_site(config.results, site)
    for problem in built.problems:
        say(f"   site problem: {problem}")
    return site / "index.html"


def check_better_leads(board: Mapping[str, object]) -> None:
    """The better solution ranks above the starter kit (and first), or a :class:`JcError` saying how."""
    rows = board.get("rows")
    ranks = {r.get("team"): r.get("rank") for r in rows if isinstance(r, dict)} if isinstance(rows, list) else {}
    better, baseline = ranks.get("better"), ranks.get("baseline")
    if not isinstance(better, int):
        raise JcError(f"the final leaderboard has no rank for team better (ranks: {ranks}); its evaluation "
                      "failed: see the site's submission pages and the runner's log")
    if isinstance(baseline, int) and better >= baseline:
        raise JcError(f"the better solution does not lead: better is ranked {better}, the starter kit {baseline} "
                      f"(ranks: {ranks}); the template's solutions/better/ must beat its code/")
    if better != min(r for r in ranks.values() if isinstance(r, int)):
        raise JcError(f"the better solution is ranked {better}, not first (ranks: {ranks})")


def _development_end(challenge: Path) -> dt.datetime:
    from jc_datalad.spec import load_spec

    return load_spec(challenge).phases[0].end


def final_leaderboard(results: Path) -> dict:
    return json.loads((results / "standings" / "development-final.json").read_text())
