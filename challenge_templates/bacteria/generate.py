"""Synthetic phase-contrast time-lapses of growing bacterial microcolonies.

Each item is a short time-lapse (T, H, W) of rod-shaped cells that grow, push
each other apart and divide, each at its own time (unequal daughters, spread
division lengths and growth rates, a few founders per colony), so that counts
grow smoothly, colonies become dense and cells touch.
The image is rendered from the instance labels, so both always agree:

- labels: uint16, 0 is background, cells are 1..N in every frame; a cell keeps
  its id from frame to frame while every cell is in view (a division gives
  the mother's id to one daughter and the next free id to the other);
- image: uint16, phase-contrast style: dark cells on a brighter background,
  a bright halo around colonies, thin bright lines where cells touch,
  uneven illumination (a gradient and vignetting) and Poisson + Gaussian noise.

Everything is drawn from one ``numpy.random.Generator`` seeded per item, so the
same seed gives the same arrays and, through :func:`write_split`, the same bytes.

Command line::

    python -m challenge_templates.bacteria.generate OUT --split test --items 6 \\
        --frames 3 --size 128 --seed 7 [--no-labels]
"""

from __future__ import annotations

import argparse
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from skimage import filters, measure, segmentation

#: Cell radius in pixels (half the width of a rod) used to draw the labels.
RADIUS = 3.5
#: Radius the mechanics keep apart: a little smaller, so neighbours touch.
CONTACT_RADIUS = 3.1
#: Total cell length (tip to tip, pixels) at which a cell divides, mean and spread: wide
#: enough, with the spread of growth rates and unequal daughters, that sisters drift out of
#: step within a generation or two (divisions asynchronous, counts growing smoothly).
DIVISION_LENGTH = (30.0, 4.5)
#: Growth rate of a cell relative to the mean (mean 1), spread, and clipping range.
RATE = (0.25, 0.5, 1.6)
#: Cells a colony starts from.
FOUNDERS = 3
#: A daughter's share of its mother's length: mean 1/2, this spread.
DAUGHTER_SHARE = 0.06
#: Growth steps per doubling time, and growth steps between two frames.
STEPS_PER_DOUBLING = 8
STEPS_PER_FRAME = 2
#: Cells stop growing once their total area is this fraction of the frame.
MAX_COVERAGE = 0.6
#: Mechanics iterations after each growth step.
RELAX_ITERATIONS = 12
#: Label fragments smaller than this (pixels) are dropped, e.g. slivers at the border.
MIN_AREA = 12
#: Brightness range of the lines where two cells touch (background is 1, cells about 0.5).
SEPTUM = (0.2, 0.8)
#: Points along each rod used by the mechanics.
BEADS = 5


@dataclass(frozen=True)
class Sizes:
    """How much data to make.

    ``cells`` is the approximate number of cells in frame 0 of each item,
    shared among roughly one colony per six cells.
    """

    items: int = 6
    frames: int = 3
    height: int = 128
    width: int = 128
    cells: int = 12
    #: items of the hidden test split
    hidden_items: int = 6


#: ``default`` runs in seconds (tests, the demo); ``large`` is closer to a real time-lapse study.
SIZES = {
    "default": Sizes(),
    "large": Sizes(items=20, frames=20, height=512, width=512, cells=40, hidden_items=100),
}


