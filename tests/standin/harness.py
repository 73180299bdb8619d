"""A stand-in cluster of plain processes on loopback, for the fast tests.

Each node is ``python -m wabiz_standin`` with its own ports and log; every cluster gets its
own database (``WA_DB_NAME_PREFIX``), dropped at the end.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "standin"))

from wabiz_standin.schema import S  # noqa: E402
from wabiz_standin.storage import Storage, make_storage  # noqa: E402

FAST_TIMERS = {
    "WA_DEFAULT_HEARTBEAT_INTERVAL": "1",
    "WA_DEFAULT_UNHEALTHY_INTERVAL": "4",
    "WA_DB_HEARTBEAT_SECONDS": "1",
    "WA_DB_DEAD_AFTER_SECONDS": "3",
    "WA_LEASE_TTL_SECONDS": "3",
    "WA_LEASE_RENEW_DEADLINE_SECONDS": "2",
    "WA_COREAPP_FENCE_SECONDS": "1.5",
    "WA_DB_TIMEOUT_SECONDS": "2",
    "WA_DELIVERY_DELAY_SECONDS": "0.5",
}

_used_ports: set[int] = set()


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _used_ports:
            _used_ports.add(port)
            return port


def engine_of(endpoint: Any) -> str:
    return "MYSQL" if endpoint.engine == "mysql" else "PGSQL"


class StallProxy:
    """A TCP proxy in front of the database that can stall: while paused, bytes are held (no
    reset, no error), as when a database server hangs."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(100)
        self.port = self.sock.getsockname()[1]
        self.paused = threading.Event()
        self.closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._relay, args=(a, b), daemon=True).start()

    def _relay(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                while self.paused.is_set() and not self.closed.is_set():
                    time.sleep(0.02)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.closed.set()
        self.sock.close()


def base_env(endpoint: Any, prefix: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WA_", "COREAPP_", "WEBAPP_"))}
    env.update({
        "PYTHONPATH": str(ROOT / "standin"),
        "WA_DB_ENGINE": engine_of(endpoint), "WA_DB_HOSTNAME": endpoint.host, "WA_DB_PORT": str(endpoint.port),
        "WA_DB_USERNAME": endpoint.admin_user, "WA_DB_PASSWORD": endpoint.admin_password,
        "WA_DB_NAME_PREFIX": prefix, "WA_APP_MULTICONNECT": "1", "WA_LISTEN_ADDRESS": "127.0.0.1",
    })
    return env


@dataclass
class Proc:
    name: str
    kind: str
    popen: subprocess.Popen
    ports: tuple[int, ...]
    log: Path
    stopped: bool = False

    @property
    def node_id(self) -> str:
        return self.name

    @property
    def control_port(self) -> int:
        return self.ports[2]

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def state_lines(self, event: str) -> list[str]:
        return [line for line in self.output().splitlines() if f" STATE {event} " in line]


@dataclass
class Cluster:
    endpoint: Any
    workdir: Path
    timers: dict[str, str] = field(default_factory=lambda: dict(FAST_TIMERS))
    prefix: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}_")
    procs: dict[str, Proc] = field(default_factory=dict)
    token: str | None = None
    db_port: int | None = None  # e.g. a StallProxy's port; None = the server's own

    # -- nodes ---------------------------------------------------------------------------
    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = base_env(self.endpoint, self.prefix)
        if self.db_port:
            env["WA_DB_PORT"] = str(self.db_port)
        env.update(self.timers)
        env.update(extra or {})
        return env

    def _spawn(self, name: str, kind: str, ports: tuple[int, ...], env: dict[str, str]) -> Proc:
        log = self.workdir / f"{name}.log"
        env = {"WA_NODE_ID": name, "WA_LOG_DIR": str(self.workdir / "logs" / name),
               "WA_DATA_DIR": str(self.workdir / "data"), "WA_MEDIA_DIR": str(self.workdir / "media"), **env}
        with open(log, "ab") as fh:
            popen = subprocess.Popen([sys.executable, "-m", "wabiz_standin"], env=env, stdout=fh,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=str(self.workdir))
        proc = Proc(name, kind, popen, ports, log)
        self.procs[name] = proc
        return proc

    def start_node(self, kind: str, name: str, extra: dict[str, str] | None = None) -> Proc:
        if kind == "webapp":
            ports: tuple[int, ...] = (free_port(),)
            # The health rate limit (10 calls per 60 s, on by default) is off: the tests poll.
            env = self.env({"WEBAPP_HOSTNAME": "127.0.0.1", "WEBAPP_EXTERNAL_PORTS": str(ports[0]),
                            "WA_LISTEN_PORTS": str(ports[0]), "WA_API_KEY": "test-api-key",
                            "WA_STANDIN_HEALTH_RATE_LIMIT": "0", **(extra or {})})
        else:
            ports = tuple(free_port() for _ in range(4))
            csv = ",".join(map(str, ports))
            env = self.env({"COREAPP_HOSTNAME": "127.0.0.1", "COREAPP_EXTERNAL_PORTS": csv, "WA_LISTEN_PORTS": csv,
                            **({"WA_MASTER_NODE": "1"} if kind == "master" else {}), **(extra or {})})
        return self._spawn(name, kind, ports, env)

    def start(self, masters: int = 2, coreapps: int = 2, webapps: int = 1) -> Cluster:
        for i in range(masters):
            self.start_node("master", f"master{i + 1}")
        for i in range(coreapps):
            self.start_node("coreapp", f"coreapp{i + 1}")
        for i in range(webapps):
            self.start_node("webapp", f"webapp{i + 1}")
        return self

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        p = self.procs[name]
        p.popen.send_signal(sig)
        if sig in (signal.SIGKILL, signal.SIGTERM):
            p.popen.wait(timeout=10)
            p.stopped = True

    def close(self) -> None:
        for p in self.procs.values():
            if p.popen.poll() is None:
                try:
                    p.popen.send_signal(signal.SIGCONT)
                    p.popen.kill()
                    p.popen.wait(timeout=10)
                except (ProcessLookupError, subprocess.TimeoutExpired):
                    pass
        drop_database(self.endpoint, S.database_name(self.prefix))

    # -- observation ---------------------------------------------------------------------
    def ping(self, name: str, timeout: float = 0.5) -> dict[str, Any] | None:
        p = self.procs[name]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{p.control_port}/ping", timeout=timeout) as r:
                return json.loads(r.read())
        except (OSError, ValueError):
            return None

    def roles(self, kind: str = "master", timeout: float = 0.5) -> dict[str, str | None]:
        out = {}
        for name, p in self.procs.items():
            if p.kind == kind and not p.stopped:
                body = self.ping(name, timeout)
                out[name] = body.get("role") if body else None
        return out

    def primary_master(self) -> str | None:
        prim = [n for n, r in self.roles().items() if r == "primary_master"]
        return prim[0] if len(prim) == 1 else None

    def storage(self) -> Storage:
        ep = self.endpoint
        return make_storage(engine_of(ep), ep.host, ep.port, ep.admin_user, ep.admin_password,
                            S.database_name(self.prefix), timeout=5)

    def owners(self) -> dict[int, str | None]:
        st = self.storage()
        try:
            return {s.shard_id: s.owner for s in st.shard_map() if s.active}
        finally:
            st.close()

    def connected_coreapps(self) -> list[str]:
        out = []
        for name, p in self.procs.items():
            if p.kind == "coreapp" and not p.stopped:
                body = self.ping(name)
                if body and body.get("gateway_status") == "connected":
                    out.append(name)
        return sorted(out)

    def webapp_up(self, name: str = "webapp1") -> bool:
        """The webapp answers GET / (no auth, and not counted by the health rate limit)."""
        try:
            return self.api("GET", "/", webapp=name, auth="", timeout=2)[0] == 200
        except OSError:
            return False

    def dump_logs(self) -> str:
        return "\n".join(f"===== {n}\n" + "\n".join(p.output().splitlines()[-40:]) for n, p in self.procs.items())

    # -- REST ----------------------------------------------------------------------------
    def api(self, method: str, path: str, body: Any = None, webapp: str = "webapp1", auth: str | None = None,
            timeout: float = 10, raw: bytes | None = None, content_type: str = "application/json"
            ) -> tuple[int, Any]:
        p = self.procs[webapp]
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        req = urllib.request.Request(f"https://127.0.0.1:{p.ports[0]}{path}", data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        if auth is None and self.token:
            auth = f"Bearer {self.token}"
        if auth:
            req.add_header("Authorization", auth)
        try:
            with urllib.request.urlopen(req, timeout=timeout, context=ctx) as r:
                payload = r.read()
                status = r.status
                ctype = r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            payload, status, ctype = e.read(), e.code, e.headers.get("Content-Type", "")
        if "json" in ctype:
            return status, json.loads(payload)
        return status, payload

    def login(self, webapp: str = "webapp1", password: str = "Secret-123") -> str:
        basic = "Basic " + base64.b64encode(b"admin:secret").decode()
        status, body = self.api("POST", "/v1/users/login", {"new_password": password}, webapp=webapp, auth=basic)
        if status != 200:  # already changed by an earlier login
            basic = "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()
            status, body = self.api("POST", "/v1/users/login", None, webapp=webapp, auth=basic)
        assert status == 200, body
        self.token = body["users"][0]["token"]
        return self.token

    def send(self, to: str, text: str = "hi", webapp: str = "webapp1", timeout: float = 10) -> tuple[int, Any]:
        return self.api("POST", "/v1/messages", {"to": to, "type": "text", "text": {"body": text}},
                        webapp=webapp, timeout=timeout)


def wait_for(pred: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def drop_database(endpoint: Any, name: str) -> None:
    if endpoint.engine == "mysql":
        import pymysql

        conn = pymysql.connect(host=endpoint.host, port=endpoint.port, user=endpoint.admin_user,
                               password=endpoint.admin_password, autocommit=True)
        try:
            conn.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        finally:
            conn.close()
    else:
        import psycopg2

        conn = psycopg2.connect(host=endpoint.host, port=endpoint.port, user=endpoint.admin_user,
                                password=endpoint.admin_password, dbname="postgres")
        conn.autocommit = True
        try:
            conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            conn.close()
