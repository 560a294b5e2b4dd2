"""Synthetic resting-state connectivity matrices with sex and age, in the manner of 1000BRAINS.

Each subject has one symmetric region x region matrix of functional connectivity
(Pearson correlations between regional time series; 1 on the diagonal), saved as a
float32 ``.npy`` file, and a sex (``F``/``M``) and an age (18-85 years, as in the
1000BRAINS cohort). The generative model, shared by every split of one seed:

- a population matrix: regions belong to functional networks; regions of one network
  are more strongly connected than regions of different networks;
- sex shifts a fixed sparse set of connections up or down (males against females);
- age changes another sparse set linearly with years (most weaken), and weakens the
  within-network connections a little overall;
- each subject adds a global offset (scanner and state), an individual random pattern of
  low rank (its own network tuning) and independent noise per connection.

Every subject is drawn from a generator seeded by (seed, split, subject number), so the
same seed gives the same bytes and the splits share no subject: the hidden training set
and the hidden test set are disjoint.

Layout (docs/templates.md)::

    public/train/matrices/sub-NNNN.npy   public/train/labels/participants.csv (subject,sex,age)
    public/test/sub-NNNN.npy
    hidden/train/matrices/, hidden/train/labels/   the organizer's large training set, same layout
    hidden/test/inputs/sub-NNNN.npy       hidden/test/labels/sub-NNNN.csv (subject,sex,age)
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Functional networks the regions are split into (the Yeo 7-network parcellation has 7).
NETWORKS = 7
#: Age range of the cohort, years.
AGE_RANGE = (18.0, 85.0)
#: Fraction of the connections that differ by sex, and that change with age.
SEX_FRACTION = 0.06
AGE_FRACTION = 0.08
#: Size of the sex shift and of the age change over the whole age range (correlation units), for
#: REFERENCE_EDGES affected connections; with more regions the effect spreads over more connections,
#: each shifted less (by sqrt(REFERENCE_EDGES / affected)), so more regions do not make it easier.
SEX_SHIFT = 0.2
AGE_CHANGE = 0.4
REFERENCE_EDGES = 12
#: Subject noise: global offset, individual low-rank pattern, independent noise per connection.
GLOBAL_SD = 0.04
PATTERN_RANK = 3
PATTERN_SD = 0.06
EDGE_SD = 0.09

#: Split codes of the per-subject seeds; subject numbers are global, so no two splits share one.
_SPLITS = {"train": 1, "test": 2, "hidden-train": 3, "hidden-test": 4}


@dataclass(frozen=True)
class Sizes:
    """How much data to make: subjects per split and regions per matrix."""

    items: int = 24  #: public training subjects (with sex and age)
    test_items: int = 8  #: public (development) test subjects, inputs only
    hidden_train: int = 160  #: the organizer's hidden training subjects
    hidden_items: int = 40  #: hidden test subjects
    regions: int = 20


SIZES = {
    "default": Sizes(),
    "large": Sizes(items=100, test_items=50, hidden_train=1000, hidden_items=300, regions=100),
}


@dataclass(frozen=True)
class Population:
    """What every subject of one seed shares."""

    base: np.ndarray  #: (R, R) population connectivity
    sex: np.ndarray  #: (R, R) shift of males against females
    age: np.ndarray  #: (R, R) change per year above the youngest age


def population(regions: int, seed: int) -> Population:
    rng = np.random.default_rng([seed, 0])
    network = np.sort(rng.integers(0, NETWORKS, regions))
    same = network[:, None] == network[None, :]
    base = np.where(same, 0.45, 0.08) + rng.normal(0.0, 0.05, (regions, regions))
    iu = np.triu_indices(regions, 1)
    edges = len(iu[0])

    def sparse(fraction: float, size: float, sign_bias: float) -> np.ndarray:
        chosen = rng.choice(edges, size=max(3, round(fraction * edges)), replace=False)
        values = np.zeros(edges)
        signs = np.where(rng.random(len(chosen)) < sign_bias, -1.0, 1.0)
        spread = np.sqrt(REFERENCE_EDGES / len(chosen))
        values[chosen] = signs * size * spread * rng.uniform(0.6, 1.0, len(chosen))
        return _symmetric(values, regions)

    years = AGE_RANGE[1] - AGE_RANGE[0]
    sex = sparse(SEX_FRACTION, SEX_SHIFT, 0.5)
    age = sparse(AGE_FRACTION, AGE_CHANGE / years, 0.75) - np.where(same, 0.05 / years, 0.0)
    return Population(_symmetric(base[iu], regions), sex, age)


def _symmetric(upper: np.ndarray, regions: int) -> np.ndarray:
    out = np.zeros((regions, regions))
    out[np.triu_indices(regions, 1)] = upper
    return out + out.T


def subject(pop: Population, rng: np.random.Generator) -> tuple[np.ndarray, str, float]:
    """One subject's matrix (float32, symmetric, 1 on the diagonal), sex and age."""
    regions = pop.base.shape[0]
    sex = "M" if rng.random() < 0.5 else "F"
    age = round(float(rng.uniform(*AGE_RANGE)), 1)
    pattern = rng.normal(0.0, 1.0, (regions, PATTERN_RANK))
    individual = pattern @ pattern.T * (PATTERN_SD / np.sqrt(PATTERN_RANK))
    noise = _symmetric(rng.normal(0.0, EDGE_SD, regions * (regions - 1) // 2), regions)
    matrix = (pop.base + (sex == "M") * pop.sex + (age - AGE_RANGE[0]) * pop.age
              + rng.normal(0.0, GLOBAL_SD) + individual + noise)
    matrix = np.clip(matrix, -0.99, 0.99)
    np.fill_diagonal(matrix, 1.0)
    return matrix.astype(np.float32), sex, age


def _subjects(pop: Population, split: str, first: int, count: int, seed: int) -> list[tuple[str, np.ndarray, str,
                                                                                                 float]]:
    out = []
    for number in range(first, first + count):
        matrix, sex, age = subject(pop, np.random.default_rng([seed, _SPLITS[split], number]))
        out.append((f"sub-{number:04d}", matrix, sex, age))
    return out


def _save_matrices(folder: Path, rows: list) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, matrix, _sex, _age in rows:
        with open(folder / f"{name}.npy", "wb") as fh:
            np.save(fh, matrix, allow_pickle=False)


def _write_table(path: Path, rows: list) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["subject", "sex", "age"])
        for name, _matrix, sex, age in rows:
            writer.writerow([name, sex, f"{age:.1f}"])


def write_data(out: Path, sizes: Sizes, seed: int) -> None:
    """Every split in the layout of docs/templates.md; the same sizes and seed give the same bytes."""
    out = Path(out)
    pop = population(sizes.regions, seed)
    counts = [("train", sizes.items), ("test", sizes.test_items), ("hidden-train", sizes.hidden_train),
              ("hidden-test", sizes.hidden_items)]
    first, splits = 1, {}
    for split, count in counts:
        splits[split] = _subjects(pop, split, first, count, seed)
        first += count
    _save_matrices(out / "public" / "train" / "matrices", splits["train"])
    _write_table(out / "public" / "train" / "labels" / "participants.csv", splits["train"])
    _save_matrices(out / "public" / "test", splits["test"])
    _save_matrices(out / "hidden" / "train" / "matrices", splits["hidden-train"])
    _write_table(out / "hidden" / "train" / "labels" / "participants.csv", splits["hidden-train"])
    _save_matrices(out / "hidden" / "test" / "inputs", splits["hidden-test"])
    for row in splits["hidden-test"]:
        _write_table(out / "hidden" / "test" / "labels" / f"{row[0]}.csv", [row])
