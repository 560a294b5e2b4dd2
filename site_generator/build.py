"""Build the static site: gather every record, render each page from one context, write.

Nothing here reads a clock: every time on a page comes from the ledger, so the
same ledger always builds the same bytes. In strict mode pages are rendered into
memory first and any problem aborts before a file is written; otherwise the
evaluation pages are written where they are rendered (by the workers).
"""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import logging
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any, cast

import jinja2

from jc_datalad import records
from jc_datalad.errors import JcError
from jc_datalad.ledger import CHALLENGES, EVALUATIONS
from jc_datalad.records import Evaluation
from scorers import registry
from site_generator import (
    description,
    pages,
    plots,
    public,
    ranking,
    ranking_pages,
    stats,
    status,
    versions,
)
from site_generator.gather import STANDINGS, BadRecord, Gathered, gather
from site_generator.leaderboard import Challenge, Phase, attach_finals, challenges, late_for
from site_generator.reproduce_levels import Levels, gather_levels
from site_generator.tables import Table
from site_generator.workers import Workers

lgr = logging.getLogger(__name__)

HERE = Path(__file__).parent
STATIC = "static"
# Lists the files the last build wrote, so the next one removes only its own stale files.
MANIFEST = ".jc-site-manifest"
# Plots drawn by earlier builds (see plots.PlotCache); never part of the manifest.
PLOT_CACHE = ".jc-site-plots"
# Page -> a hash of everything its rendering read, for the pages a rebuild may skip (see _Keys).
PAGE_KEYS = ".jc-site-pages"
# The digests of the records the last build found good, so a rebuild checks only new ones.
GOOD_RECORDS = ".jc-site-records"

# What bad data or a template slip raise while rendering one page.
_RENDER_ERRORS = (jinja2.TemplateError, TypeError, ValueError, KeyError, AttributeError, IndexError)


@dataclass(frozen=True)
class SiteReport:
    """What one build did: the pages it wrote and every problem it found."""

    pages: tuple[str, ...]  # paths relative to the output folder, sorted
    problems: tuple[str, ...]  # each names the record or page and what is wrong


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=public.without_home,  # no one's home folder on a page, whatever the page kind
    )
    env.filters.update(pages.FILTERS)
    return env


def build_site(results: Path | Sequence[Path], out: Path, *, strict: bool = False,
               now: dt.datetime | None = None) -> SiteReport:
    """Build the site for the ``results`` ledger (or several: one site, many challenges) into ``out``.

    A bad record is reported in :attr:`SiteReport.problems` and gets an error page
    (or a line on the index when it has no usable id); a bad final standings file
    is reported and its final leaderboard left out; with ``strict`` any problem
    raises :class:`JcError` listing all of them, and nothing is written.
    ``now``: the time the team status files count today's quotas at (``jc runner serve`` gives
    its pass's time); default: the latest time the ledger records (see :mod:`site_generator.status`).
    """
    ledgers = [Path(results)] if isinstance(results, str | os.PathLike) else [Path(r) for r in results]
    out = Path(out)
    if not ledgers:
        raise JcError("no results dataset given; pass the folder holding evaluations/ of each challenge")
    for ledger in ledgers:
        if not ledger.is_dir():
            raise JcError(f"{ledger}: no such results dataset; pass the folder holding {EVALUATIONS}/")
        if not _is_results(ledger):
            raise JcError(f"{ledger}: not a results dataset (no {EVALUATIONS}/, {CHALLENGES}/ or "
                          f"{STANDINGS}/ folder); pass the `results:` folder of runner.yaml")
    if len({ledger.resolve() for ledger in ledgers}) < len(ledgers):
        raise JcError("a results dataset is given twice: " + " ".join(str(r) for r in ledgers))
    # The records live through the whole build: once read, they are frozen out of the
    # garbage collector's full passes, which would otherwise walk all of them again and
    # again while pages are rendered (a third of a rebuild's time on 10,000 records).
    ours = gc.get_freeze_count() == 0
    workers = Workers()
    try:
        return _build(ledgers, out, strict=strict, workers=workers, now=now)
    finally:
        workers.close()
        if ours:
            gc.unfreeze()


