"""End-to-end time of five submissions per template, and the runner's share of it.

For each template (at ``--size default``: all of them; at ``--size large``: brains and hep, the
two whose large data is the point) this makes a challenge, then five teams submit in turn the
starter kit and the better solution (``solutions/better/``), each recording the steps of the
template's ``participant.yaml`` with ``datalad containers-run`` and pushing, and one runner pass
evaluates the five. It prints, per template:

- ``create``: making the challenge (data generation, datasets, image), apart;
- ``participants``: the five participants' recorded steps and pushes;
- ``runner``: the runner pass over the five (re-execution on hidden data, scoring, ledger);
- ``total`` = participants + runner, and the runner's share of it.

Usage: ``.venv/bin/python benchmarks/templates.py [--size default|large] [--template NAME ...]
[--keep DIR]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jc_datalad import participant  # noqa: E402
from jc_datalad.challenge import TEMPLATES, new_challenge  # noqa: E402
from jc_datalad.config import load_config  # noqa: E402
from jc_datalad.demo import solution_files  # noqa: E402
from jc_datalad.gitutil import ensure_identity  # noqa: E402
from jc_datalad.records import Status  # noqa: E402
from jc_datalad.runner import run_once  # noqa: E402
from jc_datalad.teams import add_team  # noqa: E402

SUBMISSIONS = 5
#: The templates measured at ``--size large``.
LARGE = ("brains", "hep")


def measure(name: str, size: str, root: Path) -> dict[str, float | int | str]:
    started = time.perf_counter()
    made = new_challenge(name, root / "org", challenge_id=f"{name}-bench", size=size,
                         start=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), weeks=52 * 50)
    spec = made.public / "challenge.yaml"
    spec.write_text(spec.read_text().replace("signed: true", "signed: false"))
    participant.sh(["datalad", "save", "-m", "Unsigned submissions for the benchmark"], cwd=made.public)
    teams = root / "teams.yaml"
    teams.write_text("teams: {}\n")
    config = root / "runner.yaml"
    config.write_text(yaml.safe_dump({
        "challenge": str(made.public), "private": str(made.private), "results": str(root / "results"),
        "work": str(root / "jc-work"), "teams": str(teams), "workers": 2,
    }))
    created = time.perf_counter() - started

    steps = participant.template_steps(name)
    better = solution_files(name, "better")
    started = time.perf_counter()
    for i in range(SUBMISSIONS):
        team = f"team{i}"
        clone = participant.clone_challenge(made.public, root / "participants" / team)
        files: dict[str, str | Path] = dict(better) if i % 2 else {}
        files[f"code/TEAM-{i}.txt"] = f"submission {i}\n"  # its own commit, its own run records
        repo = participant.make_team_repository(root / "teams" / f"{team}.git")
        add_team(teams, team, str(repo))
        participant.record_steps(clone, steps, files=files, message=f"submission {i}")
        participant.push_submission(clone, repo, f"{team}-1")
    participants = time.perf_counter() - started

    report = run_once(load_config(config))
    failed = [f"{ev.team}: {ev.status.value} {ev.reason}" for ev in report.evaluations
              if ev.status is not Status.EVALUATED]
    if failed or len(report.evaluations) != SUBMISSIONS:
        raise SystemExit(f"{name}: {len(report.evaluations)} evaluations, not evaluated: {failed}")
    total = participants + report.wall_s
    return {"template": name, "size": size, "create_s": created, "participants_s": participants,
            "runner_s": report.wall_s, "total_s": total, "runner_share": report.wall_s / total}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("default", "large"), default="default")
    parser.add_argument("--template", action="append", choices=TEMPLATES,
                        help="measure only this template (repeatable)")
    parser.add_argument("--keep", type=Path, help="keep the challenges in this folder")
    args = parser.parse_args(argv)
    ensure_identity()
    names = args.template or (list(TEMPLATES) if args.size == "default" else [t for t in LARGE if t in TEMPLATES])
    base = args.keep or Path(tempfile.mkdtemp(prefix="jc-bench-templates-"))
    base.chmod(0o755)  # the sandbox user must reach the work folders
    print(f"{'template':<10} {'size':<8} {'create':>8} {'participants':>13} {'runner':>8} {'total':>8} "
          f"{'runner share':>13}   ({SUBMISSIONS} submissions each)")
    failed = []
    try:
        for name in names:
            root = base / name
            root.mkdir(parents=True)
            try:
                row = measure(name, args.size, root)
            except (Exception, SystemExit) as exc:  # one broken template must not hide the others' figures
                failed.append(name)
                print(f"{name:<10} {args.size:<8} failed: {str(exc)[:300]}", flush=True)
                continue
            print(f"{name:<10} {args.size:<8} {row['create_s']:>7.1f}s {row['participants_s']:>12.1f}s "
                  f"{row['runner_s']:>7.1f}s {row['total_s']:>7.1f}s {row['runner_share']:>12.0%}", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)
    if failed:
        raise SystemExit(f"failed: {', '.join(failed)}")


if __name__ == "__main__":
    main()
