"""Start-up validation: a bad environment is refused with one clear line and exit code 2."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
    ({"WA_APP_MULTICONNECT": None}, "WA_APP_MULTICONNECT is not 1"),
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
def test_node_kind_comes_from_the_environment(extra: dict[str, str | None], kind: str) -> None:
    env = {k: v for k, v in {**GOOD, **extra}.items() if v is not None}
    res = run(env, "check-env")
    assert res.returncode == 0, res.stderr
    assert f"environment OK ({kind} " in res.stdout
