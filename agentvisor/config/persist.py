"""Edits of agentvisor.toml through the API: one at a time, validated, written atomically.

The file is the desired state (ARCHITECTURE.md), so a registration or route
change is an edit of it: read the text, apply a pure edit of
:mod:`agentvisor.config.edit`, validate the whole new text as a reload would,
then write it by rename. The caller applies the returned :class:`Config`.

- Edits are serialized by one ``trio.Lock``, so concurrent requests each see
  the previous one's result and none is lost.
- An edit whose result does not validate raises :class:`ConfigInvalid` with
  every issue, and the file is not touched. The issues name key paths, not
  lines: the text they are about was never written. ``check`` (the agent
  files an edit adds or changes must load) rejects an edit the same way.
- The write is a temp file in the same directory, flushed and fsynced, then
  ``os.replace``: a reader (the SIGHUP reload, an operator's ``cat``) sees the
  old file or the new one, never half of one. The directory is fsynced so the
  rename survives a crash. The file's mode (and, when allowed, owner) is kept;
  a symlinked config is written through to its target.
- If the file changed on disk since it was read (an operator saved it in an
  editor), the edit is redone on the new text rather than overwriting it.
- OS errors become :class:`ConfigWriteFailed` with a one-line message; the
  file is then as it was.
- An editor made by :meth:`ConfigEditor.with_journal` tells its journal the
  old and new bytes before each rename (the audit log's intent record, so a
  kill between the rename and the audit entry loses nothing: store/intents.py).

Blocking calls (read, write, fsync) run in a worker thread. A cancelled edit
may still have landed in the file; the next reload applies it.
"""

from __future__ import annotations

import contextlib
import copy
import os
import stat
import tempfile
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import attrs
import trio

from agentvisor.config import edit as edits
from agentvisor.config.load import parse_config
from agentvisor.config.model import Config
from agentvisor.errors import ConfigInvalid, ConfigIssue, ConfigWriteFailed

__all__ = ["ConfigEditor", "WriteJournal"]

#: How often an edit is redone when the file keeps changing under it.
_ATTEMPTS = 3


class WriteJournal(Protocol):
    async def before_write(self, path: str, old: bytes | None, new: bytes) -> None:
        """Called before ``path`` is replaced by ``new``; may raise to stop the write."""


class _ChangedOnDisk(Exception):
    """The file is no longer the text the edit started from."""


