"""Reading the organizer's YAML files (challenge.yaml, runner.yaml, teams.yaml) safely.

:func:`read_yaml` takes the file's bytes at the boundary: at most
:data:`MAX_BYTES`, UTF-8 only, YAML syntax errors with line and column, at most
:data:`MAX_NODES` values once aliases are expanded (an alias bomb is refused
in milliseconds instead of hanging whatever walks the result), at most
:data:`MAX_DEPTH` levels, and duplicate keys as problems. It returns plain
Python data together with the line and column of every value, so that the
typed loaders (:mod:`jc_datalad.spec`, :mod:`jc_datalad.config`) report each
problem as ``file:line:column: key: value: fix``, all at once, through
:class:`Checker` and :class:`InputError`.

PyYAML's composer keeps every node's position and never expands aliases
itself; we convert its node tree ourselves, counting every visit.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from jc_datalad.errors import JcError

#: These files are a few kilobytes; a megabyte is generous and keeps parsing fast.
MAX_BYTES = 2**20
#: Values after alias expansion: a billion-laughs file expands past this in a few levels.
MAX_NODES = 100_000
MAX_DEPTH = 64
#: Longest value shown in a message (the whole value stays in the problem's ``value`` when short).
_SHOWN = 120


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an input file: where, what was found, and how to fix it."""

    key: str
    value: Any
    fix: str
    line: int | None = None  #: 1-based, where known
    column: int | None = None  #: 1-based, where known

    def __post_init__(self) -> None:
        # a problem is shown and serialised: never carry a huge structure along
        if not isinstance(self.value, str | int | float | bool | type(None)) and len(repr(self.value)) > _SHOWN:
            object.__setattr__(self, "value", _shorten(repr(self.value)))

    @property
    def where(self) -> str:
        """``line:column`` (or ``line``), empty when unknown."""
        if self.line is None:
            return ""
        return f"{self.line}:{self.column}" if self.column is not None else str(self.line)

    def __str__(self) -> str:
        if self.value is None:  # missing, or nothing worth showing
            return f"{self.key}: {self.fix}"
        value = self.value if not isinstance(self.value, str) else _shorten(self.value)
        return f"{self.key}: {value!r}: {self.fix}"


def _shorten(text: str) -> str:
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


class InputError(JcError):
    """An input file is invalid; :attr:`problems` lists every problem, each with its place."""

    def __init__(self, path: Path | str, problems: list[Problem]):
        self.path = str(path)
        self.problems = problems
        lines = [f"{self.path}:{p.where + ':' if p.where else ''} {p}" for p in problems]
        if len(lines) == 1:  # one problem, one line (as compilers write it)
            super().__init__(lines[0])
        else:
            super().__init__(f"{path}: {len(problems)} problems:\n" + "\n".join(f"  - {line}" for line in lines))


@dataclass
class Document:
    """A YAML file as plain data, with the position of every value by its key path.

    Key paths read ``resources.time``, ``phases[0].end``, ``teams.alpha.keys[1]``.
    """

    path: Path
    data: Any
    marks: dict[str, tuple[int, int]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)  #: found while reading (duplicate keys, ...)


def read_yaml(path: Path, *, missing: str) -> Document:
    """Read and parse ``path``; raise :class:`InputError` when it cannot be read as YAML at all.

    ``missing`` is the fix shown when the file does not exist (a :class:`JcError`).
    Problems that leave the rest readable (duplicate keys) are in :attr:`Document.problems`.
    """
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except FileNotFoundError:
        raise JcError(f"{path}: not found: {missing}") from None
    except IsADirectoryError:
        raise JcError(f"{path}: is a folder, not a file: {missing}") from None
    except OSError as exc:
        raise JcError(f"{path}: cannot be read ({exc.strerror}): check its permissions") from None
    return parse_yaml(raw, path)


