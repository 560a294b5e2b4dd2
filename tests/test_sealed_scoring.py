"""Sealed scoring: the scorer runs in a sandbox that holds one evaluation's predictions and the labels.

The attacks of the trust issues: an OME-TIFF whose ``TiffData`` names the
label file (by a relative path, the host's absolute path, or the path inside
the sandbox) or another evaluation's stored predictions. Each must be scored
as an invalid prediction, never as the labels; and inside the scorer's sandbox
the host paths they name do not exist at all.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import DATA

from jc_datalad import participant, sandbox, scoring
from jc_datalad.errors import JcError
from jc_datalad.records import Status

ITEM = "a.tif"


def _labels(shape=(2, 32, 32)) -> np.ndarray:
    out = np.zeros(shape, np.uint16)
    out[..., 4:14, 4:14] = 1
    out[..., 18:30, 16:28] = 2
    return out


def _ome_attack(path: Path, other: str, frames: int = 2, size: int = 32) -> None:
    """Frame 0 blank and in this file; frame 1 "in" ``other``."""
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06" UUID="urn:uuid:1">'
        f'<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" SizeX="{size}" '
        f'SizeY="{size}" SizeZ="1" SizeC="1" SizeT="{frames}"><Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
        f'<TiffData FirstT="0" IFD="0" PlaneCount="1"><UUID FileName="{path.name}">urn:uuid:1</UUID></TiffData>'
        f'<TiffData FirstT="1" IFD="1" PlaneCount="1"><UUID FileName="{other}">urn:uuid:2</UUID></TiffData>'
        "</Pixels></Image></OME>"
    )
    tifffile.imwrite(path, np.zeros((size, size), np.uint16), description=xml, metadata=None)


@pytest.fixture
def ledger(work: Path) -> dict[str, Path]:
    """A results ledger with a victim's stored predictions, an attacker's evaluation and the labels."""
    base = work / "results" / "evaluations"
    paths = {"victim": base / "victim-1" / "predictions", "attacker": base / "attacker-1" / "predictions",
             "labels": work / "private" / "hidden" / "test" / "labels"}
    for path in paths.values():
        path.mkdir(parents=True)
    tifffile.imwrite(paths["labels"] / ITEM, _labels())
    tifffile.imwrite(paths["victim"] / ITEM, _labels())
    paths["staged"] = scoring.stage_labels(paths["labels"], [ITEM], work / "staged-labels")
    return paths


def _score(predictions: Path, labels: Path, log_dir: Path, **kw) -> scoring.ScoreResult:
    limits = kw.pop("limits", scoring.scoring_limits(2**30, time_s=120))
    return scoring.score_sealed(predictions, labels, scorer="instance_segmentation", items=[ITEM],
                                public_items=kw.pop("public", [ITEM]), limits=limits, log_dir=log_dir, **kw)


def test_honest_predictions_score_as_in_process(ledger, work):
    import scorers

    tifffile.imwrite(ledger["attacker"] / ITEM, _labels())
    result = _score(ledger["attacker"], ledger["staged"], work / "logs")
    assert result.ok and result.reason is None
    expected = scorers.score_parts(ledger["attacker"], ledger["staged"], items=[ITEM], public_items=[ITEM])
    assert result.metrics == expected.whole.metrics and result.metrics["sbd"] == 1.0
    assert result.public == expected.public and result.private == {}
    assert [(row.name, row.error) for row in result.items] == [(ITEM, None)]
    assert result.step.status is sandbox.StepStatus.OK


@pytest.mark.parametrize("reference", ["relative", "absolute", "staged", "in-sandbox", "victim"])
def test_ome_tiff_references_are_refused(ledger, work, reference):
    predictions = ledger["attacker"]
    other = {
        "relative": os.path.relpath(ledger["labels"] / ITEM, predictions),
        "absolute": str(ledger["labels"] / ITEM),
        "staged": str(ledger["staged"] / ITEM),
        "in-sandbox": f"{scoring.LABELS_AT}/{ITEM}",
        "victim": f"../../../evaluations/victim-1/predictions/{ITEM}",
    }[reference]
    _ome_attack(predictions / ITEM, other)
    if reference != "in-sandbox":  # on the host, a reader that follows it gets the labels' second frame
        assert np.array_equal(tifffile.imread(predictions / ITEM)[1], _labels()[1])
    result = _score(predictions, ledger["staged"], work / "logs")
    assert not result.ok and result.metrics == {} and result.public == {}
    assert result.reason.startswith(f"invalid predictions: {ITEM}: its OME-XML refers to another file")
    assert result.items[0].error and "refers to another file" in result.items[0].error


PROBE = """
import json, os, sys
import tifffile
paths = json.loads(sys.argv[1])
seen = {name: os.path.exists(path) for name, path in paths.items()}
frames = tifffile.imread("/predictions/a.tif")  # the unsafe reader, on purpose
print(json.dumps({"exists": seen, "shape": list(frames.shape), "max": int(frames.max())}))
"""


def test_scorer_sandbox_holds_only_the_predictions_and_labels(ledger, work):
    """Even a reader that follows references finds nothing outside /predictions and /labels."""
    _ome_attack(ledger["attacker"] / ITEM, str(ledger["labels"] / ITEM))
    outside = {"labels_host": ledger["labels"] / ITEM, "staged_host": ledger["staged"] / ITEM,
               "victim": ledger["victim"] / ITEM, "ledger": work / "results",
               "private": ledger["labels"].parents[2], "tests": Path(__file__).parent,
               "project": Path(__file__).parents[1] / "pyproject.toml"}
    inside = {"predictions": f"{scoring.PREDICTIONS_AT}/{ITEM}", "labels": f"{scoring.LABELS_AT}/{ITEM}"}
    for path in outside.values():
        assert os.path.exists(path)
    paths = {**{k: str(v) for k, v in outside.items()}, **inside}
    binds = [sandbox.Bind(ledger["attacker"], scoring.PREDICTIONS_AT), sandbox.Bind(ledger["staged"],
                                                                                    scoring.LABELS_AT)]
    step = sandbox.run_python(["-c", PROBE, json.dumps(paths)], binds=binds,
                              limits=scoring.scoring_limits(2**30, time_s=120), log_dir=work / "logs",
                              name="probe")
    assert step.status is sandbox.StepStatus.OK, step.stderr_tail
    probe = json.loads((work / "logs" / "probe.stdout").read_text())
    assert probe["exists"] == {**dict.fromkeys(outside, False), **dict.fromkeys(inside, True)}
    assert probe["max"] == 0  # the labels' frame named by its host path was not there to read


def test_time_limit_fails_the_predictions_not_the_runner(ledger, work):
    tifffile.imwrite(ledger["attacker"] / ITEM, _labels())
    result = _score(ledger["attacker"], ledger["staged"], work / "logs",
                    limits=scoring.scoring_limits(2**30, time_s=0.05))
    assert result.reason and "exceeded its time limit of 0.05 s" in result.reason and result.metrics == {}


def test_broken_truth_is_the_organizers_error(ledger, work):
    tifffile.imwrite(ledger["attacker"] / ITEM, _labels())
    (ledger["staged"] / ITEM).write_bytes(b"not a tiff")
    with pytest.raises(JcError, match="cannot score this split: truth file /labels/a.tif"):
        _score(ledger["attacker"], ledger["staged"], work / "logs")


def test_labels_are_staged_as_regular_files(work):
    source = work / "labels"
    source.mkdir()
    tifffile.imwrite(work / "object", _labels())
    (source / ITEM).symlink_to(work / "object")  # an annexed file
    staged = scoring.stage_labels(source, [ITEM], work / "staged")
    assert not (staged / ITEM).is_symlink()
    assert np.array_equal(tifffile.imread(staged / ITEM), _labels())
    assert oct((staged / ITEM).stat().st_mode & 0o777) == "0o644"
    with pytest.raises(JcError, match="truth file of item 'missing.tif' is missing"):
        scoring.stage_labels(source, ["missing.tif"], work / "staged-2")


@pytest.mark.parametrize("payload, message", [
    (b"[]", "format"),
    (b'{"format": "other"}', "format"),
    (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
    (b"\xff\xfe", "not JSON"),
    (b'{"format": "jc-sealed-score/1", "error": null, "version": "1", "items": [], "errors": [], '
     b'"metrics": {"sbd": "1.0"}, "public": {}, "private": {}}', "metrics.sbd: a finite number"),
    (b'{"format": "jc-sealed-score/1", "error": null, "version": "1", "items": [{"name": 3}], "errors": [], '
     b'"metrics": {}, "public": {}, "private": {}}', r"items\[0\].name"),
])
def test_malformed_results_are_refused(work, payload, message):
    path = work / "score.stdout"
    path.write_bytes(payload)
    step = sandbox.StepResult(sandbox.StepStatus.OK, 0, 0.0, 0.0, 0, "", "")
    with pytest.raises(JcError, match=message):
        scoring._parse(scoring._read_result(path), "instance_segmentation", step)


def test_oversized_result_is_refused(work, monkeypatch):
    monkeypatch.setattr(scoring, "RESULT_BYTES", 100)
    path = work / "score.stdout"
    path.write_text(json.dumps({"format": "jc-sealed-score/1", "pad": "x" * 200}))
    with pytest.raises(JcError, match="over 100 bytes"):
        scoring._read_result(path)


# -- through the runner -------------------------------------------------------------

ATTACK = """
import sys
from pathlib import Path
import numpy as np
import tifffile

