"""Better solution, prediction: the ridge models of train.py applied to each subject.

    python code/predict.py model inputs/test predictions
"""

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import features, read_matrix, write_prediction  # noqa: E402


def main(model: Path, inputs: Path, outputs: Path) -> None:
    params = json.loads((model / "model.json").read_text())
    with np.load(model / "weights.npz", allow_pickle=False) as w:
        mean, scale, w_age, w_sex = w["mean"], w["scale"], w["w_age"], w["w_sex"]
    negative, positive = params["classes"][0], params["classes"][-1]
    for path in sorted(inputs.glob("*.npy")):
        z = (features(read_matrix(path)) - mean) / scale
        age = float(z @ w_age + params["age_offset"])
        score = float(z @ w_sex + params["sex_offset"])
        write_prediction(outputs, path.stem, positive if score > 0 else negative, age)


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
