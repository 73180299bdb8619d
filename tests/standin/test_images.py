"""The stand-in images: built offline, two images (web, coreapp) under the project's and the real
names whose kind the image decides, and a single-host cluster (db, 2 masters, 2 coreapps,
1 webapp) under plain ``docker compose`` answers /v1/health with one primary master and one
connected coreapp. Container and network names start with ``wabiz-standin-test``."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
VERSION = "2.53.2"
PROJECT_PREFIX = "wabiz-standin-test"

pytestmark = [pytest.mark.docker, pytest.mark.slow]

COMPOSE = """
name: {project}
x-node: &node
  image: wabiz-standin/coreapp:v{version}
  command: ["/opt/whatsapp/bin/{wait_script}", "/opt/whatsapp/bin/launch_within_docker.sh"]
  restart: unless-stopped
  cap_drop: [MKNOD]
  volumes: ["whatsappMedia:/usr/local/wamedia"]
x-env: &env
  WA_DB_ENGINE: {engine}
  WA_DB_HOSTNAME: db
  WA_DB_PORT: "{db_port}"
  WA_DB_USERNAME: wauser
  WA_DB_PASSWORD: wa-test-pw
  WA_DB_NAME_PREFIX: compose_
{idle}  WA_APP_MULTICONNECT: "1"
  WA_RUNNING_ENV_VERSION: v{version}
  ORCHESTRATION: DOCKER-COMPOSE
  WA_DEFAULT_HEARTBEAT_INTERVAL: "1"
  WA_DEFAULT_UNHEALTHY_INTERVAL: "4"
  WA_DB_HEARTBEAT_SECONDS: "2"
  WA_DB_DEAD_AFTER_SECONDS: "6"
  WA_LEASE_TTL_SECONDS: "6"
services:
  db:
    image: {db_image}
    container_name: {project}-db
    environment:
      POSTGRES_USER: wauser
      POSTGRES_PASSWORD: wa-test-pw
  master1:
    <<: *node
    container_name: {project}-master1
    environment:
      <<: *env
      WA_MASTER_NODE: "1"
      COREAPP_HOSTNAME: master1
      COREAPP_EXTERNAL_PORTS: "6250,6251,6252,6253"
  master2:
    <<: *node
    container_name: {project}-master2
    environment:
      <<: *env
      WA_MASTER_NODE: "1"
      COREAPP_HOSTNAME: master2
      COREAPP_EXTERNAL_PORTS: "6250,6251,6252,6253"
  coreapp1:
    <<: *node
    container_name: {project}-coreapp1
    environment:
      <<: *env
      COREAPP_HOSTNAME: coreapp1
      COREAPP_EXTERNAL_PORTS: "6250,6251,6252,6253"
  coreapp2:
    <<: *node
    container_name: {project}-coreapp2
    environment:
      <<: *env
      COREAPP_HOSTNAME: coreapp2
      COREAPP_EXTERNAL_PORTS: "6250,6251,6252,6253"
  waweb:
    <<: *node
    image: wabiz-standin/web:v{version}
    container_name: {project}-waweb
    ports: ["127.0.0.1::443"]
    environment:
      <<: *env
      WEBAPP_HOSTNAME: waweb
      WEBAPP_EXTERNAL_PORTS: "9090"
      WA_API_KEY: compose-key-12
volumes:
  whatsappMedia: {{}}
