"""contrib/prometheus/: the alerting rules and scrape config, checked by promtool itself.

promtool comes from Debian's prometheus package (``make promtool`` puts it in the
venv's bin; ``make test`` does so first). Beyond ``check rules``, the rules'
own unit tests (``alerts.test.yml``) run through ``promtool test rules``, and every
metric the rules query must be one a real ``/metrics`` exports.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from tests.integration.admin.harness import TOKEN, all_running, running_admin, sleeper, write_config
from tests.integration.admin.test_metrics import FakeRouter, RouterFigures, exported_names

CONTRIB = Path(__file__).resolve().parents[3] / "contrib" / "prometheus"
PROMTOOL = Path(sys.executable).parent / "promtool"
#: Recorded by Prometheus itself for every target, not exported by agentvisor.
PROMETHEUS_OWN = {"up"}
#: What issue 13 asks the rules to catch, by alert name.
REQUIRED_ALERTS = {
    "AgentvisorInstanceFatal",
    "AgentvisorRestartStorm",
    "AgentvisorInstanceUnhealthy",
    "AgentvisorRouterRefusals",
}


def promtool(*args: str, cwd: Path = CONTRIB, given: str | None = None) -> str:
    assert PROMTOOL.is_file(), f"{PROMTOOL} is missing: run `make promtool` (make test does)"
    result = subprocess.run(
        [str(PROMTOOL), *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        input=given,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def rules() -> list[dict[str, str]]:
    document = yaml.safe_load((CONTRIB / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_promtool_accepts_the_alerting_rules() -> None:
    assert f"SUCCESS: {len(rules())} rules found" in promtool("check", "rules", "alerts.yml")


def test_the_alerting_rules_pass_their_unit_tests() -> None:
    assert "SUCCESS" in promtool("test", "rules", "alerts.test.yml")


def test_promtool_accepts_the_scrape_config_with_its_token_file(tmp_path: Path) -> None:
    for name in ("prometheus.yml", "alerts.yml"):
        shutil.copy(CONTRIB / name, tmp_path / name)
    token = tmp_path / "agentvisor-metrics-token"
    token.write_text("metrics-token\n")
    config = tmp_path / "prometheus.yml"
    text = config.read_text()
    assert "/etc/prometheus/agentvisor-metrics-token" in text
    config.write_text(text.replace("/etc/prometheus/agentvisor-metrics-token", str(token)))
    assert "SUCCESS: 1 rule files found" in promtool("check", "config", str(config), cwd=tmp_path)


def test_the_rules_cover_what_the_issue_named() -> None:
    names = {rule["alert"] for rule in rules()}
    assert names >= REQUIRED_ALERTS
    for rule in rules():
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]


async def test_the_rules_query_only_metrics_agentvisor_exports(tmp_path: Path) -> None:
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha"))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        await all_running(admin)
        admin.deps.router = FakeRouter(RouterFigures())
        exported = exported_names((await client.get("/metrics")).text)
    queried: set[str] = set()
    for rule in rules():
        expression = re.sub(r'"[^"]*"', '""', rule["expr"])  # label values are not names
        # A selector: a name before {...} or [...], or a name that is neither a function
        # (followed by "("), a keyword of PromQL, nor a label inside by (...) / {...}.
        queried |= set(re.findall(r"\b([a-z_:][a-z0-9_:]*)\s*[{\[]", expression))
        queried |= set(re.findall(r"\b(agentvisor_[a-z0-9_]+|process_[a-z0-9_]+)\b", expression))
    assert queried, "no metric found in the rules"
    assert sorted(queried - exported - PROMETHEUS_OWN) == []
    assert {"agentvisor_instance_state", "agentvisor_router_refused_total"} <= queried


async def test_promtool_finds_nothing_to_lint_in_the_exposition(tmp_path: Path) -> None:
    """Names, units, HELP and TYPE lines as Prometheus' own linter wants them."""
    config = write_config(tmp_path / "agentvisor.toml", sleeper("alpha", replicas=2))
    async with running_admin(config) as admin, admin.tcp(TOKEN) as client:
        await all_running(admin)
        admin.deps.router = FakeRouter(RouterFigures())
        text = (await client.get("/metrics")).text
    assert "agentvisor_router_refused_total" in text
    assert promtool("check", "metrics", given=text) == ""
