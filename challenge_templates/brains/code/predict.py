"""Starter kit, prediction: every subject gets the model's sex and age.

    python code/predict.py model inputs/test predictions

Writes ``predictions/<subject>.csv`` (subject,sex,age) for every ``<subject>.npy``.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import write_prediction  # noqa: E402


def main(model: Path, inputs: Path, outputs: Path) -> None:
    params = json.loads((model / "model.json").read_text())
    for path in sorted(inputs.glob("*.npy")):
        write_prediction(outputs, path.stem, params["sex"], params["age"])


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
