"""Runner overhead per evaluation, and throughput against a plain DataLad loop.

Twenty trivial submissions (twenty teams, each with one signed head and one
recorded ``datalad containers-run`` that writes empty predictions) are evaluated

1. by ``jc runner run --once`` with one worker: the overhead per evaluation is
   the pass's wall time minus the sandboxed commands' own wall time, divided by
   the number of evaluations;
2. by the runner with two workers (the default on this machine): throughput;
3. by a plain loop of ``datalad clone`` + ``datalad rerun`` + ``datalad save``
   over the same submissions, in the same run: the reference.

Usage: ``.venv/bin/python benchmarks/runner.py [--submissions 20] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jc_datalad import participant  # noqa: E402
from jc_datalad.challenge import new_challenge  # noqa: E402
from jc_datalad.config import default_cache_dir, load_config  # noqa: E402
from jc_datalad.gitutil import ensure_identity, env_with_annex_on_path  # noqa: E402
from jc_datalad.records import Status  # noqa: E402
from jc_datalad.runner import PassReport, run_once  # noqa: E402
from jc_datalad.teams import add_team  # noqa: E402

TRIVIAL = """\
import sys
from pathlib import Path

import numpy as np
import tifffile

out = Path(sys.argv[2])
out.mkdir(parents=True, exist_ok=True)
for path in sorted(Path(sys.argv[1]).glob("*.tif")):
    labels = np.zeros(tifffile.TiffFile(path).series[0].shape, dtype=np.uint16)
    labels[0, 0, {n}] = 1  # submission {n}: its own outputs, so its own run record
    tifffile.imwrite(out / path.name, labels, photometric="minisblack")
"""


def sh(args: list[str], cwd: Path | None = None) -> None:
    proc = subprocess.run(args, cwd=cwd, env=env_with_annex_on_path(), capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args)} failed: {proc.stderr[-800:]}")


def setup(root: Path, n: int) -> tuple[Path, Path, list[tuple[str, str]]]:
    from jc_datalad import image

    img = image.build_image(image.RECIPES["minimal"], cache_dir=default_cache_dir() / "images")
    made = new_challenge("bacteria", root / "org", challenge_id="bench", image=str(img), items=2,
                         hidden_items=4, frames=2, pixels=48)
    clone = participant.clone_challenge(made.public, root / "participant")
    base = subprocess.run(["git", "rev-parse", "HEAD"], cwd=clone, capture_output=True, text=True).stdout.strip()
    submissions = []
    for i in range(n):
        team = f"team{i:02d}"
        repo = participant.make_team_repository(root / "teams" / f"{team}.git")
        key = participant.make_key(root / "keys" / team, f"{team}@example.org")
        add_team(made.private, team, str(repo), keys=[str(key) + ".pub"])
        participant.configure_signing(clone, key)  # the runner checks every head's signature
        # every submission starts from the challenge: one recorded step each
        sh(["git", "checkout", "-q", "-b", f"{team}-1", base], cwd=clone)
        participant.record_prediction(clone, files={"code/predict.py": TRIVIAL.format(n=i)},
                                      message=f"submission {i}")
        commit = participant.push_submission(clone, repo, f"{team}-1", remote=team)
        submissions.append((team, commit))
    return made.config, clone, submissions


def timed_pass(config_path: Path, name: str, **settings: object) -> tuple[float, PassReport]:
    """One runner pass with ``settings`` replacing those of runner.yaml (written as runner-NAME.yaml);
    its wall time and report. Stops the benchmark unless every evaluation was evaluated."""
    data = yaml.safe_load(config_path.read_text())
    data.update(settings)
    cfg = config_path.with_name(f"runner-{name}.yaml")
    cfg.write_text(yaml.safe_dump(data))
    start = time.perf_counter()
    report = run_once(load_config(cfg))
    wall = time.perf_counter() - start
    bad = [ev for ev in report.evaluations if ev.status is not Status.EVALUATED]
    if bad:
        raise SystemExit(f"{name}: {len(bad)} evaluations not evaluated: {bad[0].reason}")
    return wall, report


def runner_pass(config_path: Path, results: Path, work: Path, workers: int) -> tuple[float, float, int]:
    wall, report = timed_pass(config_path, str(workers), results=str(results), work=str(work), workers=workers)
    sandboxed = sum(step["wall_s"] for ev in report.evaluations for step in ev.steps)
    return wall, sandboxed, len(report.evaluations)


def plain_loop(clone: Path, submissions: list[tuple[str, str]], root: Path) -> float:
    """What an organizer without jc would run: clone, rerun, save, one submission after another."""
    start = time.perf_counter()
    for team, commit in submissions:
        target = root / "plain" / team
        sh(["datalad", "clone", str(clone), str(target)])
        sh(["git", "checkout", "-q", commit], cwd=target)
        sh(["datalad", "rerun", commit], cwd=target)
        sh(["datalad", "save", "-m", "result"], cwd=target)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=20)
    parser.add_argument("--keep", type=Path, help="keep the benchmark datasets in this folder")
    args = parser.parse_args()
    ensure_identity()
    root = args.keep or Path(tempfile.mkdtemp(prefix="jc-bench-", dir="/var/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    try:
        t0 = time.perf_counter()
        config, clone, submissions = setup(root, args.submissions)
        print(f"setup: {len(submissions)} submissions in {time.perf_counter() - t0:.1f} s")

        wall1, sandboxed1, n1 = runner_pass(config, root / "results-1", root / "work-1", 1)
        overhead = (wall1 - sandboxed1) / n1
        print(f"runner, 1 worker:  {n1} evaluations in {wall1:.2f} s; sandboxed commands {sandboxed1:.2f} s; "
              f"overhead per evaluation {overhead:.3f} s (target < 1.5 s)")
        wall2, sandboxed2, n2 = runner_pass(config, root / "results-2", root / "work-2", 2)
        print(f"runner, 2 workers: {n2} evaluations in {wall2:.2f} s ({n2 / wall2:.2f} evaluations/s)")

        plain = plain_loop(clone, submissions, root)
        n = len(submissions)
        print(f"plain loop (datalad clone + rerun + save): {n} in {plain:.2f} s ({n / plain:.2f} /s)")
        print(f"throughput ratio runner(2 workers) / plain loop: {plain / wall2:.2f}x (target >= 2x); "
              f"runner(1 worker) / plain loop: {plain / wall1:.2f}x")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