def parse_yaml(raw: bytes, path: Path | str = "<input>") -> Document:
    """:func:`read_yaml` on bytes already read."""
    path = Path(path)
    if len(raw) > MAX_BYTES:
        raise InputError(path, [Problem("(file)", f"over {MAX_BYTES} bytes", f"this file should be a few "
                                        f"kilobytes; keep it under {MAX_BYTES // 1024} KiB")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _position(raw, exc.start)
        raise InputError(path, [Problem(
            "(encoding)", raw[exc.start:exc.start + 1].hex(" "),
            f"byte 0x{raw[exc.start]:02x} is not UTF-8 (a Latin-1 or Windows file?): "
            "save the file as UTF-8", line, column)]) from None
    if "\x00" in text:
        line, column = _position(raw, raw.index(b"\x00"))
        raise InputError(path, [Problem("(encoding)", "\\x00", "a NUL character: this is not a text file",
                                        line, column)])
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        context = exc.context or ""
        if exc.context and exc.context_mark and mark is not exc.context_mark:
            context += f" (from line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
        what = " ".join(str(s) for s in (context, exc.problem) if s)
        raise InputError(path, [Problem(
            "(syntax)", _snippet(text, mark), f"{what}: fix the YAML syntax",
            mark.line + 1 if mark else None, mark.column + 1 if mark else None)]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise InputError(path, [Problem("(encoding)", f"U+{exc.character:04X}" if isinstance(exc.character, int)
                                        else None, "a control character YAML does not allow: remove it",
                                        line, column)]) from None
    except yaml.YAMLError as exc:
        raise InputError(path, [Problem("(syntax)", None, f"{exc}: fix the YAML syntax")]) from None
    except RecursionError:
        raise InputError(path, [Problem("(syntax)", None, f"nested too deeply: keep it under "
                                        f"{MAX_DEPTH} levels")]) from None
    if len(nodes) > 1:
        return Document(path, None, problems=[Problem(
            "(file)", f"{len(nodes)} documents", "keep one YAML document (remove the extra '---')",
            nodes[1].start_mark.line + 1, nodes[1].start_mark.column + 1)])
    doc = Document(path, None)
    if nodes and nodes[0] is not None:
        builder = _Builder(doc)
        try:
            doc.data = builder.value(nodes[0], "", 0)
        except _TooBig as exc:
            raise InputError(path, [Problem("(file)", None, str(exc))]) from None
    return doc


def _position(raw: bytes, offset: int) -> tuple[int, int]:
    before = raw[:offset]
    line_start = before.rfind(b"\n") + 1
    return before.count(b"\n") + 1, offset - line_start + 1


def _snippet(text: str, mark: Any) -> str | None:
    if mark is None:
        return None
    lines = text.splitlines()
    return lines[mark.line].strip() if mark.line < len(lines) else None


class _TooBig(Exception):
    pass


class _Builder:
    """Node tree -> plain data, counting every value visited (aliases each time)."""

    def __init__(self, doc: Document):
        self.doc = doc
        self.count = 0
        self.constructor = SafeConstructor()

    def mark(self, path: str, node: Node) -> tuple[int, int]:
        where = (node.start_mark.line + 1, node.start_mark.column + 1)
        self.doc.marks.setdefault(path, where)
        return where

    def value(self, node: Node, path: str, depth: int) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise _TooBig(f"more than {MAX_NODES} values once YAML aliases are expanded (an alias bomb?): "
                          "write the values out; this file needs no anchors or aliases")
        if depth > MAX_DEPTH:
            raise _TooBig(f"nested more than {MAX_DEPTH} levels deep: flatten the file")
        self.mark(path or "(top level)", node)
        if isinstance(node, ScalarNode):
            try:
                return self.constructor.construct_object(node, deep=True)
            except (ConstructorError, ValueError, OverflowError, KeyError) as exc:
                # an explicit tag (!!bool maybe, !foo) or an impossible date (2027-02-30)
                reason = exc.problem if isinstance(exc, ConstructorError) else exc
                line, column = self.mark(path, node)
                self.doc.problems.append(Problem(path or "(top level)", node.value,
                                                 f"cannot be read ({reason}): write it as plain text, a "
                                                 "number or a date, without a YAML tag", line, column))
                return None
        if isinstance(node, SequenceNode):
            return [self.value(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node.value)]
        if isinstance(node, MappingNode):
            out: dict[str, Any] = {}
            first: dict[str, tuple[int, int]] = {}
            for key_node, value_node in node.value:
                where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
                if not isinstance(key_node, ScalarNode):
                    self.doc.problems.append(Problem(path or "(top level)", None, "a key must be plain text, "
                                                     "not a list or mapping", *where))
                    continue
                key = str(key_node.value)
                sub = f"{path}.{key}" if path else key
                if key in first:
                    self.doc.problems.append(Problem(
                        sub, None, f"duplicate key (first at line {first[key][0]}): keep one of them", *where))
                    self.count += 1
                    continue
                first[key] = where
                out[key] = self.value(value_node, sub, depth + 1)
            return out
        raise _TooBig(f"unexpected YAML node {type(node).__name__}")  # pragma: no cover


def suggest(word: str, known: Iterable[str]) -> str:
    """``"; did you mean 'keys'?"`` when ``word`` is close to one of ``known``, else ``""``."""
    close = difflib.get_close_matches(str(word), list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


class Checker:
    """Collects problems while reading a nested mapping; each gets its place from ``marks``."""

    def __init__(self, data: Any, marks: dict[str, tuple[int, int]] | None = None,
                 problems: Iterable[Problem] = ()):
        self.data = data if isinstance(data, dict) else {}
        self.marks = marks or {}
        self.problems: list[Problem] = list(problems)
        if not isinstance(data, dict):
            self.problem("(top level)", data, "the file must hold a mapping of keys (key: value lines)")

    def place(self, key: str) -> tuple[int | None, int | None]:
        """Line and column of ``key``'s value, or of the nearest enclosing one that exists."""
        probe = key
        while probe:
            if probe in self.marks:
                return self.marks[probe]
            cut = max(probe.rfind("."), probe.rfind("["))
            probe = probe[:cut] if cut > 0 else ""
        return (None, None)

    def problem(self, key: str, value: Any, fix: str) -> None:
        self.problems.append(Problem(key, value, fix, *self.place(key)))

    def section(self, key: str, required: bool = True, mapping: dict[str, Any] | None = None,
                path: str | None = None) -> dict[str, Any]:
        source = self.data if mapping is None else mapping
        path = path or key
        value = source.get(key)
        if value is None:
            if required:
                self.problem(path, None, "missing: add this section")
            return {}
        if not isinstance(value, dict):
            self.problem(path, value, "must be a mapping of keys")
            return {}
        return value

    def get(
        self,
        mapping: dict[str, Any],
        path: str,
        convert: Callable[[Any], Any],
        fix: str,
        default: Any = ...,
    ) -> Any:
        key = path.rsplit(".", 1)[-1]
        if key not in mapping or mapping[key] is None:
            if default is ...:
                self.problem(path, None, f"missing: {fix}")
                return None
            return default
        value = mapping[key]
        try:
            return convert(value)
        except (TypeError, ValueError, OverflowError) as exc:
            self.problem(path, value, f"{exc}: {fix}" if str(exc) else fix)
            return None

    def unknown(self, mapping: dict[str, Any], prefix: str, known: Iterable[str]) -> None:
        known = sorted(known)
        for key in mapping:
            if key not in known:
                where = f"{prefix}.{key}" if prefix else str(key)
                self.problem(where, None, f"unknown key{suggest(key, known)} (known keys: {', '.join(known)})")


# --- converters: each raises ValueError with the reason -------------------------------------


def whole(low: int, high: int) -> Callable[[Any], int]:
    """A whole number in ``[low, high]`` (not a bool, not a float)."""

    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be a whole number from {low} to {high}")
        if not low <= value <= high:
            raise ValueError(f"must lie from {low} to {high}")
        return value

    return convert


def finite(value: Any) -> float:
    """A finite number (``.inf``, ``.nan`` and values past a float's range refused)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number")
    try:
        number = float(value)
    except OverflowError:
        raise ValueError("is far too large") from None
    if not math.isfinite(number):
        raise ValueError("must be a finite number")
    return number


def text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be non-empty text")
    return value.strip()


def text_list(value: Any) -> tuple[str, ...]:
    """A list of non-empty texts; a single text is refused rather than read as its characters."""
    if isinstance(value, str):
        raise ValueError("must be a list, e.g. [a, b] or one '- item' per line, not a single text")
    if not isinstance(value, list):
        raise ValueError("must be a list of texts")
    bad = [item for item in value if not isinstance(item, str) or not item.strip()]
    if bad:
        raise ValueError(f"must be a list of non-empty texts ({bad[0]!r} is not)")
    return tuple(item.strip() for item in value)
