"""schemathesis against the live admin API: every operation, every check, no failure.

schemathesis is synchronous (requests), the server runs on trio in this
thread: the run goes to a worker thread (``trio.to_thread``) and talks to the
real Hypercorn over TCP, with the token, as any client would. The daemon is
whole: supervisor with two sleepers, state store, router. Every operation
gets a bounded number of generated cases (derandomized: the same on every
run), valid ones and invalid ones, first with generated path parameters
(mostly unknown services: 404s) and then, for the operations on one
service, with a real one. All of schemathesis' checks run (``--checks all``).

The body-taking edits (register, PUT config) run with the generated bodies
made harmless before they are sent (:func:`harmless`): a string or list of
strings that would be run (``command``) becomes the sleeper child, an agent
file becomes the test agent, ``directory`` a temporary folder, ``user`` this
user, ``host`` 127.0.0.1, ``environment`` one fixed variable, a fixed
``port`` the default (none), and counts of replicas at most 2. A value of
the wrong type or out of range is left as generated, so an invalid case
stays invalid and a valid one valid; a random string is never run. Each
service a case registers is removed again.

``positive_data_acceptance`` ("a request valid by the schema is accepted")
also accepts 422 for the four operations that write a body into the file
(those two, creating and changing a routing rule): ``CONFIG_INVALID``
answers a body that is valid on its own but makes the whole file invalid
(``depends_on`` or ``target_agents`` naming an agent the file lacks,
``autoscale.min`` above ``max``, both ``agent`` and ``command``, a key given
twice in two spellings), which depends on the rest of the file and which no
schema of one body can state. Left out: the event stream (an endless body, which
schemathesis cannot read to its end; ``test_stream`` covers it).
"""

from __future__ import annotations

import getpass
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import hypothesis
import pytest
import requests
import schemathesis
import trio
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import PositiveDataAcceptanceConfig

from agentvisor.admin.app import AdminLimits
from agentvisor.router.server import Router
from tests.integration.admin.harness import CHILDREN, TOKEN, all_running, sleeper, write_config
from tests.integration.admin.stack import running_stack

#: Generated cases per operation and mode; the whole run stays around a minute.
EXAMPLES = 8
EXCLUDED = {("GET", "/api/v1/events/stream")}
#: Operations whose generated bodies are made harmless (see the module's docstring).
EDITS = {("POST", "/api/v1/services"), ("PUT", "/api/v1/services/{service_id}/config")}
#: Operations that write a generated body into agentvisor.toml: 422 when the file would not
#: validate with it.
FILE_EDITS = {
    *EDITS,
    ("POST", "/api/v1/routing/rules"),
    ("PUT", "/api/v1/routing/rules/{rule_id}"),
}
#: Bounds that keep generated long-polls and waits short.
QUERY_OVERRIDES: dict[str, Any] = {"wait": 0, "timeout": 5}
SLEEPER = [sys.executable, str(CHILDREN / "sleeper.py")]
AGENT_FILE = str(Path(__file__).resolve().parents[2] / "agents" / "scripted.py")
DEFAULT_ACCEPTED = PositiveDataAcceptanceConfig()
EDIT_ACCEPTED = PositiveDataAcceptanceConfig(
    expected_statuses=[*DEFAULT_ACCEPTED.expected_statuses, "422"]
)


def _strings(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    )


