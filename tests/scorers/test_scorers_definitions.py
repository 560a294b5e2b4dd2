"""One-sentence definitions of reported metrics (``scorers.describe``), for the challenge pages."""

from __future__ import annotations

import scorers


def test_every_metric_has_a_definition() -> None:
    for name in scorers.names():
        assert scorers.describe(name, name), name
    for column in ("sbd", "abs_dic", "f1_50", "ap50", "precision_75", "pq_52.5", "ap"):
        assert scorers.describe(column, "instance_segmentation"), column
    assert "0.525" in scorers.describe("pq_52.5", "instance_segmentation")  # type: ignore[operator]
    # one name, two meanings: the scorer decides
    assert scorers.describe("f1", "pixel_masks") != scorers.describe("f1", "classification")
    assert scorers.describe("no_such_metric") is None
