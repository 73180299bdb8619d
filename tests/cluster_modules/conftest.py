"""Fixtures of the cluster-module tests: the real modules (run by ``ansible`` ad hoc, as a user
would) against a stand-in cluster of processes on loopback (tests/standin/harness.py), on
MariaDB and PostgreSQL.

One cluster per engine serves the whole module (two masters, three coreapps, two webapps with a
certificate that names 127.0.0.1); the tests run in file order and leave it healthy, except the
last one, which stops the primary coreapp.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.standin.harness import Cluster, wait_for

ROOT = Path(__file__).resolve().parents[2]
ANSIBLE = str(Path(sys.executable).parent / "ansible")

# Shortened timers (harness.FAST_TIMERS) with a longer unhealthy_interval, so that a check run
# right after a stop sees the fault before a master repairs it.
TIMERS = {"WA_DEFAULT_UNHEALTHY_INTERVAL": "6"}
API_KEY = "test-api-key"
PASSWORD = "Secret-123"


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory) -> Path:
    """A directory holding ansible_collections/wabiz/cluster -> this checkout."""
    root = tmp_path_factory.mktemp("collections")
    (root / "ansible_collections" / "wabiz").mkdir(parents=True)
    (root / "ansible_collections" / "wabiz" / "cluster").symlink_to(ROOT)
    return root


class Runner:
    def __init__(self, collections: Path, tmp: Path) -> None:
        self.collections, self.tmp = collections, tmp
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
        self.env.update({
            "ANSIBLE_COLLECTIONS_PATH": str(collections), "ANSIBLE_STDOUT_CALLBACK": "json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1", "ANSIBLE_LOCALHOST_WARNING": "False",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False", "ANSIBLE_PYTHON_INTERPRETER": sys.executable,
            "ANSIBLE_HOME": str(tmp / "ansible-home"), "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-tmp"),
            "ANSIBLE_REMOTE_TEMP": str(tmp / "ansible-tmp"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_PIPELINING": "1",
            "PATH": str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""),
        })
        self.durations: list[tuple[str, float]] = []

    def __call__(self, module: str, args: dict[str, Any] | str, check: bool = False, diff: bool = False,
                 via: str = "direct") -> dict[str, Any]:
        """Run wabiz.cluster.MODULE on localhost; the module's result (with ``failed`` when it failed).

        ``via="ansible"`` runs ``ansible localhost -m wabiz.cluster.MODULE`` as a user would (the key
        steps of each test); ``via="direct"`` runs the same module file with its arguments in a JSON
        file, as AnsiballZ does on the host, without the controller's start-up (seconds on a busy
        machine) for the many repeated runs."""
        started = time.monotonic()
        if via == "ansible":
            result = self._ansible(module, args, check, diff)
        else:
            assert isinstance(args, dict)
            result = self._direct(module, args, check, diff)
        self.durations.append((f"{module} ({via})", time.monotonic() - started))
        return result

    def _ansible(self, module: str, args: dict[str, Any] | str, check: bool, diff: bool) -> dict[str, Any]:
        cmd = [ANSIBLE, "localhost", "-c", "local", "-m", f"wabiz.cluster.{module}",
               "-a", args if isinstance(args, str) else json.dumps(args)]
        if check:
            cmd.append("--check")
        if diff:
            cmd.append("--diff")
        proc = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=300, check=False)
        try:
            out = json.loads(proc.stdout)
            return out["plays"][0]["tasks"][0]["hosts"]["localhost"]
        except (ValueError, KeyError, IndexError):
            raise AssertionError(f"ansible did not give a JSON result (rc {proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}") from None

    def playbook(self, path: Path) -> dict[str, Any]:
        """Run a playbook on localhost; {task name: result} from the json callback."""
        started = time.monotonic()
        proc = subprocess.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i", "localhost,", "-c", "local",
                               str(path)], env=self.env, capture_output=True, text=True, timeout=300, check=False)
        self.durations.append(("playbook", time.monotonic() - started))
        try:
            out = json.loads(proc.stdout)
            return {t["task"]["name"]: t["hosts"]["localhost"] for t in out["plays"][0]["tasks"]}
        except (ValueError, KeyError, IndexError):
            raise AssertionError(f"ansible-playbook did not give a JSON result (rc {proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}") from None

    def _direct(self, module: str, args: dict[str, Any], check: bool, diff: bool) -> dict[str, Any]:
        argfile = self.tmp / f"args-{uuid.uuid4().hex}.json"
        argfile.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": {
            **args, "_ansible_check_mode": check, "_ansible_diff": diff, "_ansible_tmpdir": str(self.tmp)}}))
        try:
            proc = subprocess.run([sys.executable, "-m", f"ansible_collections.wabiz.cluster.plugins.modules.{module}",
                                   str(argfile)], env={**self.env, "PYTHONPATH": str(self.collections)},
                                  capture_output=True, text=True, timeout=300, check=False)
        finally:
            argfile.unlink()
        try:
            return json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"the module did not print a JSON result (rc {proc.returncode}):\n"
                                 f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}") from None


@pytest.fixture(scope="session")
def run(collections_path, tmp_path_factory) -> Runner:
    return Runner(collections_path, tmp_path_factory.mktemp("ansible"))


def make_cert(folder: Path) -> Path:
    """A self-signed webapp certificate that names 127.0.0.1 (the stand-in's own has no SAN)."""
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(folder / "webapp.key"), "-out", str(folder / "webapp.crt"),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True)
    # The webapp loads webapp.pem (key + certificate) from WA_WEB_CERT_DIR (older stand-ins: .crt/.key).
    pem = folder / "webapp.pem"
    pem.write_text((folder / "webapp.key").read_text() + (folder / "webapp.crt").read_text())
    pem.chmod(0o600)
    return folder / "webapp.crt"


