"""Leak-safe failure reports: what a submission prints on hidden data never reaches the public.

A hostile submission prints base64 of the hidden inputs to stdout and stderr in
every step, over many steps, ends with an exception quoting them, and names an
output file after them. The record, the ledger's commits and files, and every
page of the built site must hold none of it; the full logs (capped for the
whole evaluation) are in the organizer's private store, and with
``logs: team-encrypted`` in the ledger as ``logs.age``, which the team's key
decrypts and no other key does.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pyrage
import pytest
from conftest import sh

from jc_datalad import logs, participant
from jc_datalad.logs import PRIVATE_CAPS, PUBLISHED_CAPS, LogBook, LogCaps
from jc_datalad.records import Status
from jc_datalad.sandbox import StepResult, StepStatus
from jc_datalad.spec import LogVisibility
from jc_datalad.teams import add_team
from site_generator import build as site_build
from site_generator import build_site

MARKER = "LEAK-MARKER"
REPEAT = 20  # each step prints the hidden inputs this often to each stream: far over every cap

LEAK = f'''"""Prints the inputs it is given, names a file after them, and crashes quoting them."""
import base64, hashlib, sys
from pathlib import Path

import numpy as np
import tifffile

crash = "--crash" in sys.argv
name = "--name" in sys.argv
inputs, outputs = [Path(a) for a in sys.argv[1:] if not a.startswith("--")]
outputs.mkdir(parents=True, exist_ok=True)
files = sorted(inputs.glob("*.tif"))
blob = b"".join(p.read_bytes() for p in files)
text = base64.b64encode(blob).decode()
for _ in range({REPEAT}):
    print("{MARKER} " + text)
    print("{MARKER} " + text, file=sys.stderr)
for path in files:
    stack = tifffile.imread(path).astype(np.float64)
    labels = np.zeros(stack.shape, dtype=np.uint16)
    for t, frame in enumerate(stack):
        labels[t][frame < frame.mean()] = 1
    tifffile.imwrite(outputs / path.name, labels, photometric="minisblack")
if name:
    (outputs / ("LEAKNAME-" + hashlib.sha256(blob).hexdigest()[:40] + ".tif")).write_bytes(b"x")
if crash:
    raise RuntimeError("{MARKER} " + text[:3000])
'''


# -- pure parts: caps, classes, encryption -------------------------------------------------------

def result(status: StepStatus = StepStatus.OK, exit_code: int | None = 0, **kw) -> StepResult:
    return StepResult(status=status, exit_code=exit_code, wall_s=1.23456, cpu_s=0.5, peak_rss_bytes=3 * 2**20,
                      stdout_tail=kw.pop("stdout_tail", "secret tail"), stderr_tail=kw.pop("stderr_tail", "secret"),
                      **kw)


def write_logs(folder: Path, name: str, stdout: bytes, stderr: bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.stdout").write_bytes(stdout)
    (folder / f"{name}.stderr").write_bytes(stderr)


def test_step_facts_keep_numbers_and_status_never_output():
    facts = logs.step_facts(2, "python predict.py", result(StepStatus.FAILED, 3))
    assert facts == {"number": 2, "command": "python predict.py", "status": "failed", "exit_code": 3,
                     "wall_s": 1.23456, "cpu_s": 0.5, "peak_rss_bytes": 3 * 2**20, "accounting": "none"}
    assert "secret" not in json.dumps(facts)


@pytest.mark.parametrize(("status", "code", "expected"), [
    (StepStatus.TIMEOUT, None, "step 4 exceeded the time limit of 25 s and was stopped"),
    (StepStatus.MEMORY, 1, "step 4 ran out of memory (limit 1.0 GiB)"),
    (StepStatus.FAILED, 3, "step 4 exited with code 3"),
    (StepStatus.FAILED, -9, "step 4 was killed by SIGKILL"),
    (StepStatus.INFRASTRUCTURE, 1, "step 4: the sandbox could not be set up (a fault of the platform, not of "
                                   "the submission)"),
])
def test_step_failure_is_a_class_with_its_limit(status, code, expected):
    reason = logs.step_failure(4, result(status, code, stderr_tail=f"{MARKER} abc"), time_s=25, memory_bytes=2**30)
    assert reason == expected
    # made from system facts only: the record boundary keeps it as it is
    assert logs.public_reason("failed", reason, output_format="label-tiff") == reason


def test_public_reason_never_quotes_what_the_steps_made():
    name = f"{MARKER}-aGlkZGVu.tif"
    cases = {
        ("failed", f"invalid predictions: {name}: unexpected file: no truth file has this name; write only "
                   "files named like the truth (e.g. 'hidden_000.tif'); hidden_001.tif: missing: the command "
                   "wrote 3 of 4 expected files"):
            "invalid output (label-tiff): unexpected files (write only files named like the inputs); missing "
            "prediction files (one per input, named like it); the full messages are in the logs",
        ("refused", f"outputs: {name} is a symlink to '/{MARKER}'; write regular files only"):
            "refused after the steps ran: outputs must be regular files, not symbolic links; the full message "
            "is in the logs",
        ("error", f"internal error: OSError: [Errno 36] File name too long: '{name}' (copy)"):
            "error after the steps ran on hidden data (OSError); the organizers have the details",
        ("failed", f"step 1 exited with code 1: {MARKER}"): "failed after the steps ran: see the logs",
        # a quoted name does not choose the class
        ("refused", "outputs: '.symlink-unexpected file.tif' is a hidden name; write one plain file per item"):
            "refused after the steps ran: output file names must not start with a dot; the full message is in "
            "the logs",
        ("refused", "outputs hold more than 24 files; write one file per item"):
            "refused after the steps ran: the outputs must not hold more files than the limit (one file per "
            "item); the full message is in the logs",
    }
    for (status, reason), expected in cases.items():
        assert logs.public_reason(status, reason, output_format="label-tiff") == expected
    for system in ("the evaluation exceeded its time limit of 100 s for all steps before step 3",
                   "scoring the predictions ran out of memory (4.0 GiB); write predictions of the size and type "
                   "the challenge asks for"):
        assert logs.public_reason("failed", system, output_format="label-tiff") == system
    assert logs.public_item_error(f"unreadable as TIFF (TiffFileError: {MARKER}); write it with "
                                  "tifffile.imwrite") == "invalid prediction: unreadable files"
    assert logs.public_item_error(None) is None


def test_the_scorers_own_messages_become_classes(tmp_path):
    """The rule tables match what the scorers really say (a changed message shows up here)."""
    import numpy as np
    import tifffile

    import scorers

    truth, pred = tmp_path / "truth", tmp_path / "pred"
    truth.mkdir()
    pred.mkdir()
    for n in range(5):
        tifffile.imwrite(truth / f"hidden_{n}.tif", np.ones((2, 8, 8), np.uint16))
    tifffile.imwrite(pred / "hidden_0.tif", np.ones((2, 8, 8), np.float32))
    tifffile.imwrite(pred / "hidden_1.tif", np.ones((2, 4, 4), np.uint16))
    (pred / "hidden_2.tif").write_bytes(f"{MARKER} is no TIFF".encode())
    tifffile.imwrite(pred / "hidden_3.tif", np.ones((2, 8, 8), np.uint16))
    (pred / f"{MARKER}.tif").write_bytes(b"x")
    scored = scorers.score_folder(pred, truth, scorer="instance_segmentation")
    classes = {i.name: logs.public_item_error(i.error) for i in scored.items}
    assert classes == {
        "hidden_0.tif": "invalid prediction: wrong data type for labels (uint16; uint8, uint32, int32 accepted)",
        "hidden_1.tif": "invalid prediction: wrong shape (one value per truth pixel, same frame count)",
        "hidden_2.tif": "invalid prediction: unreadable files",
        "hidden_3.tif": None,
        "hidden_4.tif": "invalid prediction: missing prediction files (one per input, named like it)",
    }
    reason = logs.public_reason("failed", "invalid predictions: " + "; ".join(scored.errors),
                                output_format="label-tiff")
    assert MARKER not in reason and "LEAK" not in reason
    for rule in ("unexpected files", "missing prediction files", "wrong shape", "unreadable files", "wrong data type"):
        assert rule in reason


def test_log_book_caps_the_whole_evaluation_not_each_step(tmp_path):
    caps = LogCaps(total_bytes=10_000, steps=4)
    book = LogBook(caps)
    folder = tmp_path / "logs"
    for n in range(1, 11):
        out = b"H" * 100 + f"step {n} stdout ".encode() * 2000 + b"T" * 100
        write_logs(folder, f"step-{n}", out, f"step {n} stderr\n".encode())
        book.add(n, result(), folder, f"step-{n}")
        assert not (folder / f"step-{n}.stdout").exists()  # read into the book, off the disk
        held = sum(s.kept for step in book.steps for s in step.streams.values())
        assert held <= caps.total_bytes
    assert [s.number for s in book.steps] == [1, 2, 3, 10] and book.left_out == [4, 5, 6, 7, 8, 9]
    text = book.render(caps, header=["evaluation x"], detail="reason: step 10 exited")
    body = sum(len(s.head) + len(s.tail) for step in book.steps for s in step.streams.values())
    assert body <= caps.total_bytes
    assert len(text) < caps.total_bytes + 2000
    assert "step 1 stderr" in text and "step 10 stderr" in text  # small streams kept whole
    assert text.count("H" * 100) == 4 and text.count("T" * 100) == 4  # head and tail of each big one
    assert "bytes left out" in text and "logs of steps 4-9 left out" in text
    assert "reason: step 10 exited" in text
    smaller = book.render(LogCaps(total_bytes=1000, steps=2), header=[], detail="")
    assert "logs of steps 2-9 left out" in smaller and "step 10 stderr" in smaller
    assert len(smaller) < 1000 + 1000


def test_log_text_has_no_control_characters(tmp_path):
    book = LogBook(PRIVATE_CAPS)
    write_logs(tmp_path, "step-1", b"ok\x1b[31mred\r\nline\rback\x00\xff\n", b"")
    book.add(1, result(), tmp_path, "step-1")
    text = book.render(PRIVATE_CAPS, header=[], detail="")
    assert "\x1b" not in text and "\x00" not in text and "\r" not in text
    assert "ok\ufffd[31mred\nline\nback\ufffd\ufffd" in text


def test_steps_past_the_cap_keep_no_figures_and_their_total_moves_to_the_last():
    steps = [{"number": n, "command": "c", "status": "ok", "exit_code": 0, "wall_s": 1.0, "cpu_s": 0.5,
              "peak_rss_bytes": 7} for n in range(1, 21)]
    capped = logs.cap_steps(steps, LogCaps(total_bytes=1, steps=4))
    assert [s["number"] for s in capped] == list(range(1, 21))
    assert all("wall_s" in s for s in capped[:3]) and all(set(s) == {"number", "command", "status"}
                                                          for s in capped[3:19])
    assert capped[19]["left_out"] == {"steps": 16, "cpu_s": 8.0, "wall_s": 16.0}


def test_encrypted_to_the_team_keys_only(tmp_path):
    team = participant.make_key(tmp_path / "team", "team")
    rsa = tmp_path / "rsa"
    sh("ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "rsa", "-f", str(rsa))
    ecdsa = tmp_path / "ecdsa"
    sh("ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(ecdsa))
    other = participant.make_key(tmp_path / "other", "other")
    keys = [Path(f"{k}.pub").read_text() for k in (team, rsa, ecdsa)] + ["ssh-ed25519 AAAAnotakey x"]
    recipients = logs.age_recipients(keys)
    assert len(recipients) == 2  # ecdsa is not an age recipient; the broken key is skipped
    armored = logs.encrypt_armored(b"hello " + MARKER.encode(), recipients)
    assert armored.startswith("-----BEGIN AGE ENCRYPTED FILE-----\n") and MARKER not in armored
    for key in (team, rsa):
        assert pyrage.decrypt(armored.encode(), [pyrage.ssh.Identity.from_buffer(key.read_bytes())]) \
            == b"hello " + MARKER.encode()
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(armored.encode(), [pyrage.ssh.Identity.from_buffer(other.read_bytes())])


@pytest.mark.skipif(shutil.which("age") is None, reason="the age tool is not installed (Debian package age)")
def test_the_age_tool_decrypts_with_the_command_the_docs_show(tmp_path):
    key = participant.make_key(tmp_path / "id_ed25519", "team")
    (tmp_path / logs.LOGS_AGE).write_text(logs.encrypt_armored(
        f"{MARKER}\n".encode(), logs.age_recipients([Path(f"{key}.pub").read_text()])))
    command = logs.decrypt_command(key=str(key))
    assert command == f"age -d -i {key} logs.age > logs.txt"
    subprocess.run(command, shell=True, cwd=tmp_path, check=True)
    assert (tmp_path / "logs.txt").read_text() == f"{MARKER}\n"


def test_site_uses_the_runner_file_names():
    assert (site_build.LOGS_AGE, site_build.LOGS_TXT) == (logs.LOGS_AGE, logs.LOGS_TXT)


def test_a_store_inside_a_published_dataset_is_refused(tmp_path):
    from jc_datalad.errors import JcError

    with pytest.raises(JcError, match="lies inside"):
        logs.check_store(tmp_path / "results" / "private-logs", [tmp_path / "results"])
    logs.check_store(tmp_path / "private-logs", [tmp_path / "results"])


# -- end to end: a leaking submission through the runner, the ledger and the site ------------------

@pytest.fixture(scope="module")
def leaky(challenge, tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A participant clone with three heads: 'many' (18 steps, the last crashes on hidden data),
    'short' (3 steps, the same), 'names' (names an output file after the hidden inputs)."""
    from conftest import _reachable

    root = tmp_path_factory.mktemp("leaky")
    _reachable(root)
    clone = participant.clone_challenge(challenge.public, root / "clone")
    participant.record_prediction(clone, files={"code/leak.py": LEAK}, command="python code/leak.py {inputs} {outputs}")
    first = sh("git", "rev-parse", "HEAD", cwd=clone).strip()
    message = sh("git", "log", "-1", "--format=%B", first, cwd=clone)
    assert "code/leak.py {inputs}" in message

    def records(base: str, count: int, last: str | None) -> str:
        """``count`` more run records of the same command on top of ``base``, the last with ``last``'s option."""
        sh("git", "checkout", "-q", "--detach", base, cwd=clone)
        for n in range(count):
            text = message if (last is None or n < count - 1) else message.replace("leak.py", f"leak.py {last}")
            subprocess.run(["git", "commit", "-q", "--allow-empty", "-F", "-"], input=text, text=True, cwd=clone,
                           check=True)
        return sh("git", "rev-parse", "HEAD", cwd=clone).strip()

    heads = {"many": records(first, 17, "--crash"), "short": records(first, 2, "--crash"),
             "names": records(first, 1, "--name")}
    return clone, heads


