"""Baseline: a 68% interval [p16, p84] of the signal strength mu of every pseudo-experiment.

Usage::

    python code/predict.py INPUT_DIR OUTPUT_DIR

For every ``*.csv`` of events in INPUT_DIR (header ``energy``) this writes
``OUTPUT_DIR/<same name>.csv`` with the header ``id,p16,p84`` and one row: the
id is the file's stem. The nominal model is read from ``INPUT_DIR/model.json``.

The method is a cut-and-count: count the events in a window of two peak
widths around the nominal peak, estimate the background under the peak by
fitting an exponential to the sidebands, and turn the excess into mu with its
Poisson error. It ignores the energy-scale uncertainty (a shifted peak leaks
out of the window) and throws away the shape of the peak: a likelihood fit
that profiles the energy scale does better.

Uses only Python 3 and numpy; it prints counts only, never file names (on
evaluation the inputs are the hidden ones).
"""

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np


def read_energies(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return np.array([float(row["energy"]) for row in csv.DictReader(handle)])


def sideband_slope(sidebands, low, high, window):
    """Maximum-likelihood slope of an exponential on [low, high] minus the window, by bisection."""
    lo_w, hi_w = window

    def mean_of(slope):
        # mean energy of exp(-slope (x - low)) on the two sidebands, numerically
        x = np.linspace(low, high, 4001)
        keep = (x < lo_w) | (x >= hi_w)
        weight = np.exp(-slope * (x - low)) * keep
        return float((x * weight).sum() / weight.sum())

    target = float(sidebands.mean())
    a, b = 1e-4, 0.5
    for _ in range(60):
        middle = (a + b) / 2
        a, b = (middle, b) if mean_of(middle) > target else (a, middle)
    return (a + b) / 2


def interval(energy, model):
    low, high = model["energy_range"]
    peak, width = model["signal_mean"], model["signal_width"]
    window = (peak - 2 * width, peak + 2 * width)
    in_window = (energy >= window[0]) & (energy < window[1])
    sidebands = energy[~in_window]
    slope = sideband_slope(sidebands, low, high, window)

    def integral(a, b):
        return math.exp(-slope * (a - low)) - math.exp(-slope * (b - low))

    outside = integral(low, window[0]) + integral(window[1], high)
    background = len(sidebands) * integral(*window) / outside
    efficiency = math.erf(2 / math.sqrt(2))  # share of the Gaussian peak inside +-2 widths
    per_mu = model["signal_yield_per_mu"] * efficiency
    observed = int(in_window.sum())
    mu = (observed - background) / per_mu
    error = math.sqrt(max(observed, 1)) / per_mu
    return mu - error, mu + error


def main(input_dir, output_dir):
    inputs, outputs = Path(input_dir), Path(output_dir)
    outputs.mkdir(parents=True, exist_ok=True)
    model = json.loads((inputs / "model.json").read_text(encoding="utf-8"))
    files = sorted(inputs.glob("*.csv"))
    for path in files:
        p16, p84 = interval(read_energies(path), model)
        (outputs / path.name).write_text(f"id,p16,p84\n{path.stem},{p16:.6f},{p84:.6f}\n", encoding="utf-8")
    print(f"wrote {len(files)} intervals")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
