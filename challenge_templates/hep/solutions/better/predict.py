"""Better: a binned profile-likelihood fit of every pseudo-experiment, energy scale included.

Usage::

    python code/predict.py INPUT_DIR OUTPUT_DIR

Writes ``OUTPUT_DIR/<name>.csv`` (``id,p16,p84``) for every ``*.csv`` of events
in INPUT_DIR, like the starter kit. The model fitted to the histogram of
energies (1 GeV bins): a Gaussian peak whose position and width scale with the
energy scale alpha, on an exponential background of free yield and slope;
alpha carries its Gaussian constraint from ``model.json``. The interval is
where the profile likelihood ratio of mu stays within 1/2 of its minimum
(-2 ln L rises by 1), so the energy-scale uncertainty widens it as it should.

Python 3, numpy and scipy only; prints counts, never file names.
"""

import csv
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy import optimize, special


def read_energies(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return np.array([float(row["energy"]) for row in csv.DictReader(handle)])


class Fit:
    """Negative log-likelihood of one histogram, and its profile in mu."""

    def __init__(self, energy, model):
        self.low, self.high = model["energy_range"]
        self.edges = np.arange(self.low, self.high + 0.5, 1.0)
        self.counts, _ = np.histogram(energy, self.edges)
        self.model = model
        self.start = np.array([float(len(energy)), model["background_slope"], 1.0])

    def expected(self, mu, background, slope, alpha):
        """Expected counts per bin and their derivatives in (mu, background, slope, alpha)."""
        m, edges = self.model, self.edges
        peak, width = alpha * m["signal_mean"], alpha * m["signal_width"]
        z = (edges - peak) / width
        cdf = 0.5 * (1 + special.erf(z / math.sqrt(2)))
        density = np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
        per_mu = m["signal_yield_per_mu"] * np.diff(cdf)
        dz_dalpha = -edges / (alpha * alpha * m["signal_width"])
        dsignal_dalpha = mu * m["signal_yield_per_mu"] * np.diff(density * dz_dalpha)
        slope = max(slope, 1e-5)
        offset = edges - self.low
        tail = np.exp(-slope * offset)
        norm = 1 - tail[-1]
        shape = -np.diff(tail) / norm
        dtail = -offset * tail
        dshape = (-np.diff(dtail) * norm + np.diff(tail) * dtail[-1] * -1.0) / (norm * norm)
        nu = mu * per_mu + background * shape
        grads = np.stack([per_mu, shape, background * dshape, dsignal_dalpha])
        return np.clip(nu, 1e-9, None), grads

    def nll(self, mu, nuisances):
        value, grad = self.nll_and_grad(np.concatenate([[mu], nuisances]))
        return value

    def nll_and_grad(self, params):
        mu, background, slope, alpha = params
        nu, grads = self.expected(mu, background, slope, alpha)
        spread = self.model["energy_scale_spread"]
        value = float((nu - self.counts * np.log(nu)).sum() + 0.5 * ((alpha - 1) / spread) ** 2)
        grad = grads @ (1 - self.counts / nu)
        grad[3] += (alpha - 1) / spread**2
        return value, grad

    def profile(self, mu):
        bounds = [(1.0, None), (1e-4, 0.5), (0.8, 1.2)]

        def fun(x):
            value, grad = self.nll_and_grad(np.concatenate([[mu], x]))
            return value, grad[1:]

        return optimize.minimize(fun, self.start, jac=True, method="L-BFGS-B", bounds=bounds).fun

    def interval(self):
        m = self.model
        bounds = [(-5.0, 10.0), (1.0, None), (1e-4, 0.5), (0.8, 1.2)]
        start = np.concatenate([[1.0], self.start])
        found = optimize.minimize(self.nll_and_grad, start, jac=True, method="L-BFGS-B", bounds=bounds)
        mu_hat, minimum = float(found.x[0]), float(found.fun)
        self.start = found.x[1:]  # warm start of every profile fit
        # a first guess of the error: the Poisson error of the peak alone
        step = max(math.sqrt(max(self.counts.sum(), 1.0)) / m["signal_yield_per_mu"] / 3, 0.02)

        def rise(mu):
            return self.profile(mu) - minimum - 0.5

        def crossing(direction):
            inner, outer = mu_hat, mu_hat + direction * step
            for _ in range(30):  # walk out until -2 ln L has risen by more than 1
                if rise(outer) > 0:
                    return optimize.brentq(rise, min(inner, outer), max(inner, outer), xtol=2e-3)
                inner, outer = outer, outer + direction * step
            return outer

        return crossing(-1.0), crossing(1.0)


def main(input_dir, output_dir):
    inputs, outputs = Path(input_dir), Path(output_dir)
    outputs.mkdir(parents=True, exist_ok=True)
    model = json.loads((inputs / "model.json").read_text(encoding="utf-8"))
    files = sorted(inputs.glob("*.csv"))
    for path in files:
        p16, p84 = Fit(read_energies(path), model).interval()
        (outputs / path.name).write_text(f"id,p16,p84\n{path.stem},{p16:.6f},{p84:.6f}\n", encoding="utf-8")
    print(f"wrote {len(files)} intervals")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
