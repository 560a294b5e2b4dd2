"""Starter kit, training: the majority sex and the mean age of the training subjects.

    python code/train.py inputs/train model

On the organizer's side the hidden training set is at ``inputs/train`` (same layout:
``matrices/sub-NNNN.npy`` and ``labels/participants.csv``); ``model`` starts empty.
"""

import json
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from common import read_participants  # noqa: E402


def main(train: Path, model: Path) -> None:
    people = read_participants(train)
    sexes = Counter(sex for sex, _age in people.values())
    majority = sorted(sexes.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
    mean_age = sum(age for _sex, age in people.values()) / len(people)
    model.mkdir(parents=True, exist_ok=True)
    (model / "model.json").write_text(json.dumps({"sex": majority, "age": mean_age, "subjects": len(people)}))
    print(f"trained on {len(people)} subjects: sex {majority}, age {mean_age:.1f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
