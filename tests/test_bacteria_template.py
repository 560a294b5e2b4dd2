"""The bacteria challenge template: generator, baseline and better solution."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import jinja2
import numpy as np
import pytest
import tifffile

from challenge_templates.bacteria import generate
from challenge_templates.bacteria.generate import Sizes, generate_item, write_split

TEMPLATE = Path(generate.__file__).parent
SMALL = Sizes(items=2, frames=2, height=96, width=96, cells=8)


def best_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over the objects of ``a`` of the best Dice with any object of ``b``."""
    n_a, n_b = int(a.max()), int(b.max())
    if n_a == 0 or n_b == 0:
        return float(n_a == n_b)
    pairs = a.astype(np.int64).ravel() * (n_b + 1) + b.ravel()
    overlap = np.bincount(pairs, minlength=(n_a + 1) * (n_b + 1)).reshape(n_a + 1, n_b + 1)
    area_a, area_b = overlap.sum(axis=1), overlap.sum(axis=0)
    dice = 2 * overlap[1:, 1:] / (area_a[1:, None] + area_b[None, 1:])
    return float(dice.max(axis=1)[area_a[1:] > 0].mean())


def symmetric_best_dice(truth: np.ndarray, prediction: np.ndarray) -> float:
    return min(best_dice(truth, prediction), best_dice(prediction, truth))


def mean_sbd(truth_dir: Path, prediction_dir: Path) -> float:
    scores = []
    for path in sorted(truth_dir.glob("*.tif")):
        truth, prediction = tifffile.imread(path), tifffile.imread(prediction_dir / path.name)
        scores += [symmetric_best_dice(t, p) for t, p in zip(truth, prediction, strict=True)]
    return float(np.mean(scores))


def test_symmetric_best_dice_helper() -> None:
    truth = np.zeros((4, 4), np.uint16)
    truth[:2], truth[2:] = 1, 2
    assert symmetric_best_dice(truth, truth) == 1.0
    merged = (truth > 0).astype(np.uint16)
    assert best_dice(merged, truth) == pytest.approx(2 / 3)
    assert symmetric_best_dice(truth, np.zeros_like(truth)) == 0.0


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default test split, with labels."""
    directory = tmp_path_factory.mktemp("bacteria")
    write_split(directory, split="test", sizes=Sizes(), seed=7)
    return directory


def test_item_shapes_dtypes_and_labels() -> None:
    image, labels = generate_item(3, SMALL)
    assert image.shape == labels.shape == (2, 96, 96)
    assert image.dtype == labels.dtype == np.uint16
    for frame_image, frame in zip(image, labels, strict=True):
        ids = np.unique(frame)
        assert ids[0] == 0 and (ids == np.arange(len(ids))).all(), "ids must be 0, 1..N"
        assert len(ids) - 1 >= SMALL.cells // 2
        # Cells are dark in phase contrast.
        assert frame_image[frame > 0].mean() < 0.8 * frame_image[frame == 0].mean()


def test_each_id_is_one_connected_cell() -> None:
    from skimage import measure

    _, labels = generate_item(5, Sizes())
    for frame in labels:
        pieces = measure.label(frame, background=0, connectivity=1)
        assert pieces.max() == frame.max()


def touching_pairs(frame: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of different cell ids that are horizontal or vertical neighbours."""
    pairs = set()
    for a, b in ((frame[:, 1:], frame[:, :-1]), (frame[1:], frame[:-1])):
        touch = (a != b) & (a > 0) & (b > 0)
        pairs |= {(min(p), max(p)) for p in zip(a[touch].tolist(), b[touch].tolist(), strict=True)}
    return pairs


def test_cells_touch_and_colonies_grow() -> None:
    _, labels = generate_item(11, Sizes())
    for frame in labels:
        assert len(touching_pairs(frame)) >= 3, "cells in a microcolony should touch"
    assert labels[-1].max() > labels[0].max(), "cells should divide over time"


def test_same_seed_same_bytes_and_splits_differ(tmp_path: Path) -> None:
    first = write_split(tmp_path / "a", split="test", sizes=SMALL, seed=7)
    second = write_split(tmp_path / "b", split="test", sizes=SMALL, seed=7)
    assert first == second == ["test_000.tif", "test_001.tif"]
    for folder in ("inputs", "labels"):
        for name in first:
            a = (tmp_path / "a" / folder / name).read_bytes()
            assert a == (tmp_path / "b" / folder / name).read_bytes()

    hidden = write_split(tmp_path / "h", split="hidden", sizes=SMALL, seed=7)
    other_seed = write_split(tmp_path / "s", split="test", sizes=SMALL, seed=8)
    test_image = tifffile.imread(tmp_path / "a" / "inputs" / first[0])
    for directory, names in (("h", hidden), ("s", other_seed)):
        for name in names:
            image = tifffile.imread(tmp_path / directory / "inputs" / name)
            assert image.shape == test_image.shape
            assert not np.array_equal(image, test_image)


def test_write_split_without_labels_and_cli(tmp_path: Path) -> None:
    generate.main(
        [str(tmp_path), "--split", "final", "--items", "1", "--frames", "2", "--size", "64"]
        + ["--cells", "4", "--seed", "1", "--no-labels"]
    )
    assert [p.name for p in (tmp_path / "inputs").iterdir()] == ["final_000.tif"]
    assert not (tmp_path / "labels").exists()
    assert tifffile.imread(tmp_path / "inputs" / "final_000.tif").shape == (2, 64, 64)


