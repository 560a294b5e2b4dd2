"""Simulated images of root systems, as a flatbed scanner or rhizotron camera sees them.

Each item is one grey-scale image (H, W), uint16: bright roots on darker, textured
soil, with specks of debris that are not roots. A root system is a few primary
roots growing downwards from the top edge in a random walk with gravitropism,
each carrying lateral roots that branch off at an angle and bend down.

The truth of each image:

- ``length_mm``: the total length of all roots inside the image, in millimetres
  (``PIXEL_MM`` millimetres per pixel);
- ``roots``: the number of roots (primary and lateral).

Everything is drawn from ``numpy.random.Generator`` streams seeded per
(seed, split, index), so the same seed and sizes give the same bytes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage

#: Size of a pixel in millimetres (a 254 dpi scan).
PIXEL_MM = 0.1
#: Root radius in pixels: primary roots, lateral roots.
RADIUS = (1.8, 1.1)
#: Shortest lateral root drawn (pixels); shorter ones are not roots yet.
MIN_LATERAL = 5


@dataclass(frozen=True)
class Sizes:
    """How much data to make: images per split and their size in pixels."""

    #: public training images (with labels) and public test images (inputs only)
    items: int = 6
    #: hidden test images
    hidden_items: int = 30
    height: int = 160
    width: int = 160


#: ``default`` runs in seconds (tests, the demo); ``large`` is a realistic scan size and count.
SIZES = {
    "default": Sizes(),
    "large": Sizes(items=40, hidden_items=300, height=1024, width=1024),
}


def item_seed(seed: int, split: str, index: int) -> int:
    """Seed of one image: independent streams for every (seed, split, index)."""
    state = np.random.SeedSequence([seed, zlib.crc32(split.encode()), index]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def _walk(rng: np.random.Generator, start: tuple[float, float], angle: float, length: int,
          shape: tuple[int, int], wiggle: float, gravity: float) -> np.ndarray:
    """Points (y, x) one pixel apart of a root growing from ``start``; it stops at the image's edge."""
    points = [start]
    y, x = start
    for _ in range(length):
        # gravitropism pulls the direction back towards straight down (angle pi/2)
        angle += rng.normal(0, wiggle) + gravity * (np.pi / 2 - angle)
        y, x = y + np.sin(angle), x + np.cos(angle)
        if not (0 <= y < shape[0] - 1 and 0 <= x < shape[1] - 1):
            break
        points.append((y, x))
    return np.array(points)


def root_system(rng: np.random.Generator, sizes: Sizes) -> list[tuple[np.ndarray, float]]:
    """The roots of one image: (points, radius) for each, primaries first."""
    shape = (sizes.height, sizes.width)
    roots = []
    for _ in range(int(rng.integers(1, 5))):
        start = (0.0, float(rng.uniform(0.1, 0.9) * sizes.width))
        length = int(rng.uniform(0.4, 1.1) * sizes.height)
        primary = _walk(rng, start, np.pi / 2 + rng.normal(0, 0.25), length, shape, 0.06, 0.04)
        roots.append((primary, RADIUS[0]))
        position = int(rng.uniform(6, 20))
        while position < len(primary) - 4:
            side = rng.choice((-1.0, 1.0))
            before = primary[max(position - 3, 0)]
            heading = np.arctan2(*(primary[position] - before)) if position else np.pi / 2
            lateral_length = int(rng.uniform(0.03, 0.3) * sizes.height)
            lateral = _walk(rng, tuple(primary[position]), heading + side * rng.uniform(0.7, 1.3),
                            lateral_length, shape, 0.08, 0.02)
            if len(lateral) > MIN_LATERAL:
                roots.append((lateral, RADIUS[1]))
            position += int(rng.uniform(8, 22))
    return roots


def truth(roots: list[tuple[np.ndarray, float]]) -> dict[str, float]:
    """Total length (mm, point to point) and the number of roots."""
    pixels = sum(float(np.hypot(*np.diff(points, axis=0).T).sum()) for points, _ in roots)
    return {"length_mm": pixels * PIXEL_MM, "roots": float(len(roots))}


