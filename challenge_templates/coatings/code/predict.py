"""Starter kit: predict cycles to failure from the top coat thickness alone.

Fits a straight line, cycles = a + b * thickness, to the training samples by least
squares and applies it to every test campaign.

    python code/predict.py inputs/train inputs/test predictions

writes predictions/<campaign>.csv (sample_id, cycles_to_failure) for every
inputs/test/<campaign>.csv. Uses numpy and the csv module only.
"""

import csv
import sys
from pathlib import Path

import numpy as np

ID, TARGET, FEATURE = "sample_id", "cycles_to_failure", "top_coat_thickness_um"


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def main(train_dir, test_dir, out_dir):
    rows = [row for path in sorted(Path(train_dir).glob("*.csv")) for row in read(path)]
    x = np.array([float(r[FEATURE]) for r in rows])
    y = np.array([float(r[TARGET]) for r in rows])
    slope, intercept = np.polyfit(x, y, 1)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    campaigns = sorted(Path(test_dir).glob("*.csv"))
    for path in campaigns:
        with open(out / path.name, "w", newline="") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow([ID, TARGET])
            for r in read(path):
                writer.writerow([r[ID], f"{max(1.0, intercept + slope * float(r[FEATURE])):.1f}"])
    print(f"fitted on {len(rows)} samples; predicted {len(campaigns)} campaigns")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: python code/predict.py TRAIN_DIR TEST_DIR OUT_DIR")
    main(*sys.argv[1:])
