"""Which service a request means, and who is asking.

``{service_id}`` in a path is a service's stable id (a UUID the state store
keeps for the life of its file) or its name, everywhere: the console keeps
ids, people type names. :func:`resolve_service` is the one place that turns
either into the name the supervisor knows; an unknown one is a 404
``SERVICE_NOT_FOUND`` naming what was asked for. History endpoints also
accept a service that has since been removed from the config but is still in
the store (:func:`resolve_known`), so its past stays reachable.

The caller of a mutation is recorded in the audit log as its ``source``:
``api`` unless the request says otherwise with ``X-Agentvisor-Source``
(``agentvisorctl`` sends ``cli``, the console ``console``).
"""

from __future__ import annotations

import logging
import sqlite3
import uuid
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from werkzeug.datastructures import Headers

from agentvisor.errors import ServiceNotFound
from agentvisor.store.schema import StoreUnavailable

if TYPE_CHECKING:
    from agentvisor.admin.app import AdminDeps
    from agentvisor.store.writer import StateStore

log = logging.getLogger("agentvisor.admin")

SOURCE_HEADER = "X-Agentvisor-Source"
#: Sources a client may claim; anything else is recorded as ``api``.
CLIENT_SOURCES = ("api", "cli", "console")


def request_source(headers: Headers | Mapping[str, str]) -> str:
    claimed = (headers.get(SOURCE_HEADER) or "").strip().lower()
    return claimed if claimed in CLIENT_SOURCES else "api"


def require_store(deps: AdminDeps) -> StateStore:
    """The state store, or 503 ``STORE_UNAVAILABLE`` for endpoints that only it can answer."""
    if deps.store is None:
        raise StoreUnavailable(
            "the state store is not running, so there is no history to show",
        )
    return deps.store


def looks_like_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


async def _stored_ids(deps: AdminDeps) -> dict[str, str]:
    """Name → id of every service the store has seen; empty when it cannot say."""
    if deps.store is None:
        return {}
    try:
        return await deps.store.service_ids()
    except (StoreUnavailable, sqlite3.Error) as error:
        log.warning("service ids unavailable: %s", error)
        return {}


def _is_live(deps: AdminDeps, name: str) -> bool:
    try:
        deps.supervisor.service(name)
    except ServiceNotFound:
        return False
    return True


async def resolve_service(deps: AdminDeps, ref: str) -> str:
    """The name of the configured service ``ref`` names (by name or stable id)."""
    if _is_live(deps, ref):
        return ref
    if looks_like_uuid(ref):
        for name, service_id in (await _stored_ids(deps)).items():
            if service_id == ref.lower() and _is_live(deps, name):
                return name
    raise ServiceNotFound(ref)


async def resolve_known(deps: AdminDeps, ref: str) -> str:
    """Like :func:`resolve_service`, also for services the store remembers but the
    config no longer has (their history outlives them)."""
    if _is_live(deps, ref):
        return ref
    stored = await _stored_ids(deps)
    if ref in stored:
        return ref
    for name, service_id in stored.items():
        if service_id == ref.lower():
            return name
    raise ServiceNotFound(ref)


async def service_ids(deps: AdminDeps, names: Iterable[str]) -> dict[str, str]:
    """The id to show for each service: its stable UUID, or its name without a store.

    A service new to the store gets its id now (the store creates it on first use).
    """
    wanted = list(names)
    if deps.store is None:
        return {name: name for name in wanted}
    known = await _stored_ids(deps)
    ids: dict[str, str] = {}
    for name in wanted:
        found = known.get(name)
        if found is None:
            try:
                found = await deps.store.service_id(name)
            except (StoreUnavailable, sqlite3.Error):
                found = name
        ids[name] = found
    return ids


async def service_id(deps: AdminDeps, name: str) -> str:
    return (await service_ids(deps, [name]))[name]
