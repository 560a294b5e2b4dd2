"""Scoring as a process of its own: ``python -m scorers.sealed``, run by the runner in its sandbox.

The runner starts this module inside a sandbox that holds nothing but the
Python installation, this package, one evaluation's copied predictions and the
labels they are scored against; whatever a prediction file names, there is no
other file to find. It prints one JSON object (:data:`FORMAT`) to stdout, or to
``--output``::

    python -m scorers.sealed --predictions /predictions --labels /labels \\
        --scorer instance_segmentation --items '["a.tif", "b.tif"]' --public '["a.tif"]'

The object holds either the scores (``metrics``, ``public``, ``private``,
``items``, ``errors``, ``ok``) or, when the request cannot proceed (broken
truth, unknown scorer), ``error`` with the reason. Exit status 0 for both;
anything else is a crash of the scorer, reported on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

from ._version import __version__
from .errors import ScorerError
from .folder import score_parts

__all__ = ["FORMAT", "MESSAGE_CHARS", "main", "request_args"]

#: The ``format`` of the printed object; the reader checks it.
FORMAT = "jc-sealed-score/1"
#: Longest error message written per item.
MESSAGE_CHARS = 1000


def request_args(
    *,
    predictions: str,
    labels: str,
    scorer: str,
    items: Sequence[str],
    public_items: Sequence[str],
    options: dict[str, Any] | None = None,
    output: str | None = None,
) -> list[str]:
    """The arguments after ``-m scorers.sealed`` for one request (the caller's side of the interface)."""
    args = ["--predictions", predictions, "--labels", labels, "--scorer", scorer,
            "--items", json.dumps(list(items)), "--public", json.dumps(sorted(public_items)),
            "--options", json.dumps(options or {})]
    return args + (["--output", output] if output else [])


def _names(text: str, flag: str) -> list[str]:
    value = json.loads(text)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SystemExit(f"{flag}: a JSON list of file names is expected")
    return value


def _result(args: argparse.Namespace) -> dict[str, Any]:
    options = json.loads(args.options)
    if not isinstance(options, dict):
        raise SystemExit("--options: a JSON object is expected")
    try:
        parts = score_parts(args.predictions, args.labels, scorer=args.scorer,
                            items=_names(args.items, "--items"),
                            public_items=_names(args.public, "--public"), **options)
    except ScorerError as exc:
        return {"format": FORMAT, "version": __version__, "scorer": args.scorer, "error": _short(str(exc))}
    result = parts.to_dict()
    # messages may quote participant data (an id, a column name): bounded, so the result stays small
    result["errors"] = [_short(e) for e in result["errors"]]
    for item in result["items"]:
        item["error"] = None if item["error"] is None else _short(item["error"])
    return {"format": FORMAT, "error": None, **result}


def _short(text: str) -> str:
    return text if len(text) <= MESSAGE_CHARS else text[:MESSAGE_CHARS - 3] + "..."


def main(argv: Sequence[str] | None = None) -> int:
    """Score one request; print its JSON object. Returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m scorers.sealed", description=__doc__.split("\n")[0])
    parser.add_argument("--predictions", required=True, help="Folder of this evaluation's predictions.")
    parser.add_argument("--labels", required=True, help="Folder of the truth files.")
    parser.add_argument("--scorer", required=True, help="Folder scorer or metric name.")
    parser.add_argument("--items", required=True, help="JSON list of the item (truth file) names.")
    parser.add_argument("--public", required=True, help="JSON list of the items of the public part.")
    parser.add_argument("--options", default="{}", help="JSON object of scorer options.")
    parser.add_argument("--output", help="Write the JSON here instead of stdout.")
    args = parser.parse_args(argv)
    # Only the result goes to stdout: anything a library prints is moved to stderr.
    with contextlib.redirect_stdout(sys.stderr):
        result = _result(args)
    text = json.dumps(result, allow_nan=False, separators=(",", ":"))
    if args.output:
        with open(args.output, "x", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    os.umask(0o077)
    sys.exit(main())
