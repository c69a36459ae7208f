"""Where things are written in TOML text: statements, values, tables (pure).

The span-keeping edits of :mod:`agentvisor.config.edit` need to know, for
valid TOML, which lines are headers, comments, blanks and key lines, where
each value starts and ends (inside inline tables and arrays too), and which
lines make up each table. tomllib gives no positions and tomlkit's document
files the comments above a header under the previous table, so this scanner
notes them itself. It reads valid TOML only: check with tomllib first.

A table's block is its header, the comment lines directly above the header
(no blank line between) and every line up to the next block.
"""

from __future__ import annotations

import itertools
import re
import tomllib
from typing import Literal

import attrs

__all__ = ["Block", "Layout", "Line", "Path", "Value", "first_of_comments", "scan_layout", "under"]

Path = tuple[str | int, ...]

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def under(path: Path | None, prefix: Path) -> bool:
    """Whether ``path`` is ``prefix`` or below it; ``None`` (before any header) is not."""
    return path is not None and path[: len(prefix)] == prefix


@attrs.frozen
class Value:
    """Where one value is written; for an inline table or array, also its items."""

    start: int  # first character of the value
    end: int  # just after it
    item_start: int  # where its key starts (an array element: the value)
    kind: Literal["table", "array", "scalar"]
    items: tuple[Path, ...]  # of an inline table or array, in order


@attrs.frozen
class Line:
    """One statement: a blank, comment or header line, or a key line (maybe several lines)."""

    kind: Literal["blank", "comment", "header", "keyval"]
    start: int
    end: int  # after its newline
    path: Path = ()  # a header's table, or a key line's full key path
    table: Path = ()  # the table a key line is written in


@attrs.frozen
class Block:
    """A table's lines: the comments attached above its header, the header, its body."""

    path: Path | None  # the header's table; None for the lines before the first header
    start: int  # comments attached above the header included
    end: int
    body_end: int  # after the header or its last key line: where a new key goes


@attrs.frozen
class Layout:
    """Every statement, every value by its full key path, every table block in order."""

    lines: list[Line]
    values: dict[Path, Value]
    blocks: list[Block]

    def past_blank_lines(self, at: int) -> int:
        """Where the run of blank lines starting at ``at`` ends (``at`` when there is none)."""
        for line in self.lines:  # in order, so each next blank line is met in turn
            if line.start == at and line.kind == "blank":
                at = line.end
        return at

    def blank_line_ending_at(self, at: int) -> Line | None:
        """The blank line that ends just before ``at``, if that line is blank."""
        ending = (line for line in self.lines if line.end == at and line.start < at)
        return next((line for line in ending if line.kind == "blank"), None)


def first_of_comments(lines: list[Line], index: int) -> int:
    """Index of the first of the comment lines directly above ``lines[index]`` (or ``index``)."""
    while index > 0 and lines[index - 1].kind == "comment":
        index -= 1
    return index


def scan_layout(text: str) -> Layout:
    """The layout of TOML ``text``; raises ``tomllib.TOMLDecodeError`` when it is not valid."""
    tomllib.loads(text)  # raises TOMLDecodeError; the scanner trusts the syntax
    scanner = _Scanner(text)
    scanner.document()
    lines = scanner.lines
    heads = [i for i, line in enumerate(lines) if line.kind == "header"]
    starts = [0]
    for head in heads:
        starts.append(max(starts[-1], first_of_comments(lines, head)))
    bounds = [*starts, len(lines)]
    blocks = []
    for n, (first, stop) in enumerate(itertools.pairwise(bounds)):
        own = lines[first:stop]
        head_line = lines[heads[n - 1]] if n else None
        keys = [line.end for line in own if line.kind == "keyval"]
        start = own[0].start if own else (lines[first - 1].end if first else 0)
        end = own[-1].end if own else start
        body_end = max(keys, default=head_line.end if head_line else start)
        blocks.append(Block(head_line.path if head_line else None, start, end, body_end))
    return Layout(lines, scanner.values, blocks)


_SCALAR_END = re.compile(r"[,\]}#\r\n]")


