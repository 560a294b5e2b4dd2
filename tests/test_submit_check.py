"""`jc submit check` agrees with the runner: it replays the recorded steps in the runner's sandbox on a
read-only checkout, validates outputs with the scorer's readers, and names the commit at fault and the fix."""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import tifffile
from click.testing import CliRunner
from conftest import DATA, sh
from test_docs import AS_ROOT, tools_for
from test_docs import participant as participant_account  # noqa: F401 (a fixture)

from jc_datalad import participant
from jc_datalad.cli import main
from jc_datalad.records import Status
from jc_datalad.submit import check_submission, validate_label_tiffs, validate_tables
from scorers.files import read_mask


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


def test_masks_are_read_with_the_mask_reader(tmp_path):
    inputs, outputs = _folders(tmp_path)
    tifffile.imwrite(outputs / "a.tif", np.full((2, 8, 8), 2, np.uint8))
    assert validate_label_tiffs(inputs, outputs, "predictions") == []  # fine as labels
    (problem,) = validate_label_tiffs(inputs, outputs, "predictions", reader=read_mask)
    assert problem == "predictions/a.tif: a mask holds only 0 and 1; threshold the prediction first"


def test_tables_are_read_with_the_scorers_table_reader(tmp_path):
    outputs = tmp_path / "predictions"
    outputs.mkdir()
    assert validate_tables(outputs, "predictions", "regression") == [
        "predictions/: holds no .csv file; the scorer reads CSV tables"]
    (outputs / "a.csv").write_text("id,age\ns1,31\ns2,40\n")
    assert validate_tables(outputs, "predictions", "regression") == []
    (outputs / "a.csv").write_text("id,age\ns1,31\ns1,40\n")
    (problem,) = validate_tables(outputs, "predictions", "regression")
    assert problem == "predictions/a.csv: id 's1' appears more than once in column 'id'"
    (outputs / "a.csv").write_text("id,age\ns1,old\ns2,40\n")
    (problem,) = validate_tables(outputs, "predictions", "regression")
    assert problem.startswith("predictions/a.csv: column 'age' has 1 missing, non-numeric")
    (outputs / "a.csv").write_text("id,p16,p50\ns1,1,2\n")
    (problem,) = validate_tables(outputs, "predictions", "coverage_score", intervals=True)
    assert problem.startswith("predictions/a.csv: prediction has no column 'p84'")

# -- the check replays the recorded steps as the runner does -------------------------------------------

#: a solution that caches something next to its code: fine on the participant's machine (the
#: launcher binds the dataset writable), refused by the runner's read-only checkout
WRITES_INTO_CODE = (DATA / "threshold_predict.py").read_text().replace(
    "outputs.mkdir(parents=True, exist_ok=True)\n",
    "outputs.mkdir(parents=True, exist_ok=True)\nPath('code/cache.txt').write_text('seen')\n")

NEGATIVE_LABELS = (DATA / "threshold_predict.py").read_text().replace(
    "np.zeros(stack.shape, dtype=np.uint16)", "np.zeros(stack.shape, dtype=np.int32)").replace(
    "] = 1\n", "] = -1\n")


def _subject(clone, sha="HEAD"):
    return sh("git", "log", "-1", "--format=%h %s", sha, cwd=clone).strip().split(" ", 1)


def test_an_honest_submission_passes_after_its_steps_ran(arena):
    clone = arena.clone("honest-check")
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    result = check_submission(clone, run=True)
    assert result.ok, result.problems
    assert result.ran and [s.status for s in result.executed] == ["ok"]
    assert result.executed[0].command == "python code/predict.py inputs/test predictions"
    cli = CliRunner().invoke(main, ["submit", "check", str(clone)])
    assert cli.exit_code == 0, cli.output
    assert "replayed in the runner's sandbox" in cli.output and "ok: the runner would accept" in cli.output
    cli = CliRunner().invoke(main, ["submit", "check", "--no-run", str(clone)])
    assert cli.exit_code == 0 and "checked without running (--no-run)" in cli.output
    # what is validated is what the replay wrote, not what was committed
    (clone / "predictions" / "test_000.tif").unlink()
    sh("git", "commit", "-q", "-am", "Drop a prediction", cwd=clone)
    assert check_submission(clone, run=True).ok
    (problem,) = check_submission(clone).problems
    assert problem.startswith("predictions/test_000.tif missing: the command wrote 1 of 2 expected files")


def test_the_replayed_outputs_are_validated_by_the_scorer(arena):
    clone = arena.clone("negative-check")
    participant.record_prediction(clone, files={"code/predict.py": NEGATIVE_LABELS})
    short, subject = _subject(clone)
    result = check_submission(clone, run=True)
    assert result.ran and result.executed[0].status == "ok"
    assert result.problems and all("label ids must be >= 0" in p for p in result.problems), result.problems
    assert f'{short} ("{subject}")' in result.problems[0]
    assert "git rebase -i" in result.problems[0] and "datalad containers-run -n jc-env" in result.problems[0]


