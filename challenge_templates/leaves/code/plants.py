"""What train.py and predict.py share: reading the data, the colour feature, writing labels.

Runs with Python 3.11, numpy 1.24, scipy 1.10, scikit-image 0.19 and tifffile
2023.2.3 (the challenge container, Debian bookworm) and with newer versions.
"""

import json
from pathlib import Path

import numpy as np
import tifffile
from skimage import io

#: Histogram bins of the excess-green feature, which lies in [-1, 2].
BINS = np.linspace(-1.0, 2.0, 121)


def plant_name(path):
    """``plant012`` for ``plant012_rgb.png`` (and for ``plant012_label.tif``)."""
    stem = Path(path).stem
    for suffix in ("_rgb", "_label"):
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def label_file(name):
    """The file name a prediction (or a label) of plant ``name`` has: ``plant012_label.tif``."""
    return f"{name}_label.tif"


def images_in(folder):
    """Every ``*_rgb.png`` in ``folder``, sorted; exits with a hint when there is none."""
    paths = sorted(Path(folder).glob("*_rgb.png"))
    if not paths:
        raise SystemExit(f"no *_rgb.png images in {folder}: is the data there (datalad get)?")
    return paths


def read_rgb(path):
    """An RGB image as float in [0, 1], shape (H, W, 3) (an alpha channel is dropped)."""
    image = io.imread(str(path))
    if image.ndim == 2:
        image = np.stack([image] * 3, axis=-1)
    return image[..., :3].astype(np.float64) / 255.0


def excess_green(rgb):
    """2g - r - b on chromaticity (colour without brightness): high on leaves, low on soil."""
    total = rgb.sum(axis=-1) + 1e-6
    r, g, b = (rgb[..., k] / total for k in range(3))
    return 2 * g - r - b


def read_training_pairs(train_dir):
    """(name, image, labels) of every training plant: images/plantNNN_rgb.png with labels/plantNNN_label.tif."""
    train_dir = Path(train_dir)
    pairs = []
    for path in images_in(train_dir / "images"):
        name = plant_name(path)
        labels = tifffile.imread(train_dir / "labels" / label_file(name))
        pairs.append((name, read_rgb(path), labels))
    return pairs


def remove_small(labels, min_area):
    """Set labels smaller than ``min_area`` pixels to 0."""
    area = np.bincount(labels.ravel())
    small = area < min_area
    small[0] = False
    return np.where(small[labels], 0, labels)


def relabel(labels):
    """Ids 1..N in order, 0 for background: the CVPPP scoring counts leaves as the largest id."""
    ids = np.unique(labels)
    ids = ids[ids != 0]
    lookup = np.zeros(int(labels.max()) + 1, dtype=np.uint16)
    lookup[ids] = np.arange(1, len(ids) + 1)
    return lookup[labels]


def write_labels(folder, name, labels):
    """Write ``folder/plantNNN_label.tif``: uint16, 0 background, leaves 1..N."""
    tifffile.imwrite(Path(folder) / label_file(name), relabel(labels).astype(np.uint16), photometric="minisblack")


def load_prior(weights_dir):
    """The starting histograms (leaf, soil) of the colour feature, shape (2, len(BINS) - 1).

    ``colour_prior.npy`` (binary, annexed: what you trained yourself) is used when it is there,
    else ``colour_prior.json`` (the starter kit's, with lists ``leaf`` and ``soil``).
    """
    weights_dir = Path(weights_dir)
    binary, text = weights_dir / "colour_prior.npy", weights_dir / "colour_prior.json"
    if binary.is_symlink() or binary.exists():
        if not binary.exists():
            # an annexed file whose content is not here: never fall back to the starter's prior silently
            raise SystemExit(f"{binary}: its annexed content is not here; `datalad get` it")
        prior = np.load(binary, allow_pickle=False).astype(np.float64)
        where = binary
    elif text.is_file():
        data = json.loads(text.read_text())
        prior = np.array([data["leaf"], data["soil"]], dtype=np.float64)
        where = text
    else:
        raise SystemExit(f"no colour_prior.npy or colour_prior.json in {weights_dir}: the starting weights")
    if prior.shape != (2, len(BINS) - 1):
        raise SystemExit(f"{where.name}: shape {prior.shape}, expected (2, {len(BINS) - 1})")
    return prior


def best_threshold(leaf_counts, soil_counts):
    """The bin edge that best separates the two histograms (fewest misclassified pixels)."""
    # a pixel is called leaf when its feature is above the threshold
    leaf_below = np.concatenate([[0], np.cumsum(leaf_counts)])
    soil_above = soil_counts.sum() - np.concatenate([[0], np.cumsum(soil_counts)])
    errors = leaf_below + soil_above
    return float(BINS[int(np.argmin(errors))])
