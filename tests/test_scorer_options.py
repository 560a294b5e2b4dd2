"""``metrics.options`` in challenge.yaml: checked against the options the named scorer accepts, handed to
the sealed scorer as data, recorded in the evaluation, and used by ``jc score --challenge``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaml
from click.testing import CliRunner
from conftest import Challenge, sh

from jc_datalad.spec import SpecError, load_spec, parse_spec

BASE = {"id": "c", "title": "C", "type": "inference", "container": {"name": "jc-env"},
        "interface": {"inputs": "inputs/test", "outputs": "predictions", "format": "label-tiff"},
        "metrics": {"scorer": "instance_segmentation", "primary": "sbd", "columns": ["sbd", "dic"]}}

#: Every object of a frame labelled 3 (not 1): the same objects, so the current definitions score it as a
#: prediction labelled 1; CVPPP's 2017 script counts max id - min id = 3 leaves and scores ids 1, 2 as empty.
GAPPED_PREDICT = '''\
import sys
from pathlib import Path

import numpy as np
import tifffile

inputs, outputs = Path(sys.argv[1]), Path(sys.argv[2])
outputs.mkdir(parents=True, exist_ok=True)
for path in sorted(inputs.glob("*.tif")):
    stack = tifffile.imread(path).astype(np.float64)
    labels = np.zeros(stack.shape, dtype=np.uint16)
    for t, frame in enumerate(stack):
        labels[t][frame < frame.mean() - frame.std()] = 3
    tifffile.imwrite(outputs / path.name, labels, photometric="minisblack")
'''


def _spec(**metrics) -> dict:
    return {**BASE, "metrics": {**BASE["metrics"], **metrics}}


def test_options_are_parsed_and_recorded():
    spec = parse_spec(_spec(options={"legacy_cvppp": True, "thresholds": [0.5, 0.75]}))
    assert dict(spec.metrics.options) == {"legacy_cvppp": True, "thresholds": [0.5, 0.75]}
    assert spec.summary()["scorer_options"] == {"legacy_cvppp": True, "thresholds": [0.5, 0.75]}
    assert spec.as_dict()["metrics"]["options"]["legacy_cvppp"] is True
    assert "scorer_options" not in parse_spec(BASE).summary()  # records of challenges without options unchanged


def test_unknown_or_mistyped_option_is_refused_with_its_place(tmp_path):
    path = tmp_path / "challenge.yaml"
    path.write_text(yaml.safe_dump(_spec(options={"legacy_cvpp": True, "by_image": "yes"}), sort_keys=False))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    text = str(err.value)
    assert "metrics.options.legacy_cvpp" in text and "takes no option 'legacy_cvpp'" in text
    assert "legacy_cvppp" in text  # the suggestion and the accepted list
    assert "metrics.options.by_image" in text and "true or false" in text
    line = next(i for i, t in enumerate(path.read_text().splitlines(), 1) if "legacy_cvpp" in t)
    assert f"{path.name}:{line}:" in text or f"line {line}" in text, text
    # a regression scorer takes column, not legacy_cvppp
    with pytest.raises(SpecError, match="scorer regression takes no option 'legacy_cvppp'"):
        parse_spec({**BASE, "interface": {**BASE["interface"], "format": "csv"},
                    "metrics": {"scorer": "regression", "primary": "r2", "options": {"legacy_cvppp": True}}})


def test_leaves_template_sets_legacy_cvppp():
    text = (Path(__file__).parent.parent / "challenge_templates" / "leaves" / "challenge.yaml.j2").read_text()
    metrics = yaml.safe_load(text.replace("{{", "").replace("}}", ""))["metrics"]
    assert metrics["options"] == {"legacy_cvppp": True}


REGRESSION = {**BASE, "interface": {**BASE["interface"], "format": "csv"},
              "metrics": {"scorer": "regression", "primary": "r2_length_mm",
                          "columns": ["r2_length_mm", "mean_relative_error_roots", "mean_r2"]}}


def test_regression_columns_option_is_checked_by_the_scorers_rule():
    spec = parse_spec({**REGRESSION, "metrics": {**REGRESSION["metrics"],
                                                 "options": {"columns": ["length_mm", "roots"]}}})
    assert dict(spec.metrics.options) == {"columns": ["length_mm", "roots"]}
    assert spec.metrics.columns == ("r2_length_mm", "mean_relative_error_roots", "mean_r2")
    for bad in ("length_mm", [], ["roots", "roots"], ["length mm"], [1, 2]):
        with pytest.raises(SpecError, match="metrics.options.columns.*list of distinct value column names"):
            parse_spec({**REGRESSION, "metrics": {**REGRESSION["metrics"], "options": {"columns": bad}}})
    # a per-column name is still a name the regression scorer reports: a typo is refused
    with pytest.raises(SpecError, match="metrics.primary.*reports no such metric"):
        parse_spec({**REGRESSION, "metrics": {**REGRESSION["metrics"], "primary": "r3_length_mm"}})


def test_per_column_metrics_name_a_scored_column():
    """A leaderboard column of a value column the scorer is not told to score would stay empty."""
    with pytest.raises(SpecError) as info:
        parse_spec({**REGRESSION, "metrics": {**REGRESSION["metrics"], "options": {"columns": ["length_mm"]}}})
    assert "metrics.columns[1]: 'mean_relative_error_roots': scores value column 'roots', which metrics.options.columns does not " \
           "name (it names length_mm)" in str(info.value)
    with pytest.raises(SpecError) as info:
        parse_spec(REGRESSION)  # no columns option at all
    assert "'mean_r2': needs metrics.options.columns" in str(info.value)
    assert "'r2_length_mm': scores value column 'length_mm'" in str(info.value)
    with pytest.raises(SpecError, match="give either column .* or columns"):
        parse_spec({**REGRESSION, "metrics": {**REGRESSION["metrics"], "options": {
            "columns": ["length_mm", "roots"], "column": "length_mm"}}})


def test_roots_template_scores_both_quantities():
    import jinja2

    from challenge_templates.roots.generate import SIZES

    text = (Path(__file__).parent.parent / "challenge_templates" / "roots" / "challenge.yaml.j2").read_text()
    metrics = yaml.safe_load(jinja2.Template(text).render(sizes=SIZES["default"]))["metrics"]
    assert metrics["options"] == {"columns": ["length_mm", "roots"]}
    assert {"r2_length_mm", "r2_roots", "mean_relative_error_length_mm", "mean_relative_error_roots"} \
        <= set(metrics["columns"])


def _gapped_pair(folder: Path) -> tuple[Path, Path]:
    truth, pred = folder / "truth", folder / "pred"
    truth.mkdir(parents=True)
    pred.mkdir()
    t = np.zeros((12, 12), np.uint16)
    t[1:5, 1:5], t[6:11, 6:11] = 1, 2
    tifffile.imwrite(truth / "a.tif", t)
    tifffile.imwrite(pred / "a.tif", (t * 3).astype(np.uint16))  # ids 3 and 6: the same objects
    return truth, pred


def test_jc_score_takes_the_challenges_options(tmp_path):
    from jc_datalad.cli import main

    truth, pred = _gapped_pair(tmp_path)
    spec = tmp_path / "challenge.yaml"
    spec.write_text(yaml.safe_dump(_spec(options={"legacy_cvppp": True})))
    runner = CliRunner()
    current = runner.invoke(main, ["score", "instance_segmentation", "--truth", str(truth), "--pred", str(pred),
                                   "--json"])
    legacy = runner.invoke(main, ["score", "instance_segmentation", "--truth", str(truth), "--pred", str(pred),
                                  "--json", "--challenge", str(spec)])
    by_option = runner.invoke(main, ["score", "instance_segmentation", "--truth", str(truth), "--pred", str(pred),
                                     "--json", "--option", "legacy_cvppp=true"])
    assert current.exit_code == legacy.exit_code == by_option.exit_code == 0, (current.output, legacy.output)
    import json

    sbd = {name: json.loads(r.output)["metrics"]["sbd"] for name, r in
           (("current", current), ("legacy", legacy), ("option", by_option))}
    assert sbd["current"] == pytest.approx(1.0)
    assert sbd["legacy"] < 1.0 and sbd["option"] == sbd["legacy"], sbd
    bad = runner.invoke(main, ["score", "instance_segmentation", "--truth", str(truth), "--pred", str(pred),
                               "--option", "legacy_cvpp=true"])
    assert bad.exit_code != 0 and "takes no option" in bad.output


def test_sealed_scorer_receives_the_options(tmp_path):
    from jc_datalad import sandbox, scoring

    truth, pred = _gapped_pair(tmp_path)
    labels = scoring.stage_labels(truth, ["a.tif"], tmp_path / "staged")
    limits = scoring.scoring_limits(2**30, time_s=120)
    with sandbox.identity() as who:
        plain = scoring.score_sealed(pred, labels, scorer="instance_segmentation", items=["a.tif"],
                                     public_items=["a.tif"], limits=limits, log_dir=tmp_path / "log1", who=who)
        legacy = scoring.score_sealed(pred, labels, scorer="instance_segmentation", items=["a.tif"],
                                      public_items=["a.tif"], limits=limits, log_dir=tmp_path / "log2",
                                      options={"legacy_cvppp": True}, who=who)
    assert plain.ok and legacy.ok
    assert plain.metrics["sbd"] == pytest.approx(1.0)
    assert legacy.metrics["sbd"] < 1.0 and legacy.metrics["dic"] != plain.metrics["dic"]


def organizer_copy(challenge: Challenge, dest: Path, edit) -> Path:
    """A copy of the organizer's public dataset (the session fixture stays as it is), ``edit(copy)`` saved."""
    sh("datalad", "clone", str(challenge.public), str(dest))
    sh("datalad", "get", ".datalad/environments", cwd=dest)
    edit(dest)
    sh("datalad", "save", "-m", "Organizer's change for the test", cwd=dest)
    return dest


