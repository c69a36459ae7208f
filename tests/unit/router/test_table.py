"""The connection table: records, indexes, counters, pages and session affinity."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentvisor.router.table import ConnectionRecord, ConnectionStatus, ConnectionTable


def record(connection_id: str, instance_id: str = "a:0", **fields: Any) -> ConnectionRecord:
    agent = instance_id.partition(":")[0]
    return ConnectionRecord(connection_id, "10.0.0.1", agent, instance_id, since=1.0, **fields)


def table_of(*records: ConnectionRecord, **bounds: int) -> ConnectionTable:
    table = ConnectionTable(**bounds)
    for item in records:
        table.add(item)
    return table


def ids(records: tuple[ConnectionRecord, ...]) -> list[str]:
    return [item.id for item in records]


# --- records -------------------------------------------------------------------------


def test_an_added_connection_can_be_read_back() -> None:
    table = table_of(record("c1"))

    assert table.get("c1") == record("c1")
    assert "c1" in table
    assert len(table) == 1


def test_last_activity_starts_at_since() -> None:
    assert record("c1").last_activity == 1.0


def test_adding_a_known_id_is_an_error() -> None:
    table = table_of(record("c1"))

    with pytest.raises(ValueError, match="c1"):
        table.add(record("c1"))


def test_an_unknown_connection_reads_as_none() -> None:
    assert ConnectionTable().get("nope") is None


def test_removing_returns_the_record_and_forgets_it() -> None:
    table = table_of(record("c1"))

    removed = table.remove("c1")

    assert removed is not None
    assert removed.id == "c1"
    assert table.get("c1") is None
    assert table.connections_of("a:0") == 0


def test_removing_an_unknown_connection_returns_none() -> None:
    assert ConnectionTable().remove("nope") is None


def test_a_record_read_back_is_a_copy() -> None:
    table = table_of(record("c1"))

    copy = table.get("c1")
    assert copy is not None
    copy.messages_in = 99

    assert table.get("c1") == record("c1")


def test_the_table_keeps_its_own_copy_of_an_added_record() -> None:
    original = record("c1")
    table = table_of(original)

    original.status = ConnectionStatus.CLOSING

    assert table.get("c1") == record("c1")


# --- counters and status -------------------------------------------------------------


def test_count_in_adds_a_message_from_the_client() -> None:
    table = table_of(record("c1"))

    table.count_in("c1", 10, now=5.0)
    table.count_in("c1", 5, now=6.0)

    got = table.get("c1")
    assert got is not None
    assert (got.messages_in, got.bytes_in, got.last_activity) == (2, 15, 6.0)


def test_count_out_adds_a_message_to_the_client() -> None:
    table = table_of(record("c1"))

    table.count_out("c1", 7, now=3.0)

    got = table.get("c1")
    assert got is not None
    assert (got.messages_out, got.bytes_out, got.messages_in, got.last_activity) == (1, 7, 0, 3.0)


def test_counting_for_an_unknown_connection_is_ignored() -> None:
    table = ConnectionTable()

    table.count_in("gone", 10, now=1.0)
    table.count_out("gone", 10, now=1.0)

    assert len(table) == 0


def test_set_status_changes_the_status() -> None:
    table = table_of(record("c1"))

    table.set_status("c1", ConnectionStatus.FAILING_OVER)

    got = table.get("c1")
    assert got is not None
    assert got.status is ConnectionStatus.FAILING_OVER


# --- indexes -------------------------------------------------------------------------


def test_by_instance_lists_the_connections_of_an_instance() -> None:
    table = table_of(record("c1", "a:0"), record("c2", "a:1"), record("c3", "a:0"))

    assert ids(table.by_instance("a:0")) == ["c1", "c3"]
    assert table.connections_of("a:0") == 2


def test_by_agent_lists_the_connections_of_every_instance_of_an_agent() -> None:
    table = table_of(record("c1", "a:0"), record("c2", "b:0"), record("c3", "a:1"))

    assert ids(table.by_agent("a")) == ["c1", "c3"]


def test_move_re_indexes_a_connection_after_failover() -> None:
    table = table_of(record("c1", "a:0"))

    table.move("c1", "a", "a:1")

    assert (table.connections_of("a:0"), table.connections_of("a:1")) == (0, 1)
    assert ids(table.by_instance("a:1")) == ["c1"]


# --- snapshot ------------------------------------------------------------------------


def test_snapshot_lists_connections_oldest_first() -> None:
    table = table_of(record("c1"), record("c2"), record("c3"))

    page = table.snapshot()

    assert (ids(page.items), page.total) == (["c1", "c2", "c3"], 3)


def test_snapshot_filters_by_agent() -> None:
    table = table_of(record("c1", "a:0"), record("c2", "b:0"))

    assert ids(table.snapshot(agent="b").items) == ["c2"]


def test_snapshot_keeps_arrival_order_after_a_move() -> None:
    table = table_of(record("c1", "a:0"), record("c2", "a:1"))

    table.move("c1", "a", "a:1")

    assert ids(table.snapshot(instance_id="a:1").items) == ["c1", "c2"]


def test_snapshot_filters_by_instance_and_agent_together() -> None:
    table = table_of(record("c1", "a:0"), record("c2", "a:1"))

    assert table.snapshot(instance_id="a:0", agent="b").total == 0


def test_snapshot_filters_by_status() -> None:
    table = table_of(record("c1"), record("c2", status=ConnectionStatus.CONNECTING))

    assert ids(table.snapshot(status=ConnectionStatus.CONNECTING).items) == ["c2"]


def test_snapshot_filters_by_client_ip() -> None:
    table = table_of(record("c1"), ConnectionRecord("c2", "::1", "a", "a:0", since=2.0))

    assert ids(table.snapshot(client_ip="::1").items) == ["c2"]


def test_snapshot_pages_with_limit_and_offset_and_counts_all_matches() -> None:
    table = table_of(*(record(f"c{n}") for n in range(5)))

    page = table.snapshot(limit=2, offset=1)

    assert (ids(page.items), page.total) == (["c1", "c2"], 5)


def test_snapshot_refuses_a_negative_limit() -> None:
    with pytest.raises(ValueError, match="limit"):
        ConnectionTable().snapshot(limit=-1)


# --- session affinity ----------------------------------------------------------------


def test_a_learnt_session_points_to_the_connections_instance() -> None:
    table = table_of(record("c1", "a:1"))

    assert table.learn_session("c1", "s1")

    assert table.instance_of_session("s1") == "a:1"


def test_a_learnt_session_is_listed_on_its_connection_once() -> None:
    table = table_of(record("c1"))

    table.learn_session("c1", "s1")
    table.learn_session("c1", "s2")
    table.learn_session("c1", "s1")

    got = table.get("c1")
    assert got is not None
    assert got.session_ids == ("s1", "s2")


def test_an_unknown_connection_learns_no_session() -> None:
    table = ConnectionTable()

    assert not table.learn_session("gone", "s1")
    assert table.instance_of_session("s1") is None


def test_sessions_outlive_their_connection() -> None:
    table = table_of(record("c1", "a:1"))
    table.learn_session("c1", "s1")

    table.remove("c1")

    assert table.instance_of_session("s1") == "a:1"


def test_move_points_the_connections_sessions_to_the_new_instance() -> None:
    table = table_of(record("c1", "a:0"))
    table.learn_session("c1", "s1")

    table.move("c1", "a", "a:1")

    assert table.instance_of_session("s1") == "a:1"


def test_a_forgotten_session_has_no_affinity() -> None:
    table = table_of(record("c1"))
    table.learn_session("c1", "s1")

    table.forget_session("s1")

    assert table.instance_of_session("s1") is None


def test_the_least_recently_used_session_is_forgotten_beyond_max_sessions() -> None:
    table = table_of(record("c1"), max_sessions=2)
    table.learn_session("c1", "s1")
    table.learn_session("c1", "s2")
    table.instance_of_session("s1")  # a use: s2 is now the oldest

    table.learn_session("c1", "s3")

    assert [table.instance_of_session(s) for s in ("s1", "s2", "s3")] == ["a:0", None, "a:0"]


def test_a_connection_keeps_only_its_most_recent_sessions() -> None:
    table = table_of(record("c1"), max_sessions_per_connection=2)
    for session_id in ("s1", "s2", "s3"):
        table.learn_session("c1", session_id)

    got = table.get("c1")
    assert got is not None
    assert got.session_ids == ("s2", "s3")


@settings(max_examples=50)
@given(
    sessions=st.lists(st.text(max_size=3), max_size=60),
    bound=st.integers(1, 10),
)
def test_the_affinity_map_never_exceeds_max_sessions(sessions: list[str], bound: int) -> None:
    table = table_of(record("c1"), max_sessions=bound)
    for session_id in sessions:
        table.learn_session("c1", session_id)

    assert table.known_sessions() <= bound


@settings(max_examples=50)
@given(
    steps=st.lists(
        st.tuples(st.sampled_from(["add", "remove", "move"]), st.integers(0, 5), st.integers(0, 2)),
        max_size=40,
    )
)
def test_indexes_always_agree_with_the_records(steps: list[tuple[str, int, int]]) -> None:
    table = ConnectionTable()
    for action, number, replica in steps:
        connection_id, instance_id = f"c{number}", f"a:{replica}"
        if action == "add" and connection_id not in table:
            table.add(record(connection_id, instance_id))
        elif action == "remove":
            table.remove(connection_id)
        elif action == "move":
            table.move(connection_id, "a", instance_id)

    every = table.snapshot(limit=100).items
    for replica in range(3):
        on_it = [item.id for item in every if item.instance_id == f"a:{replica}"]
        assert sorted(ids(table.by_instance(f"a:{replica}"))) == sorted(on_it)
        assert ids(table.snapshot(instance_id=f"a:{replica}").items) == on_it
    assert sorted(ids(table.by_agent("a"))) == sorted(item.id for item in every)
