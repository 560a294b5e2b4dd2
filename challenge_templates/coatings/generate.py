"""Synthetic thermal barrier coating (TBC) samples: process parameters, microstructure, lifetime.

Each row is one coating sample: an yttria-stabilised zirconia (YSZ) top coat sprayed by
atmospheric plasma spraying onto an MCrAlY bond coat, then cycled in a furnace (1 h at
1100 °C, 10 min forced-air cooling) until the top coat spalls. The process parameters set
the microstructure, and both set the lifetime, through a log-linear model with noise:

- porosity rises with spray distance and powder feed rate and falls with plasma current;
  moderate porosity adds strain tolerance, too much weakens the coat (an optimum near 15 %);
- vertical (segmentation) cracks relieve thermal stress and lengthen the life;
- a thick top coat stores more elastic energy and shortens it;
- a rough bond coat anchors the top coat (longer life);
- the thermally grown oxide (TGO) after pre-oxidation and the monoclinic zirconia phase
  both shorten it;
- cycles to failure are log-normal around the model (sample-to-sample scatter of about 20 %),
  as furnace cycling results are.

Everything is drawn from one ``numpy.random.Generator`` seeded per table, so the same sizes
and seed give the same bytes. Test samples come in spray campaigns (one CSV per campaign),
so that the leaderboard has public and private parts.

Command line::

    python -m challenge_templates.coatings.generate OUT [--size default|large] [--seed 7]
"""

from __future__ import annotations

import argparse
import csv
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Feature columns with their units (in the name) and the number of decimals written.
FEATURES: tuple[tuple[str, int], ...] = (
    ("plasma_current_A", 0),
    ("spray_distance_mm", 1),
    ("powder_feed_rate_g_per_min", 1),
    ("substrate_temperature_C", 0),
    ("top_coat_thickness_um", 0),
    ("bond_coat_roughness_Ra_um", 2),
    ("porosity_percent", 2),
    ("vertical_crack_density_per_mm", 2),
    ("tgo_thickness_um", 2),
    ("monoclinic_phase_percent", 2),
)
ID = "sample_id"
TARGET = "cycles_to_failure"


@dataclass(frozen=True)
class Sizes:
    """How much data to make: training samples, test campaigns and samples per campaign.

    The test campaigns are the hidden items (one truth file each), hence ``hidden_items``
    (``jc challenge new coatings DIR --hidden-items N``).
    """

    items: int = 40  #: training samples (public, with lifetimes)
    hidden_items: int = 6  #: test spray campaigns, one CSV of inputs and one of hidden lifetimes each
    per_campaign: int = 5  #: samples per test campaign


#: ``default`` runs in a second (tests, the demo); ``large`` is a realistic multi-year test programme.
SIZES = {
    "default": Sizes(),
    "large": Sizes(items=3000, hidden_items=40, per_campaign=50),
}


def _rng(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def samples(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples: the feature matrix (columns of :data:`FEATURES`) and cycles to failure."""
    current = rng.uniform(500, 700, n)
    distance = rng.uniform(100, 150, n)
    feed = rng.uniform(20, 40, n)
    substrate = rng.uniform(100, 300, n)
    thickness = rng.uniform(250, 600, n)
    roughness = rng.uniform(5, 12, n)
    # microstructure follows the process, with scatter of its own
    porosity = np.clip(14 + 0.12 * (distance - 125) + 0.25 * (feed - 30) - 0.02 * (current - 600)
                       + rng.normal(0, 1.5, n), 5, 25)
    cracks = np.clip(2.5 + 0.008 * (substrate - 200) + 0.01 * (current - 600) - 0.08 * (porosity - 14)
                     + rng.normal(0, 0.5, n), 0.2, None)
    tgo = np.clip(rng.gamma(4.0, 0.3, n), 0.2, None)
    monoclinic = np.clip(rng.exponential(1.2, n), 0, 12)
    log_cycles = (np.log(900)
                  - 0.004 * (porosity - 15) ** 2 + 0.01 * (porosity - 15)
                  + 0.12 * (cracks - 2.5)
                  - 0.0025 * (thickness - 400)
                  + 0.06 * (roughness - 8)
                  - 0.35 * (tgo - 1.2)
                  - 0.08 * monoclinic
                  + rng.normal(0, 0.2, n))
    cycles = np.maximum(1, np.round(np.exp(log_cycles)))
    features = np.column_stack([current, distance, feed, substrate, thickness, roughness, porosity, cracks,
                                tgo, monoclinic])
    return features, cycles


def _write(path: Path, ids: list[str], features: np.ndarray | None, target: np.ndarray | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    header = [ID]
    if features is not None:
        header += [name for name, _ in FEATURES]
    if target is not None:
        header.append(TARGET)
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh, lineterminator="\n")
        out.writerow(header)
        for i, sample in enumerate(ids):
            row = [sample]
            if features is not None:
                row += [f"{features[i, j]:.{digits}f}" for j, (_, digits) in enumerate(FEATURES)]
            if target is not None:
                row.append(str(int(target[i])))
            out.writerow(row)


def write_data(out: Path, sizes: Sizes, seed: int) -> None:
    """The layout of docs/templates.md: public train (features and lifetimes), public test
    (features, one CSV per campaign) and the hidden lifetimes of the test samples."""
    out = Path(out)
    features, cycles = samples(_rng(seed, "train"), sizes.items)
    _write(out / "public" / "train" / "coatings_train.csv", [f"T{i:05d}" for i in range(sizes.items)],
           features, cycles)
    for c in range(sizes.hidden_items):
        name = f"campaign_{c:03d}.csv"
        features, cycles = samples(_rng(seed, f"test/{c}"), sizes.per_campaign)
        ids = [f"C{c:03d}-{i:03d}" for i in range(sizes.per_campaign)]
        _write(out / "public" / "test" / name, ids, features, None)
        _write(out / "hidden" / "test" / "labels" / name, ids, None, cycles)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    write_data(args.out, SIZES[args.size], args.seed)


if __name__ == "__main__":
    main()
