"""A real Prometheus scrapes a real agentvisor with the read-only metrics token, and the
shipped alerting rules fire on what it scraped.

The Prometheus server and promtool are Debian's (``make promtool`` unpacks both into
the venv's bin). Prometheus runs from ``contrib/prometheus/prometheus.yml`` with its
intervals shortened, its token file and target pointed here, and a second job that
holds a wrong token; what it stored is read back with ``promtool tsdb dump``, so its
web port (port 0, never read) is not needed.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_daemon import BIN, eventually, stop

CONTRIB = Path(__file__).resolve().parents[2] / "contrib" / "prometheus"
DEADLINE = 60.0
pytestmark = pytest.mark.timeout(180)


def agentvisor_config(tmp_path: Path) -> Path:
    doomed = json.dumps([sys.executable, "-c", "raise SystemExit(3)"])
    steady = json.dumps(
        [sys.executable, str(Path(__file__).parents[1] / "children" / "sleeper.py")]
    )
    config = tmp_path / "agentvisor.toml"
    config.write_text(
        f"""
[supervisor]
state_dir = "state"
port_range = [30000, 39999]

[admin]
bind = ["127.0.0.1:0", "unix:state/admin.sock"]
token = "the-admin-token"
metrics_token = "the-metrics-token"

[router]
bind = ["127.0.0.1:0"]

[agents.doomed]
command = {doomed}
startretries = 0
fatal_cooldown = 0
health.enabled = false

[agents.steady]
command = {steady}
startsecs = 0
health.enabled = false
"""
    )
    return config


@pytest.fixture
def admin_address(tmp_path: Path) -> Iterator[str]:
    config = agentvisor_config(tmp_path)
    log = tmp_path / "agentvisor.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [str(BIN / "agentvisor"), "run", "-c", str(config)],
            stdout=sink,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    try:
        found = eventually(
            lambda: (
                process.poll() is None
                and re.search(r"admin API on http://([\d.:]+)", log.read_text())
            ),
            "agentvisor's admin address",
            timeout=DEADLINE,
        )
        yield found.group(1)
    finally:
        stop(process, timeout=30)


def prometheus_config(tmp_path: Path, target: str) -> Path:
    """The shipped scrape config, made fast and pointed at this agentvisor."""
    config = yaml.safe_load((CONTRIB / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(CONTRIB / "alerts.yml")]
    (job,) = config["scrape_configs"]
    (tmp_path / "metrics-token").write_text("the-metrics-token\n")
    (tmp_path / "wrong-token").write_text("the-admin-token-guessed\n")
    job["authorization"]["credentials_file"] = str(tmp_path / "metrics-token")
    job["static_configs"] = [{"targets": [target]}]
    intruder = {
        **job,
        "job_name": "intruder",
        "authorization": {
            **job["authorization"],
            "credentials_file": str(tmp_path / "wrong-token"),
        },
    }
    config["scrape_configs"] = [job, intruder]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


def dump(data: Path, selector: str) -> list[str]:
    result = subprocess.run(
        [str(BIN / "promtool"), "tsdb", "dump", f"--match={selector}", str(data)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout.splitlines() if result.returncode == 0 else []


def test_prometheus_scrapes_with_the_metrics_token_and_the_fatal_alert_fires(
    tmp_path: Path, admin_address: str
) -> None:
    for binary in ("prometheus", "promtool"):
        assert (BIN / binary).is_file(), f"{BIN / binary} is missing: run `make promtool`"
    data = tmp_path / "tsdb"
    with (tmp_path / "prometheus.log").open("w") as log:
        server = subprocess.Popen(
            [
                str(BIN / "prometheus"),
                f"--config.file={prometheus_config(tmp_path, admin_address)}",
                f"--storage.tsdb.path={data}",
                "--web.listen-address=127.0.0.1:0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    try:
        firing = 'ALERTS{alertname="AgentvisorInstanceFatal", alertstate="firing"}'
        alerts = eventually(lambda: dump(data, firing), "the fatal alert firing", DEADLINE)

        def both_scraped() -> list[str]:
            ups = dump(data, "up")
            jobs = {
                job for job in ("agentvisor", "intruder") for line in ups if f'job="{job}"' in line
            }
            return ups if len(jobs) == 2 else []

        ups = eventually(both_scraped, "a scrape of each job recorded", DEADLINE)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert all('service="doomed"' in line for line in alerts), alerts
    assert all('severity="critical"' in line for line in alerts), alerts
    mine = [line.split()[-2] for line in ups if 'job="agentvisor"' in line]
    intruder = [line.split()[-2] for line in ups if 'job="intruder"' in line]
    assert mine, ups
    assert set(mine) == {"1"}  # every scrape with the metrics token succeeded
    assert intruder, ups
    assert set(intruder) == {"0"}  # a wrong token gets 401: a failed scrape
    others = dump(data, 'ALERTS{service="steady"}')
    assert others == [], "nothing fires for the running service"
