"""Baseline prediction: every connected green blob is one leaf.

Usage::

    python code/predict.py MODEL_DIR INPUT_DIR OUTPUT_DIR

For every ``plantNNN_rgb.png`` in INPUT_DIR this writes ``plantNNN_label.tif``
into OUTPUT_DIR: uint16, same height and width as the image, 0 for background
and 1, 2, ... for the leaves. The threshold comes from ``MODEL_DIR/colour.json``
(written by train.py).

The method: smooth, call every pixel whose excess green is above the learnt
threshold a leaf pixel, drop specks, and give each connected blob its own
label. It finds the plant well, but the leaves of a rosette touch at its
centre, so most of a plant becomes one blob: splitting leaves is where you
can do better.

It prints counts only, never file names: on evaluation the inputs are the
hidden ones.
"""

import json
import sys
from pathlib import Path

from plants import excess_green, images_in, plant_name, read_rgb, remove_small, write_labels
from skimage import filters, measure

#: Blobs smaller than this fraction of the image are noise (soil, moss), not leaves.
MIN_AREA_FRACTION = 0.001


def segment(rgb, model):
    """Instance labels of one image: connected components of the leaf-coloured pixels."""
    feature = excess_green(filters.gaussian(rgb, sigma=model["smooth_sigma"], channel_axis=-1))
    plant = feature > model["threshold"]
    min_area = max(4, int(MIN_AREA_FRACTION * plant.size))
    return remove_small(measure.label(plant, connectivity=1), min_area)


def main(model_dir, input_dir, output_dir):
    model = json.loads((Path(model_dir) / "colour.json").read_text())
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    paths = images_in(input_dir)
    most = 0
    for path in paths:
        labels = segment(read_rgb(path), model)
        write_labels(output_dir, plant_name(path), labels)
        most = max(most, int(labels.max()))
    # Counts only: on evaluation the inputs are hidden, and so are their file names.
    print(f"segmented {len(paths)} plant(s); at most {most} leaves in one")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python code/predict.py MODEL_DIR INPUT_DIR OUTPUT_DIR")
    main(*sys.argv[1:])
