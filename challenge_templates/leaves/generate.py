"""Synthetic top-view images of rosette plants with one label per leaf, as in the CVPPP data.

Each item is one plant seen from above, as in the A1-A4 sets of the CVPPP leaf
segmentation challenge (Minervini et al. 2016): leaves grow from the centre
along the golden angle, older leaves are larger and lie underneath, younger
ones are smaller, nearer the centre and on top, so they occlude the older ones.

- image ``plantNNN_rgb.png``: RGB, uint8, shape (H, W, 3): green leaves with a
  lighter midrib, darker rims, texture and shadows of the leaves above, on
  brown soil with perlite specks, moss and uneven lighting, plus sensor noise;
- label ``plantNNN_label.tif``: uint16, shape (H, W): 0 is background, the
  leaves are 1..N (consecutive, oldest first). TIFF, not PNG as in CVPPP: the
  scorers read label images from TIFF only.

Everything is drawn from one ``numpy.random.Generator`` seeded per item and
split (:func:`item_seed`), so the same seed gives the same arrays and bytes,
and no two splits share an image.

Command line::

    python -m challenge_templates.leaves.generate OUT --seed 7 [--size large]
"""

from __future__ import annotations

import argparse
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile
from scipy import ndimage as ndi
from skimage import io as skio
from skimage import segmentation

#: Divergence angle between successive leaves (radians): the golden angle of phyllotaxis.
GOLDEN_ANGLE = np.pi * (3 - np.sqrt(5))
#: Leaf pieces smaller than this fraction of the image (and than MIN_AREA_PIXELS) are dropped.
MIN_AREA_FRACTION = 0.0005
MIN_AREA_PIXELS = 6

#: The splits write_data writes, in the order their items are numbered: (split, part folders).
IMAGES, LABELS = "images", "labels"


@dataclass(frozen=True)
class Sizes:
    """How much data to make.

    ``items`` images in the public training set and as many public test inputs;
    ``hidden_items`` hidden test images; ``hidden_train_items`` images in the
    organizer's hidden training set. Each plant has between ``min_leaves`` and
    ``max_leaves`` leaves.
    """

    items: int = 3
    hidden_items: int = 6
    hidden_train_items: int = 6
    height: int = 96
    width: int = 96
    min_leaves: int = 5
    max_leaves: int = 20


#: ``default`` runs in seconds (tests, the demo); ``large`` is the size of CVPPP's A1 (500 x 530 images).
SIZES = {
    "default": Sizes(),
    "large": Sizes(items=128, hidden_items=200, hidden_train_items=400, height=530, width=500),
}


