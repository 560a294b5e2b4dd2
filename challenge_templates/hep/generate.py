"""Pseudo-experiments of a counting experiment with a systematic uncertainty (FAIR-Universe-like).

Each pseudo-experiment is a list of events, one reconstructed energy (GeV) per
event, in the window [100, 200] GeV:

- background: a falling exponential whose slope and yield vary from one
  pseudo-experiment to the next;
- signal: a Gaussian peak at 125 GeV (width 3 GeV) whose expected yield is
  ``mu`` times the nominal yield; ``mu``, the signal strength, is what a
  participant estimates, as a 68% interval [p16, p84];
- an energy-scale nuisance ``alpha`` (Gaussian around 1) multiplies every
  reconstructed energy of the pseudo-experiment: it moves the peak and tilts
  the background, and nobody is told its value.

Files (CSV, the standard library's ``csv`` reads them):

- ``<split>_NNNN.csv``: header ``energy``, one event per row;
- ``model.json`` beside them: the nominal model (peak, width, yields, slope
  and the spread of every nuisance), the same for every split;
- labels: ``<split>_NNNN.csv`` with header ``id,mu`` (one row, the id is the
  file's stem); the public training labels also give the nuisances.

Everything is drawn from ``numpy.random.Generator`` streams seeded per
(seed, split, index), so the same seed and sizes give the same bytes.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Reconstructed energies outside this window are not recorded (GeV).
LOW, HIGH = 100.0, 200.0
#: The signal peak: true mean and width (GeV).
PEAK, WIDTH = 125.0, 3.0
#: Mean slope of the background (1/GeV) and its relative spread between pseudo-experiments.
SLOPE, SLOPE_SPREAD = 1 / 30.0, 0.08
#: Relative spread of the background yield between pseudo-experiments.
YIELD_SPREAD = 0.05
#: Spread of the energy scale alpha (mean 1): 3% moves the peak by 3.75 GeV, more than its width.
SCALE_SPREAD = 0.03
#: The signal strength of a pseudo-experiment is drawn uniformly from this range.
MU_RANGE = (0.2, 3.0)


@dataclass(frozen=True)
class Sizes:
    """How much data to make: pseudo-experiments per split and events per pseudo-experiment."""

    #: public test pseudo-experiments (inputs only) and public training ones (with labels)
    items: int = 10
    #: hidden test pseudo-experiments
    hidden_items: int = 100
    #: expected background events of a pseudo-experiment in the window
    background: int = 1000
    #: expected signal events at mu = 1
    signal: int = 60


#: ``default`` runs in seconds (tests, the demo); ``large`` is closer to a real analysis.
SIZES = {
    "default": Sizes(),
    "large": Sizes(items=100, hidden_items=1000, background=20000, signal=600),
}


def model(sizes: Sizes) -> dict[str, float | list[float]]:
    """The nominal model participants are told (``model.json``)."""
    return {
        "energy_range": [LOW, HIGH],
        "signal_mean": PEAK,
        "signal_width": WIDTH,
        "signal_yield_per_mu": float(sizes.signal),
        "background_yield": float(sizes.background),
        "background_yield_spread": YIELD_SPREAD,
        "background_slope": SLOPE,
        "background_slope_spread": SLOPE_SPREAD,
        "energy_scale_spread": SCALE_SPREAD,
        "mu_range": list(MU_RANGE),
    }


def item_seed(seed: int, split: str, index: int) -> int:
    """Seed of one pseudo-experiment: independent streams for every (seed, split, index)."""
    state = np.random.SeedSequence([seed, zlib.crc32(split.encode()), index]).generate_state(2, np.uint32)
    return int(state[0]) << 32 | int(state[1])


def _truncated_exponential(rng: np.random.Generator, slope: float, n: int, low: float, high: float) -> np.ndarray:
    """``n`` draws of exp(-slope (x - low)) restricted to [low, high] (inverse transform)."""
    u = rng.uniform(size=n)
    return low - np.log1p(-u * (1 - np.exp(-slope * (high - low)))) / slope


def pseudo_experiment(seed: int, sizes: Sizes) -> tuple[np.ndarray, dict[str, float]]:
    """Energies (sorted, GeV) of one pseudo-experiment and its truth (mu and the nuisances)."""
    rng = np.random.default_rng(seed)
    mu = float(rng.uniform(*MU_RANGE))
    alpha = float(rng.normal(1.0, SCALE_SPREAD))
    slope = float(SLOPE * rng.normal(1.0, SLOPE_SPREAD))
    yield_b = float(sizes.background * rng.normal(1.0, YIELD_SPREAD))
    # true energies over a wider window: after scaling by alpha, events move in and out of it
    low, high = LOW / 1.2, HIGH * 1.2
    inside = np.exp(-slope * (LOW - low)) - np.exp(-slope * (HIGH - low))
    whole = 1 - np.exp(-slope * (high - low))
    background = _truncated_exponential(rng, slope, rng.poisson(yield_b * whole / inside), low, high)
    signal = rng.normal(PEAK, WIDTH, rng.poisson(mu * sizes.signal))
    energy = alpha * np.concatenate([background, signal])
    energy = np.sort(energy[(energy >= LOW) & (energy < HIGH)])
    return energy, {"mu": mu, "alpha": alpha, "background_slope": slope, "background_yield": yield_b}


def _write_events(path: Path, energy: np.ndarray) -> None:
    path.write_text("energy\n" + "".join(f"{e:.3f}\n" for e in energy), encoding="utf-8")


def write_split(inputs: Path, labels: Path | None, *, split: str, count: int, sizes: Sizes, seed: int,
                nuisances: bool = False) -> list[str]:
    """``count`` pseudo-experiments ``<split>_NNNN.csv`` into ``inputs`` (and their truth into ``labels``)."""
    inputs.mkdir(parents=True, exist_ok=True)
    (inputs / "model.json").write_text(json.dumps(model(sizes), indent=1) + "\n", encoding="utf-8")
    if labels is not None:
        labels.mkdir(parents=True, exist_ok=True)
    names = []
    for index in range(count):
        name = f"{split}_{index:04d}"
        energy, truth = pseudo_experiment(item_seed(seed, split, index), sizes)
        _write_events(inputs / f"{name}.csv", energy)
        if labels is not None:
            columns = ["mu", "alpha", "background_slope", "background_yield"] if nuisances else ["mu"]
            (labels / f"{name}.csv").write_text(
                "id," + ",".join(columns) + "\n" + name + "," + ",".join(f"{truth[c]:.6g}" for c in columns)
                + "\n", encoding="utf-8")
        names.append(name)
    return names


def write_data(out: Path, sizes: Sizes, seed: int) -> None:
    """The layout of docs/templates.md: public train (with labels and nuisances), public test
    (events only), hidden test inputs and labels (``id,mu``), each split from its own seeds."""
    out = Path(out)
    write_split(out / "public" / "train" / "events", out / "public" / "train" / "labels", split="train",
                count=sizes.items, sizes=sizes, seed=seed, nuisances=True)
    write_split(out / "public" / "test", None, split="test", count=sizes.items, sizes=sizes, seed=seed)
    write_split(out / "hidden" / "test" / "inputs", out / "hidden" / "test" / "labels", split="hidden",
                count=sizes.hidden_items, sizes=sizes, seed=seed)
