"""Worker output: read from pipes in batches, kept in memory, written to rotating files.

The path of a line: :func:`pump_lines` reads a child's pipe and hands over
every complete line of a chunk at once; the instance appends the batch to the
service's :class:`LogBook` (tail, ``tail -f``) and to the instance's
:class:`RotatingLogFile`. Everything works on batches so that a worker
flooding its stdout costs one callback, one append and one ``write`` per
chunk read, not per line: a batch is one :class:`LogChunk` (its lines share
service, replica, stream and time; their numbers follow each other), and a
:class:`LogLine` object is made only for a line someone reads (``tail``,
the store's sample). Measured with a worker writing as fast as the pipe
takes it, building a LogLine per line was half of agentvisor's CPU.
"""

from __future__ import annotations

import collections
import datetime
import os
import time
from collections.abc import Callable, Sequence
from typing import BinaryIO, overload

import attrs
import trio

DEFAULT_MAX_LINE_BYTES = 65536


@attrs.frozen
class LogLine:
    seq: int  # per service, increasing by 1
    at: float  # wall clock
    service: str
    replica: int
    stream: str  # "stdout" | "stderr"
    text: str  # without the trailing newline; invalid UTF-8 replaced


@attrs.frozen
class LogChunk(Sequence[LogLine]):
    """The lines of one read of one instance's stream, numbered from ``first_seq``.

    A sequence of :class:`LogLine`, made on demand; ``texts`` is what is kept.
    """

    service: str
    replica: int
    stream: str
    at: float
    first_seq: int
    texts: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.texts)

    @overload
    def __getitem__(self, index: int) -> LogLine: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[LogLine]: ...
    def __getitem__(self, index: int | slice) -> LogLine | Sequence[LogLine]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self.texts)))]
        if index < 0:
            index += len(self.texts)
        text = self.texts[index]  # IndexError as a sequence should
        return LogLine(
            self.first_seq + index, self.at, self.service, self.replica, self.stream, text
        )

    def suffix(self, count: int) -> LogChunk:
        """The last ``count`` lines (all of them when there are fewer)."""
        start = max(0, len(self.texts) - count)
        return attrs.evolve(self, first_seq=self.first_seq + start, texts=self.texts[start:])

    @property
    def text_bytes(self) -> int:
        """Characters of text (a cheap estimate of bytes)."""
        return sum(map(len, self.texts))


async def pump_lines(
    stream: trio.abc.ReceiveStream,
    on_lines: Callable[[list[str]], None],
    *,
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
) -> None:
    """Read ``stream`` to its end, passing its lines to ``on_lines`` in batches.

    One call per chunk read, with all the complete lines of that chunk.
    Lines are decoded as UTF-8 (invalid bytes replaced) and lose their
    ``\\n`` and a trailing ``\\r``. A line longer than ``max_line_bytes`` is
    cut into pieces of at most that size (on a character boundary), so a
    worker that never writes a newline cannot grow our memory. An unfinished
    last line is delivered at the end. The stream being closed under us
    (``ProcessHandle.close()``) or broken ends the pump like EOF.
    """
    if max_line_bytes < 4:
        raise ValueError(f"max_line_bytes must be at least 4, got {max_line_bytes}")
    pending = b""
    while True:
        try:
            chunk = await stream.receive_some()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            chunk = b""
        if not chunk:
            break
        data = pending + chunk
        end = data.rfind(b"\n")
        lines: list[str] = []
        if end >= 0:
            pending = data[end + 1 :]
            _split_into(lines, data[:end], max_line_bytes)
        else:
            pending = data
        while len(pending) > max_line_bytes:
            cut = _cut_point(pending, max_line_bytes)
            lines.append(_decode(pending[:cut]))
            pending = pending[cut:]
        if lines:
            on_lines(lines)
    if pending:
        lines = []
        _decode_into(lines, pending, max_line_bytes)
        on_lines(lines)


def _split_into(lines: list[str], block: bytes, max_line_bytes: int) -> None:
    """Append the lines of ``block`` (complete lines, the last ``\\n`` removed).

    One decode and one split for the whole block when no line is too long
    (a newline is never part of a UTF-8 sequence, so decoding the block at
    once replaces the same bytes as decoding line by line); else line by line.
    """
    raw_lines = block.split(b"\n")
    if max(map(len, raw_lines)) > max_line_bytes:
        for raw in raw_lines:
            _decode_into(lines, raw, max_line_bytes)
        return
    texts = _decode(block).split("\n")
    if b"\r" in block:
        texts = [text.removesuffix("\r") for text in texts]
    lines.extend(texts)


def _decode_into(lines: list[str], raw: bytes, max_line_bytes: int) -> None:
    while len(raw) > max_line_bytes:
        cut = _cut_point(raw, max_line_bytes)
        lines.append(_decode(raw[:cut]))
        raw = raw[cut:]
    lines.append(_decode(raw.removesuffix(b"\r")))


def _cut_point(raw: bytes, limit: int) -> int:
    """Where to cut ``raw`` at most ``limit`` bytes in without splitting a UTF-8 character."""
    cut = limit
    # Back off over continuation bytes (0b10xxxxxx); at most 3 in valid UTF-8.
    while cut > limit - 3 and (raw[cut] & 0xC0) == 0x80:
        cut -= 1
    return cut


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


