"""Every scorer validates first and names what is wrong."""

from __future__ import annotations

import numpy as np
import pytest

import scorers


@pytest.mark.parametrize(
    ("truth", "pred", "match"),
    [
        (np.zeros((3, 3), np.uint8), np.zeros((3, 4), np.uint8), r"shape \(3, 4\) differs"),
        (np.zeros((3, 3), np.uint8), np.zeros((3, 3), np.float32), "must be integers, got float32"),
        (np.zeros((3, 3), np.int32), -np.ones((3, 3), np.int32), "must be >= 0"),
        (np.zeros((0, 3), np.uint8), np.zeros((0, 3), np.uint8), "empty"),
        ([[1, 2], [3]], [[1, 2], [3]], "array"),
    ],
)
def test_label_inputs_rejected(truth, pred, match):
    for name in ("symmetric_best_dice", "best_dice", "dic", "foreground_dice",
                 "instance_segmentation"):
        with pytest.raises(scorers.ScorerError, match=match):
            scorers.get(name)(truth, pred)


def test_scorer_error_is_value_error():
    assert issubclass(scorers.ScorerError, ValueError)


@pytest.mark.parametrize("name", ["mae", "rmse", "r2", "pearson_r", "mean_bias_error"])
def test_regression_rejects_nan_length_empty(name):
    fn = scorers.get(name)
    with pytest.raises(scorers.ScorerError, match="NaN or infinite"):
        fn([1.0, np.nan], [1.0, 2.0])
    with pytest.raises(scorers.ScorerError, match="infinite"):
        fn([1.0, 2.0], [1.0, np.inf])
    with pytest.raises(scorers.ScorerError, match="differ in length"):
        fn([1.0, 2.0], [1.0])
    with pytest.raises(scorers.ScorerError, match="empty"):
        fn([], [])


def test_mask_rejects_non_binary():
    with pytest.raises(scorers.ScorerError, match="only 0 and 1"):
        scorers.mask_dice([0, 1], [0, 2])


def test_classification_rejects_scores_as_labels():
    with pytest.raises(scorers.ScorerError, match="not scores"):
        scorers.accuracy([0, 1], [0.2, 0.9])


def test_thresholds_validated():
    z = np.zeros((2, 2), np.uint8)
    with pytest.raises(scorers.ScorerError, match=r"\(0, 1\]"):
        scorers.match_instances(z, z, thresholds=[0.0])
    with pytest.raises(scorers.ScorerError, match="at least one"):
        scorers.match_instances(z, z, thresholds=[])


def test_registry():
    names = scorers.names()
    assert names == tuple(sorted(names))
    for required in ("best_dice", "symmetric_best_dice", "dic", "abs_dic", "foreground_dice",
                     "dice", "jaccard", "r2", "mean_relative_error", "mae", "rmse",
                     "mean_bias_error", "pearson_r", "accuracy", "balanced_accuracy", "f1",
                     "f1_macro", "roc_auc", "coverage_score", "instance_segmentation"):
        assert required in names
    with pytest.raises(scorers.ScorerError, match="unknown metric 'nope'; known metrics"):
        scorers.get("nope")
    assert isinstance(scorers.__version__, str)
