"""The local backend against single-node Slurm: the same trivial evaluations through both, in one run.

N trivial submissions (benchmarks/runner.py's: one team each, one signed head, one recorded
``datalad containers-run`` writing empty predictions) are evaluated

1. by a pass with ``backend: local`` and ``workers`` threads;
2. by a pass with ``backend: slurm`` on a single-node Slurm started for the run
   (tests/slurm_cluster.py: munged, slurmctld, slurmd without systemd, no slurmdbd),
   one job array with ``%throttle`` equal to ``workers``, the pass waiting for it.

Printed: both wall times, their ratio, and the per-job scheduling overhead:
``(slurm wall - local wall) x concurrency / N`` (what each job costs its slot beyond the
local evaluation: scheduling, job start, staging in scratch, publishing, collecting), and
the delay from ``sbatch`` to the first task's evaluation start.

Usage: ``.venv/bin/python benchmarks/slurm.py [--submissions 100] [--workers 2] [--keep DIR]``
(as root, with Debian's slurmctld, slurmd, slurm-client and munge installed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "benchmarks"), str(ROOT / "tests")]

import runner  # noqa: E402  (benchmarks/runner.py)
from slurm_cluster import Cluster, missing  # noqa: E402  (tests/slurm_cluster.py)

from jc_datalad.gitutil import ensure_identity  # noqa: E402
from jc_datalad.runner import PassReport  # noqa: E402

#: benchmarks/runner.py's trivial submission, its one marked pixel kept inside the 48x48 test frames
runner.TRIVIAL = runner.TRIVIAL.replace("labels[0, 0, {n}] = 1", "labels[0, {n} // 48 % 48, {n} % 48] = 1")
assert "{n} // 48" in runner.TRIVIAL


def one_pass(config_path: Path, name: str, root: Path, **extra) -> tuple[float, PassReport]:
    return runner.timed_pass(config_path, name, results=str(root / f"results-{name}"),
                             work=str(root / f"work-{name}"), **extra)


def _time(stamp: str) -> dt.datetime:
    return dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2, help="local threads, and the Slurm array throttle")
    parser.add_argument("--keep", type=Path, help="keep the benchmark datasets in this folder")
    args = parser.parse_args()
    why = missing()
    if why:
        raise SystemExit(f"no Slurm here: {why}")
    ensure_identity()
    root = args.keep or Path(tempfile.mkdtemp(prefix="jc-bench-slurm-", dir="/var/tmp"))
    root.mkdir(parents=True, exist_ok=True)
    os.chmod(root, 0o755)
    cluster = Cluster(root / "slurm")
    try:
        t0 = time.perf_counter()
        config, _, submissions = runner.setup(root, args.submissions)
        n = len(submissions)
        print(f"setup: {n} submissions in {time.perf_counter() - t0:.1f} s")
        t0 = time.perf_counter()
        cluster.start()
        os.environ["SLURM_CONF"] = str(cluster.conf)
        print(f"single-node Slurm up in {time.perf_counter() - t0:.1f} s")

        local_wall, local = one_pass(config, "local", root, workers=args.workers)
        print(f"local backend, {args.workers} workers: {len(local.evaluations)} evaluations in {local_wall:.2f} s "
              f"({local_wall / n:.3f} s each)")

        scratch = root / "scratch"
        scratch.mkdir()
        submitted = dt.datetime.now(dt.UTC)
        slurm_wall, slurm = one_pass(config, "slurm", root, backend="slurm",
                                     slurm={"throttle": args.workers, "scratch": str(scratch), "wait": "2h",
                                            "poll": 1})
        if len(slurm.evaluations) != n:
            raise SystemExit(f"slurm: {len(slurm.evaluations)} of {n} evaluations recorded")
        first_start = min(_time(ev.started) for ev in slurm.evaluations)
        print(f"slurm backend, one array %{args.workers}: {n} evaluations in {slurm_wall:.2f} s "
              f"({slurm_wall / n:.3f} s each)")
        same = all(a.metrics == b.metrics for a, b in zip(sorted(local.evaluations, key=lambda e: e.id),
                                                           sorted(slurm.evaluations, key=lambda e: e.id), strict=True))
        print(f"same scores from both backends: {same}")
        record = sum(ev.stages.get("record", 0.0) for ev in slurm.evaluations) / n
        print(f"recording into the ledger (one commit per evaluation): {record:.3f} s each")
        overhead = (slurm_wall - local_wall) * args.workers / n
        print(f"ratio slurm / local: {slurm_wall / local_wall:.2f}x; per-job scheduling overhead "
              f"{overhead:.3f} s (in its slot, concurrency {args.workers}); sbatch to the first evaluation's "
              f"start {(first_start - submitted).total_seconds():.2f} s (the pass's own admission included)")
    finally:
        cluster.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
