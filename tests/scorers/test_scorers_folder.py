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
