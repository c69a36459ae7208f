"""``[cluster] redis_url`` read into what to connect to (pure).

One string is one Redis server (``redis://``, ``rediss://``, ``unix://``) or
one Sentinel (``redis+sentinel://HOST:PORT/MASTER``). A list is either
Sentinels (every URL ``redis+sentinel://``, naming the same master) or the
seed nodes of a Redis Cluster (every URL ``redis://`` or ``rediss://``).
The worker receives the same URLs, space-separated, in its environment.
"""

from __future__ import annotations

import enum
from urllib.parse import unquote, urlsplit

from attrs import frozen

SENTINEL_SCHEME = "redis+sentinel"
_SERVER_SCHEMES = ("redis", "rediss", "unix")


class RedisKind(enum.StrEnum):
    SERVER = "server"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


@frozen
class RedisTarget:
    kind: RedisKind
    urls: tuple[str, ...]
    #: Sentinel: the monitored master's name, and the database number.
    master: str | None = None
    db: int = 0
    #: Sentinel: (host, port) of every sentinel.
    sentinels: tuple[tuple[str, int], ...] = ()

    def encode(self) -> str:
        """The URLs as one string (the worker's ``AGENTVISOR_SESSION_STORE``): space-separated,
        after the word ``cluster`` for a Redis Cluster."""
        words = ("cluster", *self.urls) if self.kind is RedisKind.CLUSTER else self.urls
        return " ".join(words)

    def describe(self) -> str:
        """The target for log lines, without passwords."""
        shown = ", ".join(_without_password(url) for url in self.urls)
        return shown if self.kind is RedisKind.SERVER else f"{self.kind.value} {shown}"


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")[2]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return parts._replace(netloc=user + netloc).geturl()


def is_redis_url(text: str) -> bool:
    """``text`` (an encoded target) names a Redis rather than a SQLite file."""
    words = text.split()
    if words and words[0] == "cluster":
        words = words[1:]
    return bool(words) and all(
        "://" in word and word.partition("://")[0] in (*_SERVER_SCHEMES, SENTINEL_SCHEME)
        for word in words
    )


def _sentinel(url: str) -> tuple[str, int, str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port or 26379
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    if not parts.hostname:
        raise ValueError(f"{url!r} names no sentinel host")
    segments = [unquote(s) for s in parts.path.split("/") if s]
    if not segments:
        raise ValueError(f"{url!r} names no master (redis+sentinel://HOST:PORT/MASTER)")
    db = 0
    if len(segments) > 1:
        if not segments[1].isdigit():
            raise ValueError(f"{url!r}: database must be a number, got {segments[1]!r}")
        db = int(segments[1])
    return parts.hostname, port, segments[0], db


def _server(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError(f"{url!r} names no socket path")
        return
    try:
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")


def parse_redis_target(value: str | tuple[str, ...] | list[str]) -> RedisTarget:
    """What ``value`` points to; ``ValueError`` with a one-line reason otherwise."""
    urls = (value,) if isinstance(value, str) else tuple(value)
    if not urls:
        raise ValueError("names no Redis URL")
    schemes = set()
    for url in urls:
        scheme = url.partition("://")[0] if "://" in url else ""
        if scheme not in (*_SERVER_SCHEMES, SENTINEL_SCHEME):
            raise ValueError(
                f"{url!r} is not a Redis URL (redis://, rediss://, unix:// or redis+sentinel://)"
            )
        schemes.add(scheme)
    if SENTINEL_SCHEME in schemes:
        if len(schemes) > 1:
            raise ValueError("mixes redis+sentinel:// URLs with others; use one kind")
        parsed = [_sentinel(url) for url in urls]
        masters = {master for _, _, master, _ in parsed}
        if len(masters) > 1:
            raise ValueError(f"sentinel URLs name different masters: {sorted(masters)}")
        _, _, master, db = parsed[0]
        return RedisTarget(
            RedisKind.SENTINEL,
            urls,
            master=master,
            db=db,
            sentinels=tuple((host, port) for host, port, _, _ in parsed),
        )
    for url in urls:
        _server(url)
    if isinstance(value, str):
        return RedisTarget(RedisKind.SERVER, urls)
    if "unix" in schemes:
        raise ValueError("a Redis Cluster is reached over TCP; unix:// cannot be a seed node")
    return RedisTarget(RedisKind.CLUSTER, urls)


def decode_target(text: str) -> RedisTarget:
    """The inverse of ``RedisTarget.encode``; ``ValueError`` if it is not one."""
    words = text.split()
    if words and words[0] == "cluster":
        return parse_redis_target(words[1:])
    if len(words) == 1:
        return parse_redis_target(words[0])
    return parse_redis_target(words)
