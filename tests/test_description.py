"""The challenge description the runner writes into the results dataset (jc_datalad.description)."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from jc_datalad import description, ledger
from jc_datalad.config import load_config
from jc_datalad.errors import JcError
from jc_datalad.gitutil import git_out
from jc_datalad.spec import load_spec

T1 = dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def files_of(folder: Path) -> list[Path]:
    """Every data file of a dataset's working tree (dot-paths, i.e. git and DataLad machinery, left out)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        found += [Path(dirpath, f) for f in filenames if not f.startswith(".")]
    return found


def test_annex_key_size() -> None:
    assert description.annex_key_size("SHA256E-s1234--abcdef.tif") == 1234
    assert description.annex_key_size("MD5E-s0--d41d8cd98f00b204e9800998ecf8427e") == 0
    assert description.annex_key_size("SHA256E-s77-S10-C2--abc.bin") == 77  # a chunked key
    assert description.annex_key_size("URL--https&c%%example.org%data.tif") is None
    assert description.annex_key_size("WORM-m1700000000--file.txt") is None


def test_data_size_reads_keys_without_content(tmp_path: Path) -> None:
    """Symlinks and unlocked pointer files count by their key's size, files in git by theirs."""
    repo = tmp_path / "ds"
    (repo / "images").mkdir(parents=True)
    (repo / ".datalad").mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    key = "SHA256E-s5000--" + "a" * 64 + ".tif"
    (repo / "images" / "a.tif").symlink_to(f"../.git/annex/objects/Xx/Yy/{key}/{key}")  # content never here
    (repo / "b.tif").write_text("/annex/objects/MD5E-s300--" + "b" * 32 + ".tif\n")  # unlocked
    (repo / "c.csv").write_text("x" * 700)  # in git
    (repo / "d.tif").symlink_to(".git/annex/objects/Zz/Ww/URL--https&c%%x/URL--https&c%%x")  # no size
    (repo / ".datalad" / "config").write_text("[datalad]\n")  # machinery: not counted
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", "data"], check=True)
    size = description.data_size(repo, git_out(["rev-parse", "HEAD"], repo))
    assert size == description.DataSize(files=4, bytes=5000 + 300 + 700, unsized=1)


def test_describe_public_and_hidden_data(arena) -> None:
    config = arena.config
    made = description.describe(config, load_spec(config.challenge))
    data = made.data
    assert data["id"] == "bacteria-test" and data["challenge"]["commit"] == git_out(["rev-parse", "HEAD"],
                                                                                     config.challenge)
    assert made.readme == (config.challenge / "README.md").read_text(encoding="utf-8")
    assert data["challenge"]["clone_url"] == str(config.challenge)  # no public_url: the dataset's path
    assert data["challenge"]["clone"][0] == f"datalad clone {config.challenge} bacteria-test"
    assert [c["name"] for c in data["metrics"]["columns"]] == ["sbd", "abs_dic", "f1_50", "ap50"]
    assert all(c["definition"] for c in data["metrics"]["columns"])
    assert [p["path"] for p in data["data"]["public"]] == ["inputs/test", "inputs/train"]
    for entry in data["data"]["public"]:
        folder = config.challenge / entry["path"]
        files = files_of(folder)  # content is here: the sizes the keys carry are the files' sizes
        assert entry["files"] == len(files) and entry["bytes"] == sum(f.stat().st_size for f in files)
        assert entry["dataset_id"] == ledger.dataset_id(folder)
        assert entry["commit"] == git_out(["ls-tree", "HEAD", entry["path"]], config.challenge).split()[2]
    hidden_names = set()
    for entry in data["data"]["hidden"]:
        folder = config.private / "hidden" / entry["split"] / entry["part"]
        files = files_of(folder)
        hidden_names |= {f.name for f in files} | {f.stem for f in files}
        assert entry["files"] == len(files) == 4 and entry["bytes"] == sum(f.stat().st_size for f in files)
        assert entry["commit"] == git_out(["rev-parse", "HEAD"], folder)
    text = json.dumps(data)
    assert hidden_names and not any(name in text for name in hidden_names)


def test_publish_commits_only_when_changed(arena) -> None:
    results = arena.config.results
    arena.run(now=T1)
    rel = "challenges/bacteria-test/description.json"
    written = json.loads((results / rel).read_text(encoding="utf-8"))
    assert written["as_of"] == "2024-05-01T12:00:00Z"
    assert (results / "challenges/bacteria-test/README.md").is_file()
    assert git_out(["status", "--porcelain", "--", "challenges"], results) == ""  # committed
    head = git_out(["rev-parse", "HEAD"], results)
    arena.run(now=T1 + dt.timedelta(days=1))  # nothing changed: no commit, the same as_of
    assert git_out(["rev-parse", "HEAD"], results) == head
    assert json.loads((results / rel).read_text(encoding="utf-8"))["as_of"] == "2024-05-01T12:00:00Z"
    spec = load_spec(arena.config.challenge)
    best = min(_timed(lambda: description.publish(arena.config, spec, "2024-05-03T00:00:00Z"))
               for _ in range(3))
    assert best < 0.5, f"an unchanged description took {best:.3f} s"
    # a change (here the clone URL in runner.yaml) is written with the pass's time
    data = yaml.safe_load(arena.config_path.read_text())
    arena.config_path.write_text(yaml.safe_dump({**data, "public_url": "https://example.org/bacteria"}))
    assert description.publish(arena.config, spec, "2024-05-04T00:00:00Z")
    written = json.loads((results / rel).read_text(encoding="utf-8"))
    assert written["as_of"] == "2024-05-04T00:00:00Z"
    assert written["challenge"]["clone"][0] == "datalad clone https://example.org/bacteria bacteria-test"
    assert git_out(["log", "-1", "--format=%s"], results).startswith("Challenge description of bacteria-test")
    # a file given as None is removed, in one commit
    assert ledger.write_files(results, {"challenges/bacteria-test/README.md": None}, "No README")
    assert not (results / "challenges/bacteria-test/README.md").exists()
    assert git_out(["status", "--porcelain"], results) == ""
    assert not ledger.write_files(results, {"challenges/bacteria-test/README.md": None}, "No README")


def test_site_from_a_runner_pass_names_no_hidden_file(arena, tmp_path: Path) -> None:
    from site_generator import build_site

    arena.run(now=T1)
    out = tmp_path / "site"
    report = build_site(arena.config.results, out, strict=True)
    assert "bacteria-test/data.html" in report.pages and "bacteria-test/index.html" in report.pages
    hidden = [f for part in ("inputs", "labels") for f in files_of(arena.config.private / "hidden" / "test" / part)]
    names = {f.name.encode() for f in hidden} | {f.stem.encode() for f in hidden}
    assert names
    for path in out.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            assert not any(name in content for name in names), path


def _timed(call) -> float:
    start = time.perf_counter()
    assert call() is False
    return time.perf_counter() - start


def test_public_url_in_runner_config(tmp_path: Path) -> None:
    path = tmp_path / "runner.yaml"
    base = {"challenge": "c", "private": "p", "results": "r"}
    path.write_text(yaml.safe_dump({**base, "public_url": "https://example.org/c"}))
    assert load_config(path).public_url == "https://example.org/c"
    path.write_text(yaml.safe_dump(base))
    assert load_config(path).public_url is None
    path.write_text(yaml.safe_dump({**base, "public_url": 7}))
    with pytest.raises(JcError, match="public_url"):
        load_config(path)
