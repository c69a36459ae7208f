"""How a pump phase ends, and the bounds that apply to ends (shared by the relay modules)."""

from __future__ import annotations

import enum
from typing import Final

#: How long a close handshake may take before the connection is dropped.
CLOSE_TIMEOUT: Final = 5.0
#: Bound on the cleanup of a connection (shielded from cancellation).
CLEANUP_TIMEOUT: Final = 2.0


class Outcome(enum.Enum):
    CLOSED = "closed"  # the close handshake is done (or the client is gone)
    LOST = "lost"  # the worker went away abnormally: fail over
    SWITCH = "switch"  # a drain asked to move, and both directions are between messages
    INTERRUPTED = "interrupted"  # another task stopped the pump; see the connection's state
    PHASE_DONE = "phase_done"  # the ``until`` condition of a pump phase holds
    PHASE_TIMEOUT = "phase_timeout"
