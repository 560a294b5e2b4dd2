"""``jc submit check`` accepts every template's starter kit, recorded with the steps of its participant.yaml,
and says what the runner does with it by the challenge's type (scored as submitted, trained on the hidden
training set, re-executed on the hidden test inputs)."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner
from test_templates import full_image, needs_full_image  # noqa: F401 (full_image: a fixture)

from jc_datalad.challenge import TEMPLATES

#: What ``jc submit check`` says of an accepted submission, by type.
SAYS = {
    "results": "score your committed predictions as submitted",
    "training": "re-executes your training step on the organizer's hidden training set",
    "inference": "re-execute the steps above on the hidden test inputs",
}


@pytest.mark.slow
@pytest.mark.parametrize("name", TEMPLATES)
def test_submit_check_accepts_each_starter_kit(name, work, request):
    import datalad.api as dl

    from jc_datalad import participant
    from jc_datalad.challenge import new_challenge
    from jc_datalad.cli import main
    from jc_datalad.spec import load_spec

    image = request.getfixturevalue("full_image" if needs_full_image(name) else "minimal_image")
    made = new_challenge(name, work / "org", challenge_id=f"{name}-check", image=str(image),
                         start=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), weeks=52 * 50)
    spec_file = made.public / "challenge.yaml"
    spec_file.write_text(spec_file.read_text().replace("signed: true", "signed: false"))
    dl.save(dataset=str(made.public), message="Unsigned submissions for the tests", result_renderer="disabled")
    spec = load_spec(spec_file)
    clone = participant.clone_challenge(made.public, work / "participant", inputs="inputs")
    participant.record_steps(clone, name)

    result = CliRunner().invoke(main, ["submit", "check", str(clone)])
    assert result.exit_code == 0, result.output
    said = [line for line in result.output.splitlines() if line.startswith("ok: ")]
    assert len(said) == 1 and SAYS[spec.type.value] in said[0], result.output
    if spec.type.value == "results" and spec.verify.value == "rerun":
        assert "reproduced them byte for byte" in said[0], result.output