class _Colony:
    """Rods as arrays: centre (N, 2) as (y, x), angle, length, division length, growth rate."""

    def __init__(self, rng: np.random.Generator, sizes: Sizes) -> None:
        self.rng = rng
        colonies = max(1, round(sizes.cells / 6))
        self.shape = np.array([sizes.height, sizes.width], dtype=float)
        # each colony starts from a few founders at independent points of their cycles: one
        # founder would make its first generations divide in step (counts doubling at once)
        founders = colonies * FOUNDERS
        origin = np.repeat(rng.uniform(0.3, 0.7, size=(colonies, 2)) * self.shape, FOUNDERS, axis=0)
        self.centre = origin + rng.normal(0, 6.0, size=(founders, 2))
        self.angle = rng.uniform(0, np.pi, founders)
        self.length = rng.uniform(15, 28, founders)
        self.division = rng.normal(*DIVISION_LENGTH, founders)
        self.rate = _rates(rng, founders)

    def __len__(self) -> int:
        return len(self.length)

    def axis(self) -> np.ndarray:
        return np.stack([np.sin(self.angle), np.cos(self.angle)], axis=1)

    def half_segment(self) -> np.ndarray:
        """Half the length of the rod's axis (the part between its round caps)."""
        return np.maximum(self.length / 2 - RADIUS, 0.0)

    def step(self) -> None:
        """Grow every cell by one step, divide the long ones, then relax overlaps.

        A confluent field stops growing, as real colonies do when they run out
        of room; it also keeps long time-lapses cheap.
        """
        area = np.pi * RADIUS**2 + 2 * RADIUS * (2 * self.half_segment())
        # growth slows as the field fills (no sudden stop, so counts level off smoothly)
        room = max(0.0, 1.0 - float(area.sum()) / (MAX_COVERAGE * float(self.shape.prod())))
        if room > 0:
            self.length *= np.exp(min(1.0, 4 * room) * self.rate * np.log(2) / STEPS_PER_DOUBLING)
        self._divide()
        self._relax()
        self._forget_outside()

    def _divide(self) -> None:
        mothers = np.flatnonzero(self.length >= self.division)
        if not len(mothers):
            return
        rng = self.rng
        n = len(mothers)
        axis = self.axis()[mothers]
        # Daughters sit end to end, slightly kinked and shifted sideways, so that
        # colonies buckle into two-dimensional patches instead of long chains.
        offset = (self.length[mothers] / 4)[:, None] * axis
        offset += rng.normal(0, 0.6, n)[:, None] * np.stack([axis[:, 1], -axis[:, 0]], axis=1)
        daughter_centre = self.centre[mothers] + offset
        self.centre[mothers] -= offset
        # unequal daughters: each starts its own cycle at a different point
        share = rng.normal(0.5, DAUGHTER_SHARE, n).clip(0.35, 0.65)
        daughter_length = self.length[mothers] * (1 - share)
        self.length[mothers] *= share
        daughter_angle = self.angle[mothers] + rng.normal(0, 0.2, n)
        self.angle[mothers] += rng.normal(0, 0.2, n)
        self.division[mothers] = rng.normal(*DIVISION_LENGTH, n)
        self.rate[mothers] = _rates(rng, n)
        self.centre = np.concatenate([self.centre, daughter_centre])
        self.angle = np.concatenate([self.angle, daughter_angle])
        self.length = np.concatenate([self.length, daughter_length])
        self.division = np.concatenate([self.division, rng.normal(*DIVISION_LENGTH, n)])
        self.rate = np.concatenate([self.rate, _rates(rng, n)])

    def _forget_outside(self) -> None:
        """Drop cells pushed far out of view: keeps long time-lapses from growing without bound."""
        margin = self.length[:, None] + 2 * RADIUS
        inside = ((self.centre > -margin) & (self.centre < self.shape + margin)).all(axis=1)
        if inside.all():
            return
        for name in ("centre", "angle", "length", "division", "rate"):
            setattr(self, name, getattr(self, name)[inside])

    def _relax(self) -> None:
        """Push overlapping rods apart (translation and rotation), bead model.

        Each rod is a chain of beads along its axis; overlapping beads of two
        rods push each other apart. Beads are compared only for pairs of rods
        whose bounding circles meet.
        """
        n = len(self)
        if n < 2:
            return
        first, second = np.triu_indices(n, 1)
        positions = np.linspace(-1.0, 1.0, BEADS)
        for _ in range(RELAX_ITERATIONS):
            axis = self.axis()
            half = self.half_segment()
            offsets = (half[:, None] * positions)[:, :, None] * axis[:, None, :]
            beads = self.centre[:, None, :] + offsets
            near = np.hypot(*(self.centre[first] - self.centre[second]).T)
            close = near < half[first] + half[second] + 2 * CONTACT_RADIUS
            i, j = first[close], second[close]
            if not len(i):
                return
            delta = beads[i][:, :, None, :] - beads[j][:, None, :, :]
            distance = np.hypot(delta[..., 0], delta[..., 1])
            overlap = np.clip(2 * CONTACT_RADIUS - distance, 0.0, None)
            if overlap.max() < 0.05:
                return
            push = (0.5 * overlap / np.maximum(distance, 1e-3))[..., None] * delta
            force = np.zeros_like(beads)
            np.add.at(force, i, push.sum(axis=2))
            np.add.at(force, j, -push.sum(axis=1))
            touched = np.maximum((np.abs(force).sum(axis=2) > 0).sum(axis=1), 1)
            self.centre += 0.5 * force.sum(axis=1) / touched[:, None]
            # Generalised force on the angle: force . d(offset)/d(angle), offsets are (y, x).
            torque = (force[..., 0] * offsets[..., 1] - force[..., 1] * offsets[..., 0]).sum(axis=1)
            inertia = (offsets**2).sum(axis=(1, 2)) + 1.0
            self.angle += 0.5 * torque / inertia


def _rates(rng: np.random.Generator, n: int) -> np.ndarray:
    spread, low, high = RATE
    return rng.normal(1.0, spread, n).clip(low, high)


