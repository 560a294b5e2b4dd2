"""The challenge templates `jc challenge new` can start from, each with a one-line description."""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jc_datalad.errors import JcError

_TYPE = re.compile(r"^type:\s*([a-z]+)", re.M)


@dataclass(frozen=True)
class Template:
    name: str  #: what `jc challenge new NAME DIR` takes
    description: str  #: first line of the template package's docstring
    type: str | None  #: results, inference or training, as its challenge.yaml.j2 sets it
    path: Path

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "type": self.type, "path": str(self.path)}


def templates_folder() -> Path:
    spec = importlib.util.find_spec("challenge_templates")
    if spec is None or not spec.submodule_search_locations:
        raise JcError("the challenge_templates package is not installed: reinstall jc-datalad (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations)))


def iter_templates() -> Iterator[Template]:
    """Every template `jc challenge new` accepts, described from its own files.

    The description is the first line of the template package's ``__init__.py`` docstring,
    read without importing it (a template's generator may need heavy libraries).
    """
    from jc_datalad.challenge import TEMPLATES

    root = templates_folder()
    for name in TEMPLATES:
        folder = root / name
        init = folder / "__init__.py"
        if not init.is_file():
            raise JcError(f"{init}: missing; every template is a package whose docstring describes it")
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        first = doc.strip().splitlines()[0].strip() if doc.strip() else ""
        if not first:
            raise JcError(f"{init}: add a one-line docstring saying what the template makes")
        spec_template = folder / "challenge.yaml.j2"
        found = _TYPE.search(spec_template.read_text(encoding="utf-8")) if spec_template.is_file() else None
        yield Template(name, first, found.group(1) if found else None, folder)
