"""Type training (Jülich options 2.2 and 2.3) and the brains template, through the real runner.

The slow part builds one brains challenge (minimal image: the solutions need numpy only),
records five submissions with plain ``datalad containers-run`` and evaluates them in one
runner pass: the starter kit, the better solution, a training step that hunts for the test
labels, a prediction step that looks for the participant's committed model, and a
submission with only a prediction step.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from challenge_templates.brains import generate
from jc_datalad.evaluate import Refusal
from jc_datalad.provenance import RecordedStep
from jc_datalad.spec import SpecError, parse_spec
from jc_datalad.workflows import training

TEMPLATE = Path(generate.__file__).parent
ALWAYS = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)


# -- the generator ---------------------------------------------------------------------------------


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_generator_same_bytes_and_hidden_sets_disjoint(tmp_path: Path) -> None:
    sizes = generate.SIZES["default"]
    generate.write_data(tmp_path / "a", sizes, 7)
    generate.write_data(tmp_path / "b", sizes, 7)
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    out = tmp_path / "a"
    hidden_train = _digests(out / "hidden" / "train" / "matrices")
    hidden_test = _digests(out / "hidden" / "test" / "inputs")
    public = {**_digests(out / "public" / "train" / "matrices"), **_digests(out / "public" / "test")}
    assert len(hidden_train) == sizes.hidden_train and len(hidden_test) == sizes.hidden_items
    # disjoint by content, not only by name: no test matrix is a training matrix under another name
    assert not set(hidden_test.values()) & set(hidden_train.values())
    assert not set(hidden_test.values()) & set(public.values())
    assert not set(hidden_test) & set(hidden_train)
    # and no near copies either: every test matrix differs from every training matrix
    train = np.stack([np.load(p) for p in sorted((out / "hidden" / "train" / "matrices").glob("*.npy"))])
    for path in sorted((out / "hidden" / "test" / "inputs").glob("*.npy")):
        gap = np.abs(train - np.load(path)).reshape(len(train), -1).max(axis=1)
        assert gap.min() > 0.05, path.name
    matrix = np.load(out / "public" / "test" / "sub-0025.npy")
    assert matrix.dtype == np.float32 and matrix.shape == (sizes.regions, sizes.regions)
    assert np.array_equal(matrix, matrix.T) and np.all(np.diag(matrix) == 1.0)
    rows = (out / "hidden" / "train" / "labels" / "participants.csv").read_text().splitlines()
    assert rows[0] == "subject,sex,age" and len(rows) == sizes.hidden_train + 1
    assert {r.split(",")[1] for r in rows[1:]} == {"F", "M"}


def test_sex_and_age_shift_the_connections() -> None:
    """The generative model: the sex effect and the age effect are there, in the connections."""
    pop = generate.population(20, 7)
    assert np.count_nonzero(pop.sex) > 0 and np.count_nonzero(pop.age) > 0
    rng = np.random.default_rng(1)
    subjects = [generate.subject(pop, rng) for _ in range(300)]
    edges = np.argwhere(np.triu(pop.sex) > 0.1)[0]
    male = [m[tuple(edges)] for m, sex, _ in subjects if sex == "M"]
    female = [m[tuple(edges)] for m, sex, _ in subjects if sex == "F"]
    assert np.mean(male) - np.mean(female) > 0.08


# -- the scorer ------------------------------------------------------------------------------------


def _table(path: Path, rows: list[tuple[str, str, float]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("subject,sex,age\n" + "".join(f"{s},{x},{a}\n" for s, x, a in rows))


def test_sex_age_scorer_pools_subjects(tmp_path: Path) -> None:
    from scorers import describe, score_folder

    truth = [("s1", "F", 20.0), ("s2", "F", 40.0), ("s3", "M", 60.0), ("s4", "F", 80.0)]
    guess = [("s1", "F", 30.0), ("s2", "M", 40.0), ("s3", "M", 50.0), ("s4", "F", 90.0)]
    for (s, *t), (_, *g) in zip(truth, guess, strict=True):
        _table(tmp_path / "labels" / f"{s}.csv", [(s, *t)])
        _table(tmp_path / "pred" / f"{s}.csv", [(s, *g)])
    got = score_folder(tmp_path / "pred", tmp_path / "labels", scorer="sex_age").metrics
    # by hand: F recall 2/3, M recall 1 -> 5/6; errors 10, 0, 10, 10 -> 7.5
    assert got["sex_balanced_accuracy"] == pytest.approx(5 / 6)
    assert got["sex_accuracy"] == pytest.approx(3 / 4)
    assert got["age_mae"] == pytest.approx(7.5)
    t, p = np.array([20, 40, 60, 80.0]), np.array([30, 40, 50, 90.0])
    r = ((t - t.mean()) * (p - p.mean())).sum() / np.sqrt(((t - t.mean()) ** 2).sum() * ((p - p.mean()) ** 2).sum())
    assert got["age_pearson_r"] == pytest.approx(r)
    assert describe("age_mae", "sex_age") and describe("sex_balanced_accuracy", "sex_age")
    _table(tmp_path / "pred" / "s1.csv", [("s1", "F", float("nan"))])
    bad = score_folder(tmp_path / "pred", tmp_path / "labels", scorer="sex_age")
    assert any("s1.csv" in e and "age" in e for e in bad.errors)


# -- the spec --------------------------------------------------------------------------------------


def _spec_data(**changes) -> dict:
    data = {
        "id": "brains-x", "title": "t", "type": "training",
        "interface": {"inputs": "inputs/test", "outputs": "predictions", "format": "csv"},
        "training": {"inputs": "inputs/train", "model": "model",
                     "resources": {"time": "20m", "memory": "8G", "cpus": 2, "gpus": 0, "output": "2G"}},
        "container": {"name": "jc-env"},
        "resources": {"time": "10m", "memory": "4G"},
        "metrics": {"scorer": "sex_age", "primary": "sex_balanced_accuracy",
                    "columns": ["sex_balanced_accuracy", "age_pearson_r", "age_mae"]},
    }
    data.update(changes)
    return data


def test_spec_training_section() -> None:
    spec = parse_spec(_spec_data())
    assert spec.training is not None and spec.training.pretrained is None
    assert spec.training.resources.time_s == 1200 and spec.training.resources.memory_bytes == 8 * 2**30
    assert spec.resources.evaluation_time_s == 1200 + 600  # one limit for both steps
    assert spec.summary()["training"]["resources"]["time_s"] == 1200
    assert spec.as_dict()["training"]["model"] == "model"
    assert parse_spec(_spec_data(training={"inputs": "inputs/train", "model": "model", "pretrained": "weights"})
                      ).training.pretrained == "weights"

    def problems(data: dict) -> str:
        with pytest.raises(SpecError) as info:
            parse_spec(data)
        return str(info.value)

    no_training = _spec_data()
    del no_training["training"]
    assert "training: missing: type training needs it" in problems(no_training)
    assert "only a challenge of type training" in problems(_spec_data(type="inference"))
    bad = problems(_spec_data(training={"inputs": "inputs/test/x", "model": "inputs/m", "pretrained": "predictions/w",
                                        "resources": {"cpus": 0, "evaluation_time": "2h", "tmie": 1}}))
    for text in ("training.inputs", "training.model", "training.pretrained", "training.resources.cpus",
                 "training.resources.evaluation_time: unknown key", "training.resources.tmie"):
        assert text in bad, text
    short = problems(_spec_data(resources={"time": "10m", "evaluation_time": "15m"}))
    assert "resources.evaluation_time" in short and "training.resources.time" in short


def test_a_committed_model_over_the_file_limit_is_not_refused(tmp_path: Path) -> None:
    """The committed model folder is trained again, never read: its size is not the submission's."""
    import subprocess

    from jc_datalad.inspection import inspect_submission

    repo = tmp_path / "repo"
    repo.mkdir()

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("config", "user.name", "t")
    git("config", "user.email", "t@example.org")
    (repo / "code").mkdir()
    (repo / "code" / "train.py").write_text("print(1)\n")
    git("add", ".")
    git("commit", "-qm", "base")
    base = git("rev-parse", "HEAD")
    key = "SHA256E-s" + str(2 * 2**30) + "--" + "a" * 64 + ".npy"
    for folder in ("model", "weights"):
        (repo / folder).mkdir()
        (repo / folder / "w.npy").symlink_to(f"../.git/annex/objects/Xx/Yy/{key}/{key}")
    git("add", ".")
    git("commit", "-qm", "big files")
    spec = parse_spec(_spec_data(submission={"max_file_size": "1M"}))
    problems = inspect_submission(repo, base, git("rev-parse", "HEAD"), spec).problems
    assert [p for p in problems if "w.npy" in p] == [next(p for p in problems if p.startswith("weights/w.npy"))]


