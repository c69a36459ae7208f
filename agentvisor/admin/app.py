"""The admin API application: ``create_app(deps)`` and nothing at module level.

Handlers reach the running system only through ``AdminDeps`` (closed over by
each blueprint factory in ``routes/``); they call methods of the Supervisor,
which does its work in its own nursery. No nursery or state lives on the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs
import trio
from quart_trio import QuartTrio

from agentvisor.admin.auth import install_auth
from agentvisor.admin.errors import install_error_handlers
from agentvisor.admin.routes.logs import logs_blueprint
from agentvisor.admin.routes.services import services_blueprint
from agentvisor.admin.routes.system import system_blueprint

if TYPE_CHECKING:
    from agentvisor.supervise.supervisor import Supervisor


@attrs.define
class AdminDeps:
    """What the admin API needs from the daemon. ``binds`` is filled once bound."""

    supervisor: Supervisor
    version: str
    pid: int
    started_at: float  # wall clock, seconds since the epoch
    config_path: str
    token: str | None = None
    binds: list[str] = attrs.field(factory=list)
    #: Set when the server begins to shut down: long-polls answer at once.
    stopping: trio.Event = attrs.field(factory=trio.Event)


def create_app(deps: AdminDeps) -> QuartTrio:
    app = QuartTrio("agentvisor.admin")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    # Errors are answered by our handlers, never re-raised into Hypercorn.
    app.config["PROPAGATE_EXCEPTIONS"] = False
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    install_error_handlers(app)
    install_auth(app, deps.token)
    app.register_blueprint(system_blueprint(deps))
    app.register_blueprint(services_blueprint(deps), url_prefix="/api/v1")
    app.register_blueprint(logs_blueprint(deps), url_prefix="/api/v1")
    return app