def _is_results(folder: Path) -> bool:
    """Whether ``folder`` is a results dataset: it has what the runner writes, or is one just created."""
    if any((folder / name).is_dir() for name in (EVALUATIONS, CHALLENGES, STANDINGS)):
        return True
    try:
        with open(folder / "README.md", encoding="utf-8") as f:
            return f.read(64).startswith("# Results ledger")  # what jc_datalad.ledger.create_results writes
    except (OSError, ValueError):
        return False


def _build(ledgers: list[Path], out: Path, *, strict: bool, workers: Workers,
           now: dt.datetime | None = None) -> SiteReport:
    code = _code_digest()
    enabled = gc.isenabled()
    gc.disable()  # reading makes only objects that stay
    try:
        known = _read_good(out, code)
        every = [gather(ledger, known_good=known) for ledger in ledgers]
    finally:
        if enabled:
            gc.enable()
    gc.freeze()
    # challenge id -> the ledger that holds it and what was read from it; a challenge in
    # two ledgers is shown from the first given
    source: dict[str, tuple[Path, Gathered]] = {}
    found: list[Challenge] = []
    problems: list[str] = []
    # per ledger: which evaluations readers can reproduce (the archive, the released hidden data)
    levels_of: dict[Path, Levels] = {}
    for ledger, gathered in zip(ledgers, every, strict=True):
        levels_of[ledger] = gather_levels(ledger)
        problems += list(levels_of[ledger].problems)
        mine, inconsistencies = challenges(gathered.evaluations, gathered.bad)
        mine, final_problems = attach_finals(mine, gathered.finals, gathered.final_paths)
        problems += list(gathered.problems) + inconsistencies + final_problems
        # challenge descriptions (challenges/<id>/): five pages each, the index's phase, and every
        # challenge page's navigation, which links them (whether a challenge has them is in ``shown``)
        for challenge in description.attach(mine, description.gather(ledger, problems)):
            if challenge.id in source:
                problems.append(f"{ledger}: challenge {challenge.id!r} is in {source[challenge.id][0]} too; "
                                "only that one is shown")
                continue
            source[challenge.id] = (ledger, gathered)
            found.append(challenge)
    found_challenges = tuple(sorted(found, key=lambda c: c.id))
    # leaderboard versions (site_generator.versions): the main leaderboard shows each phase's current one
    versioned = {c.id: versions.gather(source[c.id][0], c, problems) for c in found_challenges}
    found_challenges = tuple(versions.with_current(c, versioned[c.id]) for c in found_challenges)
    bad = tuple(b for gathered in every for b in gathered.bad)

    env = environment()
    # None: the page the previous build wrote is kept as it is (same inputs, so the same bytes)
    rendered: dict[str, str | None] = {}
    cache = plots.PlotCache(None if (out / PLOT_CACHE).is_symlink() else out / PLOT_CACHE)
    keys = _Keys(out, cache, code)

    def render(path: str, template: str, context: Callable[[], Mapping[str, Any]],
               fallback: Callable[[str], tuple[str, Mapping[str, Any]]], key: object = None) -> None:
        """Render one page; on failure report it by name and render ``fallback`` in its place.

        ``key``: everything the page shows (None: always render); a page whose key
        matches the previous build's and whose file is still there is not rendered again.
        """
        depth = path.count("/")  # paths are relative, posix, without '.' or '..' parts
        digest = None if key is None else keys.digest(path, template, key)
        if digest is not None and keys.unchanged(path, digest):
            rendered[path] = None
            return
        try:
            start = len(cache.requested)
            rendered[path] = env.get_template(template).render(root="../" * depth, **context())
            if digest is not None:  # only a page that rendered without a problem is skipped later
                keys.new[path] = (digest, cache.requested[start:])
        except _RENDER_ERRORS as exc:
            message = f"page {path}: {type(exc).__name__}: {exc}"
            lgr.warning(message)
            problems.append(message)
            tpl, ctx = fallback(message)
            rendered[path] = env.get_template(tpl).render(root="../" * depth, **ctx)

    def page_error(message: str) -> tuple[str, Mapping[str, Any]]:
        return "page_error.html", {"title": "Page error", "message": message}

    description.render_pages(found_challenges, render, page_error)

    error_pages = _error_pages(found_challenges, [ev for c in found_challenges for ev in c.evaluations], bad)
    render("index.html", "index.html",
           partial(pages.index_context, found_challenges, bad, error_pages), page_error)
    exports: dict[str, str | None] = {}
    # the team plots a build must draw are drawn first, on every core (most of a first build)
    todo = []
    for challenge in found_challenges:
        for team, evs in sorted(stats.by_team(challenge).items()):
            try:
                args = stats.team_plot(challenge, team, evs) if pages.team_page(team) is not None else None
            except _RENDER_ERRORS:
                continue  # its page reports it
            if args is not None and cache.missing(plots.points_key(*args)):
                todo.append(args)
    # what every page of a challenge shows or links, hashed once (it is part of every page key)
    shown_by_id = {c.id: hashlib.sha256(repr((
        c.id, c.title, c.type, c.primary, c.direction, c.columns,
        tuple((p.name, p.final is not None) for p in c.phases), c.description is not None)).encode()).hexdigest()
        for c in found_challenges}
    # the evaluation pages to render (nearly every page of a first build), by the workers too
    jobs: list[_PageJob] = []
    for challenge in found_challenges:
        ledger, gathered = source[challenge.id]
        for ev in challenge.evaluations:
            record = gathered.paths[ev.id]
            logs, copies = _logs(ledger, record, ev)
            path = f"{challenge.id}/evaluations/{ev.id}.html"
            # a late head's page names the phase it came after, from the description for older records
            rescored = versions.rescores(ledger, ev, problems)  # its scores by later scorer versions
            page_key = (shown_by_id[challenge.id], gathered.digests[ev.id], record, sorted(logs.items()),
                        late_for(ev, challenge), levels_of[ledger].key(ev), rescored)
            if keys.unchanged(path, keys.digest(path, "evaluation.html", page_key), list(copies)):
                rendered[path] = None
                rendered.update(dict.fromkeys(copies))  # written with the page, from the same record
                continue
            rendered.update(_copies(copies, problems))
            jobs.append(_PageJob(path, page_key, partial(versions.context_with, {"rescores": rescored},
                                                         pages.evaluation_context, ev, challenge, record, logs,
                                                         levels_of[ledger]),
                                 partial(_evaluation_error, BadRecord(
                                     path=record, problems=(), eval_id=ev.id, challenge_id=challenge.id,
                                     team=ev.team, phase=ev.phase))))
    # compiled here, before the workers are forked
    template = env.get_template("evaluation.html") if jobs else None
    # Outside strict mode each evaluation page is written where it is rendered (in a worker,
    # on every core, and not sent back); the keys are dropped first and the pages listed in
    # the manifest, so a build that stops half way leaves no stale key and no unlisted page.
    # In strict mode pages are written only once the build has found no problem.
    direct = None if strict else out
    if direct is not None and jobs:
        keys.forget()
        _prepare_folders(out, (job.path for job in jobs))
        _write_manifest(out, _read_manifest(out) | {job.path for job in jobs})
    plots_drawn = plots.draw_points(todo, cache, workers)  # team pages are rendered once they are drawn
    texts = workers.add(lambda n: _render_job(cast(jinja2.Template, template), jobs[n], direct), len(jobs),
                        chunk=250)
    workers.start()  # the workers draw and render while this process renders the other pages

    later: list[tuple[int, Callable[[], None]]] = []  # where its problems go, a challenge's team pages
    for challenge in found_challenges:
        shown = shown_by_id[challenge.id]
        digests = source[challenge.id][1].digests
        folder = f"{challenge.id}/"
        # ranking statistics per phase (its page, and the tier column of the leaderboard); a page
        # whose inputs did not change is kept, with its exports, and its tiers read back from them
        ranked: dict[str, dict[str, ranking.Statistics]] = {}
        tiers: dict[str, dict[str, dict[str, int]]] = {}
        ranking_keys: dict[str, object] = {}
        for p in challenge.phases:
            page = ranking_pages.ranking_page(p)
            if page is None:
                continue
            # with its leaderboard version: a rescore changes the scores, not the records' digests
            current = versions.current(versioned[challenge.id].get(p.name, ()))
            ranking_keys[p.name] = (shown, ranking_pages.page_key(p, digests), current and current.key)
            files = [f"{folder}{rel}" for rel in ranking_pages.export_files(p)]
            kept = _kept_tiers(out, f"{folder}{page}", p, keys, ranking_keys[p.name], files)
            if kept is not None:
                rendered[f"{folder}{page}"] = None
                exports.update(dict.fromkeys(files))
                tiers[p.name] = kept
            elif (statistics := _ranking(challenge, p, problems)) is not None:
                ranked[p.name] = statistics
                tiers[p.name] = {part: ranking_pages.tiers(s) for part, s in statistics.items()}
        ranking_links = {p.name: page for p in challenge.phases
                         if p.name in tiers and (page := ranking_pages.ranking_page(p)) is not None}
        boards = _tables(folder, problems, partial(stats.leaderboard_tables, challenge, tiers), exports)
        lists = {p.name: stats.submission_pages(p) for p in challenge.phases}
        for rel, (tpl, versioned_context) in versions.pages(challenge, versioned[challenge.id]).items():
            render(f"{folder}{rel}", tpl, partial(dict, versioned_context), page_error)
        render(f"{folder}leaderboard.html", "leaderboard.html",
               partial(versions.context_with, {"versions_page": versions.INDEX if versioned[challenge.id] else None},
                       pages.leaderboard_context, challenge, error_pages,
                       {phase: t.name for phase, t in boards.items()},
                       {p.name: [stats.submissions_page(p, n) for n in range(1, len(lists[p.name]) + 1)]
                        for p in challenge.phases}, tiers, ranking_links), page_error)
        for p in challenge.phases:
            for n, listed in enumerate(lists[p.name], 1):
                path = f"{folder}{stats.submissions_page(p, n)}"
                key = (shown, p.name, n, len(lists[p.name]), tuple(digests[ev.id] for ev in listed))
                files = [f"{path.removesuffix('.html')}.{kind}" for kind in ("json", "csv")]
                if keys.unchanged(path, keys.digest(path, "submissions.html", key), files):
                    rendered[path] = None  # and its exports, made from the same inputs
                    exports.update(dict.fromkeys(files))
                    continue
                export = stats.submissions_table(challenge, p, n, listed)
                exports.update(export.files(f"{folder}submissions/"))
                render(path, "submissions.html",
                       partial(stats.submissions_context, challenge, p, n, len(lists[p.name]), listed,
                               export.name), page_error, key=key)
        numbers = _tables(folder, problems, partial(stats.statistics_tables, challenge), exports)
        render(f"{folder}statistics.html", "statistics.html",
               partial(stats.statistics_context, challenge, numbers, cache, ranking_links), page_error)
        for p in challenge.phases:
            if p.name not in ranked:  # no page, or kept as the last build wrote it
                continue
            shown_tables = _tables(folder, problems, partial(ranking_pages.ranking_tables, challenge, p,
                                                             ranked[p.name]), exports)
            render(f"{folder}{ranking_links[p.name]}", "ranking.html",
                   partial(ranking_pages.ranking_context, challenge, p, ranked[p.name], shown_tables, cache),
                   page_error, key=ranking_keys[p.name])

        # each team's status file (and the quotas its page shows): heads the runner saw are read
        # from a ledger that holds this challenge alone (submissions/seen.jsonl names no challenge)
        ledger_of = source[challenge.id][0]
        alone = sum(1 for c in found_challenges if source[c.id][0] == ledger_of) == 1
        statuses = status.team_statuses(challenge, status.read_pending(ledger_of) if alone else (), now)
        for team, st in statuses.items():
            # public: no one's home folder in a reason (see site_generator.public)
            exports[f"{folder}{status.status_file(team)}"] = public.without_home(status.to_json(st))

        def team_pages(challenge: Challenge = challenge, shown: str = shown,
                       folder: str = folder, digests: Mapping[str, str] = digests,
                       statuses: Mapping[str, Any] = statuses) -> None:
            for team, evs in sorted(stats.by_team(challenge).items()):
                page = pages.team_page(team)
                if page is None:
                    continue
                # its plot shows the challenge's span too; its quotas come from the status file
                key = (shown, team, tuple(digests[ev.id] for ev in evs), challenge.scored_span,
                       status.to_json(statuses[team]) if team in statuses else None)
                files = [f"{folder}teams/{team}.{kind}" for kind in ("json", "csv")]
                if keys.unchanged(f"{folder}{page}", keys.digest(f"{folder}{page}", "team.html", key), files):
                    # its exports come from the same inputs: kept as they are too
                    rendered[f"{folder}{page}"] = None
                    exports.update(dict.fromkeys(files))
                    continue
                _tables(f"{folder}teams/", problems,
                        partial(stats.team_tables, challenge, team, evs), exports)
                render(f"{folder}{page}", "team.html",
                       partial(status.team_context, challenge, team, evs, cache, statuses.get(team)),
                       page_error, key=key)

        later.append((len(problems), team_pages))
    for job, text in zip(jobs, texts.get(), strict=True):
        if text is None:  # rendered here again, to report the problem and render its error page
            render(job.path, "evaluation.html", job.context, job.fallback, key=job.key)
        else:
            rendered[job.path] = None if text is True else cast(str, text)  # None: written already
            keys.new[job.path] = (keys.digest(job.path, "evaluation.html", job.key), [])
    for path, unshown in sorted(error_pages.items()):
        render(path, "record_error.html", partial(pages.record_error_context, unshown), page_error)
    plots_drawn()
    moved = []
    for slot, run_later in later:  # their problems are listed where they would be, had they run in order
        start = len(problems)
        run_later()
        moved.append((slot, problems[start:]))
        del problems[start:]
    for slot, theirs in reversed(moved):
        problems[slot:slot] = theirs

    rendered.update(exports)
    for name in sorted(os.listdir(HERE / STATIC)):
        rendered[f"{STATIC}/{name}"] = (HERE / STATIC / name).read_text(encoding="utf-8")

    if strict and problems:
        raise JcError(f"site build aborted in strict mode: {len(problems)} problem(s):\n"
                      + "\n".join(f"  {p}" for p in problems))
    keys.forget()  # a build that stops while writing leaves no keys to trust
    _write(out, rendered)
    keys.save()
    _save_good(out, code, [d for gathered in every for d in gathered.digests.values()])
    cache.save()
    return SiteReport(pages=tuple(sorted(rendered)), problems=tuple(problems))


