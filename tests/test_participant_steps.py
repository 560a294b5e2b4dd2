"""participant.record_steps: a template's participant.yaml, validated, recorded one run per step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jc_datalad import participant
from jc_datalad.challenge import TEMPLATES
from jc_datalad.errors import JcError
from jc_datalad.participant import Step, parse_steps

DATA = Path(__file__).parent / "data"


def test_parse_steps_reads_a_valid_document():
    steps = parse_steps({"steps": [
        {"inputs": ["inputs/train"], "outputs": ["model"], "command": "python code/train.py inputs/train model"},
        {"inputs": ["inputs/test", "model"], "outputs": ["predictions"], "command": "python code/predict.py x y"},
    ]})
    assert steps == (Step(("inputs/train",), ("model",), "python code/train.py inputs/train model"),
                     Step(("inputs/test", "model"), ("predictions",), "python code/predict.py x y"))


def test_parse_steps_lists_every_problem_at_once():
    with pytest.raises(JcError) as caught:
        parse_steps({"steps": [
            {"inputs": "inputs/test", "outputs": ["predictions"], "command": "python x"},
            {"inputs": ["/etc"], "outputs": ["../out"], "command": "", "shell": True},
            "python code/predict.py",
            {"outputs": ["p"], "command": "a\nb"},
        ]}, "t/participant.yaml")
    text = str(caught.value)
    assert text.startswith("t/participant.yaml: ")
    for expected in ("steps[0].inputs: 'inputs/test' is not a non-empty list", "steps[1].inputs: '/etc'",
                     "steps[1].outputs: '../out'", "steps[1].command: ''", "unknown key 'shell'",
                     "steps[2]: 'python code/predict.py' is not a mapping", "steps[3]: missing 'inputs'",
                     "one command line per step"):
        assert expected in text, text


@pytest.mark.parametrize("document", [None, {}, {"steps": []}, {"steps": [], "extra": 1}, "steps"])
def test_parse_steps_refuses_a_document_without_steps(document):
    with pytest.raises(JcError, match="participant.yaml"):
        parse_steps(document)


@pytest.mark.parametrize("name", TEMPLATES)
def test_every_template_has_valid_steps(name):
    steps = participant.template_steps(name)
    assert steps and all(step.command for step in steps)


def test_unknown_template_names_the_available_ones():
    with pytest.raises(JcError, match="available: .*bacteria"):
        participant.template_steps("no-such-template")


def test_record_steps_records_one_run_per_step(arena, work):
    clone = arena.clone("steps")
    steps = participant.record_steps(clone, [
        {"inputs": ["inputs/test"], "outputs": ["listing"],
         "command": "python -c \"import os,sys; os.makedirs('listing'); "
                    "open('listing/n.txt','w').write(str(len(os.listdir('inputs/test'))))\""},
        {"inputs": ["inputs/test", "listing"], "outputs": ["predictions"],
         "command": "python code/predict.py inputs/test predictions"},
    ], files={"code/predict.py": DATA / "threshold_predict.py"}, message="Two recorded steps")
    assert len(steps) == 2
    log = participant.sh(["git", "log", "--format=%B%x00", "-3"], cwd=clone).split("\x00")
    assert "Two recorded steps" in log[2]
    records = []
    for body in log[:2]:
        start = body.index("=== Do not change lines below ===") + len("=== Do not change lines below ===")
        records.append(json.loads(body[start:body.index("^^^ Do not change lines above ^^^")]))
    # newest first: the prediction step, then the listing step
    assert records[0]["outputs"] == ["predictions"] and records[0]["inputs"] == ["inputs/test", "listing"]
    assert records[1]["outputs"] == ["listing"]
    assert (clone / "listing" / "n.txt").read_text().strip().isdigit()
    assert any((clone / "predictions").iterdir())


def test_record_steps_validates_before_changing_the_clone(arena):
    clone = arena.clone("bad-steps")
    head = participant.sh(["git", "rev-parse", "HEAD"], cwd=clone)
    with pytest.raises(JcError, match="steps\\[0\\]"):
        participant.record_steps(clone, [{"inputs": [], "outputs": ["p"], "command": "true"}],
                                 files={"code/x.txt": "x"})
    assert participant.sh(["git", "rev-parse", "HEAD"], cwd=clone) == head
    assert not (clone / "code" / "x.txt").exists()