def test_spec_problems_carry_line_and_column(tmp_path: Path) -> None:
    from jc_datalad.spec import load_spec

    text = yaml.safe_dump(_spec_data(), sort_keys=False).replace("memory: 8G", "memory: lots")
    (tmp_path / "challenge.yaml").write_text(text)
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path)
    (problem,) = info.value.problems
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "memory: lots" in s)
    assert problem.key == "training.resources.memory" and problem.line == line and problem.column


# -- the recorded steps ----------------------------------------------------------------------------


def _step(inputs: tuple[str, ...], outputs: tuple[str, ...], commit: str = "c" * 40) -> RecordedStep:
    return RecordedStep(commit=commit, cmd="x", inner="x", inputs=inputs, outputs=outputs)


@pytest.mark.parametrize("steps, why", [
    ([], "exactly two recorded steps"),
    ([(("inputs/test",), ("predictions",))], "exactly two recorded steps"),
    ([(("inputs/test", "model"), ("predictions",)), (("inputs/train",), ("model",))], "training step"),
    ([(("inputs/train",), ("model",)), (("inputs/test",), ("predictions",)), (("inputs/test",), ("x",))],
     "exactly two"),
    ([(("inputs/train",), ("model", "predictions")), (("inputs/test",), ("predictions",))], "prediction step's"),
    ([(("inputs/train",), ("model",)), (("inputs/test",), ("predictions", "model"))], "never changes it"),
    ([(("inputs/train", "inputs/test"), ("model",)), (("inputs/test",), ("predictions",))], "test inputs"),
    ([(("inputs/train",), ("model",)), (("inputs/test", "inputs/train"), ("predictions",))], "training data"),
])
def test_only_a_training_step_then_the_prediction_step(steps, why) -> None:
    spec = parse_spec(_spec_data())
    with pytest.raises(Refusal, match=why):
        training.check_steps([_step(i, o) for i, o in steps], spec)
    training.check_steps([_step(("inputs/train",), ("model",)), _step(("inputs/test", "model"), ("predictions",))],
                         spec)


