"""Read agentvisor.toml into a validated :class:`Config`, or say everything wrong with it.

Stages: TOML syntax (tomllib), ``${VAR}`` interpolation, structuring (cattrs),
cross-field validation. Every issue of the stages that ran is reported at
once, each at ``file:line:col`` found by :func:`locate` in the text.

The locator is pure (text and key path in, position out); only
:func:`load_config` touches the file system and the environment.
"""

from __future__ import annotations

import bisect
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from typing import Literal

import attrs

from agentvisor.config.convert import KeySegment, structure_config
from agentvisor.config.interpolate import EnvironmentUse, environment_use, interpolate
from agentvisor.config.model import Config
from agentvisor.config.validate import validate_config
from agentvisor.errors import ConfigInvalid, ConfigIssue

__all__ = [
    "Location",
    "environment_use_of",
    "load_config",
    "load_config_and_environment",
    "locate",
    "parse_config",
    "parse_key_path",
    "scan_locations",
]

Path = tuple[KeySegment, ...]


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, parse and validate the file at ``path``; ``env`` defaults to ``os.environ``.

    The result's ``source`` is the file's absolute path and ``base_dir`` its directory.
    """
    return _parsed(path, _read(path), env)


def load_config_and_environment(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> tuple[Config, EnvironmentUse]:
    """:func:`load_config`, and the ``${VAR}`` names of the very text it loaded."""
    text = _read(path)
    config = _parsed(path, text, env)
    return config, environment_use(tomllib.loads(text), os.environ if env is None else env)


def _parsed(path: str | os.PathLike[str], text: str, env: Mapping[str, str] | None) -> Config:
    absolute = os.path.abspath(os.fspath(path))
    config = parse_config(
        text,
        os.fspath(path),
        os.environ if env is None else env,
        base_dir=os.path.dirname(absolute),
    )
    return attrs.evolve(config, source=absolute)


def _read(path: str | os.PathLike[str]) -> str:
    """The file's text, or :class:`ConfigInvalid` saying why it cannot be read."""
    shown = os.fspath(path)
    try:
        with open(path, "rb") as file:
            data = file.read()
    except FileNotFoundError:
        raise ConfigInvalid([ConfigIssue("", "config file not found", file=shown)]) from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        message = f"cannot read the config file ({reason})"
        raise ConfigInvalid([ConfigIssue("", message, file=shown)]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        issue = ConfigIssue("", "is not valid UTF-8", file=shown, line=line)
        raise ConfigInvalid([issue]) from None
    return text


def environment_use_of(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> EnvironmentUse:
    """The ``${VAR}`` names the file at ``path`` references, set or not in ``env``
    (``os.environ`` by default); none when the file cannot be read or parsed."""
    try:
        with open(path, "rb") as file:
            raw = tomllib.loads(file.read().decode("utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return EnvironmentUse()
    return environment_use(raw, os.environ if env is None else env)


def parse_config(
    text: str, source: str, env: Mapping[str, str], *, base_dir: str | None = None
) -> Config:
    """Parse and validate TOML ``text``; raise :class:`ConfigInvalid` with every issue.

    ``source`` names the text in messages and becomes ``Config.source``;
    ``base_dir`` defaults to the absolute directory of ``source``.
    """
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigInvalid([_syntax_issue(exc, text, source)]) from None
    expanded, issues = interpolate(raw, env, source)
    config, structure_issues = structure_config(expanded, source)
    issues += _not_under(structure_issues, issues)
    pruned: list[Path] = []
    if config is None:
        # Set the bad values aside (their defaults stand in) so that the
        # cross-field rules can still report what else is wrong.
        config, pruned = _structure_without(expanded, structure_issues, source)
    if config is not None:
        issues += _not_about(_not_under(validate_config(config), issues), pruned)
    if issues or config is None:
        raise ConfigInvalid(_located(issues, text))
    if base_dir is None:
        base_dir = os.path.dirname(os.path.abspath(source))
    return attrs.evolve(config, base_dir=base_dir)


_TOML_POSITION = re.compile(
    r"^(?P<what>.*?) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$"
)


def _syntax_issue(exc: tomllib.TOMLDecodeError, text: str, source: str) -> ConfigIssue:
    found = _TOML_POSITION.match(str(exc))
    what = found["what"] if found else str(exc)
    if found and found["line"]:
        line, col = int(found["line"]), int(found["col"])
    else:  # at the end of the document
        line, col = text.count("\n") + 1, len(text) - text.rfind("\n")
    offset = sum(len(row) + 1 for row in text.split("\n")[: line - 1]) + col - 1
    if offset >= len(text.rstrip()):  # point at the end of the last line, not past it
        lines = text.rstrip().split("\n")
        line, col = len(lines), len(lines[-1]) + 1
        what = f"{what} at the end of the file"
    return ConfigIssue("", f"invalid TOML: {what[:1].lower()}{what[1:]}", source, line, col)


def _structure_without(
    raw: dict[str, object], issues: Sequence[ConfigIssue], source: str
) -> tuple[Config | None, list[Path]]:
    """Structure ``raw`` without the values ``issues`` name; ``None`` when that fails too."""
    pruned = [path for issue in issues if _delete(raw, path := parse_key_path(issue.path))]
    if len(pruned) < len(issues):
        return None, pruned  # a missing or unremovable value: nothing sound to validate
    config, _ = structure_config(raw, source)
    return config, pruned


def _delete(tree: object, path: Path) -> bool:
    """Remove the table key at ``path``; False when absent or inside an array."""
    *parents, leaf = path or ("",)
    for segment in parents:
        if isinstance(segment, int) or not isinstance(tree, dict) or segment not in tree:
            return False
        tree = tree[segment]
    if isinstance(leaf, int) or not isinstance(tree, dict) or leaf not in tree:
        return False
    del tree[leaf]
    return True


def _not_about(issues: Sequence[ConfigIssue], pruned: Sequence[Path]) -> list[ConfigIssue]:
    """Drop issues that a set-aside value causes (e.g. "needs `command`" once it is gone)."""

    def caused(issue: ConfigIssue, path: Path) -> bool:
        where = parse_key_path(issue.path)
        return path[: len(where)] == where and f"`{path[-1]}`" in issue.message

    return [i for i in issues if not any(caused(i, path) for path in pruned)]


def _not_under(issues: Sequence[ConfigIssue], earlier: Sequence[ConfigIssue]) -> list[ConfigIssue]:
    """Drop issues about a value an earlier stage already reported (one cause, one issue)."""
    reported = [issue.path for issue in earlier]

    def under(path: str, other: str) -> bool:
        return path == other or path.startswith((f"{other}.", f"{other}["))

    return [i for i in issues if not any(under(i.path, other) for other in reported)]


def _located(issues: Sequence[ConfigIssue], text: str) -> list[ConfigIssue]:
    locations = scan_locations(text)
    placed = []
    for issue in issues:
        # An unknown key is pointed at where the key is written; any other issue at the value.
        at: Literal["key", "value"] = "key" if issue.message.startswith("unknown key") else "value"
        line, col = _lookup(locations, parse_key_path(issue.path), at)
        placed.append(attrs.evolve(issue, line=line, col=col))
    return sorted(placed, key=lambda i: (i.line == 0, i.line, i.col))


# --- the locator ---------------------------------------------------------------------


@attrs.frozen
class Location:
    """Where a key path is written: its key, and its value (or table header)."""

    key_line: int
    key_col: int
    value_line: int
    value_col: int


def locate(
    text: str, path: str | Path, *, at: Literal["key", "value"] = "value"
) -> tuple[int, int]:
    """1-based (line, column) of ``path`` in TOML ``text``: of its key or of its value.

    A table written as a header is found at the header's ``[``. A path not
    written in the text (a missing key) falls back to its nearest written
    parent; ``(0, 0)`` when there is none.
    """
    segments = parse_key_path(path) if isinstance(path, str) else tuple(path)
    return _lookup(scan_locations(text), segments, at)


def _lookup(
    locations: Mapping[Path, Location], path: Path, at: Literal["key", "value"]
) -> tuple[int, int]:
    for end in range(len(path), 0, -1):
        found = locations.get(path[:end])
        if found is not None:
            if at == "key" or end < len(path):
                return found.key_line, found.key_col
            return found.value_line, found.value_col
    return 0, 0


_PATH_PART = re.compile(
    r'\.?(?:(?P<bare>[A-Za-z0-9_-]+)|"(?P<quoted>(?:[^"\\]|\\.)*)")|\[(?P<index>\d+)\]'
)


def parse_key_path(path: str) -> Path:
    """``routes[1].match[0].value`` → ``("routes", 1, "match", 0, "value")``."""
    segments: list[KeySegment] = []
    pos = 0
    while pos < len(path):
        part = _PATH_PART.match(path, pos)
        if part is None:
            break
        if part["index"] is not None:
            segments.append(int(part["index"]))
        elif part["bare"] is not None:
            segments.append(part["bare"])
        else:
            segments.append(_unescape(part["quoted"]))
        pos = part.end()
    return tuple(segments)


def scan_locations(text: str) -> dict[Path, Location]:
    """Every key path written in (valid) TOML ``text`` with where it is written."""
    scanner = _Scanner(text)
    try:
        scanner.document()
    except (IndexError, ValueError):
        pass  # not valid TOML after all: keep what was found
    return scanner.found


_ESCAPES = {
    "b": "\b",
    "t": "\t",
    "n": "\n",
    "f": "\f",
    "r": "\r",
    '"': '"',
    "\\": "\\",
    "e": "\x1b",
}


def _unescape(body: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\" or i + 1 == len(body):
            out.append(char)
            i += 1
            continue
        code = body[i + 1]
        if code in "uU":
            width = 4 if code == "u" else 8
            out.append(chr(int(body[i + 2 : i + 2 + width], 16)))
            i += 2 + width
        else:
            out.append(_ESCAPES.get(code, code))
            i += 2
    return "".join(out)


_BARE = re.compile(r"[A-Za-z0-9_-]+")
_SCALAR_END = re.compile(r"[,\]}#\r\n]")


class _Scanner:
    """A reader of valid TOML that notes where each key and value starts."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.found: dict[Path, Location] = {}
        self.explicit: set[Path] = set()
        self.array_lengths: dict[Path, int] = {}
        self.line_starts = [0, *(m.end() for m in re.finditer("\n", text))]

    def where(self, pos: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, pos)
        return line, pos - self.line_starts[line - 1] + 1

    def note(self, path: Path, key_pos: int, value_pos: int, *, explicit: bool = False) -> None:
        if path in self.explicit or (path in self.found and not explicit):
            return
        self.found[path] = Location(*self.where(key_pos), *self.where(value_pos))
        if explicit:
            self.explicit.add(path)

    def peek(self, count: int = 1) -> str:
        return self.text[self.pos : self.pos + count]

    def skip_blank(self, *, newlines: bool) -> None:
        allowed = " \t\r\n" if newlines else " \t"
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char in allowed:
                self.pos += 1
            elif char == "#" and newlines:
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def document(self) -> None:
        table: Path = ()
        while True:
            self.skip_blank(newlines=True)
            if self.pos >= len(self.text):
                return
            start = self.pos
            if self.peek(2) == "[[":
                self.pos += 2
                keys = self.key()[0]
                self.expect("]]")
                parent = self.resolve(keys[:-1])
                array = (*parent, keys[-1])
                index = self.array_lengths.get(array, 0)
                self.array_lengths[array] = index + 1
                table = (*array, index)
                self.note_parents(table, start)
                self.note(array, start, start)
                self.note(table, start, start, explicit=True)
            elif self.peek() == "[":
                self.pos += 1
                keys = self.key()[0]
                self.expect("]")
                table = self.resolve(keys)
                self.note_parents(table, start)
                self.note(table, start, start, explicit=True)
            else:
                self.key_value(table)

    def resolve(self, keys: Sequence[str]) -> Path:
        """A header's keys as a path, with the current element of each array of tables."""
        path: Path = ()
        for key in keys:
            path = (*path, key)
            if path in self.array_lengths:
                path = (*path, self.array_lengths[path] - 1)
        return path

    def note_parents(self, path: Path, pos: int) -> None:
        for end in range(1, len(path)):
            self.note(path[:end], pos, pos)

    def expect(self, token: str) -> None:
        self.skip_blank(newlines=False)
        if not self.text.startswith(token, self.pos):
            raise ValueError(f"expected {token!r} at {self.pos}")
        self.pos += len(token)

    def key(self) -> tuple[list[str], list[int]]:
        """A dotted key: its parts and where each part starts."""
        parts: list[str] = []
        starts: list[int] = []
        while True:
            self.skip_blank(newlines=False)
            starts.append(self.pos)
            char = self.peek()
            if char == '"':
                parts.append(_unescape(self.string()[1:-1]))
            elif char == "'":
                parts.append(self.string()[1:-1])
            else:
                bare = _BARE.match(self.text, self.pos)
                if bare is None:
                    raise ValueError(f"expected a key at {self.pos}")
                parts.append(bare.group())
                self.pos = bare.end()
            self.skip_blank(newlines=False)
            if self.peek() != ".":
                return parts, starts
            self.pos += 1

    def key_value(self, table: Path) -> None:
        keys, starts = self.key()
        self.expect("=")
        self.skip_blank(newlines=False)
        path = table
        for part, start in zip(keys[:-1], starts[:-1], strict=True):
            path = (*path, part)
            self.note(path, start, start)
        self.value((*path, keys[-1]), starts[-1])

    def value(self, path: Path, key_pos: int) -> None:
        self.note(path, key_pos, self.pos, explicit=True)
        char = self.peek()
        if char == "[":
            self.pos += 1
            index = 0
            while True:
                self.skip_blank(newlines=True)
                if self.peek() == "]":
                    self.pos += 1
                    return
                self.value((*path, index), self.pos)
                index += 1
                self.skip_blank(newlines=True)
                if self.peek() == ",":
                    self.pos += 1
        elif char == "{":
            self.pos += 1
            while True:
                self.skip_blank(newlines=True)
                if self.peek() == "}":
                    self.pos += 1
                    return
                self.key_value(path)
                self.skip_blank(newlines=True)
                if self.peek() == ",":
                    self.pos += 1
        elif char in "\"'":
            self.string()
        else:
            end = _SCALAR_END.search(self.text, self.pos)
            self.pos = len(self.text) if end is None else end.start()

    def string(self) -> str:
        """Skip a string of any of the four kinds; its source text, quotes included."""
        start = self.pos
        quote = self.peek()
        delimiter = quote * 3 if self.peek(3) == quote * 3 else quote
        i = self.pos + len(delimiter)
        while not self.text.startswith(delimiter, i):
            i += 2 if quote == '"' and self.text[i] == "\\" else 1
        if len(delimiter) == 3:  # up to two quotes may end the content: """a""""
            while self.text.startswith(quote, i + 3):
                i += 1
        self.pos = i + len(delimiter)
        return self.text[start : self.pos]
