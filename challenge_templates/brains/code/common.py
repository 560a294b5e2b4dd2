"""Reading the data and writing predictions: shared by train.py and predict.py."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


def read_participants(train: Path) -> dict[str, tuple[str, float]]:
    """subject -> (sex, age) from ``<train>/labels/participants.csv``."""
    with open(train / "labels" / "participants.csv", newline="") as fh:
        return {row["subject"]: (row["sex"], float(row["age"])) for row in csv.DictReader(fh)}


def read_matrix(path: Path) -> np.ndarray:
    return np.load(path, allow_pickle=False)


def features(matrix: np.ndarray) -> np.ndarray:
    """The connections above the diagonal: each one once."""
    return matrix[np.triu_indices(matrix.shape[0], 1)].astype(np.float64)


def write_prediction(outputs: Path, subject: str, sex: str, age: float) -> None:
    """``<outputs>/<subject>.csv``: one row, subject,sex,age."""
    outputs.mkdir(parents=True, exist_ok=True)
    with open(outputs / f"{subject}.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["subject", "sex", "age"])
        writer.writerow([subject, sex, f"{age:.2f}"])