def _ranking(challenge: Challenge, phase: Phase, problems: list[str]) -> dict[str, ranking.Statistics] | None:
    """Part -> the ranking statistics of ``phase``; None, reported, when they cannot be computed
    (the phase then gets no ranking page and no tiers)."""
    try:
        # in this process: the build's workers are running, so no processes are forked here
        return ranking_pages.phase_statistics(challenge, phase)
    except _RENDER_ERRORS as exc:
        message = f"ranking statistics of {challenge.id} phase {phase.name}: {type(exc).__name__}: {exc}"
        lgr.warning(message)
        problems.append(message)
        return None


def _kept_tiers(out: Path, path: str, phase: Phase, keys: _Keys, key: object,
                files: Sequence[str]) -> dict[str, dict[str, int]] | None:
    """Part -> team -> tier of a ranking page the last build wrote from these same inputs (kept as it
    is, with its exports); None when it must be computed and rendered again."""
    if not keys.unchanged(path, keys.digest(path, "ranking.html", key), files):
        return None
    found = {}
    for part in ranking_pages.parts_of(phase):
        try:
            text = (out / path).with_name(f"ranking-{phase.name}-{part}-intervals.json").read_text(encoding="utf-8")
        except (OSError, ValueError):
            text = ""
        tiers = ranking_pages.read_tiers(text)
        if tiers is None:
            keys.new.pop(path, None)  # rendered again, with a new key
            return None
        found[part] = tiers
    return found


