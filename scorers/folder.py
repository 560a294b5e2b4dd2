"""Score a folder of predictions against a folder of truth files.

Files are matched by name. Every expected file is validated (missing,
unreadable, wrong dtype or shape, wrong ids) and scored on its own; a bad
prediction becomes a per-item error naming the file and the fix, never an
exception. Only a request that cannot proceed at all (no truth folder, unknown
scorer or option, broken truth file) raises :class:`ScorerError`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from . import brains, classification, instance, interval, pixel, regression
from ._version import __version__
from .errors import ScorerError
from .files import ItemError, align, read_labels, read_mask, read_table, table_column
from .registry import get as get_metric
from .registry import names as metric_names
from .results import FolderScore, ItemScore, Metrics, PartsScore, clean

__all__ = ["FolderScore", "ItemScore", "PartsScore", "folder_scorers", "score_folder", "score_parts", "scorer_options",
           "value_columns_problem"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Kind:
    """How one folder scorer reads, scores and aggregates its files."""

    suffixes: tuple[str, ...]
    options: frozenset[str]
    score: Callable[[Path, Path, Mapping[str, Any]], tuple[Metrics, Any]]
    aggregate: Callable[[Sequence[Any], Mapping[str, Any]], Metrics]


def _truth(read: Callable[..., Any], path: Path) -> Any:
    try:
        return read(path, trusted=True)
    except ItemError as exc:
        raise ScorerError(f"truth file {path}: {exc}; the hidden data set is broken") from exc


def _same_shape(t: Any, p: Any) -> None:
    if t.shape != p.shape:
        raise ItemError(
            f"shape {tuple(p.shape)} differs from the truth's {tuple(t.shape)}; "
            "write one label per truth pixel, same frame count"
        )


def _frames(arr: Any) -> list[Any]:
    return [arr] if arr.ndim == 2 else list(arr)


# -- instance segmentation ----------------------------------------------------


def _instance_score(tp: Path, pp: Path, opts: Mapping[str, Any]) -> tuple[Metrics, Any]:
    t = _truth(read_labels, tp)
    p = read_labels(pp, expect_shape=t.shape)
    _same_shape(t, p)
    kw = {k: opts[k] for k in ("thresholds", "legacy_cvppp") if k in opts}
    scores = [instance.score_instances(a, b, **kw) for a, b in zip(_frames(t), _frames(p), strict=True)]
    by_image = bool(opts.get("by_image", False))
    return dict(instance.summarize_instances(scores, by_image=by_image)), scores


def _instance_aggregate(payloads: Sequence[Any], opts: Mapping[str, Any]) -> Metrics:
    scores = [s for group in payloads for s in group]
    if not scores:
        dummy = instance.InstanceScore(
            0.0, 0.0, 0.0, 0, 0, 0.0,
            tuple(instance.Matching(float(t), 0, 0, 0, 0.0)
                  for t in opts.get("thresholds", instance.IOU_THRESHOLDS)),
        )
        return dict.fromkeys(instance.summarize_instances([dummy]))
    return dict(instance.summarize_instances(scores, by_image=bool(opts.get("by_image", False))))


# -- pixel masks --------------------------------------------------------------

_MASK_METRICS = {
    "dice": pixel.mask_dice,
    "jaccard": pixel.mask_jaccard,
    "precision": pixel.mask_precision,
    "recall": pixel.mask_recall,
    "f1": pixel.mask_f1,
}


def _mask_score(tp: Path, pp: Path, opts: Mapping[str, Any]) -> tuple[Metrics, Any]:
    t = _truth(read_mask, tp)
    p = read_mask(pp, expect_shape=t.shape)
    _same_shape(t, p)
    empty = float(opts.get("empty", 1.0))
    out: Metrics = {name: fn(t, p, empty=empty) for name, fn in _MASK_METRICS.items()}
    out["accuracy"] = pixel.mask_accuracy(t, p)
    return out, out


def _mean_aggregate(payloads: Sequence[Any], opts: Mapping[str, Any]) -> Metrics:
    keys = list(payloads[0]) if payloads else []
    out: Metrics = {}
    for key in keys:
        values = [m[key] for m in payloads if m.get(key) is not None]
        out[key] = float(np.mean(values)) if values else None
    out["n_items"] = float(len(payloads))
    return out


# -- tables -------------------------------------------------------------------


def _pair_table(
    tp: Path, pp: Path, column: str | None, numeric: bool
) -> tuple[np.ndarray, np.ndarray]:
    truth = _truth(read_table, tp)
    try:
        t = table_column(truth, column, numeric=numeric, role="truth")
    except ItemError as exc:
        raise ScorerError(f"truth file {tp}: {exc}") from exc
    pred = read_table(pp)
    name = str(t.name)
    pick = name if name in pred.columns or pred.shape[1] != 1 else None
    p = table_column(pred, pick, numeric=numeric, role="prediction")
    return align(t, p)


def _regression_metrics(t: np.ndarray, p: np.ndarray) -> Metrics:
    out: Metrics = {
        "r2": regression.r2(t, p),
        "mae": regression.mae(t, p),
        "rmse": regression.rmse(t, p),
        "mean_bias_error": regression.mean_bias_error(t, p),
        "pearson_r": regression.pearson_r(t, p) if len(t) > 1 else None,
        "mean_relative_error": None,
        "n": float(len(t)),
    }
    if np.all(t != 0):
        out["mean_relative_error"] = regression.mean_relative_error(t, p)
    return out


#: The metrics the regression scorer reports for one value column (``n`` aside).
_REGRESSION_KEYS = ("r2", "mae", "rmse", "mean_bias_error", "pearson_r", "mean_relative_error", "n")
#: A name the ``columns`` option may give: it becomes part of metric names (``r2_<column>``) on pages.
_COLUMN_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: Most value columns one regression scores (each adds six metrics to the leaderboard's choice).
MAX_VALUE_COLUMNS = 20


def value_columns_problem(value: Any) -> str | None:
    """Why ``value`` is no ``columns`` option of the regression scorer; None when it is one.

    The option is a list of 1 to :data:`MAX_VALUE_COLUMNS` distinct column names of the
    truth tables (letters, digits, ``_ . -``), e.g. ``["length_mm", "roots"]``; the
    challenge spec checks it with this function too.
    """
    if not isinstance(value, list | tuple) or not 0 < len(value) <= MAX_VALUE_COLUMNS:
        return f"must be a list of 1 to {MAX_VALUE_COLUMNS} value column names, e.g. [length_mm, roots]"
    bad = [v for v in value if not isinstance(v, str) or not _COLUMN_NAME.match(v)]
    if bad:
        return (f"column {str(bad[0])[:70]!r} is not a column name (1 to 64 letters, digits, _ . -); "
                "name the truth table's value columns, e.g. [length_mm, roots]")
    twice = sorted({v for v in value if value.count(v) > 1})
    if twice:
        return f"names column {twice[0]!r} more than once; name each value column once"
    return None


def _value_columns(opts: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The ``columns`` option, checked (None without it): a request error, raised for every file alike."""
    if "columns" not in opts:
        return None
    if "column" in opts:
        raise ScorerError("scorer 'regression': give the option column (one value column) or columns "
                          "(several), not both")
    problem = value_columns_problem(opts["columns"])
    if problem:
        raise ScorerError(f"scorer 'regression': option columns {problem}")
    return tuple(opts["columns"])


