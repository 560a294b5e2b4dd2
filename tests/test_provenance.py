"""Run records: the container prefix, placeholders, shell operators, sidecars."""

from __future__ import annotations

import json
import lzma

import pytest

from jc_datalad.challenge import CALL_FORMAT
from jc_datalad.provenance import (
    ProvenanceError,
    call_prefix_pattern,
    check_inner_command,
    check_record,
    expand_command,
    load_sidecar,
    parse_message,
)

IMAGE = ".datalad/environments/jc-env/image"
PREFIX = call_prefix_pattern(CALL_FORMAT % "jc-env", IMAGE)
CHECKS = {"prefix": PREFIX, "image": IMAGE, "denied": (".datalad", ".gitmodules", "inputs"),
          "input_root": "inputs/test"}


def record(cmd: str, **extra) -> dict:
    return {"cmd": cmd, "pwd": ".", "inputs": ["inputs/test"], "outputs": ["predictions"],
            "extra_inputs": [IMAGE], "exit": 0, "chain": [], **extra}


LAUNCH = f"/opt/venv/bin/python3 ./.datalad/environments/jc-env/launch.py {IMAGE}"


def test_inner_command_is_recovered():
    step = check_record(record(f"{LAUNCH} python code/predict.py {{inputs}} {{outputs}}"), "c" * 40, **CHECKS)
    assert step.inner == "python code/predict.py {inputs} {outputs}"
    assert expand_command(step.inner, ["inputs/test"], ["predictions"]) == \
        "python code/predict.py inputs/test predictions"


def test_record_without_the_container_is_refused():
    with pytest.raises(ProvenanceError, match="not recorded with the challenge's container"):
        check_record(record("cp -r /org/private/labels predictions"), "c" * 40, **CHECKS)


def test_other_container_is_refused():
    other = LAUNCH.replace("jc-env", "my-env")
    with pytest.raises(ProvenanceError, match="container"):
        check_record(record(f"{other} python x.py"), "c" * 40, **CHECKS)


@pytest.mark.parametrize("inner,match", [
    ("python x.py {pwd}", "placeholder"),
    ("python x.py {inputs[0]}", "placeholder"),
    ("python x.py {img}", "placeholder"),
    ("python x.py && cat /etc/passwd", "shell operator"),
    ("python x.py; rm -rf /", "shell operator"),
    ("python x.py | tee log", "shell operator"),
    ("python x.py $(cat secret)", "substitution"),
    ("python x.py `id`", "substitution"),
])
def test_inner_command_rules(inner, match):
    with pytest.raises(ProvenanceError, match=match):
        check_inner_command(inner)


def test_quoted_operators_inside_sh_c_are_fine():
    check_inner_command("sh -c 'python a.py {inputs} && python b.py {outputs}'")


def test_pwd_and_outputs_are_checked():
    with pytest.raises(ProvenanceError, match="dataset root"):
        check_record(record(f"{LAUNCH} python x.py", pwd="code"), "c" * 40, **CHECKS)
    with pytest.raises(ProvenanceError, match="protected"):
        check_record(record(f"{LAUNCH} python x.py", outputs=[".datalad/config"]), "c" * 40, **CHECKS)
    with pytest.raises(ProvenanceError, match="relative"):
        check_record(record(f"{LAUNCH} python x.py", outputs=["/etc"]), "c" * 40, **CHECKS)
    with pytest.raises(ProvenanceError, match="image"):
        check_record(record(f"{LAUNCH} python x.py", extra_inputs=[]), "c" * 40, **CHECKS)


def test_messages_inline_and_sidecar():
    body = json.dumps(record("x"))
    msg = f"[DATALAD RUNCMD] x\n\n=== Do not change lines below ===\n{body}\n^^^ Do not change lines above ^^^\n"
    assert parse_message(msg)["cmd"] == "x"
    side = msg.replace(body, '"0123456789abcdef0123456789abcdef"')
    assert parse_message(side) == "0123456789abcdef0123456789abcdef"
    assert parse_message("just a commit") is None
    data = lzma.compress(json.dumps([record("y")]).encode())
    assert load_sidecar(data)["cmd"] == "y"
