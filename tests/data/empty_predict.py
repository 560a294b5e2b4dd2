"""A numpy-only solution for tests: predicts no cell at all (scores 0)."""

import sys
from pathlib import Path

import numpy as np
import tifffile

inputs, outputs = Path(sys.argv[1]), Path(sys.argv[2])
outputs.mkdir(parents=True, exist_ok=True)
for path in sorted(inputs.glob("*.tif")):
    shape = tifffile.TiffFile(path).series[0].shape
    tifffile.imwrite(outputs / path.name, np.zeros(shape, dtype=np.uint16), photometric="minisblack")
