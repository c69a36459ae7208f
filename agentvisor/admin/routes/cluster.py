"""``/api/v1/cluster/nodes``: every node of the cluster, its agents and instances."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
from quart import Blueprint, Response

from agentvisor.admin.errors import success
from agentvisor.admin.routes.system import iso_time
from agentvisor.errors import ClusterNotConfigured

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.cluster.membership import NodeStatus
    from agentvisor.cluster.registry import ClusterRegistry


def _node(status: NodeStatus, own: str) -> dict[str, Any]:
    record = status.record
    state = "invalid" if record is None and status.heartbeat_at is not None else "down"
    if status.up:
        state = "up"
    return {
        "name": status.name,
        "state": state,
        "self": status.name == own,
        "heartbeat_age": None if status.age is None else round(status.age, 3),
        "version": record.version if record else None,
        "pid": record.pid if record else None,
        "started_at": iso_time(record.started_at) if record else None,
        "router": list(record.router) if record else [],
        "admin": list(record.admin) if record else [],
        "agents": [attrs.asdict(agent) for agent in record.agents] if record else [],
        "instances": [attrs.asdict(i) for i in record.instances] if record else [],
    }


def cluster_listing(cluster: ClusterRegistry) -> dict[str, Any]:
    snapshot = cluster.snapshot
    age = cluster.read_age()
    return {
        "node": cluster.node,
        "redis": {
            "target": cluster.target.describe(),
            "reachable": bool(cluster.reachable),
            "last_error": cluster.last_error or None,
            "read_age": None if age is None else round(age, 3),
        },
        "node_timeout": cluster.cluster.node_timeout,
        "nodes": [] if snapshot is None else [_node(n, cluster.node) for n in snapshot.nodes],
    }


def cluster_blueprint(deps: AdminDeps) -> Blueprint:
    blueprint = Blueprint("cluster", __name__)

    @blueprint.get("/cluster/nodes")
    async def nodes() -> tuple[Response, int]:
        if deps.cluster is None:
            raise ClusterNotConfigured(
                "this agentvisor is not part of a cluster (its config has no [cluster] table)"
            )
        return success(cluster_listing(deps.cluster))

    return blueprint
