"""File-system helpers for trees a submission may have shaped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path


def remove_tree(path: Path) -> None:
    """Remove ``path`` and everything under it, however deep, ignoring what is already gone.

    Python 3.11's ``shutil.rmtree`` recurses once per folder level and raises ``RecursionError``
    on a tree a step nested a few thousand folders deep; ``rm`` walks it iteratively.
    """
    try:
        shutil.rmtree(path, ignore_errors=True)
    except RecursionError:
        subprocess.run(["rm", "-rf", "--one-file-system", "--", str(path)], check=False,
                       stdin=subprocess.DEVNULL, capture_output=True)