def _per_column(pairs: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> Metrics:
    """Every regression metric of each value column, named ``<metric>_<column>``; ``n`` once."""
    out: Metrics = {}
    n = None
    for name, (t, p) in pairs.items():
        metrics = _regression_metrics(t, p)
        n = metrics.pop("n")
        out.update({f"{key}_{name}": value for key, value in metrics.items()})
    r2s = [out[f"r2_{name}"] for name in pairs]
    out["mean_r2"] = float(np.mean([v for v in r2s if v is not None])) if pairs else None
    out["n"] = n
    return out


def _regression_score(tp: Path, pp: Path, opts: Mapping[str, Any]) -> tuple[Metrics, Any]:
    names = _value_columns(opts)
    if names is None:
        t, p = _pair_table(tp, pp, opts.get("column"), numeric=True)
        return _regression_metrics(t, p), (t, p)
    truth = _truth(read_table, tp)
    truths = {}
    for name in names:  # every truth column first: a broken hidden table is the organizer's error
        try:
            truths[name] = table_column(truth, name, numeric=True, role="truth")
        except ItemError as exc:
            raise ScorerError(f"truth file {tp}: {exc}; the hidden data set or the option columns is wrong") \
                from exc
    pred = read_table(pp)
    pairs = {}
    for name in names:
        if name not in pred.columns:
            raise ItemError(f"prediction has no column {name!r}; found {[str(c)[:40] for c in pred.columns[:10]]}; "
                            f"write the columns id,{','.join(names)}")
        pairs[name] = align(truths[name], table_column(pred, name, numeric=True, role="prediction"))
    return _per_column(pairs), pairs


def _regression_aggregate(payloads: Sequence[Any], opts: Mapping[str, Any]) -> Metrics:
    names = _value_columns(opts)
    if names is None:
        return _pooled(_regression_metrics, _REGRESSION_KEYS)(payloads, opts)
    if not payloads:
        return dict.fromkeys([*(f"{k}_{n}" for n in names for k in _REGRESSION_KEYS if k != "n"), "mean_r2", "n"])
    return _per_column({
        name: (np.concatenate([pairs[name][0] for pairs in payloads]),
               np.concatenate([pairs[name][1] for pairs in payloads]))
        for name in names
    })


def _pooled(metrics: Callable[[np.ndarray, np.ndarray], Metrics], keys: Sequence[str]) -> Any:
    def aggregate(payloads: Sequence[Any], opts: Mapping[str, Any]) -> Metrics:
        if not payloads:
            return dict.fromkeys(keys)
        t = np.concatenate([a for a, _ in payloads])
        p = np.concatenate([b for _, b in payloads])
        return metrics(t, p)

    return aggregate


def _classification_metrics(t: np.ndarray, p: np.ndarray) -> Metrics:
    return {
        "accuracy": classification.accuracy(t, p),
        "balanced_accuracy": classification.balanced_accuracy(t, p),
        "f1_macro": classification.f1(t, p, average="macro"),
        "n": float(len(t)),
    }


def _classification_score(tp: Path, pp: Path, opts: Mapping[str, Any]) -> tuple[Metrics, Any]:
    t, p = _pair_table(tp, pp, opts.get("column"), numeric=False)
    try:
        t, p = classification.class_labels(t, p)
    except ScorerError as exc:
        raise ItemError(str(exc)) from exc
    return _classification_metrics(t, p), (t, p)


def _interval_score(tp: Path, pp: Path, opts: Mapping[str, Any]) -> tuple[Metrics, Any]:
    truth = _truth(read_table, tp)
    try:
        mu = table_column(truth, opts.get("column"), numeric=True, role="truth")
    except ItemError as exc:
        raise ScorerError(f"truth file {tp}: {exc}") from exc
    pred = read_table(pp)
    _, lo = align(mu, table_column(pred, "p16", numeric=True, role="prediction"))
    m, hi = align(mu, table_column(pred, "p84", numeric=True, role="prediction"))
    kw = {k: float(opts[k]) for k in ("confidence", "epsilon") if k in opts}
    try:
        out = interval.coverage_score(m, lo, hi, **kw)
    except ScorerError as exc:
        raise ItemError(str(exc)) from exc
    return dict(out), (m, lo, hi)


def _interval_aggregate(payloads: Sequence[Any], opts: Mapping[str, Any]) -> Metrics:
    if not payloads:
        return dict.fromkeys(("width", "coverage", "penalty", "score"))
    m, lo, hi = (np.concatenate(parts) for parts in zip(*payloads, strict=True))
    kw = {k: float(opts[k]) for k in ("confidence", "epsilon") if k in opts}
    return dict(interval.coverage_score(m, lo, hi, **kw))


_TIFF = (".tif", ".tiff")
_KINDS: dict[str, _Kind] = {
    "instance_segmentation": _Kind(
        _TIFF, frozenset({"thresholds", "legacy_cvppp", "by_image"}),
        _instance_score, _instance_aggregate,
    ),
    "pixel_masks": _Kind(_TIFF, frozenset({"empty"}), _mask_score, _mean_aggregate),
    "regression": _Kind((".csv",), frozenset({"column", "columns"}), _regression_score, _regression_aggregate),
    "classification": _Kind(
        (".csv",), frozenset({"column"}), _classification_score,
        _pooled(_classification_metrics, ("accuracy", "balanced_accuracy", "f1_macro", "n")),
    ),
    "coverage_score": _Kind(
        (".csv",), frozenset({"column", "confidence", "epsilon"}),
        _interval_score, _interval_aggregate,
    ),
    "sex_age": _Kind((".csv",), frozenset(), brains.score_item, brains.aggregate),
}


def folder_scorers() -> tuple[str, ...]:
    """Names accepted by :func:`score_folder` besides single metrics."""
    return tuple(sorted(_KINDS))


#: Options a single metric (a registered metric used as the scorer) passes on to its function.
_METRIC_OPTIONS = frozenset({"column", "thresholds", "legacy_cvppp", "empty", "average", "pos_label"})


def scorer_options(scorer: str) -> frozenset[str]:
    """The options ``scorer`` (a folder scorer or a metric name) accepts, as :func:`score_folder`
    checks them; for a challenge's ``metrics.options``. Raises ScorerError for an unknown scorer."""
    if scorer in _KINDS:
        return _KINDS[scorer].options
    if scorer in metric_names():
        return _METRIC_OPTIONS
    raise ScorerError(f"unknown scorer {scorer!r}; folder scorers: {', '.join(folder_scorers())}")


def _auc_table(
    tp: Path, pp: Path, column: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Truth labels and scores for ``roc_auc``; with one score column per class, their classes.

    A prediction with the truth's column (or a single value column) holds the scores
    of a binary task. Otherwise every value column is named by a class of the truth
    (``id,cat,dog,fox`` or ``id,0,1,2``, in any order) and holds that class's scores:
    a multiclass task, scored one-vs-rest.
    """
    truth = _truth(read_table, tp)
    try:
        t = table_column(truth, column, numeric=False, role="truth")
    except ItemError as exc:
        raise ScorerError(f"truth file {tp}: {exc}") from exc
    pred = read_table(pp)
    if str(t.name) in pred.columns or pred.shape[1] == 1:
        t_arr, s = _pair_table(tp, pp, column, numeric=False)
        return t_arr, s, None
    t_values = t.to_numpy()
    classes = np.unique(t_values.astype(str) if t_values.dtype == object else t_values)
    by_name = {str(c): c for c in classes.tolist()}
    names = [str(c) for c in pred.columns]
    if sorted(names) != sorted(by_name):
        unknown = sorted(set(names) - set(by_name))
        missing = sorted(set(by_name) - set(names))
        found = "; ".join(
            part for part in (
                f"no class {unknown[0][:40]!r} in the truth" if unknown else "",
                f"no column for class {missing[0][:40]!r}" if missing else "",
            ) if part
        )
        raise ItemError(
            f"has {len(names)} score column(s) but the truth has {len(by_name)} classes ({found}); "
            f"write the truth's column {str(t.name)[:40]!r} (binary scores) or one score column "
            "per class, named by the class (e.g. id,0,1,2)"
        )
    columns = []
    for col in pred.columns:
        t_arr, s = align(t, table_column(pred, col, numeric=True, role="prediction"))
        columns.append(s)
    labels = np.array([by_name[n] for n in names])
    return t_arr, np.column_stack(columns), labels


def _metric_kind(name: str, tabular: bool) -> _Kind:
    """Any registered metric, applied per file and averaged over files."""
    fn = get_metric(name)

    def score(tp: Path, pp: Path, opts: Mapping[str, Any]) -> tuple[Metrics, Any]:
        if tabular and name == "roc_auc":
            t, p, labels = _auc_table(tp, pp, opts.get("column"))
            extra = {k: v for k, v in opts.items() if k != "column"}
            if labels is not None:
                extra["labels"] = labels
        elif tabular:
            t, p = _pair_table(tp, pp, opts.get("column"), numeric=False)
            extra = {k: v for k, v in opts.items() if k != "column"}
        else:
            t = _truth(read_labels, tp)
            p = read_labels(pp, expect_shape=t.shape)
            _same_shape(t, p)
            extra = dict(opts)
        try:
            value = fn(t, p, **extra)
        except ScorerError as exc:
            raise ItemError(str(exc)) from exc
        out: Metrics = dict(value) if isinstance(value, dict) else {name: float(value)}
        return out, out

    return _Kind((".csv",) if tabular else _TIFF, _METRIC_OPTIONS, score, _mean_aggregate)


def _listing(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    return {
        p.name: p
        for p in sorted(folder.iterdir())
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in suffixes
    }


def score_folder(
    pred_dir: str | Path,
    truth_dir: str | Path,
    *,
    scorer: str = "instance_segmentation",
    items: Iterable[str] | None = None,
    **options: Any,
) -> FolderScore:
    """Score every prediction file against the truth file of the same name.

    Parameters
    ----------
    pred_dir : str or Path
        Folder the submission wrote its predictions to.
    truth_dir : str or Path
        Folder of hidden truth files.
    scorer : str
        A folder scorer (:func:`folder_scorers`: ``instance_segmentation``,
        ``pixel_masks``, ``regression``, ``classification``,
        ``coverage_score``) or any registered metric name (scored per file
        and averaged).
    items : iterable of str, optional
        Restrict scoring to these truth file names (a public or private split).
    **options
        Passed to the scorer, e.g. ``thresholds``, ``legacy_cvppp``,
        ``by_image`` (instance segmentation), ``column`` (tables), ``columns``
        (regression: several value columns, each reported as ``r2_<column>``, ...), ``empty``
        (masks), ``confidence`` and ``epsilon`` (coverage).

    Returns
    -------
    FolderScore
        Aggregate and per-item metrics plus every per-file error.

    Raises
    ------
    ScorerError
        If the truth folder is missing or empty, the scorer or an option is
        unknown, a requested item has no truth file, or a truth file is broken.
    """
    kind, record, _payloads = _score_items(Path(pred_dir), Path(truth_dir), scorer, items, options)
    return record


def score_parts(
    pred_dir: str | Path,
    truth_dir: str | Path,
    *,
    scorer: str = "instance_segmentation",
    items: Iterable[str],
    public_items: Collection[str],
    **options: Any,
) -> PartsScore:
    """Score every item once; aggregate the whole, its public part and its private part.

    Parameters are those of :func:`score_folder`; ``public_items`` names the items of
    the public part, the other ``items`` form the private part.

    Raises
    ------
    ScorerError
        As :func:`score_folder`.
    """
    wanted = list(items)
    kind, record, payloads = _score_items(Path(pred_dir), Path(truth_dir), scorer, wanted, options)
    public = set(public_items)
    in_public = [payloads[n] for n in wanted if n in public and n in payloads]
    in_private = [payloads[n] for n in wanted if n not in public and n in payloads]
    private_part = any(n not in public for n in wanted)
    return PartsScore(
        whole=record,
        public={k: clean(v) for k, v in kind.aggregate(in_public, options).items()},
        private=({k: clean(v) for k, v in kind.aggregate(in_private, options).items()}
                 if private_part else {}),
    )


def _score_items(
    pred_dir: Path, truth_dir: Path, scorer: str, items: Iterable[str] | None, options: Mapping[str, Any]
) -> tuple[_Kind, FolderScore, dict[str, Any]]:
    if not truth_dir.is_dir():
        raise ScorerError(f"truth folder {truth_dir} does not exist")
    if scorer in _KINDS:
        kind = _KINDS[scorer]
    else:
        if scorer not in metric_names():
            raise ScorerError(
                f"unknown scorer {scorer!r}; folder scorers: {', '.join(folder_scorers())}; "
                f"metrics: {', '.join(metric_names())}"
            )
        tabular = any(p.suffix.lower() == ".csv" for p in truth_dir.iterdir())
        kind = _metric_kind(scorer, tabular)
    unknown = set(options) - kind.options
    if unknown:
        raise ScorerError(
            f"scorer {scorer!r} takes no option(s) {sorted(unknown)}; "
            f"it accepts {sorted(kind.options)}"
        )
    truths = _listing(truth_dir, kind.suffixes)
    expected_all = set(truths)
    if items is not None:
        wanted = set(items)
        absent = sorted(wanted - set(truths))
        if absent:
            raise ScorerError(
                f"requested item(s) {absent[:5]} have no truth file in {truth_dir}"
            )
        truths = {name: path for name, path in truths.items() if name in wanted}
    if not truths:
        raise ScorerError(f"truth folder {truth_dir} holds no {'/'.join(kind.suffixes)} files")
    every_pred = (
        {p.name for p in pred_dir.iterdir() if p.is_file() and not p.name.startswith(".")}
        if pred_dir.is_dir() else set()
    )
    n_found = sum(name in every_pred for name in truths)
    results: list[ItemScore] = []
    payloads: dict[str, Any] = {}
    errors: list[str] = []
    for name, truth_path in truths.items():
        if name not in every_pred:
            reason = f"missing: the command wrote {n_found} of {len(truths)} expected files"
            stem = Path(name).stem
            near = sorted(p for p in every_pred if Path(p).stem == stem)
            if near:
                reason += f"; found {near[0]!r}, rename it to {name!r}"
            elif not pred_dir.is_dir():
                reason += f" (no prediction folder {pred_dir})"
            errors.append(f"{name}: {reason}")
            results.append(ItemScore(name, {}, reason))
            continue
        try:
            metrics, payload = kind.score(truth_path, pred_dir / name, options)
        except ItemError as exc:
            errors.append(f"{name}: {exc}")
            results.append(ItemScore(name, {}, str(exc)))
            continue
        log.debug("scored %s", name)
        results.append(ItemScore(name, {k: clean(v) for k, v in metrics.items()}, None))
        payloads[name] = payload
    for name in sorted(every_pred - expected_all):
        errors.append(
            f"{name}: unexpected file: no truth file has this name; "
            f"write only files named like the truth (e.g. {next(iter(truths))!r})"
        )
    record = FolderScore(
        scorer=scorer,
        version=__version__,
        metrics={k: clean(v) for k, v in kind.aggregate(list(payloads.values()), options).items()},
        items=tuple(results),
        errors=tuple(errors),
    )
    return kind, record, payloads
