"""Better solution, training: ridge regression for age and a ridge classifier for sex on the
connections above the diagonal, standardised, with the penalty chosen by leave-one-out error.

    python code/train.py inputs/train model
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import features, read_matrix, read_participants  # noqa: E402

PENALTIES = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)


def ridge(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights of the penalty with the least leave-one-out error (dual form: subjects x subjects)."""
    gram = x @ x.T
    values, vectors = np.linalg.eigh(gram)
    best = None
    for penalty in PENALTIES:
        hat = (vectors * (values / (values + penalty))) @ vectors.T
        residual = (y - hat @ y) / np.maximum(1.0 - np.diag(hat), 1e-9)
        error = float(np.mean(residual ** 2))
        if best is None or error < best[0]:
            best = (error, penalty)
    penalty = best[1]
    alpha = np.linalg.solve(gram + penalty * np.eye(len(y)), y)
    return x.T @ alpha, penalty


def main(train: Path, model: Path) -> None:
    people = read_participants(train)
    subjects = sorted(people)
    x = np.stack([features(read_matrix(train / "matrices" / f"{s}.npy")) for s in subjects])
    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / scale
    age = np.array([people[s][1] for s in subjects])
    sexes = sorted({people[s][0] for s in subjects})
    positive = sexes[-1]
    target = np.array([1.0 if people[s][0] == positive else -1.0 for s in subjects])
    w_age, p_age = ridge(z, age - age.mean())
    w_sex, p_sex = ridge(z, target - target.mean())
    model.mkdir(parents=True, exist_ok=True)
    np.savez(model / "weights.npz", mean=mean, scale=scale, w_age=w_age, w_sex=w_sex)
    (model / "model.json").write_text(json.dumps({
        "age_offset": float(age.mean()), "sex_offset": float(target.mean()), "classes": sexes,
        "penalties": {"age": p_age, "sex": p_sex}, "subjects": len(subjects)}))
    print(f"trained on {len(subjects)} subjects; penalties age {p_age:g}, sex {p_sex:g}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