TARGETS = {targets!r}
inputs, outputs = Path(sys.argv[1]), Path(sys.argv[2])
outputs.mkdir(parents=True, exist_ok=True)
for number, path in enumerate(sorted(inputs.glob("*.tif"))):
    frames, height, width = tifffile.imread(path).shape
    other = TARGETS[number % len(TARGETS)].format(name=path.name)
    xml = ('<?xml version="1.0" encoding="UTF-8"?><OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06">'
           '<Image ID="Image:0"><Pixels ID="Pixels:0" DimensionOrder="XYZCT" Type="uint16" '
           f'SizeX="{{width}}" SizeY="{{height}}" SizeZ="1" SizeC="1" SizeT="{{frames}}">'
           '<Channel ID="Channel:0:0" SamplesPerPixel="1"/>'
           f'<TiffData FirstT="0" IFD="0" PlaneCount="1"><UUID FileName="{{path.name}}">urn:uuid:1</UUID></TiffData>'
           f'<TiffData FirstT="1" IFD="0" PlaneCount="{{frames - 1}}"><UUID FileName="{{other}}">urn:uuid:2</UUID>'
           '</TiffData></Pixels></Image></OME>')
    tifffile.imwrite(outputs / path.name, np.zeros((height, width), np.uint16), description=xml, metadata=None)
