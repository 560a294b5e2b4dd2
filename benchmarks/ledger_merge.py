"""Merging many finished evaluations into the results ledger: ledger.commit_many against octopus merges.

In one run, on fresh results datasets:

1. ``ledger.commit_many`` of 1,000 and of 10,000 synthetic evaluation folders (a realistic
   ``record.json`` and one small annexed prediction each): one commit per evaluation, each with
   its DataLad run record, chained by one ``git fast-import`` stream;
2. the FAIRly big way with the same 1,000 results: 1,000 branches of one commit each (made with
   plumbing beforehand, not timed; their annexed content already in the dataset, as a job pushes
   it before its branch), consolidated by ``git merge`` octopus merges in batches.

Prints the wall time of each and the ratio per result. Usage:
``.venv/bin/python benchmarks/ledger_merge.py [--sizes 1000 10000] [--grouped 10] [--octopus 1000] [--batch 250]
[--keep DIR]``. ``--grouped N`` also times the largest size with N evaluations per commit.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jc_datalad import bulkcommit, ledger  # noqa: E402
from jc_datalad.gitutil import ensure_identity, git, git_out  # noqa: E402
from jc_datalad.records import Evaluation, Status  # noqa: E402


def evaluation(i: int) -> Evaluation:
    """A record as an evaluation of a 20-item challenge writes it (about 4 KB)."""
    team = f"team-{i % 97:03d}"
    commit = f"{i * 2654435761 % (1 << 48):012x}" + "f" * 28
    eid = f"{team}--{commit[:12]}--development"
    items = [{"name": f"img_{k:03d}", "part": "public" if k % 2 else "private",
              "metrics": {"sbd": round(0.5 + (i * k % 17) / 40, 4), "f1@0.5": round(0.4 + (i + k) % 11 / 25, 4),
                          "count_error": (i + k) % 5}, "error": None} for k in range(20)]
    return Evaluation(
        id=eid, challenge={"id": "bacteria-2027", "title": "Bacteria 2027", "commit": "c" * 40}, team=team,
        submission={"repository": f"/srv/teams/{team}", "commit": commit, "branches": ["main"],
                    "first_seen": "2027-01-12T10:00:03.000000Z", "repository_team": team},
        phase="development", split="development", status=Status.EVALUATED,
        hidden={"inputs": {"dataset_id": "d" * 36, "commit": "e" * 40}},
        image={"name": "full", "key": "MD5E-s123--" + "a" * 32 + ".tar.gz"},
        scorer={"name": "instance_segmentation", "version": "1"}, runner={"version": "0.1", "backend": "local"},
        metrics={"sbd": 0.61, "f1@0.5": 0.55}, public={"sbd": 0.6}, private={"sbd": 0.62}, items=items,
        steps=[{"command": "python code/predict.py inputs/test predictions", "status": "ok"}],
        stages={"clone": 0.4, "run": 2.1, "score": 0.3},
        reproduce=[f"jc runner evaluate --config /srv/runner.yaml --output evaluations/{eid}"],
        started="2027-01-12T10:00:04Z", finished="2027-01-12T10:00:09Z")


def write_folder(folder: Path, ev: Evaluation, i: int) -> None:
    (folder / "predictions").mkdir(parents=True)
    (folder / "predictions" / "img_001.tif").write_bytes(b"II*\x00" + i.to_bytes(8, "little") + bytes(700))
    (folder / ledger.RECORD).write_text(ev.to_json(), encoding="utf-8")


def command(ev: Evaluation) -> list[str]:
    return ["jc", "runner", "evaluate", "--config", "/srv/runner.yaml", "--team", ev.team, "--commit",
            ev.submission["commit"], "--phase", ev.phase, "--split", ev.split, "--output", f"evaluations/{ev.id}"]


def fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    ledger.create_results(path)
    return path


def cpu() -> float:
    """CPU seconds of this process and its finished children (git, git-annex)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def bench_commit_many(where: Path, n: int, per_commit: int = 1) -> tuple[float, float]:
    results = fresh(where / f"many-{n}-{per_commit}")
    items = []
    for i in range(n):
        ev = evaluation(i)
        folder = results / ledger.INCOMING / ev.id
        write_folder(folder, ev, i)
        items.append((folder, ev, command(ev)))
    c0, t0 = cpu(), time.perf_counter()
    ledger.commit_many(results, items, per_commit=per_commit)
    wall, used = time.perf_counter() - t0, cpu() - c0
    assert git_out(["status", "--porcelain"], results) == "", "worktree differs from HEAD"
    assert len(ledger.committed_ids(results)) == n
    return wall, used