class RotatingLogFile:
    """Append-only log of one instance's stream, rotated by size.

    ``{state_dir}/logs/{service}.{replica}.{stream}.log`` holds the newest
    lines; ``.1`` … ``.{backups}`` the older ones. Each line is written as
    ``<ISO-8601 local time with offset> <text>``. ``max_bytes == 0`` never
    rotates; ``backups == 0`` truncates instead of keeping old files (as
    supervisord's ``stdout_logfile_backups = 0``). A file exceeds
    ``max_bytes`` only when a single line does.

    Synchronous: the writes go to the page cache and are cheap; the caller
    decides whether to run them in a thread.
    """

    def __init__(self, path: str, max_bytes: int, backups: int) -> None:
        if max_bytes < 0 or backups < 0:
            raise ValueError(f"max_bytes and backups must be >= 0, got {max_bytes}, {backups}")
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        # Opened on the first write and closed when the process goes (``close``), so a
        # stopped instance holds no descriptor; after an OSError the next write reopens.
        self._file: BinaryIO | None = None
        self._size = 0

    def _open(self) -> BinaryIO:
        if self._file is None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115 - owned until close()
            self._size = self._file.seek(0, os.SEEK_END)
        return self._file

    def write_lines(self, lines: Sequence[str], *, at: float | None = None) -> None:
        """Append ``lines`` stamped with ``at`` (wall clock; default: now), rotating as needed."""
        if not lines:
            return
        prefix = _iso(time.time() if at is None else at) + " "
        self._open()
        # The usual case, one join and one encode for the whole batch.
        data = (prefix + ("\n" + prefix).join(lines) + "\n").encode("utf-8", errors="replace")
        if not self.max_bytes or self._size + len(data) <= self.max_bytes:
            self._write([data])
            return
        stamp = prefix[:-1].encode()
        batch: list[bytes] = []
        batch_size = 0
        for text in lines:
            record = b"%s %s\n" % (stamp, text.encode("utf-8", errors="replace"))
            if self.max_bytes and self._size + batch_size + len(record) > self.max_bytes:
                if batch:
                    self._write(batch)
                    batch, batch_size = [], 0
                if self._size:
                    self._rotate()
            batch.append(record)
            batch_size += len(record)
        self._write(batch)

    def close(self) -> None:
        file, self._file = self._file, None
        if file is not None:
            file.close()

    def _write(self, records: list[bytes]) -> None:
        data = b"".join(records)
        try:
            self._open().write(data)
        except OSError:
            self.close()  # reopen on the next write (the disk may have room again)
            raise
        self._size += len(data)

    def _rotate(self) -> None:
        self.close()
        if self.backups:
            for index in range(self.backups - 1, 0, -1):
                older = f"{self.path}.{index}"
                if os.path.exists(older):
                    os.replace(older, f"{self.path}.{index + 1}")
            os.replace(self.path, f"{self.path}.1")
            self._file = open(self.path, "ab", buffering=0)  # noqa: SIM115
        else:
            self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115
        self._size = 0


def _iso(at: float) -> str:
    return datetime.datetime.fromtimestamp(at).astimezone().isoformat(timespec="milliseconds")


class LogBook:
    """The recent lines of one service (all replicas, both streams), in memory.

    A ring of about ``capacity`` lines for ``tail`` and followers (``tail -f``
    long-polls with :meth:`wait_beyond`); older lines live in the log files
    and the state store. Sequence numbers start at 1 and never repeat within
    the book's life, so a follower resumes with ``since_seq``. Kept as the
    chunks that were appended (whole chunks leave once ``capacity`` lines
    newer than them are kept), so appending costs nothing per line.
    """

    def __init__(self, service: str, capacity: int = 2000) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.service = service
        self.capacity = capacity
        self._chunks: collections.deque[LogChunk] = collections.deque()
        self._kept = 0  # lines in _chunks
        self._last_seq = 0
        self._appended = trio.Event()

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def append(self, replica: int, stream: str, texts: Sequence[str], at: float) -> LogChunk:
        """Record a batch of lines; return them as one chunk (for the store and the bus)."""
        chunk = LogChunk(self.service, replica, stream, at, self._last_seq + 1, tuple(texts))
        if not chunk.texts:
            return chunk
        kept = chunk if len(chunk) <= self.capacity else chunk.suffix(self.capacity)
        self._chunks.append(kept)
        self._kept += len(kept)
        while self._kept - len(self._chunks[0]) >= self.capacity:
            self._kept -= len(self._chunks.popleft())
        self._last_seq += len(chunk)
        self._appended.set()
        self._appended = trio.Event()
        return chunk

    def tail(
        self,
        limit: int = 100,
        *,
        stream: str | None = None,
        replica: int | None = None,
        since_seq: int = 0,
    ) -> list[LogLine]:
        """The last ``limit`` lines that match, with ``seq > since_seq``, oldest first."""
        found: list[LogLine] = []
        if limit <= 0:
            return found
        oldest = self._last_seq - self.capacity  # lines at or below are forgotten
        for chunk in reversed(self._chunks):
            if chunk.first_seq + len(chunk) - 1 <= since_seq:
                break
            if (stream is not None and chunk.stream != stream) or (
                replica is not None and chunk.replica != replica
            ):
                continue
            for index in range(len(chunk) - 1, -1, -1):
                seq = chunk.first_seq + index
                if seq <= since_seq or seq <= oldest:
                    break
                found.append(chunk[index])
                if len(found) == limit:
                    found.reverse()
                    return found
        found.reverse()
        return found

    async def wait_beyond(self, seq: int) -> None:
        """Return once a line with a sequence number above ``seq`` exists.

        Checks first, so a follower that missed a wake-up does not sleep
        through lines already there. The caller owns the timeout.
        """
        if self._last_seq > seq:
            await trio.lowlevel.checkpoint()
            return
        while self._last_seq <= seq:
            await self._appended.wait()
