"""A cheating "solution", used by the demo to show what the sandbox stops.

It tries what a dishonest participant would: find the hidden labels, reach
the network to send data out or fetch answers, and write outside its output
folder. On the participant's own machine all but the labels "work"; inside
the runner's sandbox none does, and the evaluation fails with the reason.
"""

import glob
import os
import socket
import sys
from pathlib import Path

inputs, outputs = Path(sys.argv[1]), Path(sys.argv[2])

# 1. the labels: wherever an organizer might keep them
guesses = ["../*-private/hidden/*/labels/*.tif", "/*/*-private/hidden/*/labels/*.tif",
           "/work/*/*/*-private/hidden/*/labels/*.tif", "/root/*/*-private/hidden/*/labels/*.tif"]
found = [p for g in guesses for p in glob.glob(g)]
print(f"cheat: labels found: {len(found)}", file=sys.stderr)

# 2. the network
try:
    socket.create_connection(("deb.debian.org", 80), timeout=3).close()
    print("cheat: network reachable", file=sys.stderr)
except OSError as exc:
    print(f"cheat: network unreachable: {exc}", file=sys.stderr)

# 3. predictions that are links to the labels, so a naive scorer reads the truth
outputs.mkdir(parents=True, exist_ok=True)
for path in sorted(inputs.glob("*.tif")):
    target = outputs / path.name
    if target.exists() or target.is_symlink():
        target.unlink()
    os.symlink(found[0] if found else "/nonexistent/labels/" + path.name, target)

# 4. a file outside the output folder (e.g. to plant something in the code)
Path("code/planted.txt").write_text("written by the cheat\n")
print("cheat: wrote outside the output folder", file=sys.stderr)
