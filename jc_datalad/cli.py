"""The ``jc`` command: a thin click layer over the library.

Each command parses its arguments, calls one library function and renders
what comes back; :class:`JcError` becomes a clean error message here, in one
place.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

import click

from jc_datalad import __version__
from jc_datalad.errors import JcError


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except JcError as exc:
            raise click.ClickException(str(exc)) from None


def _echo_json(data) -> None:
    click.echo(json.dumps(data, indent=1, sort_keys=True, default=str))


@click.group(cls=_Group)
@click.version_option(__version__, prog_name="jc")
@click.option("-v", "--verbose", count=True, help="Log more (-v info, -vv debug).")
def main(verbose: int) -> None:
    """jc-datalad: data challenges as DataLad datasets, evaluated by sandboxed re-execution."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # DataLad reports every step at INFO; its messages matter here only when asked for with -vv.
    # It reads its level when first imported, which happens later, inside the library.
    os.environ.setdefault("DATALAD_LOG_LEVEL", "debug" if verbose >= 2 else "warning")


# -- challenge ---------------------------------------------------------------

@main.group(cls=_Group)
def challenge() -> None:
    """Create and check challenge datasets."""


@challenge.command("new")
@click.argument("template")
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--id", "challenge_id", help="Challenge id (default: <template>-challenge).")
@click.option("--title", help="Challenge title.")
@click.option("--image", default="full", show_default=True,
              help="Container image: a built-in recipe (full, minimal) or an image tarball.")
@click.option("--size", type=click.Choice(["default", "large"]), default="default", show_default=True,
              help="Data size: default runs in seconds; large is realistic, for benchmarks.")
@click.option("--items", type=int, help="Public items per split (templates that have this setting).")
@click.option("--hidden-items", type=int, help="Hidden test items (templates that have this setting).")
@click.option("--frames", type=int, help="Frames per time-lapse (bacteria).")
@click.option("--pixels", type=int, help="Image height and width in pixels (templates of images).")
@click.option("--seed", type=int, default=7, show_default=True, help="Data generator seed.")
def challenge_new(template, directory, challenge_id, title, image, size, items, hidden_items, frames, pixels,
                  seed):
    """Create a challenge from TEMPLATE in DIRECTORY: public and private datasets and runner.yaml."""
    from jc_datalad.challenge import new_challenge

    made = new_challenge(template, directory, challenge_id=challenge_id, title=title, image=image,
                         size=size, items=items, hidden_items=hidden_items, frames=frames, pixels=pixels,
                         seed=seed,
                         progress=click.echo)
    click.echo(f"public dataset:  {made.public}\nprivate dataset: {made.private}\n"
               f"runner config:   {made.config}\nnext: jc team add NAME --repository URL --config {made.config}")


@challenge.command("templates")
@click.option("--json", "as_json", is_flag=True, help="Print the templates as JSON.")
def challenge_templates(as_json: bool) -> None:
    """List the templates `jc challenge new TEMPLATE DIR` can start from."""
    from jc_datalad.templates import iter_templates

    found = list(iter_templates())
    if as_json:
        _echo_json([t.as_dict() for t in found])
        return
    width = max((len(t.name) for t in found), default=0)
    for t in found:
        click.echo(f"{t.name:<{width}}  {t.type or '?':<9}  {t.description}")
    click.echo("\nstart one with: jc challenge new TEMPLATE DIR")


@challenge.command("check")
@click.argument("path", type=click.Path(exists=True, path_type=Path), default=".")
@click.option("--private", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The private dataset, to count the hidden items on the public leaderboard "
                   "(default: from a runner.yaml beside the challenge dataset, or --config).")
