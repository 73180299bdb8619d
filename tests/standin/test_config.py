"""Start-up validation: a bad environment is refused with one clear line and exit code 2."""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from wabiz_standin import config, storage

from tests.standin.harness import ROOT

GOOD = {
    "PYTHONPATH": str(ROOT / "standin"), "WA_DB_ENGINE": "MYSQL", "WA_DB_HOSTNAME": "127.0.0.1",
    "WA_DB_PORT": "3306", "WA_DB_USERNAME": "u", "WA_DB_PASSWORD": "p", "WA_APP_MULTICONNECT": "1",
    "COREAPP_HOSTNAME": "h", "COREAPP_EXTERNAL_PORTS": "6250,6251,6252,6253",
}


def run(env: dict[str, str], cmd: str = "run") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "wabiz_standin", cmd], env=env, capture_output=True, text=True,
                          timeout=30, check=False)


@pytest.mark.parametrize(("change", "expected"), [
    ({"WA_DB_HOSTNAME": None}, "WA_DB_HOSTNAME is not set"),
    ({"WA_DB_PASSWORD": None}, "WA_DB_PASSWORD is not set"),
    ({"WA_DB_ENGINE": "ORACLE"}, "WA_DB_ENGINE: unknown engine 'ORACLE'"),
    ({"WA_DB_PORT": "70000"}, "WA_DB_PORT: 70000 is not a port number"),
    ({"WA_DB_PORT": "abc"}, "WA_DB_PORT: 'abc' is not a port number"),
    ({"COREAPP_EXTERNAL_PORTS": "6250,6251"}, "COREAPP_EXTERNAL_PORTS: expected 4 comma-separated ports"),
    ({"WA_APP_MULTICONNECT": None, "WA_MASTER_NODE": "1"}, "WA_MASTER_NODE=1 needs WA_APP_MULTICONNECT=1"),
    ({"WA_APP_MULTICONNECT": "0", "WEBAPP_HOSTNAME": "w", "COREAPP_HOSTNAME": None}, "WACORE_HOSTNAME is not set"),
    ({"WA_APP_MULTICONNECT": None, "WA_STANDIN_SINGLE_MASTER_PORTS": "1,2"},
     "WA_STANDIN_SINGLE_MASTER_PORTS: expected 4 comma-separated ports"),
    ({"COREAPP_HOSTNAME": None}, "cannot tell the node kind"),
    ({"WA_DB_CONNECTION_IDLE_TIMEOUT": "soon"}, "WA_DB_CONNECTION_IDLE_TIMEOUT: 'soon' is not milliseconds"),
])
def test_bad_environment_is_refused_with_one_clear_line(change: dict[str, str | None], expected: str) -> None:
    env = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    res = run(env)
    assert res.returncode == 2, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("wabiz-standin: invalid environment: ")
    assert expected in lines[0]


def test_idle_timeout_with_postgresql_is_a_warning_not_an_error() -> None:
    env = {**GOOD, "WA_DB_ENGINE": "PGSQL", "WA_DB_CONNECTION_IDLE_TIMEOUT": "180000"}
    res = run(env, "check-env")
    assert res.returncode == 0, res.stderr
    assert "warning: WA_DB_CONNECTION_IDLE_TIMEOUT is MySQL-only and is ignored" in res.stdout


@pytest.mark.parametrize(("extra", "kind"), [
    ({"WA_MASTER_NODE": "1"}, "master"),
    ({}, "coreapp"),
    ({"WEBAPP_HOSTNAME": "w", "COREAPP_HOSTNAME": None}, "webapp"),
])
def test_node_kind_comes_from_the_environment_without_an_image(extra: dict[str, str | None], kind: str) -> None:
    env = {k: v for k, v in {**GOOD, **extra}.items() if v is not None}
    res = run(env, "check-env")
    assert res.returncode == 0, res.stderr
    assert f"environment OK ({kind} " in res.stdout


# What the images set (WA_IMAGE_KIND) and what Meta's files and AWS tasks set: nothing about the kind.
IMAGE_BASE = {k: v for k, v in GOOD.items() if k not in ("COREAPP_HOSTNAME", "COREAPP_EXTERNAL_PORTS", "PYTHONPATH")}


@pytest.mark.parametrize(("extra", "kind"), [
    ({"WA_IMAGE_KIND": "web"}, config.WEBAPP),
    ({"WA_IMAGE_KIND": "web", "COREAPP_HOSTNAME": "c", "COREAPP_EXTERNAL_PORTS": "1,2,3,4"}, config.WEBAPP),
    ({"WA_IMAGE_KIND": "coreapp"}, config.COREAPP),
    ({"WA_IMAGE_KIND": "coreapp", "WEBAPP_HOSTNAME": "w"}, config.COREAPP),
    ({"WA_IMAGE_KIND": "coreapp", "WA_MASTER_NODE": "1"}, config.MASTER),
    ({"WA_IMAGE_KIND": "Coreapp ", "WA_MASTER_NODE": "1", "WEBAPP_HOSTNAME": "w"}, config.MASTER),
])
def test_node_kind_comes_from_the_image(extra: dict[str, str], kind: str) -> None:
    assert config.load({**IMAGE_BASE, **extra}).kind == kind


def test_the_web_image_ignores_wa_master_node_with_a_warning() -> None:
    cfg = config.load({**IMAGE_BASE, "WA_IMAGE_KIND": "web", "WA_MASTER_NODE": "1"})
    assert cfg.kind == config.WEBAPP
    assert any("WA_MASTER_NODE=1 is ignored by the web image" in w for w in cfg.warnings)


