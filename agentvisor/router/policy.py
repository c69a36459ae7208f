"""What a route's agents understand, and what the connection core asks its shells to do (pure).

``Policy`` is built from the config once per connection; the actions are the
data :class:`~agentvisor.router.connection.ConnectionCore` answers its events
with (``Notify``, ``Ping``, ``Failover``, ``Close``).
"""

from __future__ import annotations

from typing import Final

from attrs import frozen

from agentvisor.router.compression import Agreement

#: Close codes after which a worker is failed over (as is a stream ending without one).
FAILOVER_CODES: Final = frozenset({1001, 1006, 1011, 1012})
#: The ceiling of an agent worker's frames (``worker/serve.py``): below it, a message
#: over the worker's ``max_message_bytes`` is answered with ``MESSAGE_TOO_LARGE``.
AGENT_FRAME_CEILING: Final = 16 * 1024 * 1024
#: Client bytes kept while no worker is connected (beyond it the client is not read).
PENDING_LIMIT: Final = 1024 * 1024

LOST_REASON: Final = "the connection to the agent was lost"
NO_INSTANCE_REASON: Final = "no instance of the agent is available"
TOO_MANY_REASON: Final = "the agent keeps closing the connection"


@frozen
class Policy:
    """What the route's agents understand, and the bounds that apply (from the config)."""

    agent_protocol: bool  # every agent of the route is an ``agent =`` worker
    notices: bool  # management events are sent to the client
    failover: bool  # a lost worker is replaced
    ping_interval: float = 20.0
    ping_timeout: float = 20.0
    #: Failovers in a row of workers that each served the client less than
    #: ``failover_window`` seconds and ended no turn: then the loss is final.
    max_failovers: int = 5
    failover_window: float = 2.0
    wrap: bool = False  # client messages go in the seeds' envelope (``wrap_messages``)
    max_message_bytes: int = 1024 * 1024  # the router's own limit (``[router]``)
    #: permessage-deflate with the client, if agreed: at the router, or passed through.
    deflate: Agreement | None = None

    @classmethod
    def build(
        cls,
        *,
        agent_protocol: bool,
        router_notices: bool,
        management_events: bool,
        failover: bool,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
        wrap: bool = False,
        max_message_bytes: int = 1024 * 1024,
        deflate: Agreement | None = None,
    ) -> Policy:
        """Agent workers get notices and failover; command workers only when they opt in."""
        understood = agent_protocol or router_notices
        return cls(
            agent_protocol=agent_protocol,
            notices=management_events and understood,
            failover=failover and understood,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            wrap=wrap,
            max_message_bytes=max_message_bytes,
            deflate=deflate,
        )

    @property
    def transparent(self) -> bool:
        """The router reads no message and moves no client: a backend's extensions pass."""
        return not self.agent_protocol and not self.failover and not self.wrap

    @property
    def compresses(self) -> bool:
        """permessage-deflate is the router's with the client (the worker leg is plain)."""
        return self.deflate is not None and self.deflate.at_router

    @property
    def client_limit(self) -> int:
        return client_message_limit(self.max_message_bytes, agent_protocol=self.agent_protocol)

    @property
    def pending_limit(self) -> int:
        return max(PENDING_LIMIT, self.max_message_bytes + 65536)


def client_message_limit(max_message_bytes: int, *, agent_protocol: bool) -> int:
    """The size above which the router closes with 1009 (client → worker).

    An agent worker answers a message over its limit with a recoverable
    ``MESSAGE_TOO_LARGE`` up to its frame ceiling; the router leaves that to it.
    """
    if agent_protocol:
        return max(AGENT_FRAME_CEILING, 4 * max_message_bytes)
    return max_message_bytes


@frozen
class Notify:
    """Send this frame of the router's own to the client (between two frames)."""

    frame: bytes


@frozen
class Ping:
    """Send the keepalive ping to the client."""


@frozen
class Failover:
    """Move the client to another worker."""

    reason: str


@frozen
class Close:
    """End the connection: close the client with ``code`` (after any ``Notify`` before)."""

    code: int
    reason: str


Action = Notify | Ping | Failover | Close

PING: Final = Ping()