def _rasterize(colony: _Colony, height: int, width: int) -> np.ndarray:
    """Label image of the rods: each pixel goes to the rod it is deepest inside."""
    labels = np.zeros((height, width), dtype=np.uint16)
    depth = np.zeros((height, width))
    axis = colony.axis()
    half = colony.half_segment()
    for k, ((cy, cx), (uy, ux), h) in enumerate(zip(colony.centre, axis, half, strict=True)):
        reach_y = abs(uy) * h + RADIUS + 1
        reach_x = abs(ux) * h + RADIUS + 1
        y0, y1 = max(int(cy - reach_y), 0), min(int(cy + reach_y) + 2, height)
        x0, x1 = max(int(cx - reach_x), 0), min(int(cx + reach_x) + 2, width)
        if y0 >= y1 or x0 >= x1:
            continue
        py = np.arange(y0, y1)[:, None] - cy
        px = np.arange(x0, x1)[None, :] - cx
        along = np.clip(py * uy + px * ux, -h, h)
        inside = RADIUS - np.hypot(py - along * uy, px - along * ux)
        region = depth[y0:y1, x0:x1]
        deeper = inside > region
        region[deeper] = inside[deeper]
        labels[y0:y1, x0:x1][deeper] = k + 1
    return _clean(labels)


def _clean(labels: np.ndarray) -> np.ndarray:
    """Keep one connected piece per id, drop tiny pieces, renumber 1..N in order."""
    pieces = measure.label(labels, background=0, connectivity=1)
    area = np.bincount(pieces.ravel())
    owner = np.zeros(len(area), dtype=labels.dtype)
    owner[pieces.ravel()] = labels.ravel()
    keep = area >= MIN_AREA
    keep[0] = False
    # Of several pieces with the same id keep the largest (sort by id, then area).
    order = np.lexsort((-area, owner))
    first_of_owner = np.ones(len(order), dtype=bool)
    first_of_owner[1:] = owner[order][1:] != owner[order][:-1]
    keep[order[~first_of_owner]] = False
    cleaned = np.where(keep[pieces], labels, 0).astype(np.uint16)
    return segmentation.relabel_sequential(cleaned)[0].astype(np.uint16)


def _touching(labels: np.ndarray) -> np.ndarray:
    """Pixels on a boundary between two different cells."""
    edge = np.zeros(labels.shape, dtype=bool)
    for axis in (0, 1):
        a = labels.take(range(labels.shape[axis] - 1), axis=axis)
        b = labels.take(range(1, labels.shape[axis]), axis=axis)
        differ = (a != b) & (a > 0) & (b > 0)
        pad_after = [(0, 0), (0, 0)]
        pad_after[axis] = (0, 1)
        pad_before = [(0, 0), (0, 0)]
        pad_before[axis] = (1, 0)
        edge |= np.pad(differ, pad_after) | np.pad(differ, pad_before)
    return edge


