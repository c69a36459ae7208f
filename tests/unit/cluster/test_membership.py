"""Who is up given heartbeats and Redis's ``now``; which instances other routers may use."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentvisor.cluster.membership import (
    FORGET_AFTER,
    advertised_host,
    decode_record,
    encode_record,
    forgotten,
    read_snapshot,
    remote_endpoints,
)
from tests.strategies import node_names, node_records

_times = st.floats(0, 2e9, allow_nan=False)
_ages = st.floats(0, 10 * FORGET_AFTER, allow_nan=False)


@given(node_records())
def test_a_record_survives_its_json(record: object) -> None:
    assert decode_record(encode_record(record)) == record  # type: ignore[arg-type]


@given(st.text() | st.binary().map(lambda b: b.decode("latin-1")))
def test_any_text_decodes_to_a_record_or_none_without_raising(text: str) -> None:
    decoded = decode_record(text)
    assert decoded is None or decoded.node is not None


@given(
    st.dictionaries(node_names, st.tuples(_ages, st.booleans()), max_size=6),
    _times,
    st.floats(0.1, 60, allow_nan=False),
)
def test_a_node_is_up_exactly_while_its_heartbeat_is_within_node_timeout(
    ages: dict[str, tuple[float, bool]], now: float, timeout: float
) -> None:
    records = {
        name: encode_record(_record(name)) if valid else "{not json"
        for name, (_, valid) in ages.items()
    }
    beats = {name: repr(now - age) for name, (age, _) in ages.items()}
    snapshot = read_snapshot(records, beats, now, timeout)
    for node in snapshot.nodes:
        age, valid = ages[node.name]
        assert node.up == (valid and now - float(repr(now - age)) <= timeout)
        assert (node.record is not None) == valid
    assert {n.name for n in snapshot.up()} <= set(ages)


def _record(name: str):  # type: ignore[no-untyped-def]
    from agentvisor.cluster.membership import NodeRecord

    return NodeRecord(node=name, version="0", pid=1, started_at=0.0)


@given(st.lists(node_records(), max_size=4, unique_by=lambda r: r.node), _times, st.data())
def test_remote_endpoints_are_the_up_nodes_but_the_reader(
    records: list,
    now: float,
    data: st.DataObject,  # type: ignore[type-arg]
) -> None:
    up = {r.node: data.draw(st.booleans()) for r in records}
    beats = {r.node: repr(now - (0.0 if up[r.node] else 100.0)) for r in records}
    texts = {r.node: encode_record(r) for r in records}
    own = data.draw(st.sampled_from([r.node for r in records])) if records else "me"
    snapshot = read_snapshot(texts, beats, now, node_timeout=5.0)

    endpoints = remote_endpoints(snapshot, own)

    expected = {
        f"{r.node}/{i.id}": i for r in records if up[r.node] and r.node != own for i in r.instances
    }
    assert {e.instance_id for e in endpoints} == set(expected)
    for endpoint in endpoints:
        instance = expected[endpoint.instance_id]
        assert (endpoint.host, endpoint.port, endpoint.service) == (
            instance.host,
            instance.port,
            instance.agent,
        )
        assert endpoint.routable == instance.routable
        assert endpoint.draining == instance.draining


def test_a_record_filed_under_another_name_is_not_trusted() -> None:
    snapshot = read_snapshot({"b": encode_record(_record("a"))}, {"b": "100"}, 100.0, 5.0)
    assert snapshot.up() == []
    assert snapshot.nodes[0].record is None


def test_nodes_are_forgotten_after_being_down_for_forget_after() -> None:
    records = {name: encode_record(_record(name)) for name in ("up", "down", "gone", "nobeat")}
    beats = {"up": "1000", "down": repr(1000 - 60.0), "gone": repr(1000 - FORGET_AFTER - 1)}
    snapshot = read_snapshot(records, beats, 1000.0, 5.0)
    assert [n.name for n in snapshot.up()] == ["up"]
    assert sorted(forgotten(snapshot)) == ["gone", "nobeat"]


def test_a_heartbeat_that_is_no_number_means_down() -> None:
    snapshot = read_snapshot({"a": encode_record(_record("a"))}, {"a": "nan"}, 10.0, 5.0)
    assert not snapshot.nodes[0].up
    assert snapshot.nodes[0].age is None


def test_the_advertised_host() -> None:
    assert advertised_host("127.0.0.1", "10.0.0.7", "box") == "10.0.0.7"
    assert advertised_host("0.0.0.0", None, "box") == "box"
    assert advertised_host("::", None, "box") == "box"
    assert advertised_host("192.168.1.2", None, "box") == "192.168.1.2"
