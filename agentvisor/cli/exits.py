"""Exit codes of ``agentvisor`` and ``agentvisorctl`` (LSB's where they have one)."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3
