"""The router's connection table and session affinity map (pure data).

One :class:`ConnectionRecord` per client connection, indexed by instance and
by agent so that the strategies' connection counts and a drain's "who is on
this instance" are lookups, not scans. Times are passed in.

Records are mutable because the relay bumps their counters on every message
(re-creating a frozen record per message would cost more than the relay
itself); everything the table hands out is a copy, so a caller can never
change the table behind its back.

The affinity map (session id → instance id) outlives connections: a session
lives on its instance, and a client that reconnects later naming it should
get there. It is bounded: least recently used sessions are forgotten beyond
``max_sessions``, and a connection remembers at most
``max_sessions_per_connection`` of its own (the most recent), which failover
resumes.
"""

from __future__ import annotations

import enum
from collections import OrderedDict

import attrs
from attrs import define, frozen


class ConnectionStatus(enum.StrEnum):
    CONNECTING = "connecting"  # client accepted, upstream being opened
    ACTIVE = "active"  # relaying
    FAILING_OVER = "failing_over"  # upstream lost, looking for another instance
    CLOSING = "closing"


@define
class ConnectionRecord:
    """One client connection; ``*_in`` counts client → agent, ``*_out`` agent → client."""

    id: str
    client_ip: str
    agent: str
    instance_id: str
    since: float
    last_activity: float = attrs.field(
        default=attrs.Factory(lambda self: self.since, takes_self=True)
    )
    session_ids: tuple[str, ...] = ()
    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    status: ConnectionStatus = ConnectionStatus.ACTIVE
    rule: str | None = None
    strategy: str = ""


@frozen
class ConnectionPage:
    """One page of a listing; ``total`` counts every match, before limit and offset."""

    items: tuple[ConnectionRecord, ...]
    total: int


class ConnectionTable:
    """Open connections by id (in arrival order), instance and agent, plus affinity.

    Updates naming an unknown connection id are ignored: the relay may still
    be finishing a message when its connection is removed, and losing that
    count is better than failing the relay.
    """

    def __init__(
        self, *, max_sessions: int = 100_000, max_sessions_per_connection: int = 1000
    ) -> None:
        if max_sessions < 1 or max_sessions_per_connection < 1:
            raise ValueError("session bounds must be at least 1")
        self.max_sessions = max_sessions
        self.max_sessions_per_connection = max_sessions_per_connection
        self._records: dict[str, ConnectionRecord] = {}
        self._by_instance: dict[str, dict[str, None]] = {}  # dicts as ordered sets
        self._by_agent: dict[str, dict[str, None]] = {}
        self._sessions: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, connection_id: object) -> bool:
        return connection_id in self._records

    def add(self, record: ConnectionRecord) -> None:
        """Track a new connection (the table keeps its own copy)."""
        if record.id in self._records:
            raise ValueError(f"connection {record.id!r} is already in the table")
        record = attrs.evolve(record)
        self._records[record.id] = record
        self._index(record)
        for session_id in record.session_ids:
            self._remember(session_id, record.instance_id)

    def get(self, connection_id: str) -> ConnectionRecord | None:
        record = self._records.get(connection_id)
        return attrs.evolve(record) if record is not None else None

    def remove(self, connection_id: str) -> ConnectionRecord | None:
        """Stop tracking a connection; its sessions stay in the affinity map."""
        record = self._records.pop(connection_id, None)
        if record is None:
            return None
        self._unindex(record)
        return record

    def count_in(self, connection_id: str, size_bytes: int, now: float) -> None:
        """A message from the client was relayed."""
        record = self._records.get(connection_id)
        if record is not None:
            record.messages_in += 1
            record.bytes_in += size_bytes
            record.last_activity = now

    def count_out(self, connection_id: str, size_bytes: int, now: float) -> None:
        """A message to the client was relayed."""
        record = self._records.get(connection_id)
        if record is not None:
            record.messages_out += 1
            record.bytes_out += size_bytes
            record.last_activity = now

    def set_status(self, connection_id: str, status: ConnectionStatus) -> None:
        record = self._records.get(connection_id)
        if record is not None:
            record.status = status

    def move(self, connection_id: str, agent: str, instance_id: str) -> None:
        """After a failover: the connection, and the sessions it resumed, are on ``instance_id``."""
        record = self._records.get(connection_id)
        if record is None:
            return
        self._unindex(record)
        record.agent, record.instance_id = agent, instance_id
        self._index(record)
        for session_id in record.session_ids:
            self._remember(session_id, instance_id)

    def connections_of(self, instance_id: str) -> int:
        """Open connections on an instance: the load ``least_connections`` compares."""
        return len(self._by_instance.get(instance_id, ()))

    def by_instance(self, instance_id: str) -> tuple[ConnectionRecord, ...]:
        """In the order they arrived on that instance."""
        return self._copies(self._by_instance.get(instance_id, {}))

    def by_agent(self, agent: str) -> tuple[ConnectionRecord, ...]:
        return self._copies(self._by_agent.get(agent, {}))

    def snapshot(
        self,
        *,
        agent: str | None = None,
        instance_id: str | None = None,
        status: ConnectionStatus | None = None,
        client_ip: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> ConnectionPage:
        """Connections matching every given filter, oldest first, one page of them.

        A scan, not an index lookup: it serves the admin API, and keeps the
        arrival order whatever failovers moved.
        """
        if limit < 0 or offset < 0:
            raise ValueError(f"limit and offset must be >= 0, got {limit} and {offset}")
        matching = [
            record
            for record in self._records.values()
            if (agent is None or record.agent == agent)
            and (instance_id is None or record.instance_id == instance_id)
            and (status is None or record.status == status)
            and (client_ip is None or record.client_ip == client_ip)
        ]
        page = matching[offset : offset + limit]
        return ConnectionPage(tuple(attrs.evolve(record) for record in page), len(matching))

    def learn_session(self, connection_id: str, session_id: str) -> bool:
        """The relay saw ``session_id`` created or resumed on this connection.

        Returns whether the connection is known (an unknown one learns nothing).
        """
        record = self._records.get(connection_id)
        if record is None:
            return False
        if session_id not in record.session_ids:
            known = (*record.session_ids, session_id)
            record.session_ids = known[-self.max_sessions_per_connection :]
        self._remember(session_id, record.instance_id)
        return True

    def instance_of_session(self, session_id: str) -> str | None:
        """The instance that last held ``session_id``, for affinity (counts as a use)."""
        instance_id = self._sessions.get(session_id)
        if instance_id is not None:
            self._sessions.move_to_end(session_id)
        return instance_id

    def forget_session(self, session_id: str) -> None:
        """The session ended; later connections naming it get no affinity."""
        self._sessions.pop(session_id, None)

    def known_sessions(self) -> int:
        return len(self._sessions)

    def _remember(self, session_id: str, instance_id: str) -> None:
        self._sessions[session_id] = instance_id
        self._sessions.move_to_end(session_id)
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)

    def _index(self, record: ConnectionRecord) -> None:
        self._by_instance.setdefault(record.instance_id, {})[record.id] = None
        self._by_agent.setdefault(record.agent, {})[record.id] = None

    def _unindex(self, record: ConnectionRecord) -> None:
        for index, key in ((self._by_instance, record.instance_id), (self._by_agent, record.agent)):
            members = index.get(key)
            if members is not None:
                members.pop(record.id, None)
                if not members:
                    del index[key]

    def _copies(self, ids: dict[str, None]) -> tuple[ConnectionRecord, ...]:
        return tuple(attrs.evolve(self._records[connection_id]) for connection_id in ids)