def _illumination(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth gradient times vignetting, mean about 1, fixed for the whole time-lapse."""
    y = np.linspace(-1, 1, height)[:, None]
    x = np.linspace(-1, 1, width)[None, :]
    direction = rng.uniform(0, 2 * np.pi)
    gradient = 1 + rng.uniform(0.1, 0.25) * (np.sin(direction) * y + np.cos(direction) * x)
    centre_y, centre_x = rng.uniform(-0.3, 0.3, 2)
    vignette = 1 - rng.uniform(0.15, 0.3) * ((y - centre_y) ** 2 + (x - centre_x) ** 2) / 2
    return gradient * vignette


def _render(
    labels: np.ndarray, rng: np.random.Generator, light: np.ndarray, photons: float
) -> np.ndarray:
    """Phase-contrast-like frame for a label image."""
    cells = (labels > 0).astype(float)
    darkness = rng.uniform(0.45, 0.6, int(labels.max()) + 1)
    darkness[0] = 0.0
    dark = filters.gaussian(darkness[labels], sigma=0.9)
    edge = filters.gaussian(cells, sigma=0.9)
    halo = np.clip(filters.gaussian(cells, sigma=3.0) - edge, 0.0, None)
    # Contacts between cells show as thin bright lines, some clear, some faint.
    contrast = rng.uniform(*SEPTUM, int(labels.max()) + 1)
    septum = filters.gaussian(np.where(_touching(labels), contrast[labels], 0.0), sigma=0.6)
    texture = filters.gaussian(rng.normal(0, 1, labels.shape), sigma=1.5)
    relative = 1 - dark + 1.6 * halo + septum + 0.04 * texture * edge
    expected = photons * light * np.clip(relative, 0.05, None) * rng.uniform(0.97, 1.03)
    counts = rng.poisson(expected) + rng.normal(100.0, 8.0, labels.shape)
    return np.clip(np.rint(counts), 0, np.iinfo(np.uint16).max).astype(np.uint16)


def generate_item(seed: int, sizes: Sizes) -> tuple[np.ndarray, np.ndarray]:
    """One time-lapse and its instance labels, both uint16 of shape (T, H, W).

    The same ``seed`` and ``sizes`` always give the same arrays.
    """
    rng = np.random.default_rng(seed)
    colony = _Colony(rng, sizes)
    # a small field fills up before it holds `cells` cells: confluence stops growth, so bound the steps
    for _ in range(20 * STEPS_PER_DOUBLING):
        if len(colony) >= sizes.cells:
            break
        colony.step()
    light = _illumination(rng, sizes.height, sizes.width)
    photons = rng.uniform(900, 1600)
    images, labels = [], []
    for frame in range(sizes.frames):
        if frame:
            for _ in range(STEPS_PER_FRAME):
                colony.step()
        frame_labels = _rasterize(colony, sizes.height, sizes.width)
        labels.append(frame_labels)
        images.append(_render(frame_labels, rng, light, photons))
    return np.stack(images), np.stack(labels)


def item_seed(seed: int, split: str, index: int) -> int:
    """Seed of one item: independent streams for every (seed, split, index)."""
    split_key = zlib.crc32(split.encode("utf-8"))
    state = np.random.SeedSequence([seed, split_key, index]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def _write_tiff(path: Path, data: np.ndarray) -> None:
    # No datetime and no software tag, so the bytes depend on the data alone.
    tifffile.imwrite(
        path,
        data,
        photometric="minisblack",
        compression="zlib",
        metadata={"axes": "TYX"},
        software=False,
        datetime=None,
    )


def write_split(
    directory: Path,
    *,
    split: str,
    sizes: Sizes,
    seed: int,
    labels: bool = True,
    inputs: bool = True,
) -> list[str]:
    """Write ``directory/inputs/<split>_NNN.tif`` and ``directory/labels/<split>_NNN.tif``.

    Returns the file names (the same in both folders). Each split draws from its
    own seeds, so hidden data never repeats public data.
    """
    directory = Path(directory)
    folders = [name for name, wanted in (("inputs", inputs), ("labels", labels)) if wanted]
    for folder in folders:
        (directory / folder).mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(sizes.items):
        name = f"{split}_{index:03d}.tif"
        image, label = generate_item(item_seed(seed, split, index), sizes)
        arrays = {"inputs": image, "labels": label}
        for folder in folders:
            _write_tiff(directory / folder / name, arrays[folder])
        names.append(name)
    return names


def write_data(out: Path, sizes: Sizes, seed: int) -> None:
    """Everything a challenge needs, in the layout of docs/templates.md.

    ``public/train/{images,labels}``, ``public/test/`` (inputs only) and
    ``hidden/test/{inputs,labels}``, each split from its own seeds.
    """
    out = Path(out)
    write_split(out / "train-split", split="train", sizes=sizes, seed=seed)
    train = out / "public" / "train"
    train.mkdir(parents=True)
    (out / "train-split" / "inputs").rename(train / "images")
    (out / "train-split" / "labels").rename(train / "labels")
    (out / "train-split").rmdir()
    write_split(out / "test-split", split="test", sizes=sizes, seed=seed, labels=False)
    (out / "test-split" / "inputs").rename(out / "public" / "test")
    (out / "test-split").rmdir()
    hidden = Sizes(**{**vars(sizes), "items": sizes.hidden_items})
    write_split(out / "hidden" / "test", split="hidden", sizes=hidden, seed=seed)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write inputs/ and labels/ into")
    parser.add_argument("--split", default="test", help="split name, also the file name prefix")
    parser.add_argument("--items", type=int, default=Sizes.items, help="time-lapses to write")
    parser.add_argument("--frames", type=int, default=Sizes.frames, help="frames per time-lapse")
    parser.add_argument("--size", type=int, default=Sizes.height, help="frame height and width")
    parser.add_argument("--cells", type=int, default=Sizes.cells, help="cells in frame 0, roughly")
    parser.add_argument("--seed", type=int, default=0, help="seed of the whole data set")
    parser.add_argument("--no-labels", action="store_true", help="write the inputs only")
    args = parser.parse_args(argv)
    sizes = Sizes(args.items, args.frames, args.size, args.size, args.cells, args.items)
    write_split(args.out, split=args.split, sizes=sizes, seed=args.seed, labels=not args.no_labels)


if __name__ == "__main__":
    main()