@click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A runner.yaml naming the private dataset (instead of --private).")
@click.option("--json", "as_json", is_flag=True, help="Print the problems, warnings and notes as JSON.")
def challenge_check(path: Path, private: Path | None, config: Path | None, as_json: bool) -> None:
    """Check a challenge.yaml (or the one in a dataset at PATH); report every problem at once.

    Also warns, without failing, when challenge.yaml is not committed, and when the public
    leaderboard rests on one or two hidden items (needs the private dataset).
    """
    from jc_datalad.challenge_warnings import check_challenge, find_private
    from jc_datalad.config import load_config
    from jc_datalad.spec import SpecError, load_spec

    try:
        spec = load_spec(path)
    except SpecError as exc:
        if as_json:
            _echo_json({"ok": False, "problems": [vars(p) for p in exc.problems]})
        else:
            click.echo(str(exc), err=True)
        sys.exit(1)
    spec_file = path / "challenge.yaml" if path.is_dir() else path
    split = "test"
    if private is None and config is not None:
        cfg = load_config(config)
        private, split = cfg.private, cfg.split
    if private is None:
        private = find_private(spec_file.parent)
    found = check_challenge(spec_file, spec, private=private, default_split=split)
    if as_json:
        _echo_json({"ok": True, "spec": spec.as_dict(), **found.as_dict()})
        return
    click.echo(f"{path}: ok ({spec.id}: {spec.title}, type {spec.type.value})")
    for warning in found.warnings:
        click.echo(f"warning: {warning}", err=True)
    for note in found.notes:
        click.echo(f"note: {note}", err=True)


@challenge.command("release-hidden")
@click.option("--config", type=click.Path(exists=True, path_type=Path), default="runner.yaml",
              show_default=True, help="Runner configuration file.")
@click.option("--output", type=click.Path(path_type=Path), default=None,
              help="The release dataset (default: <challenge>-hidden-released beside the results).")
@click.option("--at", "at", default=None, help="Release as of this time (ISO, UTC; default: now).")
@click.option("--json", "as_json", is_flag=True, help="Print what was released as JSON.")
@click.option("--wait/--no-wait", default=False, show_default=True,
              help="Wait for another writer of the results dataset instead of stopping.")
def challenge_release_hidden(config: Path, output: Path | None, at: str | None, as_json: bool, wait: bool) -> None:
    """Publish the hidden inputs and labels of every split whose phases have ended, as a dataset
    anyone can clone (level c of docs/reproduce.md); never teams.yaml, keys or running phases' data."""
    from jc_datalad.config import load_config
    from jc_datalad.release import release_hidden
    from jc_datalad.spec import _parse_time

    done = release_hidden(load_config(config), now=_parse_time(at) if at else None, output=output, wait=wait)
    if as_json:
        _echo_json(done.as_dict())
        return
    click.echo(f"{done.dataset}: hidden data of {', '.join(done.splits)} released"
               + (f" ({', '.join(done.added)} new)" if done.added else " (nothing new)"))


# -- image -------------------------------------------------------------------

@main.group(cls=_Group)
def image() -> None:
    """Build container images (root-filesystem tarballs from Debian packages)."""


@image.command("build")
@click.option("--recipe", default="full", show_default=True, help="Built-in recipe: full or minimal.")
@click.option("--cache", type=click.Path(path_type=Path), help="Cache folder for built images.")
def image_build(recipe: str, cache: Path | None) -> None:
    """Build an image (cached by the recipe's content hash) and print its path."""
    from jc_datalad import image as images
    from jc_datalad.config import default_cache_dir

    if recipe not in images.RECIPES:
        raise JcError(f"unknown recipe {recipe!r}; known: {', '.join(images.RECIPES)}")
    path = images.build_image(images.RECIPES[recipe], cache_dir=cache or default_cache_dir() / "images",
                              progress=lambda m: click.echo(m, err=True))
    click.echo(str(path))


# -- team --------------------------------------------------------------------

@main.group(cls=_Group)
def team() -> None:
    """Register teams: their submission repositories, members and signing keys."""


def _teams_of(config: Path) -> Path:
    from jc_datalad.config import load_config

    return load_config(config).teams_file


_CONFIG = click.option("--config", type=click.Path(exists=True, path_type=Path), default="runner.yaml",
                       show_default=True, help="Runner configuration file.")


@team.command("add")
@click.argument("name")
@click.option("--repository",
              help="The team's own submission repository (URL or path). Needed for a new team; a "
                   "registered team keeps its repository when this is left out.")
