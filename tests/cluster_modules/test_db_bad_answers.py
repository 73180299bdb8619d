"""The cluster modules' database reader against ports that are not a database: a clear
``bad_response`` naming the address, never a driver traceback, never the password. Here (not in
the ansible-test unit venv) because it needs the real PyMySQL and psycopg2 drivers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / ".build" / "link"))  # the tree as ansible_collections.wabiz.cluster

from ansible_collections.wabiz.cluster.plugins.module_utils import _clusterdb as cdb  # noqa: E402
from ansible_collections.wabiz.cluster.plugins.module_utils import _dbconnect as dbc  # noqa: E402
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils.listeners import Listener  # noqa: E402

DB_PW = "Db-Secret-4714"


@pytest.fixture
def greeter():
    """Ports of listeners on loopback that send ``data`` to each client at once."""
    made = []

    def make(data: bytes) -> int:
        made.append(Listener("greet", data))
        return made[-1].port

    yield make
    for srv in made:
        srv.close()


@pytest.mark.parametrize("engine, greeting", [
    ("mysql", b"SSH-2.0-OpenSSH_9.2p1\r\n"),
    ("mysql", b"\x05\x00\x00\x00\x0agarbage\x00"),
    ("postgresql", b"HTTP/1.0 200 OK\r\n\r\n<html>"),
])
def test_a_port_that_is_not_the_database_is_a_clear_error(greeter, engine, greeting):
    assert dbc.missing_library(engine) is None, f"the {engine} driver must be installed in the project venv"
    port = greeter(greeting)
    db = cdb.ClusterDb({"db_engine": engine, "db_host": "127.0.0.1", "db_port": port, "db_user": "wa",
                        "db_password": DB_PW, "db_connect_timeout": 2})
    with pytest.raises(cdb.ClusterDbError) as e:
        db.connect()
    name = "MySQL" if engine == "mysql" else "PostgreSQL"
    assert e.value.kind == "bad_response"
    assert e.value.msg.startswith(f"127.0.0.1:{port} did not answer as a {name} server (")
    assert e.value.msg.endswith("check db_engine, db_host and db_port.") and DB_PW not in e.value.msg
