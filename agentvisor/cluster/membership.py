"""Who is in the cluster, given the heartbeats read from Redis and ``now`` (pure).

Each node writes one record (its agents and instances, JSON) and one
heartbeat time to two Redis hashes, the time being Redis's own clock
(``TIME``) so that the hosts' clocks need not agree. A reader gets both
hashes and Redis's ``now`` in one script; this module decides from them:

- a node is **up** while ``now - heartbeat_at <= node_timeout``, **down**
  after that, and forgotten (its record deleted by whoever reads first) once
  down for ``FORGET_AFTER``;
- the instances other routers may use are those of up nodes other than the
  reader, routable ones as routable, under ids ``NODE/agent:replica``;
- a record that does not decode (another version, a stray writer) is
  reported by name and otherwise ignored; it never raises.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import cattrs
from attrs import frozen

from agentvisor.supervise.registry import Endpoint

#: A node down this long is removed from the registry (listed as ``down`` until then).
FORGET_AFTER = 600.0
#: Separates the node from the local id in a remote instance id: ``node-b/chat:0``.
NODE_SEPARATOR = "/"


@frozen
class PublishedInstance:
    """One instance as its node publishes it."""

    id: str  # the node's own "agent:replica"
    agent: str
    replica: int
    host: str  # where other nodes connect (advertise_host, or the instance's host)
    port: int
    ws_path: str
    state: str
    health: str  # healthy | unhealthy | unknown
    routable: bool
    draining: bool
    weight: float
    max_sessions: int
    sessions: int
    connections: int  # clients of the node's own router on it
    tags: tuple[str, ...] = ()
    pid: int | None = None
    cpu_percent: float | None = None
    memory_bytes: int | None = None


@frozen
class PublishedAgent:
    name: str
    kind: str  # agent | command
    state: str
    desired: int
    running: int
    description: str = ""
    tags: tuple[str, ...] = ()


@frozen
class NodeRecord:
    """What one node publishes at each heartbeat."""

    node: str
    version: str
    pid: int
    started_at: float  # wall clock of the node's start
    router: tuple[str, ...] = ()  # its router's binds
    admin: tuple[str, ...] = ()  # its admin API's binds
    agents: tuple[PublishedAgent, ...] = ()
    instances: tuple[PublishedInstance, ...] = ()


@frozen
class NodeStatus:
    name: str
    record: NodeRecord | None  # None: the record did not decode
    heartbeat_at: float | None
    age: float | None  # seconds since the heartbeat, on Redis's clock
    up: bool


@frozen
class ClusterSnapshot:
    """The registry as read at ``now`` (Redis's clock)."""

    now: float
    nodes: tuple[NodeStatus, ...] = ()

    def up(self) -> list[NodeStatus]:
        return [node for node in self.nodes if node.up and node.record is not None]

    def node(self, name: str) -> NodeStatus | None:
        return next((node for node in self.nodes if node.name == name), None)


_converter = cattrs.Converter(forbid_extra_keys=False)


def encode_record(record: NodeRecord) -> str:
    return json.dumps(_converter.unstructure(record), separators=(",", ":"))


def decode_record(text: str) -> NodeRecord | None:
    """The record in ``text``, or None when it is not one (never raises)."""
    try:
        record = _converter.structure(json.loads(text), NodeRecord)
    except (ValueError, TypeError, KeyError, AttributeError, cattrs.BaseValidationError):
        return None
    return record if isinstance(record, NodeRecord) else None


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if value == value else None  # NaN is no time


def read_snapshot(
    records: Mapping[str, str],
    heartbeats: Mapping[str, str],
    now: float,
    node_timeout: float,
) -> ClusterSnapshot:
    """Every node named in either hash, with its liveness at ``now``."""
    nodes = []
    for name in sorted({*records, *heartbeats}):
        text = records.get(name)
        record = decode_record(text) if text is not None else None
        if record is not None and record.node != name:
            record = None  # a record filed under another node's name is not trusted
        beat = _number(heartbeats.get(name))
        age = None if beat is None else max(0.0, now - beat)
        up = record is not None and age is not None and age <= node_timeout
        nodes.append(NodeStatus(name, record, beat, age, up))
    return ClusterSnapshot(now, tuple(nodes))


def forgotten(snapshot: ClusterSnapshot, forget_after: float = FORGET_AFTER) -> list[str]:
    """Nodes to delete from the registry: down this long, or with no heartbeat at all."""
    return [
        node.name
        for node in snapshot.nodes
        if not node.up and (node.age is None or node.age > forget_after)
    ]


def remote_id(node: str, instance_id: str) -> str:
    return f"{node}{NODE_SEPARATOR}{instance_id}"


def remote_endpoints(snapshot: ClusterSnapshot, own_node: str) -> list[Endpoint]:
    """The instances of every up node but ``own_node``, as the router's endpoints."""
    endpoints = []
    for node in snapshot.up():
        if node.name == own_node or node.record is None:
            continue
        for instance in node.record.instances:
            endpoints.append(
                Endpoint(
                    instance_id=remote_id(node.name, instance.id),
                    service=instance.agent,
                    replica=instance.replica,
                    host=instance.host,
                    port=instance.port,
                    ws_path=instance.ws_path,
                    routable=instance.routable,
                    draining=instance.draining,
                    weight=instance.weight,
                    max_sessions=instance.max_sessions,
                    sessions=instance.sessions,
                    tags=instance.tags,
                )
            )
    return endpoints


_WILDCARDS = ("0.0.0.0", "::", "")


def advertised_host(instance_host: str, advertise_host: str | None, host_name: str) -> str:
    """Where other nodes reach an instance bound to ``instance_host``."""
    if advertise_host:
        return advertise_host
    return host_name if instance_host in _WILDCARDS else instance_host
