"""schemathesis against the live admin API: no 5xx, every answer as ``/openapi.json`` says.

schemathesis is synchronous (requests), the server runs on trio in this
thread: the run goes to a worker thread (``trio.to_thread``) and talks to the
real Hypercorn over TCP, with the token, as any client would. The daemon is
whole: supervisor with two sleepers, state store, router. Every operation
gets a bounded number of generated cases (derandomized: the same on every
run), valid ones and invalid ones, first with generated path parameters
(mostly unknown services: 404s) and then, for the operations on one
service, with a real one.

Left out: the event stream (an endless body, tested in ``test_stream``) and
the two operations that put arbitrary generated commands into agentvisor.toml
and start them (register, update config): not something to do with random
strings on a developer's machine; ``test_register`` and ``test_service_edits``
cover them.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hypothesis
import requests
import schemathesis
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from agentvisor.admin.app import AdminLimits
from agentvisor.router.server import Router
from tests.integration.admin.harness import TOKEN, all_running, sleeper, write_config
from tests.integration.admin.stack import running_stack

#: Generated cases per operation and mode; the whole run stays well under a minute.
EXAMPLES = 12
EXCLUDED = {
    ("GET", "/api/v1/events/stream"),
    ("POST", "/api/v1/services"),
    ("PUT", "/api/v1/services/{service_id}/config"),
}
#: Bounds that keep generated long-polls and waits short.
QUERY_OVERRIDES: dict[str, Any] = {"wait": 0, "timeout": 5}
#: No 5xx, only documented statuses, content types, headers and bodies, invalid input
#: refused with a 4xx, and no answer without the token. (``positive_data_acceptance``,
#: "every schema-valid request gets a 2xx", is left out: it judges how precisely the
#: parameters are described rather than what the server answers.)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    ignored_auth,
]


def run_schemathesis(base_url: str, service: str) -> list[str]:
    """Every operation, both modes; the failures as readable reports (empty: all good)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment between us and 127.0.0.1
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", headers=headers)
    # Unknown query parameters are ignored, as by most HTTP APIs (OpenAPI does not forbid
    # them); the token is ours to send, so its header is not generated (nor left out).
    schema.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in EXCLUDED:
            continue
        path_params = {"service_id": service} if "{service_id}" in operation.path else None
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for fixed in (None, path_params) if path_params else (None,):
                check = _checker(operation, mode, fixed, base_url, headers, session)
                try:
                    check()
                except Unsatisfiable:
                    pass  # nothing can be invalid in it (no parameters, no body): no case
                except (Exception, BaseExceptionGroup) as error:  # keep its report, go on
                    report = "".join(traceback.format_exception_only(error)).strip()
                    failures.append(f"{key} {mode.value} {fixed}: {report}")
    return failures


def _checker(
    operation: Any,
    mode: GenerationMode,
    path_parameters: dict[str, str] | None,
    base_url: str,
    headers: dict[str, str],
    session: requests.Session,
) -> Callable[[], None]:
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        verbosity=hypothesis.Verbosity.quiet,
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        if case.query is not None:
            for name, value in QUERY_OVERRIDES.items():
                if name in case.query:
                    case.query[name] = value
        case.call_and_validate(
            base_url=base_url, headers=headers, session=session, timeout=15, checks=CHECKS
        )

    return check


async def test_schemathesis_finds_no_server_error_and_no_schema_violation(tmp_path: Path) -> None:
    router_section = '[router]\nbind = ["127.0.0.1:0"]\n'
    agents = sleeper("alpha") + sleeper("beta") + router_section
    config = write_config(tmp_path / "agentvisor.toml", agents)
    # The rate limit is tested on its own; here it would only turn cases into 429s.
    limits = AdminLimits(mutating_rate=1e6, mutating_burst=1e6)
    async with running_stack(config, limits=limits) as stack, trio.open_nursery() as nursery:
        # The whole daemon: with the router too, so that its endpoints answer for real.
        router = Router(stack.supervisor, stack.supervisor.bus)
        await nursery.start(router.run)
        stack.admin.deps.router = router
        await all_running(stack.admin)
        with trio.fail_after(240):
            failures = await trio.to_thread.run_sync(run_schemathesis, stack.admin.url, "alpha")
        nursery.cancel_scope.cancel()
    assert failures == [], "\n\n".join(failures)
