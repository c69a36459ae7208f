"""agentvisor: supervise, route and operate AI-agent WebSocket services."""

__version__ = "0.1.0"
