"""The agent worker runtime: one agent file served over the agent event protocol.

``python -m agentvisor.worker AGENT_FILE`` (or ``agentvisor serve``) loads the
file (``load``), keeps its sessions (``sessions``, ``session``, ``turns``,
``transcript``) in memory and in a SQLite session store shared by the
agent's replicas (``store``), and serves the protocol of PROTOCOL.md §1 plus
``/health`` and ``/stats`` with Hypercorn on asyncio or trio (``app``,
``serve``). ``protocol`` is the pure parsing and encoding of frames.
"""