def runner_config(copy: Path, challenge: Challenge, work: Path) -> Path:
    teams = work / "teams.yaml"
    teams.write_text("teams: {}\n")
    config = work / "runner.yaml"
    config.write_text(yaml.safe_dump({
        "challenge": str(copy), "private": str(challenge.private), "results": str(work / "results"),
        "work": str(work / "jc-work"), "teams": str(teams), "workers": 1}))
    return config


@pytest.mark.slow
def test_runner_scores_with_the_challenges_options(challenge, work):
    """A leaves-like challenge (instance segmentation, legacy_cvppp) scores a submission whose object ids leave
    gaps with the legacy definitions, and records the option."""
    from jc_datalad import participant, scoring
    from jc_datalad.config import load_config
    from jc_datalad.evaluate import stage_hidden
    from jc_datalad.records import Status
    from jc_datalad.rescore import copy_predictions
    from jc_datalad.runner import run_once
    from jc_datalad.teams import add_team
    from scorers import score_parts

    def legacy(copy: Path) -> None:
        spec = copy / "challenge.yaml"
        text = spec.read_text()
        assert "scorer: instance_segmentation" in text and "options:" not in text
        spec.write_text(text.replace("  scorer: instance_segmentation",
                                     "  scorer: instance_segmentation\n  options: {legacy_cvppp: true}", 1))

    copy = organizer_copy(challenge, work / "org-copy", legacy)
    config = load_config(runner_config(copy, challenge, work))
    repo = participant.make_team_repository(work / "teams" / "gaps.git")
    add_team(config.teams, "gaps", str(repo))
    clone = participant.clone_challenge(copy, work / "participants" / "gaps")
    script = work / "gapped_predict.py"
    script.write_text(GAPPED_PREDICT)
    participant.record_prediction(clone, files={"code/predict.py": script})
    participant.push_submission(clone, repo, "s1")
    (ev,) = run_once(config).evaluations
    assert ev.status is Status.EVALUATED, ev.reason
    assert ev.scorer["options"] == {"legacy_cvppp": True}
    assert ev.challenge["scorer_options"] == {"legacy_cvppp": True}

    spec = load_spec(copy / "challenge.yaml")
    hidden = stage_hidden(config, spec, "test")
    stored = work / "stored"
    stored.mkdir()
    copy_predictions(config.results, config.results / "evaluations" / ev.id / "predictions", stored,
                     max_files=100, max_bytes=2**30)
    labels = scoring.stage_labels(hidden.labels, hidden.items, work / "labels")
    current = score_parts(stored, labels, scorer="instance_segmentation", items=list(hidden.items),
                          public_items=sorted(hidden.public_items))
    old = score_parts(stored, labels, scorer="instance_segmentation", items=list(hidden.items),
                      public_items=sorted(hidden.public_items), legacy_cvppp=True)
    assert not current.whole.errors and current.whole.metrics["sbd"] is not None, current.whole.errors
    assert old.whole.metrics["sbd"] != pytest.approx(current.whole.metrics["sbd"])  # the case tells the two apart
    assert ev.metrics["sbd"] == pytest.approx(old.whole.metrics["sbd"])
    assert ev.metrics["dic"] == pytest.approx(old.whole.metrics["dic"])