"""


def _run(*args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), capture_output=True, text=True, check=check, timeout=timeout)


@pytest.fixture(scope="module")
def images(docker_client) -> None:
    res = _run(sys.executable, str(ROOT / "scripts" / "images.py"), "build", "standin-runtime",
               "standin-2.53.1", "standin-2.53.2", check=False, timeout=1200)
    assert res.returncode == 0, res.stdout + res.stderr
    for tag in (f"wabiz-standin/coreapp:v{VERSION}", f"wabiz-standin/web:v{VERSION}",
                f"docker.whatsapp.biz/coreapp:v{VERSION}", f"docker.whatsapp.biz/web:v{VERSION}",
                "wabiz-standin/coreapp:v2.53.1", "wabiz-standin/web:v2.53.1", "wabiz/mariadb:10.11",
                "wabiz/postgres:15"):
        docker_client.images.get(tag)


@pytest.mark.parametrize("version", ["2.53.1", VERSION])
def test_web_and_coreapp_are_two_images_under_the_real_names_and_the_image_names_the_node(
        images, docker_client, version: str) -> None:
    web, core = (docker_client.images.get(f"docker.whatsapp.biz/{k}:v{version}") for k in ("web", "coreapp"))
    assert web.id != core.id, "one image for both kinds"
    assert docker_client.images.get(f"wabiz-standin/web:v{version}").id == web.id
    assert docker_client.images.get(f"wabiz-standin/coreapp:v{version}").id == core.id
    for img, kind, ports in ((web, "web", {"443/tcp"}), (core, "coreapp", {f"{p}/tcp" for p in range(6250, 6254)})):
        assert f"WA_IMAGE_KIND={kind}" in img.attrs["Config"]["Env"]
        assert img.labels["biz.whatsapp.image"] == kind
        assert set(img.attrs["Config"]["ExposedPorts"]) == ports
    # Meta's environment only (no WEBAPP_/COREAPP_ host names or ports): the image decides.
    env = ["WA_DB_ENGINE=MYSQL", "WA_DB_HOSTNAME=db", "WA_DB_PORT=3306", "WA_DB_USERNAME=root",
           "WA_DB_PASSWORD=testpass", "WA_APP_MULTICONNECT=1"]
    script = ("python3 -m wabiz_standin check-env && WA_MASTER_NODE=1 python3 -m wabiz_standin check-env && "
              "test -x /opt/whatsapp/bin/wait_on_mysql.sh && test -x /opt/whatsapp/bin/wait_on_postgres.sh && "
              "test -x /opt/whatsapp/bin/launch_within_docker.sh && cat /opt/whatsapp/VERSION")
    outs = {}
    for kind in ("web", "coreapp"):
        name = f"{PROJECT_PREFIX}-{uuid.uuid4().hex[:6]}"
        # docker run --rm also removes the image's anonymous volumes (media, data).
        res = _run("docker", "run", "--rm", "--name", name, "--hostname", f"h-{kind}",
                   *(a for e in env for a in ("-e", e)), f"docker.whatsapp.biz/{kind}:v{version}", "sh", "-c", script)
        outs[kind] = res.stdout
    assert "environment OK (webapp h-web:" in outs["web"]
    assert "warning: WA_MASTER_NODE=1 is ignored by the web image" in outs["web"]
    assert "environment OK (coreapp h-coreapp:" in outs["coreapp"]
    assert "environment OK (master h-coreapp:" in outs["coreapp"]
    assert all(version in out for out in outs.values())


ENGINES = {
    "mysql": {"engine": "MYSQL", "db_port": 3306, "wait_script": "wait_on_mysql.sh", "db_image": "wabiz/mariadb:10.11",
              "idle": '  WA_DB_CONNECTION_IDLE_TIMEOUT: "180000"\n'},
    "pgsql": {"engine": "PGSQL", "db_port": 5432, "wait_script": "wait_on_postgres.sh", "db_image": "wabiz/postgres:15",
              "idle": ""},
}


@pytest.fixture(params=sorted(ENGINES))
def compose_project(images, tmp_path: Path, request) -> Iterator[tuple[str, Path, str]]:
    project = f"{PROJECT_PREFIX}-{uuid.uuid4().hex[:6]}"
    f = tmp_path / "compose.yml"
    f.write_text(COMPOSE.format(project=project, version=VERSION, **ENGINES[request.param]))
    yield project, f, request.param
    logs = _run("docker", "compose", "-p", project, "-f", str(f), "logs", "--no-color", check=False)
    (tmp_path / "compose.log").write_text(logs.stdout + logs.stderr)
    _run("docker", "compose", "-p", project, "-f", str(f), "down", "-v", "--timeout", "5", check=False)
    # Belt and braces: anything left with this project's exact names.
    for svc in ("db", "master1", "master2", "coreapp1", "coreapp2", "waweb"):
        _run("docker", "rm", "-f", "-v", f"{project}-{svc}", check=False)
    _run("docker", "network", "rm", f"{project}_default", check=False)


def _get(port: int, path: str, auth: str) -> tuple[int, dict]:
    return _req(port, "GET", path, auth)


def _req(port: int, method: str, path: str, auth: str, body: dict | None = None) -> tuple[int, dict]:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Authorization": auth, "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5, context=ctx) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@pytest.mark.skipif(shutil.which("docker") is None, reason="needs the docker CLI")
def test_compose_cluster_answers_health_with_one_primary_and_one_connected_coreapp(compose_project) -> None:
    project, f, engine = compose_project
    base = ["docker", "compose", "-p", project, "-f", str(f)]
    _run(*base, "up", "-d", "db")
    if engine == "mysql":
        # The MariaDB image lets root in through the socket only: create the cluster's user.
        deadline = time.monotonic() + 90
        sql = ("CREATE USER IF NOT EXISTS 'wauser'@'%' IDENTIFIED BY 'wa-test-pw'; "
               "GRANT ALL PRIVILEGES ON *.* TO 'wauser'@'%'; FLUSH PRIVILEGES;")
        while True:
            res = _run("docker", "exec", f"{project}-db", "mariadb", "-uroot", "-e", sql, check=False)
            if res.returncode == 0:
                break
            assert time.monotonic() < deadline, f"MariaDB did not start: {res.stderr}"
            time.sleep(1)
    # (PostgreSQL: the image creates wauser with CREATEDB from POSTGRES_USER/POSTGRES_PASSWORD;
    # the nodes' wait_on_postgres.sh waits for it.)
    _run(*base, "up", "-d")
    port = int(_run(*base, "port", "waweb", "443").stdout.strip().rsplit(":", 1)[1])
    deadline = time.monotonic() + 120
    health: dict = {}
    while time.monotonic() < deadline:
        try:
            status, body = _get(port, "/v1/health", "Apikey compose-key-12")
        except OSError:
            time.sleep(1)
            continue
        health = body.get("health", {}) if status == 200 else {}
        roles = [h.get("role") for h in health.values()]
        connected = [k for k, h in health.items() if h.get("role") == "coreapp"
                     and h.get("gateway_status") == "connected"]
        if roles.count("primary_master") == 1 and roles.count("secondary_master") == 1 \
                and roles.count("coreapp") == 2 and len(connected) == 1:
            break
        time.sleep(1)
    else:
        pytest.fail(f"health never showed 1 primary master + 1 connected coreapp: {health}")
    # Node names are HOSTNAME:CONTAINER_ID as in the documented health form.
    assert all(k.split(":")[0] in {"master1", "master2", "coreapp1", "coreapp2"} for k in health)
    # The running version is visible, and the webapp's logs land in /var/log/whatsapp.
    status, _ = _get(port, "/v1/support", "Apikey compose-key-12")
    assert status == 401, "support needs an admin token, not the API key"
    # Login (first login sets the password), send a message, read it back (Debian's aiohttp 3.8).
    basic = "Basic " + base64.b64encode(b"admin:secret").decode()
    status, body = _req(port, "POST", "/v1/users/login", basic, {"new_password": "Compose-pw-1"})
    assert status == 200, body
    bearer = "Bearer " + body["users"][0]["token"]
    status, body = _req(port, "POST", "/v1/messages", bearer, {"to": "16505550100", "type": "text",
                                                               "text": {"body": "hello"}})
    assert status == 201, body
    status, body = _req(port, "GET", f"/v1/messages/{body['messages'][0]['id']}", bearer)
    assert status == 200 and body["messages"][0]["to"] == "16505550100"
    status, body = _req(port, "GET", "/v1/support", bearer)
    # The contract's form ({"support": {"HOST:CID": {..., "debug_info": {"version"}}}}) or the older one.
    nodes = body["support"].get("nodes", body["support"])
    assert {n.get("version") or n["debug_info"]["version"] for n in nodes.values()} == {VERSION}
    res = _run("docker", "exec", f"{project}-waweb", "ls", "/var/log/whatsapp")
    assert {"web.log", "access.log", "error.log", "archive"} <= set(res.stdout.split())
    # Webapp rotation by logrotate: above 20 MB, compressed into archive/.
    res = _run("docker", "exec", f"{project}-waweb", "sh", "-c",
               "head -c 21000000 /dev/zero | tr '\\0' x >>/var/log/whatsapp/web.log && "
               "logrotate -s /var/lib/whatsapp/logrotate.status /etc/whatsapp/logrotate-whatsapp-web && "
               "ls /var/log/whatsapp/archive && stat -c %s /var/log/whatsapp/web.log")
    out = res.stdout.split()
    assert any(x.startswith("web.log-") and x.endswith(".gz") for x in out), res.stdout
    assert int(out[-1]) < 1_000_000, "web.log was truncated after the copy"
    res = _run("docker", "exec", f"{project}-coreapp1", "sh", "-c",
               "cat /opt/whatsapp/VERSION; ls /var/log/whatsapp; /opt/whatsapp/bin/cleanup.sh")
    assert VERSION in res.stdout and "coreapp.log" in res.stdout and "cleanup: removed" in res.stdout
