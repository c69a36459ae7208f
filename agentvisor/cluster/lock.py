"""The cluster-wide config edit lock in Redis, with fencing (rules in ``fencing``).

``ConfigLock.hold()`` takes the lock (waiting up to ``lock_timeout`` for a
holder to finish), renews its lease every third of it while the edit runs,
and yields a ``FencedWrite``, the config editor's journal
hook: called right before the file is renamed, it checks the grant in Redis
and refuses the write (``ConfigLocked``, file untouched) when the lease ran
out or a later holder wrote. The lock is released when the edit is done.
Keys (one Redis Cluster slot): ``{PREFIX}:lock:config`` (the lock),
``{PREFIX}:lock:config:fence`` (the counter), ``…:written`` (the last fence
that wrote).
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import attrs
import trio

from agentvisor.cluster.fencing import Grant, LockValue, busy_message, refusal
from agentvisor.config.persist import WriteJournal
from agentvisor.errors import ConfigLocked
from agentvisor.worker.redis_client import redis_errors

if TYPE_CHECKING:
    import redis

log = logging.getLogger("agentvisor.cluster")

#: How often a waiting edit tries the lock again.
RETRY_INTERVAL = 0.05

_ACQUIRE = """
local held = redis.call('GET', KEYS[1])
if held then return {0, held} end
local fence = redis.call('INCR', KEYS[2])
local value = ARGV[1] .. ' ' .. fence .. ' ' .. ARGV[2]
redis.call('SET', KEYS[1], value, 'PX', ARGV[3])
return {fence, value}
"""

_COMMIT = """
local held = redis.call('GET', KEYS[1]) or ''
local last = tonumber(redis.call('GET', KEYS[3]) or '0')
if held == ARGV[1] and tonumber(ARGV[2]) > last then
  redis.call('SET', KEYS[3], ARGV[2])
  return {1, held, last}
end
return {0, held, last}
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


def lock_keys(key_prefix: str) -> list[str]:
    base = "{" + key_prefix + "}:lock:config"
    return [base, f"{base}:fence", f"{base}:written"]


class FencedWrite:
    """The journal hook of one edit: the fencing check, then the next journal (the audit)."""

    def __init__(self, lock: ConfigLock, grant: Grant, then: WriteJournal | None) -> None:
        self.lock = lock
        self.grant = grant
        self.then = then

    async def before_write(self, path: str, old: bytes | None, new: bytes) -> None:
        await self.lock.check(self.grant)  # the grant as last renewed
        if self.then is not None:
            await self.then.before_write(path, old, new)


class ConfigLock:
    def __init__(self, client: redis.Redis, key_prefix: str, node: str, lease: float) -> None:
        self.client = client
        self.keys = lock_keys(key_prefix)
        self.node = node
        self.lease = lease
        self._errors = redis_errors()

    async def _eval(self, script: str, *args: Any) -> Any:
        try:
            return await trio.to_thread.run_sync(
                lambda: self.client.eval(script, len(self.keys), *self.keys, *args)
            )
        except self._errors as error:
            raise ConfigLocked(
                f"the cluster's config edit lock is in Redis, which cannot be reached ({error}); "
                "nothing was written",
            ) from None

    async def acquire(self) -> Grant:
        """The lock, waiting up to one lease for a holder to finish; ``ConfigLocked`` else."""
        token = secrets.token_hex(8)
        deadline = trio.current_time() + self.lease
        holder: LockValue | None = None
        while True:
            started = trio.current_time()
            fence, text = await self._eval(_ACQUIRE, token, self.node, int(self.lease * 1000))
            value = LockValue.parse(text)
            if fence and value is not None:
                return Grant(value, started + self.lease)
            holder = value
            if trio.current_time() >= deadline:
                raise ConfigLocked(busy_message(holder), holder=holder.node if holder else None)
            await trio.sleep(RETRY_INTERVAL)

    async def check(self, grant: Grant) -> None:
        """Fencing: may the file be written under ``grant`` now? ``ConfigLocked`` if not."""
        if not grant.usable(trio.current_time(), self.lease):
            raise ConfigLocked(
                f"this edit's config lock (fence {grant.value.fence}) ran out before the file "
                "was written; nothing was written, try again"
            )
        ok, held, last = await self._eval(_COMMIT, grant.value.text(), grant.value.fence)
        reason = None if ok else refusal(grant, LockValue.parse(held), int(last))
        if reason is not None or not ok:
            log.warning("cluster: config write refused: %s", reason)
            raise ConfigLocked(reason or "the config write was refused by the lock")

    async def release(self, grant: Grant) -> None:
        try:
            await trio.to_thread.run_sync(
                lambda: self.client.eval(_RELEASE, 1, self.keys[0], grant.value.text())
            )
        except self._errors as error:  # it expires by itself
            log.warning("cluster: could not release the config lock: %s", error)

    async def _keep(self, fenced: FencedWrite) -> None:
        """Renew the lease every third of it while the edit runs (agent files may take
        seconds to check); a renewal that fails leaves the grant to run out."""
        while True:
            await trio.sleep(self.lease / 3)
            started = trio.current_time()
            grant = fenced.grant
            try:
                renewed = await trio.to_thread.run_sync(
                    self.client.eval,
                    _RENEW,
                    1,
                    self.keys[0],
                    grant.value.text(),
                    int(self.lease * 1000),
                )
            except self._errors as error:
                log.warning("cluster: could not renew the config lock: %s", error)
                continue
            if not renewed:
                return  # lost: the write will be refused
            fenced.grant = attrs.evolve(grant, expires_at=started + self.lease)

    @asynccontextmanager
    async def hold(self, then: WriteJournal | None) -> AsyncIterator[FencedWrite]:
        """The lock for one edit, renewed while it runs, released after it."""
        fenced = FencedWrite(self, await self.acquire(), then)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._keep, fenced)
                yield fenced
                nursery.cancel_scope.cancel()
        finally:
            with trio.CancelScope(shield=True), trio.move_on_after(2.0):
                await self.release(fenced.grant)
