"""The files ``agentvisor init`` writes: a starter ``agentvisor.toml`` and an example agent.

They ship inside the package (the wheel carries every file of ``agentvisor/``),
so ``pip install agentvisor && agentvisor init && agentvisor run`` needs no
checkout of the repository. ``agentvisor/cli/scaffold.py`` copies them.
"""
