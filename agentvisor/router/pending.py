"""Client bytes kept while no worker is connected (pure): a failover's buffer, bounded.

Beyond ``limit`` the client is not read (its pump waits for a worker), except
for bytes that were on their way to a worker that died under the write: those
are kept whatever their size, since the client has sent them already.
``upto``: the user messages (numbered by the session tracker) in the buffer,
marked sent once a new worker took them.
"""

from __future__ import annotations


class PendingBytes:
    __slots__ = ("_chunks", "limit", "size", "upto")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._chunks: list[bytes] = []
        self.size = 0
        self.upto = 0

    def hold(self, data: bytes, upto: int, *, force: bool = False) -> bool:
        """Keep ``data``; False when it does not fit (the first chunk always does)."""
        if force or not self._chunks or self.size + len(data) <= self.limit:
            self._chunks.append(data)
            self.size += len(data)
            self.upto = upto
            return True
        return False

    def take(self) -> tuple[bytes, int] | None:
        """Everything kept, and the user messages it holds; None when empty."""
        if not self._chunks:
            return None
        chunk = b"".join(self._chunks)
        self._chunks.clear()
        self.size = 0
        return chunk, self.upto

    def put_back(self, chunk: bytes) -> None:
        """The new worker died under the write: ``chunk`` goes first to the next one."""
        self._chunks.insert(0, chunk)
        self.size += len(chunk)