def octopus_setup(where: Path, n: int) -> tuple[Path, list[str]]:
    """n branches of one commit each (one record and its annexed prediction), made with fast-import."""
    results = fresh(where / f"octopus-{n}")
    scratch = f"{ledger.INCOMING}/setup"
    commits = []
    for i in range(n):
        ev = evaluation(i)
        write_folder(results / scratch / ev.id, ev, i)
        files = (f"{scratch}/{ev.id}/{ledger.RECORD}", f"{scratch}/{ev.id}/predictions/img_001.tif")
        commits.append((ev, files))
    annexed = bulkcommit.annex_files(results, [f for _, files in commits for f in files])
    bulkcommit.record_present(results, annexed.keys)
    base = git_out(["rev-parse", "HEAD"], results)
    dsid = ledger.dataset_id(results)
    stream = [b"feature done\n"]
    branches = []
    for number, (ev, files) in enumerate(commits):
        branch = f"job-{number:05d}"
        branches.append(branch)
        message = ledger.run_record_message(results, ev, command(ev), dsid=dsid).encode()
        stream.append(b"commit refs/heads/%s\ncommitter jc <jc@invalid> 1800000000 +0000\n" % branch.encode()
                      + b"data %d\n%s\nfrom %s\n" % (len(message), message, base.encode()))
        for rel in files:
            dest = rel.replace(scratch, ledger.EVALUATIONS, 1)
            if rel in annexed.links:  # the link as it reads from evaluations/<id>/predictions/
                payload = os.fsencode(annexed.links[rel])
                stream.append(b"M 120000 inline %s\ndata %d\n%s\n" % (dest.encode(), len(payload), payload))
            else:
                payload = (results / rel).read_bytes()
                stream.append(b"M 100644 inline %s\ndata %d\n%s\n" % (dest.encode(), len(payload), payload))
        stream.append(b"\n")
    stream.append(b"done\n")
    git(["fast-import", "--quiet", "--done"], results, binary=True, input=b"".join(stream))
    shutil.rmtree(results / ledger.INCOMING)
    return results, branches


def bench_octopus(where: Path, n: int, batch: int) -> float:
    results, branches = octopus_setup(where, n)
    t0 = time.perf_counter()
    for start in range(0, len(branches), batch):
        chunk = branches[start:start + batch]
        git(["merge", "--quiet", "--no-edit", "-m", f"Merge {len(chunk)} job branches", *chunk], results,
            timeout=7200)
    wall = time.perf_counter() - t0
    assert len(ledger.committed_ids(results)) == n
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--octopus", type=int, default=1000, help="branches merged the FAIRly big way")
    parser.add_argument("--batch", type=int, default=250, help="branches per octopus merge")
    parser.add_argument("--grouped", type=int, default=10,
                        help="also time the largest size with this many evaluations per commit (0: not)")
    parser.add_argument("--keep", type=Path, help="keep the datasets in this folder")
    args = parser.parse_args()
    ensure_identity()
    where = args.keep or Path(tempfile.mkdtemp(prefix="jc-ledger-merge-"))
    where.mkdir(parents=True, exist_ok=True)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    per_result = {}
    try:
        for n in args.sizes:
            wall, used = bench_commit_many(where, n)
            per_result[n] = wall / n
            print(f"commit_many {n:>6} results: {wall:7.2f} s wall, {used:7.2f} s CPU "
                  f"({wall / n * 1000:.2f} ms per result)", flush=True)
        if args.grouped > 1:
            n = max(args.sizes)
            wall, used = bench_commit_many(where, n, args.grouped)
            print(f"commit_many {n:>6} results, {args.grouped} per commit: {wall:7.2f} s wall, {used:7.2f} s CPU "
                  f"({wall / n * 1000:.2f} ms per result)", flush=True)
        if args.octopus:
            wall = bench_octopus(where, args.octopus, args.batch)
            print(f"octopus     {args.octopus:>6} branches: {wall:7.2f} s wall (git merge of {args.batch} "
                  f"branches at a time; {wall / args.octopus * 1000:.2f} ms per result)", flush=True)
            same = per_result.get(args.octopus)
            if same:
                print(f"ratio octopus / commit_many for {args.octopus} results: {wall / args.octopus / same:.1f}x")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        if not args.keep:
            shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    main()
