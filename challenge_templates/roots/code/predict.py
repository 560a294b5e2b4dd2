"""Baseline: total root length and number of roots of every root-scan image.

Usage::

    python code/predict.py INPUT_DIR OUTPUT_DIR

For every ``*.tif`` in INPUT_DIR (a 2-D uint16 image, 0.1 mm per pixel) this
writes ``OUTPUT_DIR/<same stem>.csv`` with the header ``id,length_mm,roots``
and one row; the id is the file's stem.

The method: call everything brighter than Otsu's threshold root, thin it to a
one-pixel skeleton, count the skeleton's pixels as the length and its
connected pieces as the roots. It counts specks of debris as roots, counts a
diagonal step as one pixel instead of 1.41, and sees a whole branched root
system as a single root: there is room to do better.

Runs with Python 3.11, numpy 1.24, scikit-image 0.19 and tifffile 2023.2.3
(the challenge container) and with newer versions. It prints counts only,
never file names (on evaluation the inputs are the hidden ones).
"""

import sys
from pathlib import Path

import numpy as np
import tifffile
from skimage import filters, measure, morphology

#: Millimetres per pixel of the scans (see the challenge README).
PIXEL_MM = 0.1


def measure_roots(image):
    """(total length in mm, number of roots) of one image."""
    smooth = filters.gaussian(image.astype(np.float64), sigma=1.0)
    roots = smooth > filters.threshold_otsu(smooth)
    skeleton = morphology.skeletonize(roots)
    pieces = measure.label(skeleton, connectivity=2).max()
    return float(skeleton.sum()) * PIXEL_MM, int(pieces)


def main(input_dir, output_dir):
    inputs, outputs = Path(input_dir), Path(output_dir)
    outputs.mkdir(parents=True, exist_ok=True)
    files = sorted(inputs.glob("*.tif"))
    for path in files:
        length, count = measure_roots(tifffile.imread(path))
        (outputs / f"{path.stem}.csv").write_text(f"id,length_mm,roots\n{path.stem},{length:.4f},{count}\n",
                                                  encoding="utf-8")
    print(f"measured {len(files)} images")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
