"""Which config writes landed, from their intent records and the file as it is (pure).

An API edit of agentvisor.toml records an *intent* (the audit entry it will
make, the SHA-256 of the file before and after) in the state store before the
file is renamed into place; the audit entry, when it is written, deletes its
intent in the same transaction. An intent still there at start-up means
agentvisor stopped in between (kill -9, a power cut after the rename). Its
change landed if the file shows it: the file's digest is the intent's
``new`` digest, or is the ``new`` digest of a later intent that landed on top
of it (edits are serialized, so each landed one starts from the previous
one's ``new``). An intent whose change did not reach the file is dropped.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

import attrs


@attrs.frozen
class Intent:
    id: int
    path: str
    old_digest: str | None  # None: the file was not there or not readable
    new_digest: str


def digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def landed(pending: Iterable[Intent], current: Mapping[str, str | None]) -> set[int]:
    """The ids of the intents whose change is in the file; ``current`` maps a path to its
    digest now (None when it cannot be read: nothing landed there that we can tell)."""
    found: set[int] = set()
    by_path: dict[str, list[Intent]] = {}
    for intent in pending:
        by_path.setdefault(intent.path, []).append(intent)
    for path, intents in by_path.items():
        expected = current.get(path)
        for intent in sorted(intents, key=lambda intent: intent.id, reverse=True):
            if expected is not None and intent.new_digest == expected:
                found.add(intent.id)
                expected = intent.old_digest
    return found
