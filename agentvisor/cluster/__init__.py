"""agentvisor as one node of a fleet: the Redis registry, cross-node routing, the config lock."""