def item_seed(seed: int, split: str, index: int) -> int:
    """Seed of one item: independent streams for every (seed, split, index)."""
    split_key = zlib.crc32(split.encode("utf-8"))
    state = np.random.SeedSequence([seed, split_key, index]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


@dataclass(frozen=True)
class _Leaf:
    angle: float  #: direction from the plant centre to the tip (radians, image axes y down)
    petiole: float  #: length of the stalk from the centre to the blade (pixels)
    stalk_width: float  #: half the stalk's width
    length: float  #: half the blade's length
    width: float  #: half the blade's width
    taper: float  #: > 0: the blade is wider towards the tip
    colour: tuple[float, float, float]  #: RGB in [0, 1]


def _green(rng: np.random.Generator, youth: float) -> tuple[float, float, float]:
    """A leaf green: young leaves lighter and more yellow, every leaf a little different."""
    hue = rng.uniform(0.24, 0.33) - 0.03 * youth  # fraction of the colour circle: 0.33 is pure green
    saturation = rng.uniform(0.45, 0.75)
    value = rng.uniform(0.38, 0.6) + 0.15 * youth
    h6 = hue * 6
    sector = int(h6) % 6
    frac = h6 - int(h6)
    p, q, t = value * (1 - saturation), value * (1 - saturation * frac), value * (1 - saturation * (1 - frac))
    rgb = [(value, t, p), (q, value, p), (p, value, t), (p, q, value), (t, p, value), (value, p, q)][sector]
    return float(rgb[0]), float(rgb[1]), float(rgb[2])


def _leaves(rng: np.random.Generator, sizes: Sizes, radius: float) -> list[_Leaf]:
    """The leaves of one plant, oldest (outermost, largest) first."""
    count = int(rng.integers(sizes.min_leaves, sizes.max_leaves + 1))
    start = rng.uniform(0, 2 * np.pi)
    leaves = []
    for i in range(count):
        youth = i / max(count - 1, 1)  # 0: the oldest leaf, 1: the youngest
        length = radius * (0.28 - 0.14 * youth) * rng.uniform(0.85, 1.15)
        leaves.append(_Leaf(
            angle=start + i * GOLDEN_ANGLE + rng.normal(0, 0.12),
            petiole=radius * (0.42 - 0.34 * youth) * rng.uniform(0.8, 1.2),
            stalk_width=max(0.9, radius * 0.035 * (1 - 0.4 * youth)),
            length=length,
            width=length * rng.uniform(0.5, 0.8),
            taper=rng.uniform(0.0, 0.3),
            colour=_green(rng, youth),
        ))
    return leaves


def _draw_leaf(leaf: _Leaf, centre: np.ndarray, shape: tuple[int, int]) -> tuple[
        tuple[slice, slice], np.ndarray, np.ndarray, np.ndarray]:
    """Where one leaf lies: its bounding box, the mask in it and the leaf coordinates (along, across)."""
    direction = np.array([np.sin(leaf.angle), np.cos(leaf.angle)])
    tip = centre + direction * (leaf.petiole + 2 * leaf.length)
    y0 = max(int(min(centre[0], tip[0]) - leaf.width - 3), 0)
    y1 = min(int(max(centre[0], tip[0]) + leaf.width + 4), shape[0])
    x0 = max(int(min(centre[1], tip[1]) - leaf.width - 3), 0)
    x1 = min(int(max(centre[1], tip[1]) + leaf.width + 4), shape[1])
    box = (slice(y0, max(y1, y0)), slice(x0, max(x1, x0)))
    py = np.arange(y0, max(y1, y0))[:, None] + 0.5 - centre[0]
    px = np.arange(x0, max(x1, x0))[None, :] + 0.5 - centre[1]
    along = py * direction[0] + px * direction[1]  # distance from the centre towards the tip
    across = -py * direction[1] + px * direction[0]
    # blade: an egg-shaped ellipse beyond the stalk; u in [-1, 1] from base to tip
    u = (along - leaf.petiole - leaf.length) / leaf.length
    half_width = leaf.width * (1 + leaf.taper * u)
    v = across / np.maximum(half_width, 1e-3)
    blade = u**2 + v**2 <= 1.0
    stalk = (along >= 0) & (along <= leaf.petiole + 0.3 * leaf.length) & (np.abs(across) <= leaf.stalk_width)
    return box, blade | stalk, u, v


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray:
    """Gaussian noise smoothed to a texture of grain ``sigma``, scaled to a standard deviation of 1."""
    noise = ndi.gaussian_filter(rng.normal(0, 1, shape), sigma)
    return noise / max(float(noise.std()), 1e-9)


def _soil(rng: np.random.Generator, height: int, width: int, scale: float) -> np.ndarray:
    """Brown soil with grain, perlite specks and a few patches of moss, RGB in [0, 1]."""
    base = np.array([0.36, 0.27, 0.19]) * rng.uniform(0.75, 1.15)
    grain = 0.12 * _smooth_noise(rng, (height, width), 0.8 * scale) + 0.08 * _smooth_noise(
        rng, (height, width), 4 * scale)
    soil = base[None, None, :] * (1 + grain[..., None])
    # perlite: small white grains (a pale threshold must not take them for leaves)
    grow = max(0, round(scale / 2))  # grains a pixel wide at the default size, a few pixels when larger
    specks = rng.random((height, width)) < 0.004 / (1 + 2 * grow) ** 2
    if grow:
        specks = ndi.binary_dilation(specks, iterations=grow)
    soil[specks] = rng.uniform(0.75, 0.95)
    # moss: dull, dark olive patches; greenish but much less saturated than leaves
    moss = _smooth_noise(rng, (height, width), 6 * scale) > rng.uniform(1.6, 2.4)
    soil[moss] = soil[moss] * 0.6 + np.array([0.22, 0.25, 0.13]) * 0.4
    return soil


def _lighting(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A smooth gradient times vignetting, mean about 1."""
    y = np.linspace(-1, 1, height)[:, None]
    x = np.linspace(-1, 1, width)[None, :]
    direction = rng.uniform(0, 2 * np.pi)
    gradient = 1 + rng.uniform(0.05, 0.2) * (np.sin(direction) * y + np.cos(direction) * x)
    vignette = 1 - rng.uniform(0.05, 0.2) * (y**2 + x**2) / 2
    return gradient * vignette


def generate_item(seed: int, sizes: Sizes) -> tuple[np.ndarray, np.ndarray]:
    """One plant: the RGB image (uint8, (H, W, 3)) and its leaf labels (uint16, (H, W)).

    The same ``seed`` and ``sizes`` always give the same arrays.
    """
    rng = np.random.default_rng(seed)
    height, width = sizes.height, sizes.width
    scale = min(height, width) / 96  # 1 at the default size: grain and shadows scale with the image
    radius = min(height, width) * rng.uniform(0.32, 0.45)
    centre = np.array([height, width]) / 2 + rng.normal(0, 0.04, 2) * np.array([height, width])
    image = _soil(rng, height, width, scale)
    labels = np.zeros((height, width), dtype=np.uint16)
    leaf_texture = _smooth_noise(rng, (height, width), 1.2 * scale)
    shadow_width = max(1, round(1.5 * scale))
    for number, leaf in enumerate(_leaves(rng, sizes, radius), start=1):
        box, mask, u, v = _draw_leaf(leaf, centre, (height, width))
        if not mask.any():
            continue
        # the leaf above casts a thin shadow on what lies under its rim
        rim = ndi.binary_dilation(mask, iterations=shadow_width) & ~mask
        image[box][rim] *= rng.uniform(0.55, 0.75)
        r2 = np.clip(u**2 + v**2, 0, 1)
        shade = 0.8 + 0.3 * (1 - r2)  # darker towards the rim, as a curved blade is lit
        midrib = 0.18 * np.exp(-((v / 0.1) ** 2)) * (np.abs(u) < 0.9)
        light = (shade + midrib + 0.06 * leaf_texture[box])[..., None] * np.array(leaf.colour)
        image[box][mask] = light[mask]
        labels[box][mask] = number
    labels = _clean(labels, max(MIN_AREA_PIXELS, round(MIN_AREA_FRACTION * height * width)))
    image *= _lighting(rng, height, width)[..., None] * rng.uniform(0.9, 1.1)
    image += rng.normal(0, 0.015, image.shape)
    rgb = np.clip(np.rint(image * 255), 0, 255).astype(np.uint8)
    return rgb, labels


def _clean(labels: np.ndarray, min_area: int) -> np.ndarray:
    """Drop leaves whose visible part is tiny (hidden behind others), renumber 1..N oldest first."""
    area = np.bincount(labels.ravel())
    small = area < min_area
    small[0] = False
    labels = np.where(small[labels], 0, labels)
    return segmentation.relabel_sequential(labels)[0].astype(np.uint16)


def _write_png(path: Path, rgb: np.ndarray) -> None:
    # skimage writes PNG through imageio and Pillow: no time or text chunks, so the same pixels
    # give the same bytes
    skio.imsave(str(path), rgb, check_contrast=False)


def _write_labels(path: Path, labels: np.ndarray) -> None:
    # No datetime and no software tag, so the bytes depend on the labels alone.
    tifffile.imwrite(path, labels, photometric="minisblack", compression="zlib", software=False, datetime=None)


def write_split(
    images: Path | None, labels: Path | None, *, split: str, count: int, first: int, sizes: Sizes, seed: int
) -> list[str]:
    """Write ``count`` plants numbered from ``first``: ``images/plantNNN_rgb.png`` and
    ``labels/plantNNN_label.tif`` (either folder may be None: not written). Returns the plant names."""
    for folder in (images, labels):
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        name = f"plant{first + index:03d}"
        rgb, label = generate_item(item_seed(seed, split, index), sizes)
        if images is not None:
            _write_png(images / f"{name}_rgb.png", rgb)
        if labels is not None:
            _write_labels(labels / f"{name}_label.tif", label)
        names.append(name)
    return names


def write_data(out: Path, sizes: Sizes, seed: int) -> None:
    """Everything a challenge needs, in the layout of docs/templates.md.

    ``public/train/{images,labels}``, ``public/test/`` (images only),
    ``hidden/train/{images,labels}`` (the organizer's larger training set) and
    ``hidden/test/{inputs,labels}``. Each split draws from its own seeds, and
    plants are numbered on across the splits, so no name and no image repeats.
    """
    out = Path(out)
    first = 1
    splits = (
        ("train", sizes.items, out / "public" / "train" / IMAGES, out / "public" / "train" / LABELS),
        ("test", sizes.items, out / "public" / "test", None),
        ("hidden-train", sizes.hidden_train_items, out / "hidden" / "train" / IMAGES,
         out / "hidden" / "train" / LABELS),
        ("hidden-test", sizes.hidden_items, out / "hidden" / "test" / "inputs", out / "hidden" / "test" / LABELS),
    )
    for split, count, images, labels in splits:
        write_split(images, labels, split=split, count=count, first=first, sizes=sizes, seed=seed)
        first += count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder to write public/ and hidden/ into")
    parser.add_argument("--size", choices=sorted(SIZES), default="default", help="how much data")
    parser.add_argument("--seed", type=int, default=7, help="seed of the whole data set")
    args = parser.parse_args(argv)
    write_data(args.out, SIZES[args.size], args.seed)


if __name__ == "__main__":
    main()