# -- through the real runner -----------------------------------------------------------------------

#: A training step that looks for the hidden test labels (and inputs) everywhere it can think of,
#: and counts what it finds into the model; the prediction step writes the count as every
#: subject's age. The test puts the hidden test subjects' ids and the host's paths in.
HUNT_TRAIN = r'''
import json, os, sys
from pathlib import Path
found = []
candidates = [Path(p) for p in json.loads(os.environ.get("HUNT", "[]") or "[]")]
candidates += [Path(p) for p in HOST_PATHS]
for root, dirs, files in os.walk("/", followlinks=False):
    dirs[:] = [d for d in dirs if not (root == "/" and d in ("proc", "sys", "dev"))]
    for name in files:
        path = os.path.join(root, name)
        if name.split(".")[0] in TEST_SUBJECTS:  # a hidden test subject's input or label file
            found.append(path)
        elif name.endswith(".csv"):
            try:
                with open(path, errors="replace") as fh:
                    text = fh.read(1 << 20)
                if text.startswith("subject,sex,age") and any(s in text for s in TEST_SUBJECTS):
                    found.append(path)
            except OSError:
                pass
for path in candidates:
    try:
        if path.exists():
            found.append(str(path))
    except OSError:
        pass
for rel in ("inputs/test", "../hidden", "../../hidden/test/labels", "/hidden/test/labels"):
    if os.path.isdir(rel) and os.listdir(rel):
        found.append(rel)
model = Path(sys.argv[2])
model.mkdir(parents=True, exist_ok=True)
(model / "model.json").write_text(json.dumps({"sex": "F", "age": 1000 + len(found), "found": found[:20]}))
'''

