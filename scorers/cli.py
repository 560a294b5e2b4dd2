"""``jc score``: a thin click layer over :func:`scorers.score_folder`.

``jc score METRIC --truth PATH --pred PATH [--json]``. PATH is a folder (every
file scored and aggregated) or a single file (scored as a folder of one).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import click

from .errors import ScorerError
from .folder import FolderScore, folder_scorers, score_folder
from .registry import names

__all__ = ["score"]


def _score_paths(metric: str, truth: Path, pred: Path, options: dict[str, Any] | None = None) -> FolderScore:
    options = options or {}
    if truth.is_dir():
        return score_folder(pred, truth, scorer=metric, **options)
    if pred.is_dir():
        raise ScorerError(f"--pred {pred} is a folder but --truth {truth} is a file; give two files")
    # A single pair is a folder of one: stage links under the truth's name.
    with tempfile.TemporaryDirectory(prefix="jc-score-") as tmp:
        tdir, pdir = Path(tmp, "truth"), Path(tmp, "pred")
        tdir.mkdir()
        pdir.mkdir()
        shutil.copyfile(truth, tdir / truth.name)
        if pred.exists():
            shutil.copyfile(pred, pdir / truth.name)
        return score_folder(pdir, tdir, scorer=metric, **options)


def _option(text: str) -> tuple[str, Any]:
    """``NAME=VALUE``; VALUE read as JSON (true, 0.68, [0.5, 0.75]), else taken as a string."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ScorerError(f"--option {text!r}: write NAME=VALUE, e.g. legacy_cvppp=true")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def _challenge_options(path: Path) -> dict[str, Any]:
    """``metrics.options`` of a challenge (its folder or its challenge.yaml), checked as the runner checks them."""
    try:  # the challenge spec is jc-datalad's; the scorers themselves never need it
        from jc_datalad.errors import JcError
        from jc_datalad.spec import load_spec
    except ImportError as exc:
        raise ScorerError("--challenge needs jc-datalad installed; pass --option NAME=VALUE instead") from exc

    spec_file = path / "challenge.yaml" if path.is_dir() else path
    try:
        return dict(load_spec(spec_file).metrics.options)
    except JcError as exc:
        raise ScorerError(str(exc)) from exc


def _render(result: FolderScore) -> str:
    lines = [f"{result.scorer} (scorers {result.version}): {'ok' if result.ok else 'ERRORS'}"]
    for key, value in result.metrics.items():
        lines.append(f"  {key:<22} {'n/a' if value is None else format(value, '.6g')}")
    lines.extend(f"  error: {e}" for e in result.errors)
    return "\n".join(lines)


@click.command(name="score")
@click.argument("metric", metavar="METRIC")
@click.option(
    "--truth", "truth", required=True,
    type=click.Path(exists=True, path_type=Path), help="Truth file or folder.",
)
@click.option(
    "--pred", "pred", required=True,
    type=click.Path(path_type=Path), help="Prediction file or folder.",
)
@click.option("--option", "options", multiple=True, metavar="NAME=VALUE",
              help="A scorer option (repeatable), e.g. legacy_cvppp=true; VALUE is read as JSON.")
@click.option("--challenge", type=click.Path(exists=True, path_type=Path),
              help="Score with the options of this challenge (its folder or challenge.yaml: metrics.options), "
                   "as the runner does; --option values replace them.")
@click.option("--json", "as_json", is_flag=True, help="Print the score record as JSON.")
def score(metric: str, truth: Path, pred: Path, options: tuple[str, ...], challenge: Path | None,
          as_json: bool) -> None:
    """Score predictions against the truth with METRIC.

    METRIC is a folder scorer (instance_segmentation, pixel_masks, regression,
    classification, coverage_score) or a single metric such as
    symmetric_best_dice or mae. Exits with status 1 when any file could not
    be scored.
    """
    try:
        chosen = _challenge_options(challenge) if challenge is not None else {}
        chosen.update(_option(o) for o in options)
        result = _score_paths(metric, truth, pred, chosen)
    except ScorerError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json else _render(result))
    if not result.ok:
        raise click.exceptions.Exit(1)


score.help = (score.help or "") + (
    "\n\nFolder scorers: " + ", ".join(folder_scorers())
    + ".\n\nMetrics: " + ", ".join(names()) + "."
)