def run_solution(python: str, script: Path, inputs: Path, outputs: Path) -> None:
    result = subprocess.run(
        [python, str(script), str(inputs), str(outputs)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


def bookworm_python() -> str | None:
    """The system Python if it has the challenge container's packages (Debian bookworm)."""
    python = shutil.which("python3", path="/usr/bin")
    if python is None:
        return None
    probe = subprocess.run(
        [python, "-c", "import numpy, scipy, tifffile, skimage; print(skimage.__version__)"],
        capture_output=True,
        text=True,
    )
    return python if probe.returncode == 0 and probe.stdout.startswith("0.19.") else None


SOLUTIONS = {
    "baseline": TEMPLATE / "code" / "predict.py",
    "better": TEMPLATE / "solutions" / "better" / "predict.py",
}


@pytest.fixture(scope="module")
def predictions(data: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each solution run on the test split; checks that every output is valid."""
    out = tmp_path_factory.mktemp("predictions")
    for name, script in SOLUTIONS.items():
        run_solution(sys.executable, script, data / "inputs", out / name)
        for path in sorted((data / "inputs").glob("*.tif")):
            prediction = tifffile.imread(out / name / path.name)
            assert prediction.dtype == np.uint16
            assert prediction.shape == tifffile.imread(path).shape
            assert all(frame.max() > 0 for frame in prediction)
    return {name: out / name for name in SOLUTIONS}


@pytest.fixture(scope="module")
def scores(data: Path, predictions: dict[str, Path]) -> dict[str, float]:
    """Mean symmetric best Dice of each solution, and of a guess that ignores the image."""
    result = {name: mean_sbd(data / "labels", folder) for name, folder in predictions.items()}
    # Chance: the true labels of another item, i.e. plausible cells in the wrong places.
    labels = sorted((data / "labels").glob("*.tif"))
    chance = []
    for path, other in zip(labels, labels[1:] + labels[:1], strict=True):
        pairs = zip(tifffile.imread(path), tifffile.imread(other), strict=True)
        chance += [symmetric_best_dice(t, p) for t, p in pairs]
    result["chance"] = float(np.mean(chance))
    return result


def test_baseline_beats_chance(scores: dict[str, float]) -> None:
    assert scores["baseline"] > scores["chance"] + 0.1, scores


def test_better_solution_beats_baseline(scores: dict[str, float]) -> None:
    assert scores["better"] > scores["baseline"] + 0.2, scores
    assert scores["better"] > 0.75, scores


@pytest.mark.parametrize("name", sorted(SOLUTIONS))
def test_solutions_run_with_container_versions(
    name: str, data: Path, predictions: dict[str, Path], tmp_path: Path
) -> None:
    """The scripts use only APIs of numpy 1.24 / scikit-image 0.19, as in the container."""
    python = bookworm_python()
    if python is None:
        pytest.skip("no /usr/bin/python3 with python3-skimage 0.19 (apt install python3-skimage)")
    run_solution(python, SOLUTIONS[name], data / "inputs", tmp_path)
    for path in sorted(predictions[name].glob("*.tif")):
        ours, theirs = tifffile.imread(path), tifffile.imread(tmp_path / path.name)
        assert ours.shape == theirs.shape and theirs.dtype == np.uint16
        assert min(symmetric_best_dice(a, b) for a, b in zip(ours, theirs, strict=True)) > 0.99


def test_readme_renders() -> None:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE), undefined=jinja2.StrictUndefined
    )
    text = env.get_template("README.md.j2").render(
        title="Bacterial microcolony instance segmentation",
        challenge_id="bacteria-2026",
        container="jc-env",
        sizes=Sizes(),
        metrics=["sbd", "abs_dic", "f1_50", "ap50"],
        primary="sbd",
    )
    assert text.startswith("# Bacterial microcolony instance segmentation")
    for needed in ("## Task", "## Data", "## How to participate", "## Evaluation", "## Rules"):
        assert needed in text
    assert "datalad containers-run -n jc-env" in text
    assert "`sbd` (primary)" in text
    assert "(3, 128, 128)" in text


def test_small_fields_terminate():
    """A field too small for the requested cells fills up and stops, instead of looping forever."""
    from challenge_templates.bacteria.generate import Sizes, generate_item

    image, labels = generate_item(3, Sizes(items=1, frames=2, height=32, width=32, cells=40))
    assert image.shape == labels.shape == (2, 32, 32)
    assert labels.max() >= 1


def _division_fractions(seed: int) -> list[tuple[int, float]]:
    """(cells before, fraction of them that divided) for every growth step of one colony."""
    sizes = Sizes(items=1, frames=1, height=256, width=256, cells=4)
    colony = generate._Colony(np.random.default_rng(seed), sizes)
    steps = []
    for _ in range(60):
        before = len(colony)
        colony.step()
        steps.append((before, (len(colony) - before) / before))
    return steps


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_divisions_are_asynchronous(seed: int) -> None:
    """Once a colony has a few generations, no growth step divides a large share of its cells.

    With synchronous divisions (equal daughters, one division length) whole generations
    divide in the same step: fractions near 1, then 0, then 1 again.
    """
    fractions = [f for before, f in _division_fractions(seed) if 16 <= before <= 100]
    assert len(fractions) >= 5
    assert max(fractions) < 0.3, fractions


@pytest.mark.parametrize("seed", [3, 11])
def test_cell_counts_grow_without_big_jumps(seed: int) -> None:
    """Frame to frame, the count grows by about a quarter doubling (x1.19), never by half or more."""
    _, labels = generate_item(seed, Sizes(items=1, frames=10, height=160, width=160, cells=8))
    counts = [len(np.unique(frame)) - 1 for frame in labels]
    assert counts[-1] > 2 * counts[0], counts
    for before, after in zip(counts, counts[1:], strict=False):
        assert after < 1.55 * before, counts
        assert after >= 0.9 * before, counts