#: Training writes how many subjects it saw into the model; prediction reports what ``model/`` held.
MARKER_TRAIN = r'''
import json, sys
from pathlib import Path
train, model = Path(sys.argv[1]), Path(sys.argv[2])
subjects = len(list((train / "matrices").glob("*.npy")))
model.mkdir(parents=True, exist_ok=True)
(model / "marker.txt").write_text(f"trained on {subjects}\n")
(model / "model.json").write_text(json.dumps({"sex": "F", "age": subjects}))
'''
MARKER_PREDICT = r'''
import csv, os, sys
from pathlib import Path
model, inputs, outputs = (Path(a) for a in sys.argv[1:4])
marker = (model / "marker.txt").read_text() if (model / "marker.txt").exists() else "none"
seen = int(marker.split()[-1]) if marker.startswith("trained on") else -1
committed = (model / "committed.txt").exists()
outputs.mkdir(parents=True, exist_ok=True)
for path in sorted(inputs.glob("*.npy")):
    with open(outputs / f"{path.stem}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "sex", "age"])
        w.writerow([path.stem, "M" if committed else "F", seen])
'''


#: Option 2.2: the training step starts from the committed weights; the prediction step must not see them.
PRETRAINED_TRAIN = r'''
import json, sys
from pathlib import Path
import numpy as np
start = float(np.load("weights/start.npy")[0])
model = Path(sys.argv[2])
model.mkdir(parents=True, exist_ok=True)
(model / "model.json").write_text(json.dumps({"sex": "F", "age": start}))
'''
PRETRAINED_PREDICT = r'''
import csv, json, os, sys
from pathlib import Path
model, inputs, outputs = (Path(a) for a in sys.argv[1:4])
params = json.loads((model / "model.json").read_text())
# (an empty folder served from an ext4 image holds lost+found: look for the file itself)
seen = os.path.exists("weights/start.npy") or os.path.exists("inputs/train/matrices")
outputs.mkdir(parents=True, exist_ok=True)
for path in sorted(inputs.glob("*.npy")):
    with open(outputs / f"{path.stem}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["subject", "sex", "age"])
        w.writerow([path.stem, "M" if seen else "F", params["age"]])
'''


@pytest.fixture(scope="module")
def brains(tmp_path_factory, minimal_image):
    import datalad.api as dl
    from conftest import _reachable

    from jc_datalad.challenge import new_challenge

    root = tmp_path_factory.mktemp("brains")
    _reachable(root)
    made = new_challenge("brains", root / "org", challenge_id="brains-test", image=str(minimal_image),
                         start=ALWAYS, weeks=52 * 50)
    spec = made.public / "challenge.yaml"
    # the brains template is option 2.3; declaring a pretrained folder lets the same pass cover 2.2
    text = spec.read_text().replace("signed: true", "signed: false")
    spec.write_text(text.replace("  model: model ", "  model: model\n  pretrained: weights ", 1))
    assert "pretrained: weights" in spec.read_text()
    dl.save(dataset=str(made.public), message="Unsigned submissions; pretrained weights allowed",
            result_renderer="disabled")
    return root, made


def _record_two_steps(clone: Path, files: dict[str, str | Path], train: str = "python code/train.py inputs/train "
                      "model", predict: str = "python code/predict.py model inputs/test predictions") -> None:
    from jc_datalad import participant

    participant.record_prediction(clone, inputs="inputs/train", outputs="model", command=train, files=files)
    participant.record_prediction(clone, inputs="inputs/test", outputs="predictions", command=predict)


