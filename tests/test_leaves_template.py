"""The leaves template: its generator, its two solutions, and a whole challenge through the runner."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from skimage import io

from challenge_templates.leaves import generate
from scorers.folder import score_folder

TEMPLATE = Path(generate.__file__).parent


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("leaves-data")
    generate.write_data(out, generate.SIZES["default"], seed=7)
    return out


def test_same_seed_same_bytes_other_seed_other_data(data, tmp_path):
    again, other = tmp_path / "again", tmp_path / "other"
    generate.write_data(again, generate.SIZES["default"], seed=7)
    generate.write_data(other, generate.SIZES["default"], seed=8)
    assert _digests(again) == _digests(data)
    assert _digests(other).keys() == _digests(data).keys()
    assert set(_digests(other).values()).isdisjoint(_digests(data).values())


def test_layout_names_dtypes_and_shapes(data):
    sizes = generate.SIZES["default"]
    folders = {str(p.relative_to(data)): sorted(f.name for f in p.iterdir())
               for p in sorted(data.rglob("*")) if p.is_dir() and any(f.is_file() for f in p.iterdir())}
    assert sorted(folders) == ["hidden/test/inputs", "hidden/test/labels", "hidden/train/images",
                               "hidden/train/labels", "public/test", "public/train/images", "public/train/labels"]
    counts = {"public/train/images": sizes.items, "public/test": sizes.items,
              "hidden/train/images": sizes.hidden_train_items, "hidden/test/inputs": sizes.hidden_items}
    for images, count in counts.items():
        assert len(folders[images]) == count
        assert all(n.startswith("plant") and n.endswith("_rgb.png") for n in folders[images])
    for images, labels in (("public/train/images", "public/train/labels"),
                           ("hidden/train/images", "hidden/train/labels"),
                           ("hidden/test/inputs", "hidden/test/labels")):
        assert [n.replace("_label.tif", "_rgb.png") for n in folders[labels]] == folders[images]
        for name in folders[labels]:
            image = io.imread(data / images / name.replace("_label.tif", "_rgb.png"))
            label = tifffile.imread(data / labels / name)
            assert image.dtype == np.uint8 and image.shape == (sizes.height, sizes.width, 3)
            assert label.dtype == np.uint16 and label.shape == (sizes.height, sizes.width)
            ids = np.unique(label)
            # background 0, leaves numbered 1..N without gaps (the CVPPP count is max - min)
            assert ids[0] == 0 and list(ids) == list(range(len(ids)))
            assert sizes.min_leaves - 2 <= len(ids) - 1 <= sizes.max_leaves
            # leaves are green: on average green dominates red and blue inside the labels
            plant = image[label > 0].astype(float).mean(axis=0)
            soil = image[label == 0].astype(float).mean(axis=0)
            assert plant[1] > plant[0] and plant[1] > plant[2] and soil[0] > soil[2]
    # every plant name appears once over all splits: no image of one split in another
    names = [n for images in counts for n in folders[images]]
    assert len(names) == len(set(names))
    pixels = [hashlib.sha256(p.read_bytes()).hexdigest() for p in data.rglob("*_rgb.png")]
    assert len(pixels) == len(set(pixels))


def test_large_size_is_cvppp_a1_sized():
    large = generate.SIZES["large"]
    assert (large.height, large.width) == (530, 500)
    assert large.items >= 100 and large.hidden_train_items > large.items
    image, labels = generate.generate_item(generate.item_seed(1, "test", 0), large)
    assert image.shape == (530, 500, 3) and labels.shape == (530, 500)
    assert large.min_leaves <= labels.max() <= large.max_leaves


def _solution(tmp: Path, name: str) -> Path:
    """The starter kit, with the files of solutions/<name> over it (as the template protocol says)."""
    code = tmp / name / "code"
    shutil.copytree(TEMPLATE / "code", code)
    if name != "starter":
        for path in _solution_files(name).values():
            target = code / path.relative_to(TEMPLATE / "solutions" / name)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
    return code


def _solution_files(name: str) -> dict[str, Path]:
    """code/<relative path> -> file of solutions/<name>."""
    folder = TEMPLATE / "solutions" / name
    return {f"code/{p.relative_to(folder)}": p for p in sorted(folder.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts}


def _train_and_predict(code: Path, data: Path, work: Path) -> Path:
    """The two steps of participant.yaml, as the runner replays them: hidden training set, hidden test images."""
    model, predictions = work / "model", work / "predictions"
    for args in (["train.py", str(data / "hidden" / "train"), str(code / "weights"), str(model)],
                 ["predict.py", str(model), str(data / "hidden" / "test" / "inputs"), str(predictions)]):
        subprocess.run([sys.executable, str(code / args[0]), *args[1:]], check=True, cwd=work,
                       capture_output=True, text=True)
    return predictions


def test_better_solution_beats_the_starter_kit_on_hidden_test(data, tmp_path):
    scores = {}
    for name in ("starter", "better"):
        predictions = _train_and_predict(_solution(tmp_path, name), data, tmp_path / name)
        result = score_folder(predictions, data / "hidden" / "test" / "labels", scorer="instance_segmentation",
                              legacy_cvppp=True)
        assert not result.errors, result.errors
        scores[name] = result.metrics
    starter, better = scores["starter"], scores["better"]
    assert better["sbd"] > starter["sbd"] + 0.4, scores
    assert better["abs_dic"] < starter["abs_dic"], scores
    assert starter["fg_dice"] > 0.9 and better["fg_dice"] > 0.9, scores


def test_training_reads_the_weights(data, tmp_path):
    """Option 2.2: the starting weights change what the training step learns."""
    code = _solution(tmp_path, "starter")
    few = tmp_path / "few"
    shutil.copytree(data / "public" / "train", few)
    prior = json.loads((code / "weights" / "colour_prior.json").read_text())
    thresholds = []
    for weight in (1, 10_000):
        scaled = {key: [v * weight for v in prior[key]] for key in ("leaf", "soil")}
        (code / "weights" / "colour_prior.json").write_text(json.dumps(scaled))
        model = tmp_path / f"model-{weight}"
        subprocess.run([sys.executable, str(code / "train.py"), str(few), str(code / "weights"), str(model)],
                       check=True, capture_output=True)
        thresholds.append((model / "colour.json").read_text())
    assert thresholds[0] != thresholds[1]


# -- the whole challenge through the real runner (full image: the solutions need scipy and skimage) --


@pytest.fixture(scope="module")
def leaves_arena(session_dir):
    """A default-size leaves challenge, its runner configuration and a teams file of its own."""
    import datetime as dt

    import datalad.api as dl
    import yaml

    from jc_datalad import image
    from jc_datalad.challenge import new_challenge
    from jc_datalad.config import default_cache_dir, load_config

    full = image.build_image(image.RECIPES["full"], cache_dir=default_cache_dir() / "images")
    root = session_dir / "leaves"
    made = new_challenge("leaves", root / "org", challenge_id="leaves-test", image=str(full),
                         start=dt.datetime(2020, 1, 1, tzinfo=dt.UTC), weeks=52 * 50)
    spec = made.public / "challenge.yaml"
    spec.write_text(spec.read_text().replace("signed: true", "signed: false"))
    dl.save(dataset=str(made.public), message="Unsigned submissions for the tests", result_renderer="disabled")
    teams = root / "teams.yaml"
    teams.write_text("teams: {}\n")
    config = root / "runner.yaml"
    config.write_text(yaml.safe_dump({
        "challenge": str(made.public), "private": str(made.private), "results": str(root / "results"),
        "work": str(root / "jc-work"), "teams": str(teams), "workers": 2,
    }))
    return made, load_config(config), teams, root


@pytest.mark.slow
def test_better_solution_leads_through_the_runner(leaves_arena):
    from jc_datalad import participant
    from jc_datalad.records import Status
    from jc_datalad.runner import run_once
    from jc_datalad.teams import add_team

    made, config, teams, root = leaves_arena
    # the better solution's own starting weights (code/weights/colour_prior.npy) are binary: annexed,
    # pushed with the submission and fetched by the runner for the training step (option 2.2)
    solutions = {"starter": None, "better": _solution_files("better")}
    assert "code/weights/colour_prior.npy" in solutions["better"]
    heads = {}
    for team, files in solutions.items():
        repo = participant.make_team_repository(root / "teams" / f"{team}.git")
        add_team(teams, team, str(repo))
        clone = participant.clone_challenge(made.public, root / "participants" / team)
        # the two steps of participant.yaml: training (inputs/train, code/weights -> model), then prediction
        steps = participant.record_steps(clone, "leaves", files=files)
        assert [s.outputs for s in steps] == [("model",), ("predictions",)]
        assert sorted(p.name for p in (clone / "predictions").iterdir()) == \
            sorted(p.name.replace("_rgb.png", "_label.tif") for p in (clone / "inputs" / "test").glob("*_rgb.png"))
        heads[team] = participant.push_submission(clone, repo, "submission-1")

    report = run_once(config)
    by_team = {ev.team: ev for ev in report.evaluations}
    assert set(by_team) == set(solutions)
    for team, ev in by_team.items():
        assert ev.status is Status.EVALUATED, ev.reason
        assert ev.submission["commit"] == heads[team]
        assert [s.get("kind") for s in ev.steps] == ["training", "prediction"]
        assert all(s["status"] == "ok" for s in ev.steps)
        assert set(ev.metrics) >= {"sbd", "dic", "abs_dic", "fg_dice"}
        assert ev.metrics["n_images"] == generate.SIZES["default"].hidden_items
    starter, best = by_team["starter"].metrics, by_team["better"].metrics
    assert best["sbd"] > starter["sbd"] + 0.4, (starter, best)
    assert best["abs_dic"] < starter["abs_dic"], (starter, best)


@pytest.mark.slow
def test_submit_check_accepts_the_starter_kit(leaves_arena):
    from jc_datalad import participant
    from jc_datalad.submit import check_submission

    made, _config, _teams, root = leaves_arena
    clone = participant.clone_challenge(made.public, root / "participants" / "check")
    participant.record_steps(clone, "leaves")
    result = check_submission(clone)
    assert result.ok, result.problems
