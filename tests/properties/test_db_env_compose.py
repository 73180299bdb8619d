"""db_env round trip: for generated values the module accepts, what compose reads back from
db.env through ``env_file`` is exactly what was meant, with compose v2 (the CLI plugin) and
compose v1 (Debian's docker-compose), both in ``config`` mode (no engine needed)."""

from __future__ import annotations

import json
import os
import shutil
import string
import subprocess
from pathlib import Path

import pytest
import yaml
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.properties.conftest import examples
from tests.properties.harness import MARKER, RECORD, assert_clean, judge, run_module, snapshot

COMPOSE = "services:\n  t:\n    image: busybox:latest\n    env_file:\n      - db.env\n"
UNSAFE = set("$\"'`\\\n\r\x00")
# Printable ASCII and a few non-ASCII letters, minus what db_env documents as refused.
SAFE_CHARS = "".join(c for c in string.printable if c not in UNSAFE and c not in "\t\x0b\x0c") + "éßü€"

label = st.from_regex(r"\A[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?\Z")
hostnames = st.one_of(
    st.lists(label, min_size=1, max_size=3).map(".".join).filter(lambda h: not h.replace(".", "").isdigit()),
    st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t))))
safe_text = st.text(alphabet=SAFE_CHARS, min_size=1, max_size=24).filter(lambda s: s == s.strip())
prefixes = st.one_of(st.none(), st.from_regex(r"\A[A-Za-z_][A-Za-z0-9_]{0,20}\Z"))


def _docker_compose_v2() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    return None


def _docker_compose_v1() -> list[str] | None:
    exe = shutil.which("docker-compose", path="/usr/bin")
    return [exe] if exe else None


def read_back(cli: list[str], w: Path, v1: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WA_", "COMPOSE_", "DOCKER_"))}
    args = ["-f", str(w / "compose.yml"), "--project-directory", str(w), "-p", "proptrip", "config"]
    if not v1:
        args += ["--format", "json"]
    proc = subprocess.run(cli + args, capture_output=True, text=True, cwd=str(w), env=env, timeout=60)
    assert proc.returncode == 0, f"{' '.join(cli)} config failed: {proc.stderr[-2000:]}"
    doc = yaml.load(proc.stdout, Loader=yaml.BaseLoader) if v1 else json.loads(proc.stdout)  # BaseLoader: all str
    environment = doc["services"]["t"].get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {k: ("" if v is None else str(v)) for k, v in environment.items()}


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_db_env_what_compose_reads_back_equals_what_was_meant(version, workdir):
    cli = _docker_compose_v2() if version == "v2" else _docker_compose_v1()
    if cli is None:
        pytest.fail(f"compose {version} is not installed (make deps installs both)")

    @settings(max_examples=examples(6))
    @given(engine=st.sampled_from(["mysql", "postgresql"]), hostname=hostnames, port=st.integers(1, 65535),
           username=safe_text.filter(lambda s: len(s) <= 63), pw=safe_text, prefix=prefixes,
           idle=st.one_of(st.none(), st.integers(1000, 2**31)))
    @example(engine="mysql", hostname="db.example.internal", port=3306, username="wa user", pw="a #b", prefix=None,
             idle=None)
    @example(engine="mysql", hostname="db", port=3306, username="u", pw="x=y;z&%€ é#", prefix="wa_", idle=1000)
    @example(engine="postgresql", hostname="10.0.0.1", port=1, username="#u", pw="#start", prefix="_", idle=None)
    @example(engine="mysql", hostname="db", port=65535, username="u", pw="p  #  q", prefix=None, idle=None)
    def prop(engine, hostname, port, username, pw, prefix, idle):
        w = workdir()
        (w / "compose.yml").write_text(COMPOSE)
        password = pw + MARKER  # a known secret: it may be in db.env and nowhere else
        args = {"path": str(w / "db.env"), "engine": engine, "hostname": hostname, "port": port,
                "username": username, "password": password}
        if prefix is not None:
            args["name_prefix"] = prefix
        if engine == "mysql" and idle is not None:
            args["connection_idle_timeout"] = idle
        before = snapshot(w)
        run = run_module("db_env", args, w, budget=10)
        judge(run, before=before, after=snapshot(w), secrets_root=w, allowed_secret_files=(w / "db.env",))
        assert_clean(run)
        if run.failed:
            return  # refusing a value is allowed; what is accepted must round-trip
        meant = {"WA_DB_ENGINE": "MYSQL" if engine == "mysql" else "PGSQL", "WA_DB_HOSTNAME": hostname,
                 "WA_DB_PORT": str(port), "WA_DB_USERNAME": username, "WA_DB_PASSWORD": password}
        if prefix is not None:
            meant["WA_DB_NAME_PREFIX"] = prefix
        if engine == "mysql":
            meant["WA_DB_CONNECTION_IDLE_TIMEOUT"] = str(idle if idle is not None else 180000)
        got = read_back(cli, w, version == "v1")
        mode = (w / "db.env").stat().st_mode & 0o7777
        if got != meant or mode != 0o600:
            wrong = {k: (meant.get(k), got.get(k)) for k in set(meant) | set(got) if meant.get(k) != got.get(k)}
            RECORD.by_outcome["roundtrip_mismatch"] += 1
            RECORD.by_test[RECORD.current]["roundtrip_mismatch"] += 1
            raise AssertionError(f"compose {version} reads another value than db_env was given "
                                 f"(key: (meant, read)): {wrong}; file mode {oct(mode)}\n  input: {run.describe()}\n"
                                 f"  db.env: {(w / 'db.env').read_text()!r}")

    prop()