@dataclass(frozen=True)
class _PageJob:
    """An evaluation page to render: in a worker, or here when that fails."""

    path: str
    key: object  # what the page shows (see _Keys)
    context: Callable[[], Mapping[str, Any]]
    fallback: Callable[[str], tuple[str, Mapping[str, Any]]]


def _render_job(template: jinja2.Template, job: _PageJob, out: Path | None) -> str | bool | None:
    """The page; or, with ``out``, True once written there; None when it fails to render
    (the build renders it again to report why)."""
    try:
        text = template.render(root="../" * job.path.count("/"), **job.context())
    except _RENDER_ERRORS:
        return None
    if out is None:
        return text
    _write_file(out, job.path, text)
    return True


def _evaluation_error(bad: BadRecord, message: str) -> tuple[str, Mapping[str, Any]]:
    """The error page of an evaluation whose page failed to render."""
    return "record_error.html", pages.record_error_context(replace(bad, problems=(message,)))


def _code_digest() -> str:
    """A hash of this package's code, templates and static files: a change to any renders every page."""
    h = hashlib.sha256(f"{jinja2.__version__}\n".encode())
    ours = sorted(p for p in HERE.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    # records.py: how a record file becomes the Evaluation that the checks and pages read;
    # the scorer registry: the metric definitions and directions the pages show
    theirs = [("records.py", Path(records.__file__)), ("scorers/registry.py", Path(registry.__file__))]
    for name, path in [*theirs, *((p.relative_to(HERE).as_posix(), p) for p in ours)]:
        h.update(f"{name}\n".encode())
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _read_good(out: Path, code: str) -> frozenset[str]:
    """The record digests the last build found good, if it ran this same code (else none)."""
    path = out / GOOD_RECORDS
    try:
        data = json.loads(path.read_text(encoding="utf-8")) if not path.is_symlink() else None
    except (OSError, ValueError):
        return frozenset()
    if not (isinstance(data, dict) and data.get("code") == code and isinstance(data.get("good"), list)):
        return frozenset()
    return frozenset(d for d in data["good"] if isinstance(d, str))


def _save_good(out: Path, code: str, digests: Iterable[str]) -> None:
    plots.write_atomic(out / GOOD_RECORDS, json.dumps({"code": code, "good": sorted(digests)}) + "\n")


class _Keys:
    """The page keys of the previous build (``PAGE_KEYS``) and those of this one.

    A page is skipped only when its key is the one the previous build stored and its
    file is still a plain file: the key hashes the page's inputs and this package's
    code, so the kept file holds the bytes a full build would write. A page edited
    by hand in the output folder is not noticed; remove :data:`PAGE_KEYS` (or the
    page) to render every page again.
    """

    def __init__(self, out: Path, cache: plots.PlotCache, code: str) -> None:
        self.out = out
        self.cache = cache
        self.code = code
        # page -> (its key's digest, the plots it shows)
        self.new: dict[str, tuple[str, list[str]]] = {}
        self.old: dict[str, tuple[str, list[str]]] = {}
        path = out / PAGE_KEYS
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if not path.is_symlink() else {}
        except (OSError, ValueError):
            data = {}
        if isinstance(data, dict):
            self.old = {k: (v[0], v[1]) for k, v in data.items()
                        if isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], list)}

    def digest(self, path: str, template: str, key: object) -> str:
        return hashlib.sha256(repr((self.code, path, template, key)).encode()).hexdigest()

    def unchanged(self, path: str, digest: str, also: Sequence[str] = ()) -> bool:
        """Whether ``path`` (and the files ``also``, written with it) can be kept as they are."""
        old = self.old.get(path)
        if old is None or old[0] != digest:
            return False
        for rel in (path, *also):
            try:  # one lstat: a plain file, no symlink (run for every page of a rebuild)
                if not stat.S_ISREG(os.lstat(os.path.join(self.out, rel)).st_mode):
                    return False
            except OSError:
                return False
        folder = self.cache.folder  # a plot gone from the cache is drawn again, by rendering its page
        if folder is not None and not all((folder / f"{d}.svg").is_file() for d in old[1]):
            return False
        self.new[path] = old
        self.cache.keep(old[1])
        return True

    def forget(self) -> None:
        path = self.out / PAGE_KEYS
        if path.is_symlink() or path.is_file():
            path.unlink()

    def save(self) -> None:
        plots.write_atomic(self.out / PAGE_KEYS,
                           json.dumps({k: list(v) for k, v in self.new.items()}, sort_keys=True) + "\n")