@pytest.fixture(scope="module")
def evaluated(brains):
    """Five teams, one runner pass; team -> (record, its predictions folder), and the clones."""
    from jc_datalad import participant
    from jc_datalad.config import load_config
    from jc_datalad.runner import run_once
    from jc_datalad.teams import add_team

    root, made = brains
    work = root / "arena"
    teams_file = work / "teams.yaml"
    work.mkdir()
    teams_file.write_text("teams: {}\n")
    config_path = work / "runner.yaml"
    config_path.write_text(yaml.safe_dump({
        "challenge": str(made.public), "private": str(made.private), "results": str(work / "results"),
        "work": str(work / "jc-work"), "teams": str(teams_file), "workers": 2}))
    better = TEMPLATE / "solutions" / "better"
    weights = work / "start.npy"
    np.save(weights, np.array([42.0]))
    host_paths = [str(made.private / "hidden" / "test" / "labels"), str(work / "jc-work" / "hidden"),
                  str(made.private)]
    subjects = sorted(p.stem for p in (made.private / "hidden" / "test" / "labels").glob("*.csv"))
    assert subjects
    hunt = f"HOST_PATHS = {json.dumps(host_paths)}\nTEST_SUBJECTS = set({json.dumps(subjects)})\n{HUNT_TRAIN}"
    plans = {
        "starter": ({"code/README.md": "starter kit as it comes\n"}, None),
        "better": ({f"code/{p.name}": p for p in better.iterdir() if p.suffix == ".py"}, None),
        "hunter": ({"code/train.py": hunt}, None),
        "marker": ({"code/train.py": MARKER_TRAIN, "code/predict.py": MARKER_PREDICT}, None),
        "onestep": ({}, "only-predict"),
        "pretrained": ({"code/train.py": PRETRAINED_TRAIN, "code/predict.py": PRETRAINED_PREDICT,
                        "weights/start.npy": weights}, None),
    }
    clones = {}
    for team, (files, mode) in plans.items():
        repo = participant.make_team_repository(work / "teams" / f"{team}.git")
        add_team(teams_file, team, str(repo))
        clone = participant.clone_challenge(made.public, work / "participants" / team, inputs="inputs")
        if mode == "only-predict":
            participant.record_prediction(clone, inputs="inputs/test", outputs="predictions",
                                          command="python code/predict.py model inputs/test predictions",
                                          files={"model/model.json": '{"sex": "F", "age": 50}'})
        elif team in ("starter", "better"):  # the template's own participant.yaml, as the demo plays it
            participant.record_steps(clone, "brains", files=files)
        else:
            _record_two_steps(clone, files)
        if team == "marker":
            # the participant's own model, committed beside the one its training step wrote
            (clone / "model" / "committed.txt").write_text("committed by the participant\n")
            (clone / "model" / "marker.txt").unlink()
            (clone / "model" / "marker.txt").write_text("trained on 999999\n")
            participant.sh(["datalad", "save", "-m", "My own model"], cwd=clone)
        participant.push_submission(clone, repo, "s1")
        clones[team] = clone
    report = run_once(load_config(config_path), now=ALWAYS + dt.timedelta(days=1))
    results = {}
    for ev in report.evaluations:
        results[ev.team] = (ev, work / "results" / "evaluations" / ev.id / "predictions")
    return results, clones, made


def _ages(predictions: Path) -> set[float]:
    return {float(p.read_text().splitlines()[1].split(",")[2]) for p in predictions.glob("*.csv")}


@pytest.mark.slow
def test_better_solution_outranks_the_starter_kit(evaluated) -> None:
    results, _clones, _made = evaluated
    starter, better = results["starter"][0], results["better"][0]
    assert starter.status.value == better.status.value == "evaluated", (starter.reason, better.reason)
    assert starter.metrics["sex_balanced_accuracy"] == pytest.approx(0.5)
    assert better.metrics["sex_balanced_accuracy"] > starter.metrics["sex_balanced_accuracy"] + 0.1
    assert better.metrics["age_pearson_r"] > 0.4 and better.metrics["age_mae"] < starter.metrics["age_mae"]


