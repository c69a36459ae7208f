"""API edits of agentvisor.toml: written, then applied, one at a time, and audited.

The file is the desired state, so registering, reconfiguring, scaling or
removing a service and changing a routing rule are edits of it
(:class:`~agentvisor.config.persist.ConfigEditor`: validated as a whole,
written atomically), followed by ``Supervisor.apply`` of the config just
written: the reload path, so only what changed is touched.

``AdminDeps.edit_lock`` is held from the write until the supervisor has
taken up the new config. The editor alone serializes writes, but two
requests could then apply their configs in the opposite order (the older
one last, undoing the newer one's change in the running system while the
file has both). The lock is released before the rolling restarts an edit
causes: those can take ``drain_timeout`` or ``startsecs`` per replica, and
other edits need not wait for them (a later reload takes over a roll).

An edit written but not applied (no free port for a new replica: the
supervisor plans ports only when applying) is written back, so the file
never promises what is not running.

In a cluster (``[cluster]``) the edit also holds the cluster's config lock
in Redis from before the file is read until the supervisor has taken the
config up, and the write is fenced (``cluster/lock.py``): two nodes' edits
never interleave, and an edit whose lease ran out writes nothing.

Every attempt is an operator action in the audit log, with its source
(``api``, ``cli``, ``console``) and its outcome, rejected ones included.
Before the file is renamed, the entry a success will make is recorded as an
intent in the store (:class:`AuditIntent`); the entry deletes it when it is
written, and a start-up after a kill in between writes it from the intent
(store/intents.py).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs
import trio

from agentvisor.config.diff import plan_reload
from agentvisor.errors import AgentvisorError
from agentvisor.events import OperatorAction
from agentvisor.store.schema import StoreUnavailable
from agentvisor.supervise.reloading import ReloadResult

log = logging.getLogger("agentvisor.admin")

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.config.model import Config
    from agentvisor.config.persist import ConfigEditor
    from agentvisor.store.writer import StateStore
    from agentvisor.supervise.supervisor import Supervisor

#: Default bound on waiting for the rolling restarts an edit causes.
DEFAULT_APPLY_TIMEOUT = 60.0
#: How often an edit checks whether the supervisor has taken up its config.
TAKE_UP_POLL_INTERVAL = 0.01


class EditsUnavailable(AgentvisorError):
    """agentvisor runs without a config file it may write (an embedded use)."""

    code = "UNAVAILABLE"


def require_editor(deps: AdminDeps) -> ConfigEditor:
    if deps.editor is None:
        raise EditsUnavailable(
            "this agentvisor has no config file to edit; change its config and reload instead"
        )
    return deps.editor


def publish_action(
    deps: AdminDeps,
    action: str,
    target: str,
    source: str,
    outcome: str,
    message: str,
    intents: tuple[int, ...] = (),
) -> None:
    deps.supervisor.bus.publish(
        OperatorAction(action, target, source, outcome, message, time.time(), intents=intents)
    )


@attrs.define
class AuditIntent:
    """The config editor's journal: an intent record in the store before each write."""

    store: StateStore
    action: str
    target: str
    source: str
    message: str
    ids: list[int] = attrs.field(factory=list)

    async def before_write(self, path: str, old: bytes | None, new: bytes) -> None:
        try:
            intent = await self.store.begin_config_write(
                path,
                old,
                new,
                action=self.action,
                target=self.target,
                source=self.source,
                message=self.message,
            )
        except (StoreUnavailable, sqlite3.Error) as error:  # the edit goes on without it
            log.warning("could not record the intent of a config write: %s", error)
            return
        self.ids.append(intent)


@attrs.frozen
class Applied:
    """What an edit did: the reload's result, or its plan while it is still going on."""

    result: ReloadResult
    settled: bool  # False: rolling restarts still running after the caller's timeout


async def edit_and_apply(
    deps: AdminDeps,
    edit: Callable[[ConfigEditor], Awaitable[Config]],
    *,
    action: str,
    target: str,
    source: str,
    describe: str,
    timeout: float = DEFAULT_APPLY_TIMEOUT,  # noqa: ASYNC109
) -> Applied:
    """Write the edit, apply the new config, record the attempt; errors propagate.

    ``describe`` is the audit message of a success, e.g. ``registered weather``.
    A rejected edit (invalid config, unknown service…) leaves the file as it
    was and the running system untouched. Rolling restarts the edit causes
    are waited for up to ``timeout``; they go on in the supervisor after it.
    """
    plain = editor = require_editor(deps)
    supervisor = deps.supervisor
    journal = None
    if deps.store is not None:  # the restore below is not journaled: it undoes, not changes
        journal = AuditIntent(deps.store, action, target, source, describe)
        editor = plain.with_journal(journal)
    intents = () if journal is None else journal.ids  # read when the entry is published
    finished = trio.Event()
    results: list[ReloadResult] = []
    failures: list[AgentvisorError] = []
    rejected: AgentvisorError | None = None
    planned: ReloadResult | None = None

    async def apply(config: Config) -> None:
        try:
            results.append(await supervisor.apply(config, source=source))
        except AgentvisorError as error:
            failures.append(error)
        finally:
            finished.set()

    async with trio.open_nursery() as nursery:
        async with deps.edit_lock, contextlib.AsyncExitStack() as held:
            try:
                if deps.cluster is not None:  # fenced: checked in Redis right before the write
                    fenced = await held.enter_async_context(deps.cluster.config_lock.hold(journal))
                    editor = plain.with_journal(fenced)
                before = await trio.to_thread.run_sync(_read, editor.path)
                config = await edit(editor)
            except AgentvisorError as error:
                rejected = error
            else:
                planned = ReloadResult(plan_reload(supervisor.config, config))
                if config == supervisor.config:
                    results.append(planned)  # nothing to apply (and nothing to reorder)
                    finished.set()
                else:
                    nursery.start_soon(apply, config)
                    await _taken_up(supervisor, config, finished)
                    if failures:
                        await _restore(plain, before)
                        rejected = failures[0]
        if rejected is None:
            with trio.move_on_after(timeout):
                await finished.wait()
        nursery.cancel_scope.cancel()  # stop waiting; the supervisor's work goes on
    if rejected is not None:
        publish_action(deps, action, target, source, "rejected", rejected.message, tuple(intents))
        raise rejected
    if results:
        applied = Applied(results[0], True)
    else:
        assert planned is not None
        applied = Applied(planned, False)
    result = applied.result
    message = describe if not result.failed else f"{describe}; {result.describe()}"
    if not applied.settled:
        message += f"; rolling restarts still running after {timeout:g}s"
    outcome = "failed" if result.failed else "ok"
    publish_action(deps, action, target, source, outcome, message, tuple(intents))
    return applied


async def _taken_up(supervisor: Supervisor, config: Config, finished: trio.Event) -> None:
    """Wait until the supervisor runs ``config`` (its reload has done everything but the
    rolling restarts) or the apply ended (maybe failing). After that, a later edit's
    apply can no longer overtake this one."""
    while not finished.is_set() and supervisor.config != config:
        with trio.move_on_after(TAKE_UP_POLL_INTERVAL):
            await finished.wait()


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except (OSError, UnicodeDecodeError):
        return None


async def _restore(editor: ConfigEditor, text: str | None) -> None:
    """Write ``text`` back after an edit the supervisor could not apply."""
    if text is None:
        return
    try:
        await editor.edit(lambda _current: text)
    except AgentvisorError as error:
        log.error("could not restore %s after a failed apply: %s", editor.path, error.message)
