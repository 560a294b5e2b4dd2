"""`jc submit check` validates predictions with the runner's own readers and checks."""

from __future__ import annotations

import numpy as np
import tifffile

from jc_datalad.submit import validate_label_tiffs


def _folders(tmp_path):
    inputs, outputs = tmp_path / "inputs", tmp_path / "predictions"
    inputs.mkdir()
    outputs.mkdir()
    tifffile.imwrite(inputs / "a.tif", np.zeros((2, 8, 8), np.uint16))
    return inputs, outputs


def test_good_labels_pass(tmp_path):
    inputs, outputs = _folders(tmp_path)
    tifffile.imwrite(outputs / "a.tif", np.ones((2, 8, 8), np.uint16))
    assert validate_label_tiffs(inputs, outputs, "predictions") == []


def test_negative_labels_are_refused_as_the_runner_refuses_them(tmp_path):
    inputs, outputs = _folders(tmp_path)
    tifffile.imwrite(outputs / "a.tif", np.full((2, 8, 8), -1, np.int32))
    (problem,) = validate_label_tiffs(inputs, outputs, "predictions")
    assert problem.startswith("predictions/a.tif: label ids must be >= 0")


def test_wrong_shape_is_named(tmp_path):
    inputs, outputs = _folders(tmp_path)
    tifffile.imwrite(outputs / "a.tif", np.ones((2, 4, 4), np.uint16))
    (problem,) = validate_label_tiffs(inputs, outputs, "predictions")
    assert problem.startswith("predictions/a.tif:") and "(2, 8, 8)" in problem


def test_a_prediction_naming_another_file_is_refused(tmp_path):
    inputs, outputs = _folders(tmp_path)
    secret = tmp_path / "secret.tif"
    tifffile.imwrite(secret, np.ones((2, 8, 8), np.uint16))
    tifffile.imwrite(outputs / "a.tif", np.ones((1, 8, 8), np.uint16), ome=True)
    # point the OME-XML's TiffData at another file, as the attack on the runner's scorer did
    with tifffile.TiffFile(outputs / "a.tif") as tif:
        xml = tif.ome_metadata
    assert xml is not None
    forged = xml.replace("<TiffData", f'<TiffData><UUID FileName="{secret}">urn:uuid:0</UUID></TiffData><TiffData', 1)
    tifffile.tiffcomment(outputs / "a.tif", forged.encode())
    problems = validate_label_tiffs(inputs, outputs, "predictions")
    assert problems and "another file" in problems[0], problems