class ModCluster:
    """The stand-in cluster plus the module options that reach it."""

    def __init__(self, cluster: Cluster, cert: Path) -> None:
        self.c = cluster
        self.cert = cert
        ep = cluster.endpoint
        self.db = {"db_engine": "mysql" if ep.engine == "mysql" else "postgresql", "db_host": ep.host,
                   "db_port": ep.port, "db_user": ep.admin_user, "db_password": ep.admin_password,
                   "db_name_prefix": cluster.prefix}

    def url(self, webapp: str = "webapp1") -> str:
        return f"https://127.0.0.1:{self.c.procs[webapp].ports[0]}"

    def api(self, **extra: Any) -> dict[str, Any]:
        """Admin login as a first run would give it: the initial password and the new one (idempotent)."""
        return {"api_url": self.url(), "api_password": "secret", "api_new_password": PASSWORD,
                "ca_path": str(self.cert), **extra}

    def check_args(self, **extra: Any) -> dict[str, Any]:
        """failover_check over the API alone, with the admin login (the full check needs it)."""
        return {**self.api(), "api_timeout": 5, **extra}

    def cross_check_args(self, **extra: Any) -> dict[str, Any]:
        """failover_check with the opt-in database cross-check (stand-in only) and the test cluster's
        thresholds (DB heartbeat 1 s, dead after 3 s)."""
        return self.check_args(**{"db_cross_check": True, "heartbeat_threshold": 3, **self.db, **extra})

    def sql(self, query: str, params: tuple = ()) -> list[tuple]:
        """An independent query (not through the collection's code) for verification."""
        st = self.c.storage()
        try:
            with st.cursor() as cur:
                cur.execute(query, params)
                return list(cur.fetchall()) if cur.description else []
        finally:
            st.close()

    def healthy_now(self) -> bool:
        c = self.c
        return bool(c.primary_master()) and len(c.connected_coreapps()) == len(c.owners()) and all(c.owners().values())


@pytest.fixture(scope="module")
def mc(db_server, tmp_path_factory, request) -> Iterator[ModCluster]:
    work = tmp_path_factory.mktemp("cluster")
    cert = make_cert(work / "certs")
    c = Cluster(db_server, work, prefix=f"cmod{uuid.uuid4().hex[:6]}_")
    c.timers.update(TIMERS)
    try:
        for i in (1, 2):
            c.start_node("master", f"master{i}")
        for i in (1, 2, 3):
            c.start_node("coreapp", f"coreapp{i}")
        for i in (1, 2):
            c.start_node("webapp", f"webapp{i}", {"WA_WEB_CERT_DIR": str(cert.parent)})
        wait_for(c.primary_master, 30, what="a primary master")
        wait_for(lambda: len(c.connected_coreapps()) == 1, 30, what="a connected coreapp")
        for w in ("webapp1", "webapp2"):
            wait_for(lambda w=w: _answers(c, w), 30, what=f"{w} to serve")
        yield ModCluster(c, cert)
    finally:
        if getattr(request.session, "testsfailed", 0):
            print(c.dump_logs())
        c.close()


def _answers(c: Cluster, webapp: str) -> bool:
    try:
        return c.api("GET", "/v1/health", webapp=webapp, auth=f"Apikey {API_KEY}", timeout=2)[0] == 200
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def _report_durations(run) -> Iterator[None]:
    yield
    if run.durations:
        per: dict[str, list[float]] = {}
        for name, took in run.durations:
            per.setdefault(name, []).append(took)
        print("\nansible runs: " + ", ".join(f"{k} x{len(v)} avg {sum(v) / len(v):.2f}s max {max(v):.2f}s"
                                             for k, v in sorted(per.items())))