@click.option("--member", "members", multiple=True, help="A member (repeat for several).")
@click.option("--key", "keys", multiple=True,
              help="An SSH public key allowed to sign the team's submissions: a .pub file or the key text "
                   "(repeat for several).")
@_CONFIG
def team_add(name: str, repository: str | None, members: tuple[str, ...], keys: tuple[str, ...],
             config: Path) -> None:
    """Register team NAME with its submission repository and signing keys (in the private dataset).

    Run again for a registered team to add members or keys; --repository then changes its
    repository, and may be left out.
    """
    from jc_datalad.teams import add_team

    path = add_team(_teams_of(config), name, repository, members, keys)
    click.echo(f"team {name} registered in {path}")


@team.command("check")
@_CONFIG
def team_check(config: Path) -> None:
    """Check teams.yaml: names, one repository and valid, distinct keys per team, merge targets."""
    from jc_datalad.config import read_teams

    found = read_teams(_teams_of(config))
    for p in found.problems:
        click.echo(f"problem: {found.path}:{p.where + ':' if p.where else ''} {p}", err=True)
    if found.suspended:
        click.echo(f"suspended until fixed (their submissions wait): {', '.join(sorted(found.suspended))}",
                   err=True)
    if found.problems:
        sys.exit(1)
    if not found.teams:
        click.echo(f"{found.path}: no teams registered yet; add them with `jc team add NAME --repository URL`")
        return
    click.echo(f"{len(found.teams)} team(s): ok")


@team.command("merge")
@click.argument("into")
@click.argument("other")
@_CONFIG
def team_merge(into: str, other: str, config: Path) -> None:
    """Merge team OTHER into INTO before the challenge's merge deadline."""
    from jc_datalad.config import load_config
    from jc_datalad.spec import load_spec
    from jc_datalad.teams import merge_teams

    cfg = load_config(config)
    spec = load_spec(cfg.challenge)
    merge_teams(cfg.teams_file, into, other, deadline=spec.teams.merge_deadline)
    click.echo(f"team {other} merged into {into}: their submissions and quotas now count together")


@team.command("list")
@click.option("--config", type=click.Path(exists=True, path_type=Path), default="runner.yaml",
              show_default=True, help="Runner config naming the private dataset.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: per team its repository, members and keys.")
def team_list(config: Path, as_json: bool) -> None:
    """List registered teams: repository, members and the fingerprints (SHA256:...) of their keys."""
    from jc_datalad.teams import list_teams

    listing = list_teams(_teams_of(config))
    if as_json:
        _echo_json(listing.as_dict())
        return
    for t in listing.teams:
        merged = f" (merged into {t.merged_into})" if t.merged_into else ""
        click.echo(f"{t.name}{merged}\n  repository: {t.repository}")
        click.echo(f"  members:    {', '.join(t.members) if t.members else '(none)'}")
        if not t.keys:
            click.echo("  keys:       (none)")
        for k in t.keys:
            shown = f"{k.fingerprint} ({k.type})" if k.fingerprint else f"MALFORMED ({k.type}): {k.problem}"
            click.echo(f"  key:        {shown}")
    if not listing.teams:
        click.echo(f"{listing.path}: no teams registered yet; add them with `jc team add NAME --repository URL`")
    if listing.suspended:
        click.echo(f"suspended until fixed (`jc team check` says why): {', '.join(listing.suspended)}", err=True)


@team.command("remove")
@click.argument("name")
@_CONFIG
def team_remove(name: str, config: Path) -> None:
    """Remove team NAME: the runner stops reading its repository; its recorded evaluations stay."""
    from jc_datalad.teams import remove_team

    path = remove_team(_teams_of(config), name)
    click.echo(f"team {name} removed from {path}")


@team.group("key", cls=_Group)
def team_key() -> None:
    """Rotate a team's signing keys: add the new key, then remove the old one."""


@team_key.command("add")
@click.argument("name")
@click.argument("key")
@_CONFIG
def team_key_add(name: str, key: str, config: Path) -> None:
    """Allow KEY (a .pub file or the key text) to sign team NAME's submissions."""
    from jc_datalad.teams import add_key

    change = add_key(_teams_of(config), name, key)
    if change.action == "unchanged":
        click.echo(f"team {name}: key {change.fingerprint} was already registered; nothing changed")
    else:
        click.echo(f"team {name}: key {change.fingerprint} added ({change.keys_left} key(s)) in {change.path}")