class ConfigEditor:
    """Serialized, validated, atomic edits of one config file."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        env: Mapping[str, str] | None = None,
        check: Callable[[Config, Config], Sequence[ConfigIssue]] | None = None,
    ) -> None:
        """``env`` resolves ``${VAR}`` during validation; ``None`` means ``os.environ``.

        ``check(old, new)``, run in a thread, returns more problems of an edit's
        result (e.g. agent files that do not load); any of them rejects it.
        """
        self.path = os.fspath(path)
        self._env = env
        self._check = check
        self._lock = trio.Lock()
        self._journal: WriteJournal | None = None

    def with_journal(self, journal: WriteJournal) -> ConfigEditor:
        """This editor (same file, same lock) telling ``journal`` before each write."""
        journaled = copy.copy(self)
        journaled._journal = journal
        return journaled

    async def register_agent(self, name: str, settings: Mapping[str, Any]) -> Config:
        """Add ``[agents.NAME]`` (``ServiceAlreadyExists`` if it is there)."""
        return await self.edit(lambda text: edits.add_agent(text, name, settings))

    async def update_agent(self, name: str, changes: Mapping[str, Any]) -> Config:
        """Merge-patch agent NAME (``None`` removes a key); ``ServiceNotFound`` if absent."""
        return await self.edit(lambda text: edits.update_agent(text, name, changes))

    async def delete_agent(self, name: str) -> Config:
        """Remove agent NAME's tables; ``ServiceNotFound`` if absent."""
        return await self.edit(lambda text: edits.remove_agent(text, name))

    async def create_route(self, settings: Mapping[str, Any]) -> Config:
        """Append a ``[[routes]]`` entry; ``InvalidRequest`` if its name is missing or taken."""
        return await self.edit(lambda text: edits.add_route(text, settings))

    async def update_route(self, name: str, changes: Mapping[str, Any]) -> Config:
        """Merge-patch the route named NAME; ``RuleNotFound`` if absent."""
        return await self.edit(lambda text: edits.update_route(text, name, changes))

    async def delete_route(self, name: str) -> Config:
        """Remove the route named NAME; ``RuleNotFound`` if absent."""
        return await self.edit(lambda text: edits.remove_route(text, name))

    async def edit(self, change: Callable[[str], str]) -> Config:
        """Apply ``change`` (old text → new text) to the file; the new, validated config.

        ``change`` runs under the lock on the trio thread, so it must be quick
        and pure; whatever it raises propagates with the file untouched. Every
        method raises ``ConfigInvalid`` (file untouched) when the result does
        not validate, and ``ConfigWriteFailed`` when the file cannot be written.
        """
        async with self._lock:
            for _ in range(_ATTEMPTS):
                text = await trio.to_thread.run_sync(self._read)
                try:
                    new_text = change(text)
                except ConfigInvalid:
                    self._validate(text)  # the file is not TOML: say where, with its name
                    raise
                config = self._proposed(text, new_text)
                if new_text == text:
                    return config
                if self._check is not None:
                    running = self._validate(text)
                    issues = await trio.to_thread.run_sync(self._check, running, config)
                    if issues:
                        raise ConfigInvalid([_unlocated(issue) for issue in issues])
                if self._journal is not None:
                    old = text.encode("utf-8")
                    await self._journal.before_write(self.path, old, new_text.encode("utf-8"))
                try:
                    await trio.to_thread.run_sync(self._write, text, new_text)
                except _ChangedOnDisk:
                    continue
                return config
        message = f"{self.path} kept changing on disk while being edited; try again"
        raise ConfigWriteFailed(message, path=self.path)

    def _proposed(self, text: str, new_text: str) -> Config:
        """``new_text`` validated. Its problems are not located in the file, which does
        not hold that text; when the file itself is invalid, its own problems are."""
        try:
            return self._validate(new_text)
        except ConfigInvalid as exc:
            self._validate(text)
            raise ConfigInvalid([_unlocated(issue) for issue in exc.issues]) from None

    def _validate(self, text: str) -> Config:
        absolute = os.path.abspath(self.path)
        env = os.environ if self._env is None else self._env
        config = parse_config(text, self.path, env, base_dir=os.path.dirname(absolute))
        return attrs.evolve(config, source=absolute)

    def _read(self) -> str:
        try:
            with open(self.path, "rb") as file:
                data = file.read()
        except OSError as exc:
            raise self._failed("read", exc) from None
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            issue = ConfigIssue("", "is not valid UTF-8", file=self.path, line=line)
            raise ConfigInvalid([issue]) from None

    def _write(self, old_text: str, new_text: str) -> None:
        target = os.path.realpath(self.path)
        directory = os.path.dirname(target)
        try:
            with open(target, "rb") as file:
                if file.read() != old_text.encode("utf-8"):
                    raise _ChangedOnDisk
                info = os.fstat(file.fileno())
            fd, temporary = tempfile.mkstemp(
                prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory
            )
        except OSError as exc:
            raise self._failed("write", exc) from None
        try:
            with os.fdopen(fd, "wb") as file:
                file.write(new_text.encode("utf-8"))
                file.flush()
                os.fchmod(file.fileno(), stat.S_IMODE(info.st_mode))
                with contextlib.suppress(PermissionError):  # not root: keep our own
                    os.fchown(file.fileno(), info.st_uid, info.st_gid)
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise self._failed("write", exc) from None
        _fsync_directory(directory)

    def _failed(self, doing: str, exc: OSError) -> ConfigWriteFailed:
        reason = exc.strerror or type(exc).__name__
        return ConfigWriteFailed(
            f"cannot {doing} the config file {self.path} ({reason})", path=self.path
        )


def _fsync_directory(directory: str) -> None:
    """Make the rename durable. The file is already replaced, so a failure here
    (some file systems cannot fsync a directory) is not reported as a failed write."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _unlocated(issue: ConfigIssue) -> ConfigIssue:
    return attrs.evolve(issue, file="", line=0, col=0)
