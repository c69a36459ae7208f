"""``[cluster] redis_url`` read into a server, Sentinel or Redis Cluster target."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentvisor.config.redis_target import (
    RedisKind,
    decode_target,
    is_redis_url,
    parse_redis_target,
)
from tests.strategies import cluster_configs


def test_the_three_kinds() -> None:
    assert parse_redis_target("redis://r:6380/2").kind is RedisKind.SERVER
    sentinel = parse_redis_target(["redis+sentinel://s1:26379/main/3", "redis+sentinel://s2/main"])
    assert sentinel.kind is RedisKind.SENTINEL
    assert sentinel.master == "main"
    assert sentinel.db == 3
    assert sentinel.sentinels == (("s1", 26379), ("s2", 26379))
    seeds = parse_redis_target(["redis://c1:7000", "redis://c2:7001"])
    assert seeds.kind is RedisKind.CLUSTER


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("http://r", "'http://r' is not a Redis URL"),
        ("r:6379", "'r:6379' is not a Redis URL"),
        ("redis://:99999", "has an invalid port"),
        ("redis:///0", "names no host"),
        (["redis://a", "redis+sentinel://s/m"], "mixes redis+sentinel:// URLs with others"),
        (["redis+sentinel://s1/a", "redis+sentinel://s2/b"], "different masters"),
        ("redis+sentinel://s1", "names no master"),
        ("redis+sentinel://s1/m/x", "database must be a number"),
        (["unix:///run/r.sock"], "unix:// cannot be a seed node"),
        ([], "names no Redis URL"),
    ],
)
def test_what_is_not_a_target_is_named(value: str | list[str], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_redis_target(value)


def test_passwords_are_not_shown() -> None:
    target = parse_redis_target("redis://user:secret@r:6379/0")
    assert "secret" not in target.describe()
    assert "user:***@r:6379" in target.describe()


@given(cluster_configs())
def test_encode_then_decode_gives_the_target_back(cluster: object) -> None:
    target = parse_redis_target(cluster.redis_url)  # type: ignore[attr-defined]
    assert is_redis_url(target.encode())
    assert decode_target(target.encode()) == target


@given(st.text())
def test_any_text_is_a_target_or_a_value_error(text: str) -> None:
    try:
        parse_redis_target(text)
    except ValueError:
        pass
    assert not is_redis_url("/var/lib/agentvisor/sessions/chat.sqlite3")