@team_key.command("remove")
@click.argument("name")
@click.argument("key")
@_CONFIG
def team_key_remove(name: str, key: str, config: Path) -> None:
    """Stop KEY from signing for team NAME: its fingerprint (SHA256:..., see `jc team list`),
    the key text or its .pub file."""
    from jc_datalad.config import load_config
    from jc_datalad.spec import SpecError, load_spec
    from jc_datalad.teams import remove_key

    cfg = load_config(config)
    signed: bool | None
    try:
        signed = load_spec(cfg.challenge).submission.signed
    except SpecError:
        signed = None  # the warning below then says "if"; `jc challenge check` reports the file
    change = remove_key(cfg.teams_file, name, key, signed=signed)
    shown = change.fingerprint or "a malformed key"
    click.echo(f"team {name}: {shown} removed ({change.keys_left} key(s) left) in {change.path}")
    for warning in change.warnings:
        click.echo(f"warning: {warning}", err=True)


# -- runner ------------------------------------------------------------------

@main.group(cls=_Group)
def runner() -> None:
    """Evaluate submissions: discover, admit, inspect, re-execute, score, record."""


_WAIT = click.option("--wait/--no-wait", default=False, show_default=True,
                     help="When another writer (a pass, an override, a reproduction) holds the results "
                          "dataset's lock: wait for it, or exit at once saying who holds it.")


@runner.command("run")
@click.option("--config", type=click.Path(exists=True, path_type=Path), default="runner.yaml",
              show_default=True, help="Runner configuration file.")
@click.option("--once", is_flag=True, help="One pass, then exit (the only mode for now).")
@click.option("--workers", type=int, help="Evaluations run at the same time.")
@click.option("--json", "as_json", is_flag=True, help="Print the pass report as JSON.")
@_WAIT
def runner_run(config: Path, once: bool, workers: int | None, as_json: bool, wait: bool) -> None:
    """Run a pass over every team repository and record new evaluations."""
    from jc_datalad.config import load_config
    from jc_datalad.runner import run_once

    if not once:
        raise JcError("`jc runner run` makes one pass (--once); for passes on an interval with the site "
                      "rebuilt after each, use `jc runner serve`")
    report = run_once(load_config(config), workers=workers, wait=wait,
                      progress=None if as_json else click.echo)
    if as_json:
        _echo_json(report.as_dict())
    else:
        click.echo(f"pass done in {report.wall_s:.2f} s: {len(report.evaluations)} new evaluation(s)")
    if report.team_errors:
        # the other teams were evaluated; the organizers must still act on these
        teams = sorted({err.split(":", 1)[0].removeprefix("team ") for err in report.team_errors})
        raise click.ClickException(f"{len(teams)} team(s) could not be read this pass: {', '.join(teams)} "
                                   "(see the lines above)")


@runner.command("serve")
@_CONFIG
@click.option("--site", "site_dir", type=click.Path(path_type=Path), required=True,
              help="Where the site is published: a symlink to the latest complete build (made here).")
@click.option("--interval", default="5m", show_default=True,
              help="Time from the start of one pass to the next: seconds, or with a unit (30s, 5m, 1h).")
