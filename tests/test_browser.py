"""The built site in a real browser: Debian's chromium driven by playwright.

No ``playwright install``: chromium comes from Debian (``scripts/setup-system.sh``
installs it, so ``make test`` runs these tests). The site is served by a local
``http.server`` on 127.0.0.1 in a thread; the browser reaches nothing else.
Screenshots are kept under ``artifacts/screenshots/`` for a human to look at.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_support import CHROMIUM, NO_CHROMIUM, shot
from test_site import make, write

from jc_datalad.records import Status
from site_generator import build_site

if not CHROMIUM.is_file():
    pytest.skip(NO_CHROMIUM, allow_module_level=True)
pytest.importorskip("playwright.sync_api", reason="playwright missing: pip install -e '.[test]'")

pytestmark = pytest.mark.xdist_group("browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("browser")
    results = root / "results"
    for ev in (
        make("alpha", "a1" * 20, score=0.70, first_seen="2024-05-01T10:00:00Z"),
        make("alpha", "a2" * 20, score=0.80, first_seen="2024-05-02T10:00:00Z"),
        make("beta", "b1" * 20, score=0.90, first_seen="2024-05-01T12:00:00Z"),
        make("gamma", "c1" * 20, score=0.60, first_seen="2024-05-03T00:00:00Z"),
        make("delta", "d1" * 20, score=0.75, first_seen="2024-05-03T06:00:00Z"),
        make("omega", "e1" * 20, score=None, first_seen="2024-05-04T00:00:00Z", status=Status.FAILED,
             reason="step 1 (python predict.py) exited with code 1: boom"),
    ):
        write(results, ev)
    out = root / "site"
    report = build_site(results, out)
    assert report.problems == ()
    return out


@pytest.fixture(scope="module")
def page(browser, server: str) -> object:  # type: ignore[no-untyped-def]
    return browser.new_context(viewport={"width": 1280, "height": 900}).new_page()


def ranked(page: object) -> list[str]:
    return page.locator(  # type: ignore[attr-defined]
        "#phase-dev table.leaderboard tbody th[scope=row]").all_inner_texts()


def test_index_leaderboard_sort_and_submission_page(page, server: str) -> None:  # type: ignore[no-untyped-def]
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(server + "index.html")
    shot(page, "index")
    page.get_by_role("link", name="Challenge bacteria").click()
    page.wait_for_url("**/bacteria/leaderboard.html")
    assert ranked(page) == ["beta", "alpha", "delta", "gamma"]  # server-rendered ranking
    shot(page, "leaderboard")

    table = page.locator("#phase-dev table.leaderboard")
    table.locator("thead th", has_text="Team").locator("button.sort").click()
    assert ranked(page) == ["alpha", "beta", "delta", "gamma"]
    assert table.locator("thead th", has_text="Team").get_attribute("aria-sort") == "ascending"
    aji = table.locator("thead th", has_text="aji").locator("button.sort")
    aji.click()
    assert ranked(page) == ["gamma", "delta", "alpha", "beta"]  # numbers, lowest first
    aji.click()
    assert ranked(page) == ["beta", "alpha", "delta", "gamma"]
    shot(page, "leaderboard-sorted")

    page.locator("#phase-dev table.leaderboard tbody tr", has_text="alpha").locator("td.primary a").click()
    page.wait_for_url(f"**/bacteria/evaluations/alpha--{'a2' * 6}--dev.html")
    provenance = page.locator("dl.provenance")
    for term, value in (("Submission commit", "a2" * 20), ("Hidden inputs commit", "a" * 40),
                        ("Image annex key", "MD5E-s1--0123.sif"), ("Scorer", "instance 0.1.0")):
        dd = provenance.locator(f"dt:text-is('{term}') + dd")
        assert dd.inner_text().strip() == value, term
    reproduce = page.locator("h2:text-is('Reproduce') + p + pre").inner_text()
    assert reproduce.strip() == f"jc runner reproduce alpha--{'a2' * 6}--dev --config runner.yaml"
    shot(page, "evaluation")
    assert errors == []


def test_team_and_statistics_pages(page, server: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(server + "bacteria/leaderboard.html")
    page.locator("#phase-dev table.leaderboard").get_by_role("link", name="alpha", exact=True).click()
    page.wait_for_url("**/bacteria/teams/alpha.html")
    assert page.get_by_role("img", name="Public aji of each evaluated submission of team alpha over time"
                            ).is_visible()
    assert page.locator("table.sortable tbody tr").count() == 2
    shot(page, "team")
    page.goto(server + "bacteria/statistics.html")
    assert page.locator("figure.plot svg[role=img]").count() == 4
    assert page.get_by_role("img", name="Submissions per day (UTC)").is_visible()
    shot(page, "statistics")


def test_pages_are_complete_without_javascript(browser, server: str) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context(java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(server + "bacteria/leaderboard.html")
        assert ranked(page) == ["beta", "alpha", "delta", "gamma"]  # the ranking as rendered
        assert page.locator("button.sort").count() == 0  # the script did not run
        page.goto(server + "bacteria/statistics.html")
        assert page.locator("figure.plot svg[role=img]").count() == 4
    finally:
        context.close()


def test_pages_make_no_external_request(browser, server: str, site: Path) -> None:  # type: ignore[no-untyped-def]
    """Styles, the script and plots come with the site: every request a page makes goes to it."""
    context = browser.new_context()
    requested: list[str] = []
    context.on("request", lambda request: requested.append(request.url))
    try:
        page = context.new_page()
        pages = ["index.html", "bacteria/leaderboard.html", "bacteria/statistics.html",
                 "bacteria/teams/alpha.html", f"bacteria/evaluations/alpha--{'a2' * 6}--dev.html",
                 "bacteria/submissions/dev-1.html"]
        for rel in pages:
            assert (site / rel).is_file(), rel
            page.goto(server + rel)
            page.wait_for_load_state("networkidle")
    finally:
        context.close()
    assert requested and all(url.startswith(server) for url in requested), requested
    assert any(url.endswith("static/style.css") for url in requested)
    assert any(url.endswith("static/sort.js") for url in requested)


def test_evaluation_page_shows_the_compact_metric_table(browser, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Metrics x IoU thresholds in one table, counts apart, every metric explained (instance segmentation)."""
    from browser_support import serve
    from test_site_explains import SCORE_FAMILIES, THRESHOLDS, instance_record

    ev = instance_record("alpha", "a1" * 20, 0.7, "2024-05-01T10:00:00Z")
    write(tmp_path / "results", ev)
    build_site(tmp_path / "results", tmp_path / "site", strict=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        with serve(tmp_path / "site") as url:
            page.goto(f"{url}bacteria/evaluations/{ev.id}.html")
            scores = page.locator("table.metric-grid", has_text="Scores per IoU threshold on the public part")
            assert scores.is_visible()
            assert scores.locator("thead th").all_inner_texts() == ["Metric", "Better", *THRESHOLDS]
            assert scores.locator("tbody th[scope=row]").all_inner_texts() == SCORE_FAMILIES
            f1 = scores.locator("tbody tr", has_text="f1").locator("td").all_inner_texts()
            assert f1 == ["higher", *["0.7000"] * 10]
            counts = page.locator("table.metric-grid", has_text="Matched and unmatched objects")
            assert counts.locator("tbody th[scope=row]").all_inner_texts() == ["tp", "fp", "fn"]
            assert counts.locator("tbody tr", has_text="tp").locator("td").nth(1).inner_text() == "10"
            assert page.locator("table.metrics tbody th[scope=row]").count() == 7  # not a hundred rows
            definitions = page.locator("#public-definitions")
            assert not definitions.locator("dl").is_visible()
            definitions.locator("summary").click()
            assert definitions.get_by_text("precision at IoU t (higher is better)").is_visible()
            shot(page, "evaluation-metric-grid")
    finally:
        context.close()