@pytest.mark.slow
def test_code_writing_into_its_dataset_fails_the_check_as_it_fails_in_the_runner(arena):
    repo = arena.team("scribbler")
    clone = arena.clone("scribbler")
    participant.record_prediction(clone, files={"code/predict.py": WRITES_INTO_CODE})
    short, _ = _subject(clone)
    base = sh("git", "merge-base", "HEAD", "origin/HEAD", cwd=clone).strip()
    assert check_submission(clone).ok  # the static check alone cannot see it
    result = check_submission(clone, run=True)
    assert not result.ok and result.failure == "step 1 exited with code 1"
    (problem,) = result.problems
    assert problem.startswith("step 1 exited with code 1")
    assert "read-only copy of your dataset" in problem and "Read-only file system" in problem
    assert short in problem and f"git rebase -i {base[:12]}" in problem
    cli = CliRunner().invoke(main, ["submit", "check", str(clone)])
    assert cli.exit_code == 1 and "refused: step 1 exited with code 1" in cli.output

    participant.push_submission(clone, repo, "s1")
    (ev,) = arena.run().evaluations
    assert (ev.status, ev.reason) == (Status.FAILED, result.failure)


def test_a_protected_path_change_names_the_commit_and_the_fix(arena):
    clone = arena.clone("protected")
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    base = sh("git", "rev-parse", "HEAD~2", cwd=clone).strip()
    assert sh("git", "merge-base", "HEAD", "origin/HEAD", cwd=clone).strip() == base
    gm = clone / ".gitmodules"
    gm.write_text(gm.read_text() + "\n")
    sh("git", "commit", "-q", "-am", "Tidy submodules", cwd=clone)
    short, _ = _subject(clone)
    result = check_submission(clone)
    (problem,) = result.problems
    assert problem.startswith(".gitmodules: changes a protected path")
    assert f'commit {short} ("Tidy submodules")' in problem
    assert f"git revert {short}" in problem and f"git rebase -i {base[:12]}" in problem
    # the fix it names works
    sh("git", "revert", "--no-edit", short, cwd=clone)
    assert check_submission(clone).ok


def test_a_refused_run_record_names_its_commit(arena):
    clone = arena.clone("handmade")
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    record = '{"cmd": "cat /labels > predictions/x", "pwd": ".", "outputs": ["predictions"], "inputs": []}'
    sh("git", "commit", "-q", "--allow-empty", "-m",
       f"[DATALAD RUNCMD] handmade\n\n=== Do not change lines below ===\n{record}\n^^^ Do not change lines above ^^^",
       cwd=clone)
    short, _ = _subject(clone)
    (problem,) = check_submission(clone).problems
    assert "not recorded with the challenge's container" in problem
    assert f'The record is commit {short} ("[DATALAD RUNCMD] handmade")' in problem
    assert "git rebase -i" in problem


# -- as a participant's own account ----------------------------------------------------------------


@pytest.mark.slow
@AS_ROOT
def test_the_check_runs_as_a_non_root_participant(arena, participant_account):  # noqa: F811 (the fixture)
    clone = arena.clone("ada-check")
    participant.record_prediction(clone, files={"code/predict.py": DATA / "threshold_predict.py"})
    home = arena.root / "ada-home"
    home.mkdir()
    subprocess.run(["chown", "-R", participant_account, str(clone), str(home)], check=True)
    tools = tools_for(participant_account, arena.root)
    env = ["env", "-i", f"HOME={home}", f"PATH={tools}:/usr/bin:/bin", "LANG=C.UTF-8",
           *(f"GIT_{who}_{what}={value}" for who in ("AUTHOR", "COMMITTER")
             for what, value in (("NAME", "Ada"), ("EMAIL", "ada@jc-datalad.invalid")))]

    def check() -> subprocess.CompletedProcess:
        return subprocess.run(["runuser", "-u", participant_account, "--", *env, "jc", "submit", "check"],
                              cwd=clone, capture_output=True, text=True, timeout=600)

    proc = check()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "replayed in the runner's sandbox" in proc.stdout
    (clone / "code" / "predict.py").write_text(WRITES_INTO_CODE)
    subprocess.run(["chown", participant_account, str(clone / "code" / "predict.py")], check=True)
    for args in (["datalad", "save", "-m", "Cache next to the code"],
                 ["datalad", "containers-run", "-n", "jc-env", "--input", "inputs/test", "--output",
                  "predictions", "python code/predict.py {inputs} {outputs}"]):
        ran = subprocess.run(["runuser", "-u", participant_account, "--", *env, *args], cwd=clone,
                             capture_output=True, text=True, timeout=600)
        assert ran.returncode == 0, ran.stderr
    proc = check()
    # every recorded step is replayed with the head commit's code, the first one included
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "refused: step 1 exited with code 1" in proc.stderr and "Read-only file system" in proc.stderr
