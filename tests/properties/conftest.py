"""Property-based tests of the modules' and the preflight's input handling.

Profiles (HYPOTHESIS_PROFILE): ``ci`` (default: few examples per property, derandomized so a CI
run is reproducible, no shrinking, so that a property broken by a hang costs one budget and not
dozens) and ``thorough`` (many random examples, with shrinking).

At the end of the session the counts of generated cases by outcome are written to
.build/properties-summary.json and printed.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings

from tests.properties import harness
from tests.properties.harness import RECORD, ROOT, secret

_SUPPRESS = [HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much,
             HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=3, derandomize=True, deadline=None, database=None,
                          phases=(Phase.explicit, Phase.generate), suppress_health_check=_SUPPRESS,
                          print_blob=False)
settings.register_profile("thorough", max_examples=40, deadline=None, suppress_health_check=_SUPPRESS,
                          print_blob=True)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(PROFILE)


def examples(n: int) -> int:
    """``n`` examples under ci, ten times as many under thorough."""
    return n if PROFILE == "ci" else n * 10


def pytest_runtest_setup(item) -> None:
    RECORD.current = item.nodeid.split("::", 1)[-1]


def pytest_sessionfinish(session, exitstatus) -> None:
    if not RECORD.runs:
        return
    out = ROOT / ".build" / "properties-summary.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = RECORD.summary()
    summary["profile"] = PROFILE
    out.write_text(json.dumps(summary, indent=1, default=str))
    session.config._properties_summary = (out, summary)


def pytest_terminal_summary(terminalreporter) -> None:
    got = getattr(terminalreporter.config, "_properties_summary", None)
    if not got:
        return
    out, s = got
    terminalreporter.write_sep("=", "generated cases by outcome")
    terminalreporter.write_line(f"profile {s['profile']}: {s['cases']} module/filter runs, "
                                f"{s['module_seconds']} s in them; written to {out}")
    terminalreporter.write_line("  " + ", ".join(f"{k} {v}" for k, v in s["by_outcome"].items()))


# --- fixtures -----------------------------------------------------------------------------------

@pytest.fixture
def workdir(tmp_path_factory) -> Iterator[Any]:
    """A factory of fresh throwaway directories (one per generated case)."""
    base = tmp_path_factory.mktemp("prop")

    def make() -> Path:
        d = base / uuid.uuid4().hex[:10]
        d.mkdir()
        return d

    yield make


@pytest.fixture(scope="session")
def listeners() -> Iterator[dict[str, harness.Listener]]:
    ls = {k: harness.Listener(k) for k in harness.Listener.KINDS}
    yield ls
    for listener in ls.values():
        listener.close()


class PropCluster:
    """A stand-in cluster on MariaDB (tests/standin/harness.py) whose secrets hold the marker:
    the admin password, the webapp's API key and a database user of its own."""

    def __init__(self, c: Any, cert: Path, db_user: str, db_password: str, admin_password: str, api_key: str):
        self.c, self.cert = c, cert
        self.db_user, self.db_password = db_user, db_password
        self.admin_password, self.api_key = admin_password, api_key
        self.token: str | None = None

    def url(self) -> str:
        return f"https://127.0.0.1:{self.c.procs['webapp1'].ports[0]}"

    def api_args(self, **extra: Any) -> dict[str, Any]:
        return {"api_url": self.url(), "api_password": self.admin_password, "ca_path": str(self.cert),
                "api_timeout": 3, "api_retries": 0, **extra}

    def db_args(self, **extra: Any) -> dict[str, Any]:
        ep = self.c.endpoint
        return {"db_engine": "mysql", "db_host": ep.host, "db_port": ep.port, "db_user": self.db_user,
                "db_password": self.db_password, "db_name_prefix": self.c.prefix, "db_connect_timeout": 3, **extra}

    def state(self) -> Any:
        """What a failed run must not change: the shard map and the application settings."""
        st = self.c.storage()
        try:
            shards = sorted((s.shard_id, s.owner, s.epoch, s.active) for s in st.shard_map())
            sett = {k: v[0] for k, v in st.settings().items()}
        finally:
            st.close()
        return {"shards": shards, "settings": sett}

    def settings(self) -> dict[str, Any]:
        self.c.token = self.token
        status, body = self.c.api("GET", "/v1/settings/application")
        if status == 401:
            self.token = self.c.login(password=self.admin_password)
            status, body = self.c.api("GET", "/v1/settings/application")
        return body["settings"]["application"]

    def restore_settings(self, baseline: dict[str, Any]) -> None:
        now = self.settings()
        changes = {k: v for k, v in baseline.items() if now.get(k) != v}
        if changes:
            self.c.api("PATCH", "/v1/settings/application", changes)


@pytest.fixture(scope="session")
def prop_cluster(tmp_path_factory) -> Iterator[PropCluster]:
    import pymysql

    from tests.cluster_modules.conftest import make_cert
    from tests.standin.harness import Cluster, wait_for
    from tests.support import dbservers

    ep = dbservers.start_mariadb()
    work = tmp_path_factory.mktemp("propcluster")
    cert = make_cert(work / "certs")
    api_key, admin_pw = secret("key"), secret("adm")
    db_user, db_pw = f"prop{uuid.uuid4().hex[:8]}", secret("db")
    conn = pymysql.connect(host=ep.host, port=ep.port, user=ep.admin_user, password=ep.admin_password,
                           autocommit=True)
    try:
        cur = conn.cursor()
        cur.execute(f"CREATE USER '{db_user}'@'%%' IDENTIFIED BY %s", (db_pw,))
        cur.execute(f"GRANT ALL PRIVILEGES ON *.* TO '{db_user}'@'%'")
    finally:
        conn.close()
    c = Cluster(ep, work, prefix=f"prop{uuid.uuid4().hex[:6]}_")
    c.timers.update({"WA_DEFAULT_UNHEALTHY_INTERVAL": "6"})
    try:
        for i in (1, 2):
            c.start_node("master", f"master{i}")
        for i in (1, 2, 3):
            c.start_node("coreapp", f"coreapp{i}")
        c.start_node("webapp", "webapp1", {"WA_WEB_CERT_DIR": str(cert.parent), "WA_API_KEY": api_key})
        wait_for(c.primary_master, 40, what="a primary master")
        wait_for(lambda: len(c.connected_coreapps()) == 1, 40, what="a connected coreapp")

        def serves() -> bool:
            try:
                return c.api("GET", "/v1/health", auth=f"Apikey {api_key}", timeout=2)[0] == 200
            except OSError:
                return False

        wait_for(serves, 40, what="the webapp to serve")
        pc = PropCluster(c, cert, db_user, db_pw, admin_pw, api_key)
        pc.token = c.login(password=admin_pw)  # first login: "secret" -> the marker password
        yield pc
    finally:
        c.close()
        conn = pymysql.connect(host=ep.host, port=ep.port, user=ep.admin_user, password=ep.admin_password,
                               autocommit=True)
        try:
            conn.cursor().execute(f"DROP USER IF EXISTS '{db_user}'@'%'")
        finally:
            conn.close()