def _tables(folder: str, problems: list[str], make: Callable[[], Mapping[str, Table]],
            exports: dict[str, str | None]) -> Mapping[str, Table]:
    """The tables ``make`` returns, each exported as JSON and CSV into ``folder``; a failure is reported."""
    try:
        tables = make()
        for t in tables.values():
            exports.update(t.files(folder))
    except _RENDER_ERRORS as exc:
        message = f"exports in {folder}: {type(exc).__name__}: {exc}"
        lgr.warning(message)
        problems.append(message)
        return {}
    return tables


def _error_pages(found: tuple[Challenge, ...], good: Sequence[Evaluation],
                 bad: tuple[BadRecord, ...]) -> dict[str, BadRecord]:
    """Error page path -> bad record; a bad record never takes a good record's page."""
    taken = {f"{ev.challenge['id']}/evaluations/{ev.id}.html" for ev in good}
    pages_: dict[str, BadRecord] = {}
    for b in bad:  # sorted by path, so the first of two records with one id keeps the page
        if b.page is not None and b.page not in taken and b.page not in pages_:
            pages_[b.page] = b
    return pages_


#: The published logs beside a record (names as in jc_datalad.logs, which the site does not import:
#: it would cost every build the sandbox's imports; tests/test_logs.py checks they agree).
LOGS_AGE = "logs.age"
LOGS_TXT = "logs.txt"
#: The largest ``logs.age`` copied to the site (the runner writes at most about 350 KiB).
MAX_AGE_BYTES = 4 * 2**20