def hidden_needles(challenge) -> list[str]:
    """Pieces of what the submission prints and names on the hidden inputs."""
    files = sorted((challenge.private / "hidden" / "test" / "inputs").glob("*.tif"))
    blob = b"".join(p.read_bytes() for p in files)
    text = base64.b64encode(blob).decode()
    pieces = [text[i:i + 32] for i in range(len(text) // 3, len(text) - 32, len(text) // 7)]
    return [MARKER, "LEAKNAME", hashlib.sha256(blob).hexdigest()[:40], *pieces]


def found_in(root: Path, needles: list[str], *, skip: tuple[str, ...] = (".git",)) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if any(part in skip for part in path.relative_to(root).parts) or not path.is_file():
            continue
        data = path.read_bytes()
        hits += [f"{path}: {n}" for n in needles if n.encode() in data]
        hits += [f"{path} (name): {n}" for n in needles if n in path.name]
    return hits


def in_history(results: Path, needles: list[str]) -> list[str]:
    history = subprocess.run(["git", "log", "--all", "-p", "--format=%H%n%B"], cwd=results, capture_output=True,
                             check=True).stdout
    names = subprocess.run(["git", "log", "--all", "--name-only", "--format="], cwd=results, capture_output=True,
                           check=True).stdout
    return [n for n in needles if n.encode() in history or n.encode() in names]


def run_with(arena, monkeypatch, visibility: LogVisibility, clone: Path, heads: dict[str, str], which: list[str],
             keys: tuple[str, ...] = ()):
    """Push ``which`` heads as branches of team 'leaky' and run one pass with ``logs: visibility``."""
    from jc_datalad import evaluate as evaluate_module

    repo = participant.make_team_repository(arena.root / "teams" / "leaky.git")
    add_team(arena.teams_file, "leaky", str(repo), keys=list(keys))
    for branch in which:
        sh("git", "checkout", "-q", "-B", branch, heads[branch], cwd=clone)
        participant.push_submission(clone, repo, branch, remote=f"team-{arena.root.name}")  # one per test
    original = evaluate_module.load_spec
    monkeypatch.setattr(evaluate_module, "load_spec", lambda path: replace(original(path), logs=visibility))
    report = arena.run()
    assert report.team_errors == [] and len(report.evaluations) == len(which), report.as_dict()
    return {ev.submission["commit"]: ev for ev in report.evaluations}


def check_nothing_published(arena, tmp_path, challenge) -> Path:
    """Nothing of the hidden inputs in the results dataset (files and history) or in the built site."""
    needles = hidden_needles(challenge)
    results = arena.config.results
    assert found_in(results, needles) == []
    assert in_history(results, needles) == []
    site = tmp_path / "site"
    build_site(results, site)
    assert found_in(site, needles, skip=()) == []
    return site


@pytest.mark.slow
def test_hidden_inputs_printed_over_many_steps_reach_no_public_surface(arena, monkeypatch, leaky, challenge,
                                                                      tmp_path):
    clone, heads = leaky
    evs = run_with(arena, monkeypatch, LogVisibility.ORGANIZERS, clone, heads, ["many", "names"])
    many, names = evs[heads["many"]], evs[heads["names"]]

    assert many.status is Status.FAILED and many.reason == "step 18 exited with code 1"
    assert len(many.steps) == 18 and all("stdout_tail" not in s and "stderr_tail" not in s for s in many.steps)
    assert many.steps[-1]["left_out"]["steps"] == 18 - PUBLISHED_CAPS.steps
    assert names.status is Status.FAILED
    assert names.reason.startswith("invalid output (label-tiff): unexpected files")
    folder = arena.config.results / "evaluations"
    # the ledger keeps the predictions the scorer reads, not the file named after the hidden inputs
    hidden_items = sorted(p.name for p in (challenge.private / "hidden" / "test" / "labels").glob("*.tif"))
    assert sorted(p.name for p in (folder / names.id / "predictions").iterdir()) == hidden_items
    for ev in (many, names):
        assert not (folder / ev.id / "logs").exists()
        assert not (folder / ev.id / logs.LOGS_AGE).exists() and not (folder / ev.id / logs.LOGS_TXT).exists()
    site = check_nothing_published(arena, tmp_path, challenge)
    page = (site / "bacteria-test" / "evaluations" / f"{many.id}.html").read_text()
    assert "step 18 exited with code 1" in page and "kept for the organizers only" in page

    # the organizer's private store has the full logs, capped for the whole evaluation
    store = arena.config.logs
    assert store == arena.config_path.parent / "private-logs"
    text = (store / many.id / logs.LOGS_TXT).read_text()
    needles = hidden_needles(challenge)
    assert MARKER in text and all(n in text for n in needles[3:])
    assert "RuntimeError" in text and "== step 18:" in text
    assert len(text.encode()) <= PRIVATE_CAPS.total_bytes + logs.DETAIL_BYTES + 20_000
    assert "bytes left out" in text  # 18 steps x 2 streams x 20 copies: far more than the cap
    detail = (store / names.id / logs.LOGS_TXT).read_text()
    assert "LEAKNAME-" in detail and "unexpected file" in detail


@pytest.mark.slow
def test_team_encrypted_logs_open_with_the_team_key_only(arena, monkeypatch, leaky, challenge, tmp_path):
    clone, heads = leaky
    key = participant.make_key(tmp_path / "keys" / "leaky", "leaky")
    other = participant.make_key(tmp_path / "keys" / "other", "other")
    evs = run_with(arena, monkeypatch, LogVisibility.TEAM_ENCRYPTED, clone, heads, ["short"],
                   keys=(f"{key}.pub",))
    ev = evs[heads["short"]]
    assert ev.status is Status.FAILED and ev.reason == "step 3 exited with code 1"
    sealed = arena.config.results / "evaluations" / ev.id / logs.LOGS_AGE
    armored = sealed.read_bytes()
    # committed in git itself (ASCII armour is text), so a clone of the results has it without `datalad get`
    assert sh("git", "ls-files", f"evaluations/{ev.id}/{logs.LOGS_AGE}", cwd=arena.config.results).strip()
    assert not sealed.is_symlink()
    plain = pyrage.decrypt(armored, [pyrage.ssh.Identity.from_buffer(key.read_bytes())]).decode()
    assert MARKER in plain and "== step 3:" in plain and "RuntimeError" in plain
    assert len(plain.encode()) <= PUBLISHED_CAPS.total_bytes + logs.DETAIL_BYTES + 20_000
    with pytest.raises(pyrage.DecryptError):
        pyrage.decrypt(armored, [pyrage.ssh.Identity.from_buffer(other.read_bytes())])

    site = check_nothing_published(arena, tmp_path, challenge)
    page = (site / "bacteria-test" / "evaluations" / f"{ev.id}.html").read_text()
    assert f'href="{ev.id}.logs.age"' in page and html.escape(logs.decrypt_command()) in page
    assert (site / "bacteria-test" / "evaluations" / f"{ev.id}.logs.age").read_bytes() == armored


@pytest.mark.slow
def test_public_logs_are_shown_capped(arena, monkeypatch, leaky, challenge, tmp_path):
    clone, heads = leaky
    evs = run_with(arena, monkeypatch, LogVisibility.PUBLIC, clone, heads, ["short"])
    ev = evs[heads["short"]]
    assert ev.status is Status.FAILED and ev.reason == "step 3 exited with code 1"
    shown = arena.config.results / "evaluations" / ev.id / logs.LOGS_TXT
    text = shown.read_text()
    assert MARKER in text and len(text.encode()) <= PUBLISHED_CAPS.total_bytes + logs.DETAIL_BYTES + 20_000
    site = tmp_path / "site"
    build_site(arena.config.results, site)
    page = (site / "bacteria-test" / "evaluations" / f"{ev.id}.html").read_text()
    assert MARKER in page and "This challenge publishes the output of its steps" in page
    assert len(page.encode()) < PUBLISHED_CAPS.total_bytes + logs.DETAIL_BYTES + 60_000


# -- the evaluation page, from records written straight into a ledger folder ------------------------

def test_evaluation_page_shows_logs_only_as_the_record_allows(tmp_path):
    from test_site import make, write

    results = tmp_path / "results"
    old = make("old", "01" * 20, score=None, first_seen="2024-05-01T00:00:00Z", status=Status.FAILED,
               reason="step 1 exited with code 1")
    old = replace(old, steps=[{**old.steps[0], "stdout_tail": f"{MARKER} tail", "stderr_tail": f"{MARKER} err"}])
    public = make("pub", "02" * 20, score=None, first_seen="2024-05-01T00:00:00Z", status=Status.FAILED,
                  reason="step 1 exited with code 1")
    public = replace(public, challenge={**public.challenge, "logs": "public"})
    sealed = make("enc", "03" * 20, score=0.5, first_seen="2024-05-01T00:00:00Z")
    sealed = replace(sealed, challenge={**sealed.challenge, "logs": "team-encrypted"})
    keyless = make("nokey", "04" * 20, score=0.5, first_seen="2024-05-01T00:00:00Z")
    keyless = replace(keyless, challenge={**keyless.challenge, "logs": "team-encrypted"})
    forged = make("forged", "05" * 20, score=0.5, first_seen="2024-05-01T00:00:00Z")
    forged = replace(forged, challenge={**forged.challenge, "logs": "team-encrypted"})
    for ev in (old, public, sealed, keyless, forged):
        write(results, ev)
    folder = results / "evaluations"
    (folder / old.id / "logs").mkdir()
    (folder / old.id / "logs" / "step-1.stdout").write_text(f"{MARKER} old log\n")
    (folder / old.id / logs.LOGS_TXT).write_text(f"{MARKER} not public\n")  # its record says organizers
    (folder / public.id / logs.LOGS_TXT).write_text("== step 1 ==\n<b>done</b>\x1b[0m\n")
    (folder / sealed.id / logs.LOGS_TXT).write_text(f"{MARKER} not public either\n")
    armored = logs.encrypt_armored(MARKER.encode(), logs.age_recipients(
        [Path(f"{participant.make_key(tmp_path / 'k', 'k')}.pub").read_text()]))
    (folder / sealed.id / logs.LOGS_AGE).write_text(armored)
    (folder / forged.id / logs.LOGS_AGE).write_text(f"<script>{MARKER}</script>")
    site = tmp_path / "site"
    report = build_site(results, site)

    def page(ev) -> str:
        return (site / "bacteria" / "evaluations" / f"{ev.id}.html").read_text()

    assert MARKER not in "".join(p.read_text() for p in site.rglob("*.html"))
    assert "kept for the organizers only" in page(old)
    text = page(public)
    assert "&lt;b&gt;done&lt;/b&gt;\ufffd[0m" in text and "<b>done" not in text  # escaped, no escape codes
    text = page(sealed)
    assert f'href="{sealed.id}.logs.age"' in text and "age -d -i ~/.ssh/id_ed25519 logs.age" in text
    assert (site / "bacteria" / "evaluations" / f"{sealed.id}.logs.age").read_text() == armored
    assert "no registered ssh-ed25519 or ssh-rsa key" in page(keyless)
    assert not (site / "bacteria" / "evaluations" / f"{forged.id}.logs.age").exists()
    assert [p for p in report.problems if "not an ASCII-armoured age file" in p and forged.id in p]
    # a rebuild keeps the copy, and a record whose logs.age is gone loses it
    (folder / sealed.id / logs.LOGS_AGE).unlink()
    (folder / sealed.id / "record.json").write_text(replace(sealed, finished="2024-05-02T00:00:00Z").to_json())
    build_site(results, site)
    assert not (site / "bacteria" / "evaluations" / f"{sealed.id}.logs.age").exists()
    assert "no registered ssh-ed25519" in page(sealed)