@click.option("--once", is_flag=True, help="One pass and one site build, then exit (non-zero if either failed).")
@click.option("--workers", type=int, help="Evaluations run at the same time.")
@click.option("--json", "as_json", is_flag=True, help="Print each cycle's report as a JSON line.")
def runner_serve(config: Path, site_dir: Path, interval: str, once: bool, workers: int | None,
                 as_json: bool) -> None:
    """Run a pass every INTERVAL and publish the site after each, until SIGTERM or SIGINT.

    A failed pass or build is logged and the next pass comes as usual; a pass while
    another writer holds the results dataset's lock is skipped with a message.
    """
    from jc_datalad.config import load_config
    from jc_datalad.serve import Stop, parse_interval, serve, stop_on_signals

    seconds = parse_interval(interval)
    loaded = load_config(config)
    say = (lambda msg: None) if as_json else click.echo
    cycles = []

    def report(c) -> None:
        cycles.append(c)
        if as_json:
            click.echo(json.dumps(c.as_dict(), sort_keys=True))
            return
        if c.pass_error:
            click.echo(f"pass failed: {c.pass_error}", err=True)
        if c.site_error:
            click.echo(f"site build failed: {c.site_error}", err=True)

    try:
        with stop_on_signals(Stop()) as stop:
            serve(loaded, site_dir, interval=seconds, once=once, workers=workers, stop=stop, say=say,
                  on_cycle=report)
    except KeyboardInterrupt:
        click.echo("stopped at once (the next pass finishes what this one left)", err=True)
        sys.exit(130)
    if once and cycles and not cycles[-1].ok:
        raise click.ClickException("the pass or the site build failed, or a team could not be read "
                                   "(see the lines above)")


@runner.command("override")
@click.argument("action", type=click.Choice(["disqualify", "disqualify-team", "readmit", "extend"]))
@click.argument("target")
@click.option("--reason", required=True, help="Why: recorded in the results dataset and shown.")
@click.option("--end", help="For extend: the phase's new end (ISO date or time, UTC).")
@_CONFIG
@_WAIT
def runner_override(action: str, target: str, reason: str, end: str | None, config: Path, wait: bool) -> None:
    """Organizer override with an audit trail: disqualify an evaluation or a team, re-admit an
    evaluation, or extend a phase (TARGET is an evaluation id, a team or a phase)."""
    from jc_datalad.config import load_config
    from jc_datalad.runner import override

    entry = override(load_config(config), action, target, reason=reason, end=end, wait=wait)
    click.echo(f"recorded: {entry['action']} {entry['target']}: {entry['reason']}")


@runner.command("evaluate")
@click.option("--config", type=click.Path(exists=True, path_type=Path), required=True,
              help="Runner configuration file.")
@click.option("--team", "team_name", required=True, help="The registered team whose submission this is.")
@click.option("--commit", required=True, help="The submission's head commit (full hash).")
@click.option("--phase", required=True, help="The phase the submission is evaluated in.")
@click.option("--split", required=True, help="The hidden split to evaluate on.")
@click.option("--output", type=click.Path(path_type=Path), required=True,
              help="Folder the evaluation record, logs and predictions are written to.")
def runner_evaluate(config: Path, team_name: str, commit: str, phase: str, split: str, output: Path) -> None:
    """Evaluate one submission into OUTPUT (what the ledger's run records re-execute)."""
    from jc_datalad.config import load_config
    from jc_datalad.runner import evaluate_into

    ev = evaluate_into(load_config(config), team_name, commit, phase, split, output)
    click.echo(f"{ev.id}: {ev.status.value}" + (f": {ev.reason}" if ev.reason else ""))


@runner.command("collect")
@_CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_WAIT
def runner_collect(config: Path, as_json: bool, wait: bool) -> None:
    """Record the evaluations that cluster jobs of earlier passes finished (backend: slurm); submit nothing."""
    from jc_datalad.config import load_config
    from jc_datalad.runner import collect

    report = collect(load_config(config), wait=wait, progress=None if as_json else click.echo)
    if as_json:
        _echo_json(report.as_dict())


@runner.command("task")
@click.option("--config", type=click.Path(exists=True, path_type=Path), required=True,
              help="Runner configuration file.")
@click.option("--tasks", "tasks_file", type=click.Path(exists=True, path_type=Path), required=True,
              help="The batch's tasks.json, written by the pass that submitted it.")
@click.option("--index", type=int, required=True, help="The task's index in the batch ($SLURM_ARRAY_TASK_ID).")
def runner_task(config: Path, tasks_file: Path, index: int) -> None:
    """Evaluate one task of a Slurm job array in node-local scratch and publish it to the output store
    (what the batch script of `backend: slurm` runs on a compute node)."""
    from jc_datalad.backends.slurm import run_array_task
    from jc_datalad.config import load_config

    ev = run_array_task(load_config(config), tasks_file, index)
    click.echo(f"{ev.id}: {ev.status.value}")


