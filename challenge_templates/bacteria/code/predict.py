"""Baseline: segment every bacterium in phase-contrast time-lapses.

Usage::

    python code/predict.py INPUT_DIR OUTPUT_DIR

For every ``*.tif`` in INPUT_DIR (a uint16 stack of frames, shape (T, H, W))
this writes a label stack of the same name and shape into OUTPUT_DIR:
uint16, 0 for background and 1, 2, ... for the cells of each frame.

The method, frame by frame: flatten the uneven illumination, smooth, call
everything darker than Otsu's threshold a cell, drop tiny specks, and give
each connected blob its own label. It is fast and simple, but cells that
touch end up as one blob: splitting them is where you can do better.

Runs with Python 3.11, numpy 1.24, scipy 1.10, scikit-image 0.19 and
tifffile 2023.2.3 (the challenge container, Debian bookworm) and with newer versions.

It prints counts only, never file names: on evaluation the inputs are the hidden
ones, and their names are not for the public.
"""

import sys
from pathlib import Path

import numpy as np
import tifffile
from skimage import filters, measure

#: Width (pixels) of the Gaussian that estimates the illumination: much wider than a cell.
BACKGROUND_SIGMA = 20.0
#: Width (pixels) of the Gaussian that smooths noise before thresholding.
SMOOTH_SIGMA = 1.0
#: Blobs smaller than this many pixels are noise, not cells.
MIN_AREA = 30


def remove_small(labels, min_area):
    """Set labels smaller than ``min_area`` pixels to 0 and renumber the rest 1..N."""
    area = np.bincount(labels.ravel())
    keep = area >= min_area
    keep[0] = False  # background stays background
    new_id = np.zeros(len(area), dtype=np.int64)
    new_id[keep] = np.arange(1, keep.sum() + 1)
    return new_id[labels]


def segment_frame(frame):
    """Instance labels (uint16) of one 2-D phase-contrast frame."""
    image = frame.astype(np.float64)
    # Uneven illumination: divide by a very blurred copy, so the background is ~1 everywhere.
    flat = image / filters.gaussian(image, sigma=BACKGROUND_SIGMA)
    smooth = filters.gaussian(flat, sigma=SMOOTH_SIGMA)
    # In phase contrast the cells are dark: keep what is darker than Otsu's threshold.
    cells = smooth < filters.threshold_otsu(smooth)
    # connectivity=1: pixels touching only at a corner are not joined.
    labels = measure.label(cells, connectivity=1)
    return remove_small(labels, MIN_AREA).astype(np.uint16)


def segment_stack(stack):
    """Label every frame of a (T, H, W) stack; a single (H, W) frame also works."""
    if stack.ndim == 2:
        return segment_frame(stack)
    return np.stack([segment_frame(frame) for frame in stack])


def main(input_dir, output_dir):
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = sorted(input_dir.glob("*.tif"))
    if not paths:
        sys.exit(f"no *.tif files in {input_dir}: is the input data there (datalad get)?")
    busiest = 0
    for path in paths:
        labels = segment_stack(tifffile.imread(path))
        # minisblack: a stack of grey frames, not an RGB image (matters when T is 3 or 4).
        tifffile.imwrite(output_dir / path.name, labels, photometric="minisblack")
        busiest = max(busiest, int(labels.max()))
    # Counts only: on evaluation the inputs are hidden, and so are their file names.
    print(f"segmented {len(paths)} time-lapse(s); at most {busiest} cells in one frame")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python code/predict.py INPUT_DIR OUTPUT_DIR")
    main(sys.argv[1], sys.argv[2])
