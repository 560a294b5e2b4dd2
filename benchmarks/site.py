"""Site build time and memory on a synthetic ledger, and the rebuild after one new evaluation.

A ledger of 10,000 evaluations (3 phases, 300 teams; about one in ten failed,
refused or rejected) is written straight into a temporary folder as record
files, the way ``tests/test_site.py`` does (no datalad). Then:

1. a first build into an empty folder: wall time, CPU time of all processes,
   pages written;
2. one new evaluation is added and the site rebuilt into the same folder:
   wall time and how many files changed;
3. the peak resident memory of the process (``resource.getrusage``), which
   covers every build, and that of the largest forked worker (plots and pages).

Each build is timed ``--repeat`` times (the median, and the range: this
machine's speed drifts by a quarter from one run to the next).

Usage: ``.venv/bin/python benchmarks/site.py [--evaluations 10000] [--teams 300] [--repeat 3] [--keep DIR]``
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jc_datalad.records import Evaluation, Status  # noqa: E402
from site_generator import build_site  # noqa: E402

PHASES = ("dev", "test", "final")
START = dt.datetime(2024, 5, 1, tzinfo=dt.UTC)
CHALLENGE = {"id": "bench", "title": "Benchmark challenge", "type": "inference", "primary": "aji",
             "direction": "max", "columns": ["aji", "f1"], "commit": "c" * 40}


def evaluation(n: int, teams: int, total: int) -> Evaluation:
    """The ``n``-th synthetic evaluation: first seen in order over 90 days, phases in thirds."""
    team = f"team{n % teams:03d}"
    commit = hashlib.sha1(str(n).encode()).hexdigest()
    phase = PHASES[min(len(PHASES) - 1, n * len(PHASES) // total)]
    seen = (START + dt.timedelta(minutes=n * 90 * 24 * 60 // total)).strftime("%Y-%m-%dT%H:%M:%SZ")
    kind = n % 20
    status = (Status.FAILED if kind == 7 else Status.REFUSED if kind == 13
              else Status.REJECTED if kind == 17 else Status.EVALUATED)
    evaluated = status is Status.EVALUATED
    score = round(0.3 + 0.6 * ((n * 7919) % 1000) / 1000, 4)
    eid = f"{team}--{commit[:12]}--{phase}"
    return Evaluation(
        id=eid, challenge=CHALLENGE, team=team,
        submission={"repository": f"https://example.org/{team}.git", "commit": commit,
                    "branches": ["main"], "first_seen": seen,
                    "steps": [{"commit": commit, "recorded_cmd": "datalad containers-run -n env python predict.py",
                               "command": "python predict.py", "inputs": ["inputs/test"],
                               "outputs": ["predictions"]}]},
        phase=phase, split="test", status=status,
        reason=None if evaluated else f"synthetic {status.value} submission",
        hidden={"inputs": {"dataset_id": "in-uuid", "commit": "a" * 40},
                "labels": {"dataset_id": "lab-uuid", "commit": "b" * 40}},
        image={"name": "env", "key": "MD5E-s1--0123.sif"},
        scorer={"name": "instance", "version": "0.1.0"},
        runner={"version": "0.1.0", "backend": "local", "sandbox": "bubblewrap"},
        metrics={"aji": score, "f1": 0.5} if evaluated else {},
        public={"aji": score, "f1": 0.5} if evaluated else {},
        private={"aji": score, "f1": 0.5} if evaluated else {},
        items=[{"name": f"img_{i:03d}", "part": "public", "metrics": {"aji": score, "f1": 0.5}}
               for i in range(5)] if evaluated else [],
        steps=[{"number": 1, "command": "python predict.py", "status": "ok" if evaluated else "failed",
                "exit_code": 0 if evaluated else 1, "wall_s": 1.5, "cpu_s": 1.25,
                "peak_rss_bytes": 3 * 2**20, "stdout_tail": "done", "stderr_tail": ""}]
        if status in (Status.EVALUATED, Status.FAILED) else [],
        stages={"clone": 0.5, "run": 1.5},
        started=seen, finished=seen,
        reproduce=[f"jc runner reproduce {eid} --config runner.yaml"],
    )


def write(results: Path, ev: Evaluation) -> None:
    folder = results / "evaluations" / ev.id
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "record.json").write_text(ev.to_json(), encoding="utf-8")


def cpu() -> float:
    """CPU seconds (user and system) of this process and of its finished workers."""
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


def summary(runs: list[tuple[float, float]]) -> str:
    """Median wall time of the runs, their range, and the median CPU seconds of all processes."""
    walls, cpus = sorted(w for w, _ in runs), sorted(c for _, c in runs)
    return (f"{statistics.median(walls):.2f} s median of {len(runs)} (range {walls[0]:.2f}-{walls[-1]:.2f} s; "
            f"{statistics.median(cpus):.1f} s of CPU in all processes)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluations", type=int, default=10_000)
    parser.add_argument("--teams", type=int, default=300)
    parser.add_argument("--keep", type=Path, help="build here and keep the ledger and site")
    parser.add_argument("--repeat", type=int, default=3, help="time each kind of build this many times")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="jc-site-bench-"))
    results = root / "results"
    try:
        t0 = time.perf_counter()
        for n in range(args.evaluations):
            write(results, evaluation(n, args.teams, args.evaluations))
        print(f"ledger: {args.evaluations} evaluations, {len(PHASES)} phases, {args.teams} teams, "
              f"written in {time.perf_counter() - t0:.1f} s")

        # this machine's speed drifts from run to run: each build is timed --repeat times, each
        # first build into a new folder, after the files written before are on disk (os.sync):
        # removing a site, or writing the ledger, just before would be timed with the build
        firsts = []
        for n in range(args.repeat):
            out = root / f"site-{n + 1}"
            os.sync()
            t0, c0 = time.perf_counter(), cpu()
            report = build_site(results, out)
            firsts.append((time.perf_counter() - t0, cpu() - c0))
        print(f"first build: {summary(firsts)} (target < 10 s), {len(report.pages)} files, "
              f"{len(report.problems)} problems")

        agains = []
        for n in range(args.repeat):
            before = {p: (out / p).stat().st_mtime_ns for p in report.pages}
            total = args.evaluations + n
            write(results, evaluation(total, args.teams, total + 1))
            os.sync()
            t0, c0 = time.perf_counter(), cpu()
            report = build_site(results, out)
            agains.append((time.perf_counter() - t0, cpu() - c0))
            changed = sum(1 for p in report.pages if before.get(p) != (out / p).stat().st_mtime_ns)
        print(f"rebuild after one new evaluation: {summary(agains)} (target < 2 s), "
              f"{changed} files written")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
        workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the largest worker
        print(f"peak resident memory: {peak:.0f} MiB (target < 500 MB; largest worker: {workers:.0f} MiB)")
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