def _small(value: Any, most: int) -> Any:
    """An in-range count made small; anything else (wrong type, out of range) as it was."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 1000:
        return min(value, most)
    return value


def _harmless_settings(settings: dict[str, Any], sandbox: str) -> None:
    if _strings(settings.get("command")):
        settings["command"] = SLEEPER
    for key in ("agent", "agent_factory_path"):
        if isinstance(settings.get(key), str):
            settings[key] = AGENT_FILE
    replacements = {"directory": sandbox, "user": getpass.getuser(), "host": "127.0.0.1"}
    for key, value in replacements.items():
        if isinstance(settings.get(key), str):
            settings[key] = value
    environment = settings.get("environment")
    if isinstance(environment, dict) and all(isinstance(v, str) for v in environment.values()):
        settings["environment"] = {"AGENTVISOR_FUZZ": "1"}
    port = settings.get("port")
    if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
        settings["port"] = None
    if "replicas" in settings:
        settings["replicas"] = _small(settings["replicas"], 2)
    autoscale = settings.get("autoscale")
    if isinstance(autoscale, dict):
        for key, most in (("min", 1), ("max", 2)):
            if key in autoscale:
                autoscale[key] = _small(autoscale[key], most)


def harmless(body: Any, sandbox: str) -> None:
    """Make a generated register / config body safe to apply (the module's docstring)."""
    if not isinstance(body, dict):
        return
    _harmless_settings(body, sandbox)
    if isinstance(body.get("config"), dict):
        _harmless_settings(body["config"], sandbox)


def run_schemathesis(base_url: str, service: str, sandbox: str) -> list[str]:
    """Every operation, both modes; the failures as readable reports (empty: all good)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment between us and 127.0.0.1
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", headers=headers)
    # Unknown query parameters are ignored, as by most HTTP APIs (OpenAPI does not forbid
    # them); the token is ours to send, so its header is not generated (nor left out).
    schema.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)
    load_all_checks()
    checks = list(CHECKS.get_all())
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        key = (operation.method.upper(), operation.path)
        if key in EXCLUDED:
            continue
        accepted = EDIT_ACCEPTED if key in FILE_EDITS else DEFAULT_ACCEPTED
        schema.config.checks.positive_data_acceptance = accepted
        path_params = {"service_id": service} if "{service_id}" in operation.path else None
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for fixed in (None, path_params) if path_params else (None,):
                run = Run(base_url, headers, session, checks, sandbox)
                check = _checker(operation, mode, fixed, run)
                try:
                    check()
                except Unsatisfiable:
                    pass  # nothing can be invalid in it (no parameters, no body): no case
                except (Exception, BaseExceptionGroup) as error:  # keep its report, go on
                    report = "".join(traceback.format_exception_only(error)).strip()
                    failures.append(f"{key} {mode.value} {fixed}: {report}")
    return failures


@attrs.frozen
class Run:
    base_url: str
    headers: dict[str, str]
    session: requests.Session
    checks: list[Any]
    sandbox: str


def _checker(
    operation: Any,
    mode: GenerationMode,
    path_parameters: dict[str, str] | None,
    run: Run,
) -> Callable[[], None]:
    strategy = operation.as_strategy(generation_mode=mode, path_parameters=path_parameters)
    edits = (operation.method.upper(), operation.path) in EDITS

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
        if edits:
            harmless(case.body, run.sandbox)
        response = case.call_and_validate(
            base_url=run.base_url,
            headers=run.headers,
            session=run.session,
            timeout=15,
            checks=run.checks,
        )
        if response.status_code == 201 and operation.path == "/api/v1/services":
            name = response.json()["data"]["name"]
            removed = run.session.delete(
                f"{run.base_url}/api/v1/services/{name}",
                params={"timeout": 5},
                headers=run.headers,
                timeout=15,
            )
            assert removed.status_code in (200, 202), removed.text

    return check


@pytest.mark.timeout(300)
async def test_schemathesis_finds_no_server_error_and_no_schema_violation(tmp_path: Path) -> None:
    router_section = '[router]\nbind = ["127.0.0.1:0"]\n'
    agents = sleeper("alpha") + sleeper("beta") + router_section
    config = write_config(tmp_path / "agentvisor.toml", agents)
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    # The rate limit is tested on its own; here it would only turn cases into 429s.
    limits = AdminLimits(mutating_rate=1e6, mutating_burst=1e6)
    async with running_stack(config, limits=limits) as stack, trio.open_nursery() as nursery:
        # The whole daemon: with the router too, so that its endpoints answer for real.
        router = Router(stack.supervisor, stack.supervisor.bus)
        await nursery.start(router.run)
        stack.admin.deps.router = router
        await all_running(stack.admin)
        with trio.fail_after(240):
            failures = await trio.to_thread.run_sync(
                run_schemathesis, stack.admin.url, "alpha", str(sandbox)
            )
        nursery.cancel_scope.cancel()
    assert failures == [], "\n\n".join(failures)
