"""Tables shown on pages and exported beside them as JSON and CSV, from one definition.

A :class:`Table` holds raw values (numbers stay numbers); the page formats
them, the exports keep them as they are, so an export always holds what its
page shows, at full precision.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from site_generator.public import without_home


@dataclass(frozen=True)
class Table:
    """One exported table: ``name`` is the file stem next to the page (``<name>.json``, ``.csv``)."""

    name: str
    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def to_json(self) -> str:
        """One row a line: readable, and written by json's C encoder (``indent`` would not use it)."""
        def dump(value: Any) -> str:
            return json.dumps(value, ensure_ascii=False, allow_nan=False)

        rows = [f"    {dump(dict(zip(self.columns, row, strict=True)))}" for row in self.rows]
        body = "[\n" + ",\n".join(rows) + "\n  ]" if rows else "[]"
        return (f'{{\n  "caption": {dump(self.caption)},\n  "columns": {dump(list(self.columns))},\n'
                f'  "rows": {body}\n}}\n')

    def to_csv(self) -> str:
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(self.columns)
        for row in self.rows:
            writer.writerow(["" if v is None else v for v in row])
        return buf.getvalue()

    def files(self, folder: str) -> dict[str, str]:
        """Export path (``folder`` is the page's folder, '' or ending in '/') -> text."""
        return {f"{folder}{self.name}.json": self.to_json(), f"{folder}{self.name}.csv": self.to_csv()}


def table(name: str, caption: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> Table:
    """A table whose text cells name no one's home folder (see :mod:`site_generator.public`)."""
    return Table(name=name, caption=caption, columns=tuple(columns),
                 rows=tuple(tuple(without_home(v) for v in r) for r in rows))
