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


# -- bounds on untrusted records: each is refused with a reason, never an internal error --

def test_xz_sidecar_bomb_is_refused_fast_with_bounded_memory():
    """An 80 kB xz sidecar that decompresses to 512 MiB is refused without inflating it."""
    import subprocess
    import sys

    code = (
        "import lzma, resource, time\n"
        "from jc_datalad.provenance import ProvenanceError, load_sidecar\n"
        "c = lzma.LZMACompressor(preset=0); z = b' ' * 2**20\n"
        "bomb = b''.join([c.compress(z) for _ in range(512)] + [c.flush()])\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "start = time.perf_counter()\n"
        "try:\n    load_sidecar(bomb)\nexcept ProvenanceError as exc:\n    print('refused:', exc)\n"
        "print(len(bomb), time.perf_counter() - start,\n"
        "      resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    refused, numbers = out.splitlines()
    assert "decompresses to more than" in refused
    size, seconds, grown_kib = numbers.split()
    assert int(size) < 100_000
    assert float(seconds) < 2.0
    assert int(grown_kib) < 64 * 1024  # the whole document would be 512 MiB


def test_sidecar_that_is_not_xz_or_not_text_is_refused():
    with pytest.raises(ProvenanceError, match="not valid xz"):
        load_sidecar(b"\xfd7zXZ\x00" + b"garbage" * 10)
    with pytest.raises(ProvenanceError, match="not UTF-8"):
        load_sidecar(b"\xff\xfe{}")


def test_deep_json_is_refused_inline_and_in_a_sidecar():
    deep = "[" * 100_000 + "]" * 100_000
    msg = f"[DATALAD RUNCMD] x\n\n=== Do not change lines below ===\n{deep}\n^^^ Do not change lines above ^^^\n"
    with pytest.raises(ProvenanceError, match="nests JSON 100000 levels deep"):
        parse_message(msg)
    with pytest.raises(ProvenanceError, match="nests JSON 100000 levels deep"):
        load_sidecar(lzma.compress(deep.encode()))
    # brackets inside strings are text, not nesting
    assert parse_message(msg.replace(deep, json.dumps({"cmd": "[" * 5000}))) == {"cmd": "[" * 5000}


def test_record_with_too_many_inputs_is_refused():
    with pytest.raises(ProvenanceError, match="names 20000 paths; the limit is 1000"):
        check_record(record(f"{LAUNCH} python x.py", inputs=[f"code/f{i}" for i in range(20_000)]),
                     "c" * 40, **CHECKS)


@pytest.mark.parametrize("outputs", [".", ["."], ["predictions", "./"], [""]])
def test_outputs_naming_the_whole_dataset_are_refused(outputs):
    with pytest.raises(ProvenanceError, match="whole dataset|empty"):
        check_record(record(f"{LAUNCH} python x.py", outputs=outputs), "c" * 40, **CHECKS)


def test_inputs_may_name_the_whole_dataset():
    step = check_record(record(f"{LAUNCH} python x.py", inputs=["."]), "c" * 40, **CHECKS)
    assert step.inputs == (".",)


def test_expanded_command_is_bounded():
    with pytest.raises(ProvenanceError, match="once its inputs and outputs are filled in"):
        expand_command("python x.py {inputs}", [f"inputs/test/{'x' * 100}{i}" for i in range(1000)],
                       ["predictions"])


@pytest.mark.parametrize("word", ["$(touch /tmp/x)", "`touch /tmp/x`", "'/usr/bin/python3'", "python;id",
                                  "-c", "${HOME}/python", "py\"thon"])
def test_forged_interpreter_word_is_refused(word):
    cmd = f"{word} ./.datalad/environments/jc-env/launch.py {IMAGE} python code/predict.py {{inputs}} {{outputs}}"
    with pytest.raises(ProvenanceError, match="not a plain path to an interpreter"):
        check_record(record(cmd), "c" * 40, **CHECKS)


@pytest.mark.parametrize("word", ["/usr/bin/python3", "/home/me/.venv/bin/python3.12", "python3",
                                  "./venv/bin/python", "../env_2/bin/python+debug"])
def test_plain_interpreter_paths_are_accepted(word):
    cmd = f"{word} ./.datalad/environments/jc-env/launch.py {IMAGE} python code/predict.py {{inputs}} {{outputs}}"
    assert check_record(record(cmd), "c" * 40, **CHECKS).inner == "python code/predict.py {inputs} {outputs}"


def test_only_the_exact_call_format_matches():
    for cmd in (f"{LAUNCH}  python x.py".replace("launch.py", "launch.py "),  # an extra space
                LAUNCH.replace("./.datalad", "/.datalad") + " python x.py",
                LAUNCH.replace("python3 ", "python3 -X importtime ") + " python x.py"):
        with pytest.raises(ProvenanceError, match="exactly the organizer's call format"):
            check_record(record(cmd), "c" * 40, **CHECKS)


@pytest.mark.parametrize("inner", ["python x.py\ntouch /tmp/pwned", "python x.py\rid", "python x.py\x00"])
def test_newline_in_the_inner_command_is_refused(inner):
    with pytest.raises(ProvenanceError, match="newline"):
        check_inner_command(inner)
    with pytest.raises(ProvenanceError, match="newline"):
        check_record(record(f"{LAUNCH} {inner}"), "c" * 40, **CHECKS)


def test_messages_are_records_exactly_when_datalad_rerun_takes_them_for_records():
    """A record datalad rerun would run must be checked here too (and one it ignores is ignored)."""
    from datalad.local.rerun import get_run_info

    body = json.dumps(record("x"))
    tail = f"=== Do not change lines below ===\n{body}\n^^^ Do not change lines above ^^^\n"
    for msg in (f"[DATALAD RUNCMD] x\n\n{tail}",
                f"[DATALAD RUNCMD] x{tail}",  # no newline before the marker
                f"note\n[DATALAD RUNCMD] x\n{tail}",  # text before the marker
                f"[DATALAD RUNCMD] a\n{tail}[DATALAD RUNCMD] b\n{tail.replace('x', 'y')}",
                f"[DATALAD RUNCMD] a\n{tail}\n=== Do not change lines below ===\n",  # a marker after
                "[DATALAD RUNCMD] x\n=== Do not change lines below ===\n\n^^^ Do not change lines above ^^^",
                "[DATALAD RUNCMD] x=== Do not change lines below ===\n^^^ Do not change lines above ^^^",
                f"[DATALAD RUNCMD] {tail}",
                f"[DATALAD RUNCMD]{tail}",  # no space after the tag
                "[DATALAD RUNCMD] no markers"):
        try:
            _, theirs = get_run_info(None, msg)
        except ValueError:  # datalad rerun stops on it: refused here too
            with pytest.raises(ProvenanceError):
                parse_message(msg)
            continue
        assert parse_message(msg) == theirs


def test_a_message_of_many_markers_is_read_in_linear_time():
    """datalad's own expression backtracks quadratically on this message (minutes); here it is milliseconds."""
    import time

    msg = ("[DATALAD RUNCMD] x\n^^^ Do not change lines above ^^^\n"
           + "=== Do not change lines below ===\n" * 30_000)
    start = time.perf_counter()
    assert parse_message(msg) is None
    assert time.perf_counter() - start < 0.5