def _logs(results: Path, record: str, ev: Evaluation) -> tuple[dict[str, str], dict[str, str]]:
    """What the ledger publishes of ``ev``'s logs, for its page; and the files to copy to the site.

    ``logs.age`` (``logs: team-encrypted``) is copied beside the page and linked; ``logs.txt``
    (``logs: public``) is shown on the page. Nothing else of the steps' output is: the old
    ``logs/`` folders of the ledger are never read (they may hold hidden data).
    """
    visibility = ev.challenge.get("logs") if isinstance(ev.challenge, dict) else None
    folder = record.rpartition("/")[0]  # strings, not paths: this runs for every record
    logs: dict[str, str] = {}
    copies: dict[str, str] = {}
    if visibility == "team-encrypted":
        source = os.path.join(results, folder, LOGS_AGE)
        if os.path.isfile(source):
            logs["age"] = f"{ev.id}.{LOGS_AGE}"
            copies[f"{ev.challenge['id']}/evaluations/{ev.id}.{LOGS_AGE}"] = source
    elif visibility == "public":
        source = os.path.join(results, folder, LOGS_TXT)
        if os.path.isfile(source):
            logs["text"] = source
    return logs, copies


def _copies(copies: Mapping[str, str], problems: list[str]) -> dict[str, str]:
    """Site path -> the text of each ASCII-armoured ``logs.age`` to copy; one that is no such file is reported."""
    out = {}
    for site_path, source in copies.items():
        with open(source, "rb") as fh:
            data = fh.read(MAX_AGE_BYTES + 1)
        if len(data) > MAX_AGE_BYTES or not data.startswith(b"-----BEGIN AGE ENCRYPTED FILE-----") or not data.isascii():
            problems.append(f"{source}: not an ASCII-armoured age file of at most {MAX_AGE_BYTES} bytes; not copied")
            continue
        out[site_path] = data.decode("ascii")
    return out


