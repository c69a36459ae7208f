"""Numbers the worker runtime and the supervisor both go by (pure, no imports).

Kept apart from ``protocol`` and ``store`` so that the daemon and the CLI can
read them without importing the agent SDK or the session store: ``agentvisor
run`` starts its first worker sooner for every module it does not import.
"""

from __future__ import annotations

#: The largest client message an agent worker takes by default (``max_message_bytes``).
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
#: Counted worker deaths (``worker/poison.py``) that poison a message, when at one of them
#: it was its worker's only turn in flight: it is not run again (``MESSAGE_POISONED``).
POISON_DEATHS = 2
#: Counted worker deaths that poison a message in any case (each shared with other turns).
POISON_SHARED_DEATHS = 4