@pytest.mark.slow
def test_training_and_prediction_resources_recorded(evaluated) -> None:
    results, _clones, made = evaluated
    ev = results["better"][0]
    assert [s["kind"] for s in ev.steps] == ["training", "prediction"]
    train, predict = ev.steps
    assert train["resources"]["time_s"] == 1200 and train["resources"]["memory_bytes"] == 8 * 2**30
    assert predict["resources"]["time_s"] == 600 and predict["resources"]["memory_bytes"] == 4 * 2**30
    assert train["resources"]["gpus"] == predict["resources"]["gpus"] == 0
    assert train["command"] == "python code/train.py inputs/train model"
    assert all(s["status"] == "ok" and s["wall_s"] > 0 for s in ev.steps)
    assert set(ev.hidden["train"]) == {"matrices", "labels"}
    assert all(len(v["commit"]) == 40 for v in ev.hidden["train"].values())
    assert ev.challenge["training"]["resources"]["time_s"] == 1200


@pytest.mark.slow
def test_training_step_never_finds_the_test_labels(evaluated) -> None:
    results, _clones, _made = evaluated
    ev, predictions = results["hunter"]
    assert ev.status.value == "evaluated", ev.reason
    # the prediction wrote 1000 + the number of label files the training step found
    assert _ages(predictions) == {1000.0}


@pytest.mark.slow
def test_prediction_step_sees_only_the_retrained_model(evaluated) -> None:
    results, _clones, made = evaluated
    ev, predictions = results["marker"]
    assert ev.status.value == "evaluated", ev.reason
    hidden_subjects = generate.SIZES["default"].hidden_train
    # the retrained model's marker (the hidden training set's size), never the committed 999999 or 24
    assert _ages(predictions) == {float(hidden_subjects)}
    sexes = {p.read_text().splitlines()[1].split(",")[1] for p in predictions.glob("*.csv")}
    assert sexes == {"F"}, "the committed model/committed.txt was visible to the prediction step"


@pytest.mark.slow
def test_a_lone_prediction_step_is_refused(evaluated) -> None:
    results, _clones, _made = evaluated
    ev = results["onestep"][0]
    assert ev.status.value == "refused"
    assert "exactly two recorded steps, training then prediction" in ev.reason


@pytest.mark.slow
def test_submit_check_replays_both_steps_on_public_data(evaluated) -> None:
    from jc_datalad.submit import check_submission

    _results, clones, _made = evaluated
    check = check_submission(clones["marker"], run=True)
    assert check.ok, check.problems
    assert [s.status for s in check.executed] == ["ok", "ok"]
    refused = check_submission(clones["onestep"], run=False)
    assert any("exactly two recorded steps" in p for p in refused.problems)


@pytest.mark.slow
def test_site_shows_both_steps_resources(evaluated, tmp_path: Path) -> None:
    from site_generator.build import build_site

    results, _clones, made = evaluated
    ev = results["better"][0]
    ledger = results["better"][1].parents[2]
    build_site(ledger, tmp_path / "site", strict=True)
    site = tmp_path / "site"
    (page,) = [p for p in site.rglob("*.html") if ev.id in str(p.relative_to(site))]
    html = page.read_text()
    assert "<th scope=\"col\">Kind</th>" in html
    assert "<td>training</td><td>20 min, 8 GiB memory, 2 CPUs, 0 GPUs</td>" in html
    assert "<td>prediction</td><td>10 min, 4 GiB memory, 2 CPUs, 0 GPUs</td>" in html
    assert "Step 1: training" in html and "Step 2: prediction" in html


@pytest.mark.slow
def test_option_2_2_pretrained_weights_reach_the_training_step_only(evaluated) -> None:
    results, clones, _made = evaluated
    ev, predictions = results["pretrained"]
    assert (clones["pretrained"] / "weights" / "start.npy").is_symlink(), "the weights must be annexed"
    assert ev.status.value == "evaluated", ev.reason
    assert _ages(predictions) == {42.0}  # the training step read the committed weights
    sexes = {p.read_text().splitlines()[1].split(",")[1] for p in predictions.glob("*.csv")}
    assert sexes == {"F"}, "the prediction step saw the pretrained weights or the training data"