def _write(out: Path, rendered: Mapping[str, str | None]) -> None:
    """Write ``rendered`` under ``out`` and remove files the previous build wrote and this one did not.

    A page that is None is left as the previous build wrote it (or as a worker wrote it).
    """
    previous = _read_manifest(out)
    _prepare_folders(out, rendered)
    for rel, text in rendered.items():
        if text is not None:
            _write_file(out, rel, text)
    for rel in sorted(previous - set(rendered), reverse=True):
        target = out / rel
        if not _inside(out, target):
            continue
        if target.is_symlink() or target.is_file():
            target.unlink()
            lgr.info("removed stale %s", target)
        for parent in PurePosixPath(rel).parents:
            if parent == PurePosixPath("."):
                break
            try:
                (out / parent).rmdir()  # only when empty
            except OSError:
                break
    _write_manifest(out, rendered)


def _prepare_folders(out: Path, files: Iterable[str]) -> None:
    """Make the folders of ``files`` in ``out``; refuse any that a symlink leads out of ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    for folder in sorted({rel.rpartition("/")[0] for rel in files}):
        target = out / folder / "_"
        if not _inside(out, target):
            raise JcError(f"{out / folder}: a folder on the way is a symlink leading out of {out}; "
                          "remove it or build into an empty folder")
        target.parent.mkdir(parents=True, exist_ok=True)


def _write_file(out: Path, rel: str, text: str) -> None:
    """Write one file whose folder exists, unless it holds these bytes already; never through a symlink."""
    file = os.path.join(out, rel)  # strings, one lstat: this runs for every page
    data = text.encode("utf-8")
    try:
        mode: int | None = os.lstat(file).st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISREG(mode):
        with open(file, "rb") as f:
            if f.read() == data:
                return
    elif mode is not None and stat.S_ISLNK(mode):
        os.unlink(file)
    with open(file, "wb") as f:
        f.write(data)


def _write_manifest(out: Path, files: Iterable[str]) -> None:
    plots.write_atomic(out / MANIFEST, "".join(f"{rel}\n" for rel in sorted(files)))


def _read_manifest(out: Path) -> set[str]:
    """The files the previous build wrote; entries that would leave ``out`` are ignored."""
    try:
        lines = (out / MANIFEST).read_text(encoding="utf-8").splitlines()
    except OSError:
        return set()
    # relative, normalised posix paths only: no leading '/', no empty, '.' or '..' part
    return {line for line in lines if line and not (set(line.split("/")) & {"", ".", ".."})}


def _inside(out: Path, target: Path) -> bool:
    """Whether ``target``'s folder really lies in ``out`` (no symlinked folder leads elsewhere)."""
    return target.parent.resolve().is_relative_to(out.resolve())
