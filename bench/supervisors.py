"""The two supervisors under test, behind one small interface.

Each class writes its supervisor's config for ``workers`` copies of the same
worker command into a session directory, gives the command line that runs the
supervisor in the foreground, and reads the supervisor's own view of its
programs over its unix socket: agentvisor's admin API (HTTP + JSON) and
supervisord's XML-RPC interface. Both are asked the same question, "state and
pid of each program", and answer with lowercase supervisord state names.

Settings are kept equal where the two have the same knob: start counted as
successful at once (``startsecs = 0``), restart on any exit, the default stop
signal (TERM) and stop timeout, worker output captured to log files in the
session directory. agentvisor keeps its default resource sampling
(``sample_interval = 5``): the overhead goal is stated with sampling on.

Two layouts of the same N workers:

* ``replicas``: one agent with ``replicas = N`` / one program with
  ``numprocs = N`` (one supervisord process group);
* ``separate``: N agents ``[agents.wI]`` / N programs ``[program:wI]`` (N
  groups; supervisord stops its groups one after the other, one pass of its
  main loop or more per group).

Programs are named ``SERVICE:REPLICA`` (agentvisor) and ``GROUP:NAME``
(supervisord), the names each supervisor's own tools use.
"""

from __future__ import annotations

import http.client
import json
import os
import shlex
import socket
import sys
import xmlrpc.client
from collections.abc import Sequence
from typing import Any, ClassVar

from supervisor.xmlrpc import SupervisorTransport

LAYOUTS = ("replicas", "separate")

#: Seconds one status call may take before the supervisor counts as not answering.
STATUS_TIMEOUT = 10.0

#: agentvisor hands every instance a port even when the command ignores it;
#: a range of its own keeps the bench out of the way of other programs' ports.
PORT_RANGE = (47000, 47999)

Status = tuple[str, int | None]  # (state, pid)