"""


@pytest.mark.slow
def test_runner_scores_ome_references_as_invalid(arena):
    """The attacks through the runner: the labels and a victim's stored predictions, by every path."""
    victim_repo = arena.team("victim")
    victim_clone = arena.clone("victim")
    participant.record_prediction(victim_clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    participant.push_submission(victim_clone, victim_repo, "s1")
    (victim,) = arena.run().evaluations
    assert victim.status is Status.EVALUATED and victim.metrics["sbd"] > 0
    stored = arena.config.results / "evaluations" / victim.id / "predictions"
    assert sorted(p.name for p in stored.iterdir())  # the victim's predictions are in the ledger
    labels = arena.challenge.private / "hidden" / "test" / "labels"
    targets = ["/labels/{name}", str(labels) + "/{name}",
               f"../../../evaluations/{victim.id}/predictions/{{name}}", str(stored) + "/{name}"]
    repo = arena.team("referrer")
    clone = arena.clone("referrer")
    participant.record_prediction(clone, files={"code/predict.py": ATTACK.format(targets=targets)})
    participant.push_submission(clone, repo, "s1")
    (attack,) = arena.run().evaluations
    assert attack.team == "referrer"
    assert attack.status is Status.FAILED, attack.reason
    # the public reason is the class of the scorer's message (docs/logs.md); its full text is in the logs
    assert attack.reason.startswith("invalid output (label-tiff): ") and "refer to other files" in attack.reason
    assert attack.metrics == {} and attack.public == {} and attack.private == {}


def test_unknown_scorer_and_bad_options_are_the_organizers_error(ledger, work):
    tifffile.imwrite(ledger["attacker"] / ITEM, _labels())
    with pytest.raises(JcError, match="unknown scorer 'sbdx'"):
        scoring.score_sealed(ledger["attacker"], ledger["staged"], scorer="sbdx", items=[ITEM], public_items=[],
                             limits=scoring.scoring_limits(2**30, time_s=120), log_dir=work / "logs")
    with pytest.raises(JcError, match="the scorer stopped|cannot score this split"):
        _score(ledger["attacker"], ledger["staged"], work / "logs-2", options={"thresholds": [["x"]]})


def test_memory_limit_fails_the_predictions_not_the_runner(ledger, work):
    """Predictions the scorer cannot hold in the challenge's memory fail; they never read as 'broken truth'."""
    big = np.zeros((9000, 9000), np.uint32)  # 309 MiB decoded, twice: more than 0.6 GiB whatever the scorer does
    big[:10, :10] = 1
    tifffile.imwrite(ledger["staged"] / "big.tif", big, compression="zlib")
    tifffile.imwrite(ledger["attacker"] / "big.tif", big, compression="zlib")
    result = scoring.score_sealed(ledger["attacker"], ledger["staged"], scorer="instance_segmentation",
                                  items=["big.tif"], public_items=[], log_dir=work / "logs",
                                  limits=scoring.scoring_limits(600 * 2**20, time_s=120))
    assert result.step.status is sandbox.StepStatus.MEMORY
    assert result.reason and "scoring the predictions ran out of memory (0.6 GiB)" in result.reason
    assert result.metrics == {}
