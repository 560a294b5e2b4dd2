"""A numpy-only solution for tests (the small test image has no scikit-image).

Every pixel darker than the frame's mean is one cell: a weak but honest
prediction, worse than the starter kit.
"""

import sys
from pathlib import Path

import numpy as np
import tifffile

inputs, outputs = Path(sys.argv[1]), Path(sys.argv[2])
outputs.mkdir(parents=True, exist_ok=True)
for path in sorted(inputs.glob("*.tif")):
    stack = tifffile.imread(path).astype(np.float64)
    labels = np.zeros(stack.shape, dtype=np.uint16)
    for t, frame in enumerate(stack):
        labels[t][frame < frame.mean() - frame.std()] = 1
    tifffile.imwrite(outputs / path.name, labels, photometric="minisblack")