def test_without_multiconnect_the_images_run_a_single_connect_client() -> None:
    """Meta's docker-compose.yml sets no WA_APP_MULTICONNECT: the coreapp image runs a
    single-connect coreapp (its shard keeper beside it, on the next ports), the web image a
    webapp that reaches it at WACORE_HOSTNAME."""
    single = {k: v for k, v in IMAGE_BASE.items() if k != "WA_APP_MULTICONNECT"}
    core = config.load({**single, "WA_IMAGE_KIND": "coreapp"})
    assert (core.kind, core.multiconnect, core.single_master_ports) == (config.COREAPP, False, (6260, 6261, 6262, 6263))
    keeper = core.single_connect_master()
    assert (keeper.kind, keeper.node_id, keeper.listen_ports) == (config.MASTER, core.node_id + "/master",
                                                                 (6260, 6261, 6262, 6263))
    assert keeper.external_host == core.external_host and keeper.db_name == core.db_name
    web = config.load({**single, "WA_IMAGE_KIND": "web", "WACORE_HOSTNAME": "wacore"})
    assert (web.kind, web.multiconnect, web.wacore_host) == (config.WEBAPP, False, "wacore")
    ha = config.load({**IMAGE_BASE, "WA_IMAGE_KIND": "coreapp"})
    assert ha.multiconnect and ha.single_master_ports == ()


def test_host_name_and_ports_fall_back_as_the_real_client() -> None:
    host = socket.gethostname()
    web = config.load({**IMAGE_BASE, "WA_IMAGE_KIND": "web"})
    assert web.external_host == host and web.external_ports == (9090,)
    core = config.load({**IMAGE_BASE, "WA_IMAGE_KIND": "coreapp"})
    assert core.external_host == host and core.external_ports == config.DEFAULT_COREAPP_PORTS == (6250, 6251, 6252, 6253)
    assert core.node_id.startswith(host + ":")
    master = config.load({**IMAGE_BASE, "WA_IMAGE_KIND": "coreapp", "WA_MASTER_NODE": "1",
                          "COREAPP_HOSTNAME": " m1 ", "COREAPP_EXTERNAL_PORTS": "7250,7251,7252,7253"})
    assert master.external_host == "m1" and master.external_ports == (7250, 7251, 7252, 7253)
    # Without the variable a node advertises the ports it listens on (6250-6253 in the image).
    moved = config.load({**IMAGE_BASE, "WA_IMAGE_KIND": "coreapp", "WA_LISTEN_PORTS": "16250,16251,16252,16253"})
    assert moved.external_ports == (16250, 16251, 16252, 16253)


@pytest.mark.parametrize(("change", "expected"), [
    ({"WA_IMAGE_KIND": "db"}, "WA_IMAGE_KIND: unknown image kind 'db' (expected web or coreapp)"),
    ({"WA_IMAGE_KIND": "coreapp", "COREAPP_EXTERNAL_PORTS": "6250"}, "COREAPP_EXTERNAL_PORTS: expected 4"),
])
def test_bad_image_environment_is_refused(change: dict[str, str], expected: str) -> None:
    res = run({**GOOD, **change})
    assert res.returncode == 2 and expected in res.stderr, res.stderr


def test_check_env_in_a_process_started_as_the_coreapp_image_would_be() -> None:
    env = {**IMAGE_BASE, "PYTHONPATH": GOOD["PYTHONPATH"], "WA_IMAGE_KIND": "coreapp", "WA_MASTER_NODE": "1"}
    res = run(env, "check-env")
    assert res.returncode == 0, res.stderr
    assert f"environment OK (master {socket.gethostname()}:" in res.stdout


# -- TLS to the database: WA_DB_SSL_CA / WA_DB_SSL_CERT / WA_DB_SSL_KEY reach the drivers -------------------
TLS_ENV = {"WA_DB_SSL_CA": "/certs/ca.pem", "WA_DB_SSL_CERT": "/certs/client.pem", "WA_DB_SSL_KEY": "/certs/client.key"}


class _Captured(Exception):
    pass


def _connect_kwargs(monkeypatch, engine: str, env: dict[str, str]) -> dict:
    for k in TLS_ENV:
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    seen: dict = {}

    def fake_connect(**kw):
        seen.update(kw)
        raise _Captured

    if engine == "MYSQL":
        import pymysql
        monkeypatch.setattr(pymysql, "connect", fake_connect)
    else:
        import psycopg2
        monkeypatch.setattr(psycopg2, "connect", fake_connect)
    st = storage.make_storage(engine, "db", 3306, "u", "p", "waent", 2.0)
    with pytest.raises(_Captured):
        st._connect(None)
    return seen


def test_mysql_tls_files_go_to_pymysql(monkeypatch) -> None:
    kw = _connect_kwargs(monkeypatch, "MYSQL", TLS_ENV)
    assert kw["ssl"] == {"ca": "/certs/ca.pem", "cert": "/certs/client.pem", "key": "/certs/client.key"}
    assert "ssl" not in _connect_kwargs(monkeypatch, "MYSQL", {})


def test_postgresql_tls_files_go_to_libpq_with_verify_full(monkeypatch) -> None:
    kw = _connect_kwargs(monkeypatch, "PGSQL", TLS_ENV)
    assert (kw["sslmode"], kw["sslrootcert"], kw["sslcert"], kw["sslkey"]) == (
        "verify-full", "/certs/ca.pem", "/certs/client.pem", "/certs/client.key")
    no_ca = _connect_kwargs(monkeypatch, "PGSQL", {"WA_DB_SSL_CERT": "/c.pem", "WA_DB_SSL_KEY": "/k.pem"})
    assert no_ca["sslmode"] == "require" and "sslrootcert" not in no_ca
    assert not {"sslmode", "sslrootcert", "sslcert", "sslkey"} & set(_connect_kwargs(monkeypatch, "PGSQL", {}))

