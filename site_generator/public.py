"""No one's home folder on a public page: absolute paths under a home folder are shortened.

Records carry paths written on other machines: the interpreter a participant's
``datalad containers-run`` recorded (``/home/alice/venv/bin/python3 -m ...``), a
team repository registered as a path on the runner's machine, a reproduce line
naming the organizer's ``runner.yaml``. A page shows what they mean without whose
folder they lie in: ``/home/<user>``, ``/Users/<user>``, ``/var/home/<user>`` and
``/root`` become ``~``. Every value a template writes passes :func:`without_home`
(the jinja environment's ``finalize``), and so does every text cell of an export,
so no page kind can forget it. Web addresses (``https://host/home/...``) are left
as they are: they are what the organizer published.
"""

from __future__ import annotations

import re
from typing import Any

# a home folder where a path starts: at the start, after a space, quote, '=', ':', '(', ',' or '[',
# or in a file:// URL; never inside a word or a web address
_HOME = re.compile(r"(?:^|(?<=[\s'\"=:(,\[])|(?<=file://))"
                   r"(?:/home/[^/\s'\"]+|/Users/[^/\s'\"]+|/var/home/[^/\s'\"]+|/root)(?=[/\s'\"]|$)")


def without_home(value: Any) -> Any:
    """``value`` with every home folder at the start of a path written as ``~``; anything but a
    plain string (numbers, trusted markup such as plots) is returned as it is."""
    if type(value) is not str or "/" not in value:  # Markup (plots, the README) is trusted as it is
        return value
    return _HOME.sub("~", value)


def command_shown(cmd: str) -> str:
    """A recorded command with its interpreter named without its folder: ``python3 -m ...``.

    The interpreter's folder is the participant's machine's (a virtual environment in
    their home); what ran is the interpreter and its arguments.
    """
    word, sep, rest = cmd.partition(" ")
    if word.startswith("/") and not word.endswith("/"):
        word = word.rsplit("/", 1)[1]
    return f"{word}{sep}{rest}"

