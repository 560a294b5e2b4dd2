"""Folder scoring and the ``jc score`` command on real files in tmp_path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tifffile
from click.testing import CliRunner

import scorers
from scorers.cli import score


def _labels(seed: int, shape=(32, 32)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, np.uint16)
    for k in range(1, 6):
        y, x = rng.integers(0, shape[-2] - 8), rng.integers(0, shape[-1] - 8)
        out[..., y:y + 6, x:x + 6] = k * 3
    return out


@pytest.fixture
def seg_dirs(tmp_path: Path) -> tuple[Path, Path]:
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    for i in range(3):
        t = _labels(i)
        tifffile.imwrite(truth / f"img_{i:03d}.tif", t)
        tifffile.imwrite(pred / f"img_{i:03d}.tif", t)
    return pred, truth


def test_perfect_folder(seg_dirs):
    pred, truth = seg_dirs
    result = scorers.score_folder(pred, truth)
    assert result.ok and result.scorer == "instance_segmentation"
    assert result.version == scorers.__version__
    for key in ("sbd", "abs_dic", "dic", "fg_dice", "precision_50", "recall_50", "f1_50",
                "ap50", "ap", "mean_iou_50", "pq_50"):
        assert key in result.metrics
    assert result.metrics["sbd"] == 1.0 and result.metrics["ap"] == 1.0
    assert [i.name for i in result.items] == ["img_000.tif", "img_001.tif", "img_002.tif"]
    json.dumps(result.to_dict(), allow_nan=False)


def test_bad_files_become_item_errors(seg_dirs):
    pred, truth = seg_dirs
    (pred / "img_000.tif").unlink()
    tifffile.imwrite(pred / "img_001.tif", np.zeros((16, 16), np.uint16))
    (pred / "img_002.tif").write_bytes(b"not a tiff")
    (pred / "notes.txt").write_text("hi")
    result = scorers.score_folder(pred, truth)
    assert not result.ok
    errors = "\n".join(result.errors)
    assert "img_000.tif: missing: the command wrote 2 of 3 expected files" in errors
    assert "img_001.tif: shape (16, 16) differs from the truth's (32, 32)" in errors
    assert "img_002.tif: unreadable as TIFF" in errors
    assert "notes.txt: unexpected file" in errors
    assert all(i.error for i in result.items)
    assert all(v is None for v in result.metrics.values())
    json.dumps(result.to_dict(), allow_nan=False)


def test_float_prediction_and_renamed_file(seg_dirs):
    pred, truth = seg_dirs
    tifffile.imwrite(pred / "img_001.tif", _labels(1).astype(np.float32))
    (pred / "img_002.tif").rename(pred / "img_002.tiff")
    result = scorers.score_folder(pred, truth)
    by_name = {i.name: i for i in result.items}
    assert "dtype float32 is not a label type" in by_name["img_001.tif"].error
    assert "rename it to 'img_002.tif'" in by_name["img_002.tif"].error
    assert by_name["img_000.tif"].error is None
    assert result.metrics["sbd"] == 1.0  # over the one scorable item


def test_items_restrict_split(seg_dirs):
    pred, truth = seg_dirs
    (pred / "img_002.tif").unlink()
    result = scorers.score_folder(pred, truth, items={"img_000.tif", "img_001.tif"})
    assert result.ok and len(result.items) == 2
    with pytest.raises(scorers.ScorerError, match="no truth file"):
        scorers.score_folder(pred, truth, items={"img_999.tif"})


def test_stack_scored_frame_by_frame(tmp_path):
    truth, pred = tmp_path / "t", tmp_path / "p"
    truth.mkdir()
    pred.mkdir()
    t = np.stack([_labels(0), _labels(1)])
    p = t.copy()
    p[1] = 0
    tifffile.imwrite(truth / "movie.tif", t)
    tifffile.imwrite(pred / "movie.tif", p)
    result = scorers.score_folder(pred, truth)
    assert result.metrics["n_images"] == 2
    assert result.metrics["sbd"] == pytest.approx(0.5)
    assert result.metrics["recall_50"] == pytest.approx(0.5)


def test_request_errors(tmp_path, seg_dirs):
    pred, truth = seg_dirs
    with pytest.raises(scorers.ScorerError, match="does not exist"):
        scorers.score_folder(pred, tmp_path / "nope")
    with pytest.raises(scorers.ScorerError, match="unknown scorer"):
        scorers.score_folder(pred, truth, scorer="nope")
    with pytest.raises(scorers.ScorerError, match="takes no option"):
        scorers.score_folder(pred, truth, colour="red")
    result = scorers.score_folder(tmp_path / "absent", truth)
    assert len(result.errors) == 3 and "no prediction folder" in result.errors[0]


def test_legacy_and_metric_scorers(seg_dirs):
    pred, truth = seg_dirs
    legacy = scorers.score_folder(pred, truth, legacy_cvppp=True)
    assert legacy.ok and legacy.metrics["sbd"] < 1.0  # ids 3, 6, ... leave gaps
    single = scorers.score_folder(pred, truth, scorer="symmetric_best_dice")
    assert single.metrics["symmetric_best_dice"] == 1.0 and single.metrics["n_items"] == 3


def test_tabular_scorers(tmp_path):
    truth, pred = tmp_path / "t", tmp_path / "p"
    truth.mkdir()
    pred.mkdir()
    pd.DataFrame({"id": ["a", "b", "c"], "age": [10.0, 20.0, 40.0]}).to_csv(truth / "ages.csv", index=False)
    pd.DataFrame({"id": ["c", "a", "b"], "age": [44.0, 10.0, 20.0]}).to_csv(pred / "ages.csv", index=False)
    result = scorers.score_folder(pred, truth, scorer="regression")
    assert result.ok
    assert result.metrics["mae"] == pytest.approx(4 / 3)
    assert result.metrics["mean_bias_error"] == pytest.approx(4 / 3)
    pd.DataFrame({"id": ["a", "b"], "age": [1.0, float("nan")]}).to_csv(pred / "ages.csv", index=False)
    bad = scorers.score_folder(pred, truth, scorer="regression")
    assert "ages.csv: column 'age' has 1 missing" in bad.errors[0]

    pd.DataFrame({"id": [1, 2, 3, 4], "sex": ["M", "F", "F", "M"]}).to_csv(truth / "sex.csv", index=False)
    pd.DataFrame({"id": [1, 2, 3, 4], "sex": ["M", "M", "F", "M"]}).to_csv(pred / "sex.csv", index=False)
    (truth / "ages.csv").unlink()
    (pred / "ages.csv").unlink()
    cls = scorers.score_folder(pred, truth, scorer="classification")
    assert cls.ok and cls.metrics["accuracy"] == 0.75

    (truth / "sex.csv").unlink()
    (pred / "sex.csv").unlink()
    pd.DataFrame({"id": range(4), "mu": [1.0, 1.0, 2.0, 2.0]}).to_csv(truth / "mu.csv", index=False)
    pd.DataFrame({"id": range(4), "p16": [0.5, 0.9, 2.5, 1.0], "p84": [1.5, 1.1, 3.0, 3.0]}).to_csv(
        pred / "mu.csv", index=False
    )
    cov = scorers.score_folder(pred, truth, scorer="coverage_score", confidence=0.6827, epsilon=1e-3)
    assert cov.metrics["coverage"] == 0.75
    assert cov.metrics["width"] == pytest.approx((1 + 0.2 + 0.5 + 2) / 4)


def test_roc_auc_folder_with_labels_other_than_0_1(tmp_path):
    import sklearn.metrics as skm

    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    sex = [1000, 2000, 1000, 2000, 2000]
    score = [0.2, 0.9, 0.4, 0.3, 0.4]
    pd.DataFrame({"id": list("abcde"), "sex": sex}).to_csv(truth / "sex.csv", index=False)
    pd.DataFrame({"id": list("edcba"), "sex": score[::-1]}).to_csv(pred / "sex.csv", index=False)
    out = scorers.score_folder(pred, truth, scorer="roc_auc")
    assert out.ok and out.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(sex, score))
    flipped = scorers.score_folder(pred, truth, scorer="roc_auc", pos_label=1000)
    assert flipped.metrics["roc_auc"] == pytest.approx(1 - skm.roc_auc_score(sex, score))
    wrong = scorers.score_folder(pred, truth, scorer="roc_auc", pos_label=1)
    assert not wrong.ok and "positive class 1 does not occur" in wrong.errors[0]


def _root_tables(folder: Path, rows: dict[str, tuple[float, float]], columns=("length_mm", "roots")) -> None:
    """One table per image (``<name>.csv``: id and the value columns), as the roots template writes them."""
    folder.mkdir(exist_ok=True)
    for name, values in rows.items():
        pd.DataFrame({"id": [name], **{c: [v] for c, v in zip(columns, values, strict=True)}}).to_csv(
            folder / f"{name}.csv", index=False)


def test_regression_scores_each_named_column(tmp_path):
    import sklearn.metrics as skm

    truth = {"a": (120.5, 7.0), "b": (80.0, 4.0), "c": (200.25, 11.0), "d": (55.0, 3.0)}
    pred = {"a": (110.0, 9.0), "b": (90.5, 4.0), "c": (190.0, 6.0), "d": (60.0, 5.0)}
    _root_tables(tmp_path / "t", truth)
    _root_tables(tmp_path / "p", pred)
    out = scorers.score_folder(tmp_path / "p", tmp_path / "t", scorer="regression",
                               columns=["length_mm", "roots"])
    assert out.ok, out.errors
    for i, column in enumerate(("length_mm", "roots")):
        t = np.array([truth[k][i] for k in "abcd"])
        p = np.array([pred[k][i] for k in "abcd"])
        assert out.metrics[f"r2_{column}"] == pytest.approx(skm.r2_score(t, p))
        assert out.metrics[f"mae_{column}"] == pytest.approx(skm.mean_absolute_error(t, p))
        assert out.metrics[f"mean_relative_error_{column}"] == pytest.approx(
            skm.mean_absolute_percentage_error(t, p))
        assert out.metrics[f"rmse_{column}"] == pytest.approx(np.sqrt(skm.mean_squared_error(t, p)))
    assert out.metrics["r2_length_mm"] != pytest.approx(out.metrics["r2_roots"])
    assert out.metrics["mean_r2"] == pytest.approx((out.metrics["r2_length_mm"] + out.metrics["r2_roots"]) / 2)
    assert out.metrics["n"] == 4 and "r2" not in out.metrics
    # per item as well, and the public and private parts pool their own rows
    parts = scorers.score_parts(tmp_path / "p", tmp_path / "t", scorer="regression", columns=["length_mm", "roots"],
                                items=[f"{k}.csv" for k in "abcd"], public_items=["a.csv", "b.csv"])
    assert parts.public["mae_roots"] == pytest.approx(1.0) and parts.private["mae_roots"] == pytest.approx(3.5)
    assert {i.name: i.metrics["mae_length_mm"] for i in parts.whole.items}["d.csv"] == pytest.approx(5.0)
    # every reported name is defined for the pages, with its better side
    for name in out.metrics:
        assert scorers.describe(name, "regression"), name
    assert "roots" in scorers.describe("r2_roots", "regression")  # type: ignore[operator]
    info = scorers.registry.metric_info("mean_relative_error_length_mm", "regression")
    assert info.better == "min" and not info.count and info.family is None
    assert scorers.registry.metric_info("r2_roots", "regression").better == "max"
    # without the option the single-column names stay (an existing challenge is unchanged)
    _root_tables(tmp_path / "t1", {k: v[:1] for k, v in truth.items()}, columns=("length_mm",))
    single = scorers.score_folder(tmp_path / "p", tmp_path / "t1", scorer="regression")
    assert single.ok and single.metrics["r2"] == pytest.approx(out.metrics["r2_length_mm"])
    assert "r2_length_mm" not in single.metrics


def test_regression_columns_errors(tmp_path):
    truth = {"a": (120.5, 7.0), "b": (80.0, 4.0)}
    _root_tables(tmp_path / "t", truth)
    _root_tables(tmp_path / "p", {"a": (1.0,), "b": (2.0,)}, columns=("length_mm",))
    both = ["length_mm", "roots"]
    out = scorers.score_folder(tmp_path / "p", tmp_path / "t", scorer="regression", columns=both)
    assert not out.ok and len(out.errors) == 2
    assert out.errors[0].startswith("a.csv: prediction has no column 'roots'")
    assert "write the columns id,length_mm,roots" in out.errors[0]
    assert out.metrics["r2_roots"] is None  # nothing scored: every name is still there, empty
    _root_tables(tmp_path / "p", {"a": (1.0, float("inf")), "b": (2.0, 3.0)})
    out = scorers.score_folder(tmp_path / "p", tmp_path / "t", scorer="regression", columns=both)
    assert out.errors == ("a.csv: column 'roots' has 1 missing, non-numeric or infinite value(s) (first at id 'a'); "
                          "every item needs a finite number",)
    (tmp_path / "p" / "b.csv").write_text("id,length_mm,roots\nb,1,2\nb,1,2\n")
    out = scorers.score_folder(tmp_path / "p", tmp_path / "t", scorer="regression", columns=both)
    assert "b.csv: id 'b' appears more than once" in out.errors[1]
    # the truth lacks a named column: the request cannot proceed, naming the truth file
    with pytest.raises(scorers.ScorerError, match=r"truth file .*a\.csv: truth has no column 'age'"):
        scorers.score_folder(tmp_path / "p", tmp_path / "t", scorer="regression", columns=["length_mm", "age"])
    for bad, message in (([], "list of 1 to 20"), ("length_mm", "list of 1 to 20"), (["a b"], "not a column name"),
                         (["roots", "roots"], "more than once"), ([3], "not a column name")):
        with pytest.raises(scorers.ScorerError, match=message):
            scorers.score_folder(tmp_path / "p", tmp_path / "t", scorer="regression", columns=bad)
    with pytest.raises(scorers.ScorerError, match="not both"):
        scorers.score_folder(tmp_path / "p", tmp_path / "t", scorer="regression", columns=both, column="roots")
    assert "columns" in scorers.folder.scorer_options("regression")


@pytest.mark.parametrize("text", [False, True])
def test_roc_auc_folder_multiclass_one_column_per_class(tmp_path, text):
    import sklearn.metrics as skm

    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    rng = np.random.default_rng(4)
    classes = np.array(["cat", "dog", "fox"]) if text else np.array([0, 1, 2])
    y = classes[np.r_[0, 1, 2, rng.integers(0, 3, 37)]]
    probs = rng.dirichlet(np.ones(3), len(y))
    ids = [f"s{i:02d}" for i in range(len(y))]
    pd.DataFrame({"id": ids, "label": y}).to_csv(truth / "y.csv", index=False)
    order = [2, 0, 1]  # columns in any order, named by their class
    frame = pd.DataFrame({str(classes[j]): probs[:, j] for j in order}, index=pd.Index(ids, name="id"))
    frame.iloc[::-1].to_csv(pred / "y.csv")
    out = scorers.score_folder(pred, truth, scorer="roc_auc")
    assert out.ok, out.errors
    assert out.metrics["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"), abs=1e-12)
    frame.drop(columns=str(classes[1])).to_csv(pred / "y.csv")
    bad = scorers.score_folder(pred, truth, scorer="roc_auc")
    assert not bad.ok and "no column for class" in bad.errors[0] and "e.g. id,0,1,2" in bad.errors[0]


def test_cli_folder_and_file(seg_dirs):
    pred, truth = seg_dirs
    runner = CliRunner()
    res = runner.invoke(score, ["instance_segmentation", "--truth", str(truth), "--pred", str(pred), "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["metrics"]["sbd"] == 1.0
    res = runner.invoke(score, ["symmetric_best_dice", "--truth", str(truth / "img_000.tif"),
                                "--pred", str(pred / "img_001.tif")])
    assert res.exit_code == 0 and "symmetric_best_dice" in res.output
    (pred / "img_000.tif").unlink()
    res = runner.invoke(score, ["instance_segmentation", "--truth", str(truth), "--pred", str(pred)])
    assert res.exit_code == 1 and "img_000.tif: missing" in res.output
    res = runner.invoke(score, ["nope", "--truth", str(truth), "--pred", str(pred)])
    assert res.exit_code == 1 and "unknown scorer" in res.output
    assert score.help and "Folder scorers" in score.help
