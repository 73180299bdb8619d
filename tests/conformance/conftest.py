"""The stand-in under Meta's own compose files, unchanged (``make conformance``).

Three layouts, one after the other (Meta's dev files publish the fixed host ports 9090 and 33060):

- ``mysql``: ``installation/multiconnect-compose.yml`` with its ``db.env`` (mysql:8.0.33, root).
- ``postgres``: ``installation/postgres/multiconnect-compose.yml`` (postgres:13.8 on port 3306).
- ``prod``: ``installation/prod-multiconnect-compose.yml`` on two "machines", one compose project
  each on this host, each with its own EXTERNAL_HOSTNAME-reachable ports as the file's comments
  ask; EXTERNAL_HOSTNAME is the host's address on Docker's bridge, which every container reaches.
  The site's own ``db.env`` (the file the collection's db_env module writes) points both machines
  at one mysql:8.0.33 container.

The files are read from WABIZ_META_SETUP_SCRIPTS, else ../shared beside the repository, else
/work/shared (the stage fails, never skips, when they are missing), checked against
meta-files.sha256, copied to a temporary folder and never modified. Every container, volume and
network is named wabiz-conformance-* and removed at the end, also on failure.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conformance import support as s

ADMIN_PASSWORD = "Conformance-pw-1"
SCENARIOS = ("mysql", "postgres", "prod")
# Two machines for the prod layout: the file's port variables, all distinct on this one host.
MACHINES = {
    "a": {"EXTERNAL_WEBAPP_PORT": 19090, "EXTERNAL_COREAPP_PORT": 16250, "EXTERNAL_MASTER_PORT": 16254},
    "b": {"EXTERNAL_WEBAPP_PORT": 19091, "EXTERNAL_COREAPP_PORT": 16260, "EXTERNAL_MASTER_PORT": 16264},
}
PROD_DB = f"{s.PREFIX}-prod-db"


@dataclass
class Project:
    name: str
    workdir: Path
    compose_file: str
    env: dict[str, str]

    def compose(self, *args: str, check: bool = True, timeout: float = 180):
        return s.run("docker", "compose", "-p", self.name, "-f", self.compose_file, *args, check=check,
                     timeout=timeout, env=self.env, cwd=self.workdir)


@dataclass
class Cluster:
    name: str
    projects: list[Project]
    webapp_ports: list[int]
    masters: int
    coreapps: int
    master_hosts: set[str]
    coreapp_hosts: set[str]
    db_port: int  # published on the host, at db_host
    engine: str
    db_host: str = "127.0.0.1"
    logins: dict[str, tuple[int, dict]] = field(default_factory=dict)
    token: str = ""
    tokens: dict[int, str] = field(default_factory=dict)

    @property
    def port(self) -> int:
        return self.webapp_ports[0]

    def bearer(self, port: int | None = None) -> str:
        return "Bearer " + self.tokens.get(port or self.port, self.token)

    def call(self, method: str, path: str, body=None, port: int | None = None) -> tuple[int, dict]:
        return s.api(port or self.port, method, path, self.bearer(port), body)

    def health(self, port: int | None = None) -> tuple[int, dict]:
        """GET /v1/health, backing off on 429 (the webapp allows 10 health calls per 60 s)."""
        for _attempt in range(4):
            status, body = self.call("GET", "/v1/health", port=port)
            if status != 429:
                break
            time.sleep(8)
        return status, body

    def wait_health(self, ok, what: str, timeout: float = 90, port: int | None = None) -> dict:
        deadline = time.monotonic() + timeout
        health: dict = {}
        while True:
            status, body = self.health(port)
            health = body.get("health", {}) if status == 200 else {"status": status, **body}
            if status == 200 and ok(health):
                return health
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.name}: health never showed {what} within {timeout:.0f}s: {health}")
            time.sleep(3)


def _images() -> None:
    res = s.run(sys.executable, str(s.ROOT / "scripts" / "images.py"), "build", "mariadb", "postgres",
                f"standin-{s.VERSION}", check=False, timeout=1200)
    assert res.returncode == 0, "building the images failed:\n" + res.stdout + res.stderr


@pytest.fixture(scope="session")
def meta() -> Path:
    missing = None
    try:
        path = s.locate_meta()
    except s.MetaFilesMissing as exc:
        missing = str(exc)
    if missing:
        pytest.fail(missing, pytrace=False)  # a failure, never a skip: the stage must not pass without them
    recorded = s.recorded_hashes()
    found = s.tree_hashes(path)
    wrong = sorted(n for n, h in recorded.items() if found.get(n) != h)
    if wrong:
        pytest.fail(f"Meta's files in {path} differ from tests/conformance/meta-files.sha256 ({', '.join(wrong)}): "
                    "they must stay as Meta publishes them (update the hashes only for a new upstream copy)",
                    pytrace=False)
    return path


@pytest.fixture(scope="session")
def images(docker_client) -> None:
    _images()


def _ready(c: Cluster) -> None:
    """First login (recorded for the tests), then the new password on every webapp, then health."""
    for port in c.webapp_ports:
        s.wait_api(port, 120)
    port = c.port
    c.logins["first"] = s.api(port, "POST", "/v1/users/login", s.basic("admin", "secret"))
    c.logins["weak"] = s.api(port, "POST", "/v1/users/login", s.basic("admin", "secret"), {"new_password": "weakpass"})
    c.logins["new"] = status, body = s.api(port, "POST", "/v1/users/login", s.basic("admin", "secret"),
                                           {"new_password": ADMIN_PASSWORD})
    assert status == 200, f"{c.name}: login with new_password failed: {status} {body}"
    c.token = body["users"][0]["token"]
    c.tokens[port] = c.token
    for other in c.webapp_ports[1:]:
        # The users live in the database: the other webapps know the new password at once.
        c.logins[f"other:{other}"] = status, body = s.api(other, "POST", "/v1/users/login",
                                                          s.basic("admin", ADMIN_PASSWORD))
        assert status == 200, f"{c.name}: login on the webapp at {other} failed: {status} {body}"
        c.tokens[other] = body["users"][0]["token"]

    def ok(h: dict) -> bool:
        roles = [v.get("role") for v in h.values()]
        return (roles.count("primary_master") == 1 and roles.count("secondary_master") == c.masters - 1
                and roles.count("coreapp") == c.coreapps
                and any(v.get("role") == "coreapp" and v.get("gateway_status") == "connected" for v in h.values()))

    c.wait_health(ok, f"1 primary master, {c.masters - 1} secondary, {c.coreapps} coreapps (one connected)")


def _dev(name: str, subdir: str, workdir: Path, engine: str) -> Cluster:
    project = Project(f"{s.PREFIX}-{name}", workdir / subdir, "multiconnect-compose.yml",
                      {"WA_API_VERSION": s.VERSION})
    return Cluster(name, [project], [9090], masters=2, coreapps=3, master_hosts={"master1", "master2"},
                   coreapp_hosts={"wacore1", "wacore2", "wacore3"}, db_port=33060, engine=engine)


def _prod(workdir: Path) -> Cluster:
    gateway = s.docker_bridge_gateway()
    s.run("docker", "run", "-d", "--name", PROD_DB, "--label", "wabiz.conformance=1",
          "-e", "MYSQL_ROOT_PASSWORD=testpass", "-p", f"{gateway}::3306", "mysql:8.0.33",
          "--default-authentication-plugin=mysql_native_password")
    db_port = int(s.run("docker", "port", PROD_DB, "3306/tcp").stdout.split()[0].rsplit(":", 1)[1])
    projects = []
    for machine, ports in MACHINES.items():
        d = workdir / f"machine-{machine}"
        d.mkdir()
        shutil.copy2(workdir / "installation" / "prod-multiconnect-compose.yml", d)
        # The site's own db.env (what wabiz.cluster.db_env writes): the database server's address.
        (d / "db.env").write_text(f"WA_DB_ENGINE=MYSQL\nWA_DB_HOSTNAME={gateway}\nWA_DB_PORT={db_port}\n"
                                  "WA_DB_USERNAME=root\nWA_DB_PASSWORD=testpass\nWA_DB_CONNECTION_IDLE_TIMEOUT=180000\n")
        (d / "db.env").chmod(0o600)
        env = {"WA_API_VERSION": s.VERSION, "EXTERNAL_HOSTNAME": gateway,
               "EXTERNAL_WEBAPP_PORT": str(ports["EXTERNAL_WEBAPP_PORT"])}
        for i in range(4):
            env[f"EXTERNAL_COREAPP_PORT{i}"] = str(ports["EXTERNAL_COREAPP_PORT"] + i)
            env[f"EXTERNAL_MASTER_PORT{i}"] = str(ports["EXTERNAL_MASTER_PORT"] + i)
        projects.append(Project(f"{s.PREFIX}-prod-{machine}", d, "prod-multiconnect-compose.yml", env))
    return Cluster("prod", projects, [m["EXTERNAL_WEBAPP_PORT"] for m in MACHINES.values()], masters=2, coreapps=2,
                   master_hosts={gateway}, coreapp_hosts={gateway}, db_port=db_port, engine="mysql", db_host=gateway)


def _host_ports(name: str) -> list[int]:
    if name != "prod":
        return [9090, 33060]
    return [p + i for m in MACHINES.values() for p in (m["EXTERNAL_COREAPP_PORT"], m["EXTERNAL_MASTER_PORT"])
            for i in range(4)] + [m["EXTERNAL_WEBAPP_PORT"] for m in MACHINES.values()]


def _cleanup(name: str) -> None:
    projects = [f"{s.PREFIX}-{name}"] if name != "prod" else [f"{s.PREFIX}-prod-{m}" for m in MACHINES]
    for p in projects:
        s.remove_project(p)
    if name == "prod":
        s.remove_named(PROD_DB)


@pytest.fixture(scope="module", params=SCENARIOS)
def cluster(request, meta: Path, images, tmp_path_factory) -> Iterator[Cluster]:
    name = request.param
    workdir = tmp_path_factory.mktemp(f"conformance-{name}")
    shutil.copytree(meta / "installation", workdir / "installation")
    _cleanup(name)  # what a killed earlier run may have left
    busy = [p for p in _host_ports(name) if not s.port_free(p)]
    if busy:
        pytest.fail(f"{name}: host port(s) {busy} are in use; Meta's files publish them "
                    "(stop what listens there, e.g. an earlier cluster)", pytrace=False)
    c: Cluster | None = None
    try:
        if name == "prod":
            c = _prod(workdir)
        else:
            c = _dev(name, "installation" if name == "mysql" else "installation/postgres", workdir, name)
        for p in c.projects:
            p.compose("up", "-d", timeout=300)
        _ready(c)
        yield c
    finally:
        if c is not None:
            for p in c.projects:
                logs = p.compose("logs", "--no-color", "--timestamps", check=False, timeout=60)
                (workdir / f"{p.name}.log").write_text(logs.stdout + logs.stderr)
                p.compose("down", "-v", "--remove-orphans", "--timeout", "3", check=False, timeout=120)
        _cleanup(name)
        after = s.tree_hashes(meta)
        assert all(after.get(n) == h for n, h in s.recorded_hashes().items()), f"Meta's files in {meta} changed"