@runner.command("reproduce")
@click.argument("evaluation_id")
@click.option("--config", type=click.Path(exists=True, path_type=Path), default="runner.yaml",
              show_default=True, help="Runner configuration file.")
@_WAIT
def runner_reproduce(evaluation_id: str, config: Path, wait: bool) -> None:
    """Redo the stored evaluation EVALUATION_ID and compare predictions and scores byte for byte.

    The original record is never touched: the redo and its verdict are committed to
    reproductions/EVALUATION_ID/<n>/ in the results dataset. Exits 1 when they differ.
    """
    from jc_datalad.config import load_config
    from jc_datalad.runner import reproduce

    verdict = reproduce(load_config(config), evaluation_id, wait=wait)
    said = "identical" if verdict.reproduced else f"DIFFER (first difference: {verdict.first_difference})"
    click.echo(f"{evaluation_id}: {verdict.redone_status}; predictions and scores {said}; "
               f"verdict in {verdict.folder}/")
    if not verdict.reproduced:
        sys.exit(1)


@runner.command("rescore")
@click.option("--evaluation", "ids", multiple=True, help="An evaluation to rescore (repeatable); default every one.")
@click.option("--phase", help="Only evaluations of this phase.")
@click.option("--config", type=click.Path(exists=True, path_type=Path), default="runner.yaml",
              show_default=True, help="Runner configuration file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_WAIT
def runner_rescore(ids: tuple[str, ...], phase: str | None, config: Path, as_json: bool, wait: bool) -> None:
    """Score the stored predictions of evaluated submissions again with the current scorer.

    Nothing is re-executed. Each result goes to evaluations/<id>/scores/<scorer>-<version>.json
    beside the record, which is never changed; the site shows the newest scorer version's scores.
    """
    from jc_datalad.config import load_config
    from jc_datalad.rescore import rescore

    report = rescore(load_config(config), ids=ids, phase=phase, wait=wait, progress=None if as_json else click.echo)
    if as_json:
        _echo_json(report.as_dict())
    else:
        click.echo(f"{len(report.rescored)} rescored with {report.scorer} {report.version}, "
                   f"{len(report.unchanged)} already scored by it, {len(report.failed)} not rescored")
    if report.failed:
        raise click.ClickException(f"{len(report.failed)} evaluation(s) could not be rescored (see above)")


@runner.command("rerun")
@click.option("--hidden-version", required=True, help="A commit of the private dataset: the hidden data to run on.")
@click.option("--final-only", is_flag=True, help="Only each team's final selection (its final/ tags, else its best).")
@click.option("--phase", help="Only submissions of this phase.")
@click.option("--evaluation", "ids", multiple=True, help="Only this original evaluation (repeatable).")
@click.option("--config", type=click.Path(exists=True, path_type=Path), default="runner.yaml",
              show_default=True, help="Runner configuration file.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@_WAIT
def runner_rerun(hidden_version: str, final_only: bool, phase: str | None, ids: tuple[str, ...], config: Path,
                 as_json: bool, wait: bool) -> None:
    """Re-execute evaluated submissions on another version of the hidden data.

    Each result is a new evaluation <id>--hidden-<version>; the original records stay as
    they are and no quota is charged. The reruns form a leaderboard version of their own.
    """
    from jc_datalad.config import load_config
    from jc_datalad.rerun import rerun

    report = rerun(load_config(config), hidden_version, final_only=final_only, phase=phase, ids=ids, wait=wait,
                   progress=None if as_json else click.echo)
    if as_json:
        _echo_json(report.as_dict())
    else:
        click.echo(f"{len(report.evaluations)} rerun(s) on hidden version {report.hidden_version[:12]}, "
                   f"{len(report.already_done)} already in the ledger, {len(report.failed)} not run")


# -- reproduce (readers) -------------------------------------------------------

@main.group(cls=_Group)
def reproduce() -> None:
    """Redo a published evaluation on your own machine (docs/reproduce.md)."""


@reproduce.command("submission")
@click.argument("archive")
@click.argument("evaluation_id")
@click.option("--into", type=click.Path(path_type=Path), default=None,
              help="Folder to clone into (default: ./EVALUATION_ID).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def reproduce_submission(archive: str, evaluation_id: str, into: Path | None, as_json: bool) -> None:
    """Rerun a published submission's recorded steps on the public inputs and compare with its
    committed predictions byte for byte (level a). ARCHIVE: the challenge's public archive of
    submissions; EVALUATION_ID: the evaluation, as its page names it. Exits 1 when they differ."""
    from jc_datalad.reader import reproduce_submission as run

    verdict = run(archive, evaluation_id, into or Path(evaluation_id))
    if as_json:
        _echo_json(verdict.as_dict())
    else:
        click.echo(verdict.line())
    if not verdict.identical:
        sys.exit(1)


@reproduce.command("score")
@click.argument("archive")
@click.argument("evaluation_id")
@click.option("--hidden", "released", required=True, help="The released hidden data (jc challenge release-hidden).")
@click.option("--split", required=True, help="The hidden split the evaluation was scored on.")
@click.option("--expect", multiple=True, metavar="NAME=VALUE",
              help="A recorded score to compare with (repeatable); without any, the scores are printed.")
@click.option("--into", type=click.Path(path_type=Path), default=None,
              help="Folder to clone into (default: ./EVALUATION_ID).")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
def reproduce_score(archive: str, evaluation_id: str, released: str, split: str, expect: tuple[str, ...],
                    into: Path | None, as_json: bool) -> None:
    """Rerun a published submission on the released hidden inputs and score it against the
    released labels (level c). ARCHIVE: the challenge's public archive of submissions;
    EVALUATION_ID: the evaluation, as its page names it. Exits 1 when a score differs from its
    --expect value."""
    from jc_datalad.reader import reproduce_score as run

    expected = {}
    for item in expect:
        name, sep, value = item.partition("=")
        try:
            expected[name] = float(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: write NAME=VALUE, such as sbd=0.75", param_hint="--expect") from None
        if not sep or not name:
            raise click.BadParameter(f"{item!r}: write NAME=VALUE", param_hint="--expect")
    verdict = run(archive, evaluation_id, released, split, into or Path(evaluation_id), expected)
    if as_json:
        _echo_json(verdict.as_dict())
    else:
        click.echo(verdict.line())
    if not verdict.identical:
        sys.exit(1)


# -- submit ------------------------------------------------------------------

@main.group(cls=_Group)
def submit() -> None:
    """Participant self-checks."""


@submit.command("check")
@click.argument("dataset", type=click.Path(exists=True, path_type=Path), default=".")
@click.option("--no-run", is_flag=True,
              help="Only inspect the history and validate the committed outputs; do not replay the steps.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def submit_check(dataset: Path, no_run: bool, as_json: bool) -> None:
    """Check your DATASET (default: here) as the runner will: inspect its history, replay the recorded
    steps in the runner's sandbox on the public inputs, and validate the outputs with the scorer."""
    from jc_datalad.submit import check_submission

    result = check_submission(dataset, run=not no_run)
    if as_json:
        _echo_json(result.as_dict())
    else:
        for w in result.warnings:
            click.echo(f"warning: {w}")
        for step in result.steps:
            click.echo(f"recorded step (commit {step.commit[:12]}): {step.inner}")
        for done in result.executed:
            code = "" if done.exit_code is None else f", exit code {done.exit_code}"
            click.echo(f"ran step {done.number}: {done.status}{code}, {done.wall_s:.1f} s")
        if result.ran:
            click.echo("checked: the steps were replayed in the runner's sandbox on a read-only copy of your "
                       "head commit, with the public inputs, and their outputs validated")
        elif result.steps:
            click.echo("checked without running (--no-run): history, run records and the committed outputs; "
                       "the steps were not replayed")
        if result.ok:
            click.echo(f"ok: {_accepted(result)}")
        for p in result.problems:
            click.echo(f"refused: {p}", err=True)
    sys.exit(0 if result.ok else 1)


def _accepted(result) -> str:  # a jc_datalad.submit.SubmitCheck
    """What the runner does with an accepted submission, by the challenge's type."""
    if result.type == "results":
        said = ("the runner would accept this submission and score your committed predictions as submitted "
                "(nothing is re-executed on hidden data)")
        if result.verify != "rerun":
            return said
        if result.reproduced is None:
            return said + "; it also re-executes the steps above on the public inputs (verify: rerun), not tried here"
        return said + ("; re-executing the steps above on the public inputs (verify: rerun) reproduced them byte "
                       "for byte" if result.reproduced else "; re-executing the steps above on the public inputs "
                       "(verify: rerun) did not reproduce them: the entry would be marked 'not reproduced'")
    if result.type == "training":
        return ("the runner would accept this submission: it re-executes your training step on the organizer's "
                "hidden training set (not the public sample used here) into an empty model folder, then your "
                "prediction step with that freshly trained model on the hidden test inputs; your committed model "
                "is never used")
    return ("the runner would accept this submission and re-execute the steps above on the hidden test inputs")


@main.command("status")
@click.option("--site", help="The published site: its http(s) address or a folder (default: `git config jc.site`).")
@click.option("--team", help="Your team's name (default: `git config jc.team`).")
@click.option("--challenge", help="The challenge id (default: the id in your clone's challenge.yaml).")
@click.option("--dataset", type=click.Path(exists=True, file_okay=False, path_type=Path), default=".",
              show_default=True, help="Your clone of the challenge, where the defaults are read.")
@click.option("--all", "show_all", is_flag=True, help="List every submission in the file, not the newest 20.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(site: str | None, team: str | None, challenge: str | None, dataset: Path, show_all: bool,
           as_json: bool) -> None:
    """Show your team's submissions and the quota left today and in the phase, as the site publishes them."""
    from jc_datalad.status import read_status, render, resolve

    found = read_status(resolve(site=site, challenge=challenge, team=team, dataset=dataset))
    if as_json:
        _echo_json(found.as_dict())
        return
    for line in render(found, limit=len(found.submissions) if show_all else 20):
        click.echo(line)


# -- site --------------------------------------------------------------------

@main.group(cls=_Group)
def site() -> None:
    """Build the static leaderboard site."""


@site.command("build")
@click.argument("results", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), required=True, help="Site folder.")
@click.option("--strict", is_flag=True, help="Fail on any bad record instead of reporting it.")
def site_build(results: tuple[Path, ...], output: Path, strict: bool) -> None:
    """Build the site from the RESULTS ledger: one per challenge, one site for all of them."""
    from site_generator import build_site

    report = build_site(list(results), output, strict=strict)
    for problem in report.problems:
        click.echo(f"problem: {problem}", err=True)
    click.echo(f"{len(report.pages)} pages written; open {output.resolve() / 'index.html'}")


# -- demo --------------------------------------------------------------------

@main.command()
@click.argument("directory", type=click.Path(path_type=Path), default="demo")
@click.option("--template", default="bacteria", show_default=True,
              help="The template to play (`jc challenge templates` lists them).")
@click.option("--image", default="full", show_default=True, help="Image recipe (full, minimal) or tarball.")
def demo(directory: Path, template: str, image: str) -> None:
    """Play a template end to end in DIRECTORY (bacteria by default: a challenge, four teams, one
    cheating; other templates: a team with the starter kit, one with the better solution, and a
    cheating one where the template has one), a runner pass during the phase and one after it ends,
    a check that the better solution leads the final leaderboard, the site."""
    from jc_datalad.demo import run_demo

    index = run_demo(directory, template=template, image=image, progress=click.echo)
    click.echo(f"\nThe leaderboard site is ready: {index}")


def _add_score() -> None:
    from scorers.cli import score

    # The scorers package appends unindented paragraphs to an indented docstring, so click
    # cannot dedent it and prints the first paragraph with stray indents; dedent each line here.
    # No paragraph of it is preformatted (no \b blocks), so nothing else changes.
    score.help = "\n".join(line.strip() for line in (score.help or "").splitlines())
    main.add_command(score)


_add_score()


if __name__ == "__main__":
    main()
