"""``jc runner serve``: a runner pass on an interval, the site rebuilt and published after each.

Participants learn their status within one interval: each cycle runs a pass
(:func:`jc_datalad.runner.run_once`, which holds the results dataset's lock),
then builds the site with the pass's time as ``now`` (the time the status files
count today's quotas at) and publishes it atomically.

Publishing: the site folder ``SITE`` is a symlink to one of two sibling folders,
``.SITE.a`` and ``.SITE.b``. A build goes into the one ``SITE`` does not point
to, then a new symlink replaces ``SITE`` by rename: a reader sees the old site or
the new one, never half of one. The next build reuses the other folder, so a
rebuild renders only what changed since that folder's last build.

A cycle never ends the loop: a pass that fails, or a build that fails, is logged
and the next cycle comes as usual (a pass is crash-safe; the next one repairs
what a failed one left). A pass held up by another writer is skipped with a
message. SIGTERM or SIGINT (:func:`stop_on_signals`) ends the loop between
cycles, or after the current pass and its site; a second signal stops at once.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jc_datalad import lock
from jc_datalad.config import RunnerConfig
from jc_datalad.errors import JcError

lgr = logging.getLogger(__name__)

SLOTS = ("a", "b")


@dataclass(frozen=True)
class Cycle:
    """What one cycle did: its time, the pass (or why there was none) and the site."""

    started: str  # the pass's time, ISO UTC: the site's ``now``
    evaluations: int = 0  # new records of the pass
    pass_error: str | None = None  # the pass failed (the loop goes on)
    skipped: str | None = None  # another writer held the lock: no pass this cycle
    team_errors: tuple[str, ...] = ()  # team repositories the pass could not read
    site: str | None = None  # the folder the site was published from; None if not published
    site_error: str | None = None
    problems: int = 0  # problems the site build reported

    @property
    def ok(self) -> bool:
        return self.pass_error is None and self.site_error is None and not self.team_errors

    def as_dict(self) -> dict[str, Any]:
        return {"started": self.started, "evaluations": self.evaluations, "pass_error": self.pass_error,
                "skipped": self.skipped, "team_errors": list(self.team_errors), "site": self.site,
                "site_error": self.site_error, "problems": self.problems, "ok": self.ok}


@dataclass
class Stop:
    """Set by a signal (or a test): the loop ends at the next point it looks."""

    requested: bool = False
    signals: list[int] = field(default_factory=list)

    def wait(self, seconds: float) -> None:
        """Sleep ``seconds``, or less once a stop is requested (in short steps: signals interrupt them)."""
        end = time.monotonic() + seconds
        while not self.requested and (left := end - time.monotonic()) > 0:
            time.sleep(min(left, 0.25))


@contextlib.contextmanager
def stop_on_signals(stop: Stop) -> Iterator[Stop]:
    """While the block runs, SIGTERM and SIGINT request a stop; a second one stops at once
    (KeyboardInterrupt: the pass is crash-safe, the next one finishes what it left)."""
    def handler(signum: int, frame: Any) -> None:
        stop.signals.append(signum)
        if stop.requested:
            raise KeyboardInterrupt(f"signal {signum} again: stopping now")
        stop.requested = True
        lgr.warning("signal %d: stopping after the current pass and its site (send it again to stop now)",
                    signum)

    before = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def slots(site: Path) -> tuple[Path, Path]:
    """The two folders ``site`` points to in turn: ``.<name>.a`` and ``.<name>.b`` beside it."""
    site = Path(os.path.abspath(site))
    return tuple(site.parent / f".{site.name}.{s}" for s in SLOTS)  # type: ignore[return-value]


def _current(site: Path) -> Path | None:
    """The slot ``site`` points to now; None before the first publication."""
    a, b = slots(site)
    if site.is_symlink():
        target = os.readlink(site)
        for slot in (a, b):
            if target in (slot.name, str(slot)):
                return slot
        raise JcError(f"{site} is a symlink to {target}, not to {a.name} or {b.name}: remove the symlink "
                      "(jc runner serve publishes the site there itself)")
    if site.exists():
        if not site.is_dir():
            raise JcError(f"{site} is a file: give --site a folder path (or remove the file)")
        # a folder an earlier `jc site build` wrote: it becomes the first slot (one rename, once)
        os.rename(site, a)
        os.symlink(a.name, site)
        lgr.warning("%s: the folder moved to %s; %s is now a symlink to the published site", site, a, site)
        return a
    return None


def publish_site(results: list[Path], site: Path, *, now: dt.datetime | None = None):
    """Build the site into the slot ``site`` does not point to, then point ``site`` at it.

    Returns the :class:`site_generator.SiteReport`. A build that raises leaves ``site`` as it was.
    """
    from site_generator import build_site

    site = Path(os.path.abspath(site))
    site.parent.mkdir(parents=True, exist_ok=True)
    current = _current(site)
    a, b = slots(site)
    target = b if current == a else a
    if target.is_symlink():
        raise JcError(f"{target} is a symlink: remove it (jc runner serve builds the site there)")
    report = build_site(results, target, now=now)
    link = site.parent / f".{site.name}.link"
    with contextlib.suppress(FileNotFoundError):
        link.unlink()
    os.symlink(target.name, link)  # relative: the pair can be moved together
    os.replace(link, site)
    return report


def _iso(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def cycle(config: RunnerConfig, site: Path, *, now: dt.datetime | None = None, workers: int | None = None,
          say: Callable[[str], None] = lgr.info) -> Cycle:
    """One pass, then the site built with the pass's time and published. Never raises for a
    failed pass or build: the returned :class:`Cycle` says what failed."""
    from jc_datalad.runner import run_once

    now = now or dt.datetime.now(dt.UTC)
    found: dict[str, Any] = {"started": _iso(now)}
    try:
        report = run_once(config, now=now, workers=workers, progress=say, wait=False)
        found.update(evaluations=len(report.evaluations), team_errors=tuple(report.team_errors))
        say(f"pass done in {report.wall_s:.2f} s: {len(report.evaluations)} new evaluation(s)")
    except lock.LockBusy as exc:
        found["skipped"] = str(exc)
        say(f"pass skipped: {exc}")
    # A service loop: whatever one pass raises is logged and the next cycle comes (a pass is
    # crash-safe, so nothing it left is lost); a KeyboardInterrupt still ends the loop.
    except Exception as exc:  # noqa: BLE001
        lgr.exception("pass failed")
        found["pass_error"] = f"{type(exc).__name__}: {exc}"
    try:
        built = publish_site([config.results], site, now=now)
        found.update(site=str(Path(os.path.abspath(site)).resolve()), problems=len(built.problems))
        for problem in built.problems:
            lgr.warning("site: %s", problem)
        say(f"site published: {len(built.pages)} pages in {site}")
    except Exception as exc:  # noqa: BLE001 - as above: the published site stays as it was
        lgr.exception("site build failed; %s keeps the previous site", site)
        found["site_error"] = f"{type(exc).__name__}: {exc}"
    return Cycle(**found)


def serve(config: RunnerConfig, site: Path, *, interval: float, once: bool = False, workers: int | None = None,
          stop: Stop | None = None, say: Callable[[str], None] = lgr.info,
          on_cycle: Callable[[Cycle], None] | None = None,
          clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)) -> list[Cycle]:
    """Cycles every ``interval`` seconds (from the start of one to the start of the next) until
    ``stop`` is requested; with ``once``, one cycle. ``on_cycle`` sees each cycle as it ends.
    Returns the cycles run."""
    if interval <= 0:
        raise JcError(f"--interval {interval}: must be more than 0 seconds")
    stop = stop or Stop()
    done: list[Cycle] = []
    while True:
        began = time.monotonic()
        done.append(cycle(config, site, now=clock(), workers=workers, say=say))
        if on_cycle is not None:
            on_cycle(done[-1])
        if once or stop.requested:
            break
        stop.wait(interval - (time.monotonic() - began))
        if stop.requested:
            break
    say(f"stopped after {len(done)} cycle(s)")
    return done


def parse_interval(text: str) -> float:
    """``"5m"`` -> 300.0: a number with an optional unit s, m, h (none: seconds)."""
    units = {"s": 1, "m": 60, "h": 3600}
    raw = text.strip().lower()
    factor = units.get(raw[-1:], None)
    number = raw[:-1] if factor is not None else raw
    try:
        value = float(number) * (factor or 1)
    except ValueError:
        raise JcError(f"--interval {text!r}: give a duration such as 30s, 5m or 1h") from None
    if not (1 <= value <= 7 * 86400):
        raise JcError(f"--interval {text!r}: must be between 1 s and 7 days")
    return value