def render(rng: np.random.Generator, roots: list[tuple[np.ndarray, float]], sizes: Sizes) -> np.ndarray:
    """A noisy scan: roots brighter than textured soil, debris specks, uneven light."""
    shape = (sizes.height, sizes.width)
    yy, xx = np.mgrid[0:sizes.height, 0:sizes.width]
    signal = np.zeros(shape)
    for points, radius in roots:
        brightness = rng.uniform(0.6, 1.0)
        ys, xs = np.rint(points[:, 0]).astype(int), np.rint(points[:, 1]).astype(int)
        # the distance to the root's centre line, within its bounding box only (large images)
        y0, x0 = max(ys.min() - 4, 0), max(xs.min() - 4, 0)
        y1, x1 = min(ys.max() + 5, sizes.height), min(xs.max() + 5, sizes.width)
        mask = np.zeros((y1 - y0, x1 - x0), dtype=bool)
        mask[ys - y0, xs - x0] = True
        distance = ndimage.distance_transform_edt(~mask)
        box = signal[y0:y1, x0:x1]
        signal[y0:y1, x0:x1] = np.maximum(box, brightness * np.clip(radius + 0.5 - distance, 0, 1))
    debris = np.zeros(shape)
    for _ in range(int(rng.integers(3, 12 + sizes.height * sizes.width // 4000))):
        cy, cx, r = rng.uniform(0, sizes.height), rng.uniform(0, sizes.width), rng.uniform(0.8, 2.2)
        level = rng.uniform(0.4, 0.9)
        y0, y1 = max(int(cy - 3), 0), min(int(cy + 4), sizes.height)
        x0, x1 = max(int(cx - 3), 0), min(int(cx + 4), sizes.width)
        speck = (yy[y0:y1, x0:x1] - cy) ** 2 + (xx[y0:y1, x0:x1] - cx) ** 2 <= r * r
        debris[y0:y1, x0:x1] = np.maximum(debris[y0:y1, x0:x1], level * speck)
    soil = 0.18 + 0.05 * ndimage.gaussian_filter(rng.normal(0, 1, shape), 2.0) / 0.14
    light = 1 + 0.15 * (xx / sizes.width - 0.5) + 0.1 * (yy / sizes.height - 0.5)
    image = light * np.maximum(soil, np.maximum(signal, debris))
    image = ndimage.gaussian_filter(image, 0.7) + rng.normal(0, 0.03, shape)
    return np.clip(np.rint(image * 4000 + 500), 0, 65535).astype(np.uint16)


def generate_item(seed: int, sizes: Sizes) -> tuple[np.ndarray, dict[str, float]]:
    """One image and its truth; the same seed and sizes always give the same."""
    rng = np.random.default_rng(seed)
    roots = root_system(rng, sizes)
    return render(rng, roots, sizes), truth(roots)


def _write_tiff(path: Path, image: np.ndarray) -> None:
    # no datetime and no software tag: the bytes depend on the data alone
    tifffile.imwrite(path, image, photometric="minisblack", compression="zlib", software=False,
                     datetime=None, resolution=(10 / PIXEL_MM, 10 / PIXEL_MM), resolutionunit="CENTIMETER")


def write_split(inputs: Path, labels: Path | None, *, split: str, count: int, sizes: Sizes, seed: int,
                columns: tuple[str, ...] = ("length_mm", "roots")) -> list[str]:
    """``count`` images ``<split>_NNN.tif`` into ``inputs``, and ``<split>_NNN.csv`` (``id`` and
    ``columns``) into ``labels``."""
    inputs.mkdir(parents=True, exist_ok=True)
    if labels is not None:
        labels.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        name = f"{split}_{index:03d}"
        image, values = generate_item(item_seed(seed, split, index), sizes)
        _write_tiff(inputs / f"{name}.tif", image)
        if labels is not None:
            row = ",".join(f"{values[c]:.4f}" if c == "length_mm" else f"{values[c]:.0f}" for c in columns)
            (labels / f"{name}.csv").write_text(f"id,{','.join(columns)}\n{name},{row}\n", encoding="utf-8")
        names.append(name)
    return names


def write_data(out: Path, sizes: Sizes, seed: int) -> None:
    """The layout of docs/templates.md: ``public/train/{images,labels}`` and
    ``hidden/test/{inputs,labels}`` (labels with both quantities, each scored: the regression
    scorer's ``columns`` option), ``public/test`` (images only)."""
    out = Path(out)
    write_split(out / "public" / "train" / "images", out / "public" / "train" / "labels", split="train",
                count=sizes.items, sizes=sizes, seed=seed)
    write_split(out / "public" / "test", None, split="test", count=sizes.items, sizes=sizes, seed=seed)
    write_split(out / "hidden" / "test" / "inputs", out / "hidden" / "test" / "labels", split="hidden",
                count=sizes.hidden_items, sizes=sizes, seed=seed)
