"""A few cases through ``ansible localhost -m wabiz.cluster.X -vvv`` as a user runs them, so that
what Ansible prints (invocation, diff, warnings, the module's own output) is checked for the
marker too, not only the module's JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.properties.harness import MARKER, RECORD, ROOT, Listener, secret


def ansible(module: str, args: dict, tmp: Path, check: bool = False, diff: bool = True):
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(ROOT / ".build" / "link"), ANSIBLE_HOME=str(tmp / "ah"),
               ANSIBLE_LOCAL_TEMP=str(tmp / "at"), ANSIBLE_REMOTE_TEMP=str(tmp / "at"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_INVENTORY_UNPARSED_WARNING="False",
               ANSIBLE_PYTHON_INTERPRETER=sys.executable,
               PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    cmd = [str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local", "-m", f"wabiz.cluster.{module}",
           "-a", json.dumps(args), "-vvv"] + (["--check"] if check else []) + (["--diff"] if diff else [])
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120, cwd=str(tmp))
    return proc, time.monotonic() - started


def _check(module: str, args: dict, proc, took: float, want_failure: bool):
    out = proc.stdout + proc.stderr
    problems = []
    if MARKER in out:
        i = out.index(MARKER)
        problems.append(f"a secret in what ansible printed: ...{out[max(0, i - 200):i + 40]!r}")
    if "Traceback (most recent call last)" in out or "MODULE FAILURE" in out:
        problems.append("a traceback: " + out[-2000:])
    if want_failure and proc.returncode == 0:
        problems.append("ansible reported success")
    outcome = ("traceback" if any(p.startswith("a traceback") for p in problems) else
               "secret_leaked" if problems and problems[0].startswith("a secret") else
               "clear_error" if proc.returncode else "ok")
    RECORD.add(outcome, took, {"module": f"ansible -m {module} -vvv", "args": args, "problems": problems})
    assert not problems, "; ".join(problems) + f"\n  input: {module} {json.dumps(args)}"


@pytest.mark.parametrize("password", [f"'{MARKER}", f"{MARKER} #x", f"a${MARKER}"])
def test_ansible_vvv_db_env_bad_password_not_printed(password, tmp_path):
    args = {"path": str(tmp_path / "db.env"), "engine": "mysql", "hostname": "127.0.0.1", "username": "wa",
            "password": password}
    proc, took = ansible("db_env", args, tmp_path)
    _check("db_env", args, proc, took, want_failure=False)


def test_ansible_vvv_db_env_validate_refused_not_printed(tmp_path):
    refused = Listener("refused")
    args = {"path": str(tmp_path / "db.env"), "engine": "postgresql", "hostname": "127.0.0.1", "port": refused.port,
            "username": "wa", "password": secret("pw"), "validate_connection": True, "connect_timeout": 2}
    proc, took = ansible("db_env", args, tmp_path)
    _check("db_env", args, proc, took, want_failure=True)


def test_ansible_vvv_failover_check_wrong_key_and_db_password_not_printed(prop_cluster, tmp_path):
    pc = prop_cluster
    args = {**pc.api_args(), **pc.db_args(), "api_key": f"{MARKER}'x", "api_password": None,
            "db_password": f"{MARKER}\n", "probe_timeout": 2}
    args = {k: v for k, v in args.items() if v is not None}
    proc, took = ansible("failover_check", args, tmp_path)
    _check("failover_check", args, proc, took, want_failure=True)


def test_ansible_vvv_app_settings_wrong_password_not_printed(prop_cluster, tmp_path):
    pc = prop_cluster
    args = {**pc.api_args(), "api_password": f"{MARKER}%40'", "heartbeat_interval": 5}
    proc, took = ansible("app_settings", args, tmp_path, check=True)
    _check("app_settings", args, proc, took, want_failure=True)