class NotAnswering(Exception):
    """The supervisor's control socket is not up yet, or the call failed."""


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class Agentvisor:
    """``agentvisor run`` with one agent ``w`` with replicas, or one ``[agents.wI]`` per worker.

    ``source``: a directory holding a copy of the ``agentvisor`` package, put
    first on ``PYTHONPATH`` (None: the installed package).
    """

    name: ClassVar[str] = "agentvisor"

    def __init__(
        self,
        workdir: str,
        workers: int,
        worker_argv: Sequence[str],
        layout: str,
        source: str | None = None,
    ) -> None:
        self.layout = layout
        self.env = dict(os.environ)
        if source is not None:
            path = [source, *filter(None, [os.environ.get("PYTHONPATH")])]
            self.env["PYTHONPATH"] = os.pathsep.join(path)
        self.socket_path = os.path.join(workdir, "admin.sock")
        config_path = os.path.join(workdir, "agentvisor.toml")
        with open(config_path, "w") as f:
            f.write(self._config(workdir, workers, worker_argv))
        self.argv = [os.path.join(os.path.dirname(sys.executable), "agentvisor"), "run"]
        self.argv += ["-c", config_path]
        if layout == "separate":
            self.programs = [f"w{i}:0" for i in range(workers)]
        else:
            self.programs = [f"w:{i}" for i in range(workers)]
        self._conn: _UnixHTTPConnection | None = None

    def _config(self, workdir: str, workers: int, worker_argv: Sequence[str]) -> str:
        q = json.dumps  # a JSON string is a valid TOML basic string
        agent = (
            f"command = {q(list(worker_argv))}\n"
            "startsecs = 0\n"
            'autorestart = "always"\n'
            "health.enabled = false\n"
        )
        lines = [
            "[supervisor]",
            f"state_dir = {q(os.path.join(workdir, 'state'))}",
            "sample_interval = 5",
            f"port_range = {list(PORT_RANGE)}",
            "",
            "[admin]",
            f"bind = [{q('unix:' + self.socket_path)}]",
            "",
        ]
        if self.layout == "separate":
            for i in range(workers):
                lines += [f"[agents.w{i}]", agent]
        else:
            lines += ["[agents.w]", f"replicas = {workers}", agent]
        return "\n".join(lines)

    def _get(self, path: str) -> Any:
        if self._conn is None:
            self._conn = _UnixHTTPConnection(self.socket_path, STATUS_TIMEOUT)
        try:
            self._conn.request("GET", path)
            response = self._conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.close()
            raise NotAnswering(f"GET {path}: {error!r}") from None
        if response.status != 200:
            raise NotAnswering(f"GET {path}: HTTP {response.status}: {body[:200]!r}")
        return json.loads(body)["data"]

    def statuses(self) -> dict[str, Status]:
        services = self._get("/api/v1/services?limit=1000")["services"]
        return {
            f"{service['name']}:{instance['replica']}": (instance["state"], instance["pid"])
            for service in services
            for instance in service["instances"]
        }

    def status(self, program: str) -> Status:
        service, _, replica = program.partition(":")
        instances = self._get(f"/api/v1/services/{service}/instances")["instances"]
        instance = instances[int(replica)]
        return instance["state"], instance["pid"]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Supervisord:
    """``supervisord -c FILE`` (nodaemon): one program with numprocs, or one per worker."""

    name: ClassVar[str] = "supervisord"

    def __init__(self, workdir: str, workers: int, worker_argv: Sequence[str], layout: str) -> None:
        self.layout = layout
        self.socket_path = os.path.join(workdir, "supervisor.sock")
        config_path = os.path.join(workdir, "supervisord.conf")
        os.mkdir(os.path.join(workdir, "childlogs"))
        with open(config_path, "w") as f:
            f.write(self._config(workdir, workers, worker_argv))
        self.argv = [os.path.join(os.path.dirname(sys.executable), "supervisord")]
        self.argv += ["-c", config_path]
        if layout == "separate":
            self.programs = [f"w{i}:w{i}" for i in range(workers)]
        else:
            self.programs = [f"w:w_{i}" for i in range(workers)]
        self.env = dict(os.environ)
        transport = SupervisorTransport(None, None, f"unix://{self.socket_path}")
        self._rpc: Any = xmlrpc.client.ServerProxy("http://localhost", transport=transport)
        self._transport = transport

    def _config(self, workdir: str, workers: int, worker_argv: Sequence[str]) -> str:
        lines = [
            "[unix_http_server]",
            f"file = {self.socket_path}",
            "",
            "[supervisord]",
            "nodaemon = true",
            f"logfile = {os.path.join(workdir, 'supervisord.log')}",
            f"pidfile = {os.path.join(workdir, 'supervisord.pid')}",
            f"childlogdir = {os.path.join(workdir, 'childlogs')}",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
        ]
        program = [
            f"command = {shlex.join(worker_argv)}",
            "startsecs = 0",
            "autorestart = true",
            "",
        ]
        if self.layout == "separate":
            for i in range(workers):
                lines += [f"[program:w{i}]", *program]
        else:
            lines += [
                "[program:w]",
                f"numprocs = {workers}",
                "process_name = %(program_name)s_%(process_num)d",
                *program,
            ]
        return "\n".join(lines)

    def _call(self, method: str, *args: object) -> Any:
        try:
            return getattr(self._rpc.supervisor, method)(*args)
        except (OSError, http.client.HTTPException, xmlrpc.client.Error) as error:
            self.close()
            raise NotAnswering(f"{method}: {error!r}") from None

    def statuses(self) -> dict[str, Status]:
        return {
            f"{info['group']}:{info['name']}": (info["statename"].lower(), info["pid"] or None)
            for info in self._call("getAllProcessInfo")
        }

    def status(self, program: str) -> Status:
        info = self._call("getProcessInfo", program)
        return info["statename"].lower(), info["pid"] or None

    def close(self) -> None:
        self._transport.close()


Contender = Agentvisor | Supervisord