class _Scanner:
    """Reads valid TOML, noting every statement and where each value is written."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: list[Line] = []
        self.values: dict[Path, Value] = {}
        self.array_lengths: dict[Path, int] = {}

    def peek(self, count: int = 1) -> str:
        return self.text[self.pos : self.pos + count]

    def skip(self, *, newlines: bool) -> None:
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in " \t" or (newlines and char in "\r\n"):
                self.pos += 1
            elif char == "#" and newlines:
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def document(self) -> None:
        table: Path = ()
        while self.pos < len(self.text):
            start = self.pos
            self.skip(newlines=False)
            char, path = self.peek(), table
            kind: Literal["blank", "comment", "header", "keyval"] = "keyval"
            if char in ("\r", "\n", ""):
                kind = "blank"
            elif char == "#":
                kind = "comment"
            elif char == "[":
                kind, array = "header", self.peek(2) == "[["
                self.pos += 2 if array else 1
                table = path = self.resolve(self.key(), array=array)
                self.skip(newlines=False)
                self.pos += 2 if array else 1
            else:
                path = self.key_value(table)
            self.skip(newlines=False)
            if self.peek() == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            self.pos += 2 if self.peek(2) == "\r\n" else 1 if self.peek() == "\n" else 0
            self.lines.append(Line(kind, start, self.pos, path, table))

    def resolve(self, keys: list[str], *, array: bool) -> Path:
        path: Path = ()
        for index, key in enumerate(keys):
            path = (*path, key)
            if array and index == len(keys) - 1:
                count = self.array_lengths.get(path, 0)
                self.array_lengths[path] = count + 1
                return (*path, count)
            if path in self.array_lengths:
                path = (*path, self.array_lengths[path] - 1)
        return path

    def key(self) -> list[str]:
        parts: list[str] = []
        while True:
            self.skip(newlines=False)
            if self.peek() in ("'", '"'):
                parts.append(tomllib.loads(f"k = {self.string()}")["k"])
            else:
                bare = _BARE.match(self.text, self.pos)
                assert bare is not None, "valid TOML has a key here"
                parts.append(bare.group())
                self.pos = bare.end()
            self.skip(newlines=False)
            if self.peek() != ".":
                return parts
            self.pos += 1

    def key_value(self, table: Path) -> Path:
        self.skip(newlines=False)
        key_start = self.pos
        path = (*table, *self.key())
        self.pos += 1  # the "="
        self.skip(newlines=False)
        self.value(path, key_start)
        return path

    def value(self, path: Path, item_start: int) -> None:
        start, char = self.pos, self.peek()
        items: list[Path] = []
        kind: Literal["table", "array", "scalar"] = "scalar"
        if char in "[{":
            kind, close = ("array", "]") if char == "[" else ("table", "}")
            self.pos += 1
            while True:
                self.skip(newlines=True)
                if self.peek() == close:
                    self.pos += 1
                    break
                if kind == "array":
                    items.append((*path, len(items)))
                    self.value(items[-1], self.pos)
                else:
                    items.append(self.key_value(path))
                self.skip(newlines=True)
                if self.peek() == ",":
                    self.pos += 1
        elif char in "\"'":
            self.string()
        else:
            end = _SCALAR_END.search(self.text, self.pos)
            self.pos = len(self.text) if end is None else end.start()
            while self.text[self.pos - 1] in " \t":
                self.pos -= 1
        self.values[path] = Value(start, self.pos, item_start, kind, tuple(items))

    def string(self) -> str:
        """Skip a string of any of the four kinds; its source text, quotes included."""
        start, quote = self.pos, self.peek()
        delimiter = quote * 3 if self.peek(3) == quote * 3 else quote
        i = self.pos + len(delimiter)
        while not self.text.startswith(delimiter, i):
            i += 2 if quote == '"' and self.text[i] == "\\" else 1
        if len(delimiter) == 3:  # up to two quotes may end the content: """a""""
            while self.text.startswith(quote, i + 3):
                i += 1
        self.pos = i + len(delimiter)
        return self.text[start : self.pos]
