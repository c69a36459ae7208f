"""``python -m agentvisor.worker AGENT_FILE [options]``: how the supervisor runs an agent file."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from agentvisor.worker.options import add_worker_arguments, options_from_args
from agentvisor.worker.serve import run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m agentvisor.worker",
        description="Serve one agent file over the agent event protocol (WebSocket).",
    )
    add_worker_arguments(parser)
    args = parser.parse_args(argv)
    return run(options_from_args(args, os.environ, os.getcwd()))


if __name__ == "__main__":
    sys.exit(main())
