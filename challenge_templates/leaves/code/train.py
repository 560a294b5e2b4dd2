"""Baseline training: learn which colours are leaves from the training labels.

Usage::

    python code/train.py TRAIN_DIR WEIGHTS_DIR MODEL_DIR

TRAIN_DIR holds ``images/plantNNN_rgb.png`` and ``labels/plantNNN_label.tif``.
WEIGHTS_DIR holds the starting point, ``colour_prior.json`` (or a binary
``colour_prior.npy`` of your own): two histograms of the excess-green feature
(leaf pixels, soil pixels) from earlier plants. This
adds the histograms of the training pixels to it, picks the feature value that
separates leaves from soil best, and writes it to ``MODEL_DIR/colour.json``.

On evaluation the organizers run this step again on their larger hidden
training set (bound at TRAIN_DIR), with an empty MODEL_DIR; predict.py then
reads the model written here.

It prints counts only: on evaluation the training data is the hidden one.
"""

import json
import sys
from pathlib import Path

import numpy as np
from plants import BINS, best_threshold, excess_green, load_prior, read_training_pairs
from skimage import filters

#: Noise suppression before the colour feature (pixels); predict.py uses the same.
SMOOTH_SIGMA = 1.0


def main(train_dir, weights_dir, model_dir):
    prior = load_prior(weights_dir)
    leaf, soil = prior[0].astype(np.float64), prior[1].astype(np.float64)
    pairs = read_training_pairs(train_dir)
    for _name, rgb, labels in pairs:
        feature = excess_green(filters.gaussian(rgb, sigma=SMOOTH_SIGMA, channel_axis=-1))
        leaf += np.histogram(feature[labels > 0], BINS)[0]
        soil += np.histogram(feature[labels == 0], BINS)[0]
    threshold = best_threshold(leaf, soil)
    model_dir = Path(model_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    (model_dir / "colour.json").write_text(json.dumps({"threshold": threshold, "smooth_sigma": SMOOTH_SIGMA}))
    print(f"trained on {len(pairs)} plant(s); leaf threshold {threshold:.3f}")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python code/train.py TRAIN_DIR WEIGHTS_DIR MODEL_DIR")
    main(*sys.argv[1:])
