"""The cluster DB reader: statements come from cluster_schema, rows become dicts, connection
failures become one clear sentence per kind (the SQL itself runs in tests/cluster_modules)."""

from __future__ import annotations

import types

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _clusterdb as cdb
from ansible_collections.wabiz.cluster.plugins.module_utils import _dbconnect as dbc
from ansible_collections.wabiz.cluster.plugins.module_utils import cluster_schema as S
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_api import render_table

PARAMS = {"db_engine": "mysql", "db_host": "db1", "db_port": None, "db_user": "wa", "db_password": "pw-secret",
          "db_name_prefix": "prod_", "db_connect_timeout": 2}


class FakeCursor:
    def __init__(self, rows, log):
        self.rows, self.log, self.rowcount = rows, log, 1

    def execute(self, sql, params=()):
        self.log.append((sql, params))

    def fetchall(self):
        return self.rows.pop(0)

    def close(self):
        pass


class FakeConn:
    def __init__(self, *results):
        self.results, self.log = list(results), []

    def cursor(self):
        return FakeCursor(self.results, self.log)


def db_with(*results, engine="mysql"):
    db = cdb.ClusterDb(dict(PARAMS, db_engine=engine))
    db.conn = FakeConn(*results)
    return db


def test_defaults_and_database_name():
    db = cdb.ClusterDb(PARAMS)
    assert (db.port, db.database, db.where) == (3306, "prod_waent", "MySQL server db1:3306")
    assert cdb.ClusterDb(dict(PARAMS, db_engine="postgresql")).port == 5432


@pytest.mark.parametrize("engine", ["mysql", "postgresql"])
def test_reads_use_the_schema_statements(engine):
    db = db_with([("m1", 4, 0, 12.5, 100.0)], [(0, 1, "c1", 3, 4, 2.0), (1, 0, None, 0, 0, None)], engine=engine)
    assert db.lease() == {"holder": "m1", "epoch": 4, "expired": False, "seconds_left": 12.5, "held_for": 100.0}
    assert db.shard_map() == [
        {"shard": 0, "active": True, "owner": "c1", "epoch": 3, "master_epoch": 4, "assigned_age": 2.0},
        {"shard": 1, "active": False, "owner": None, "epoch": 0, "master_epoch": 0, "assigned_age": None}]
    schema_engine = S.MYSQL if engine == "mysql" else S.PGSQL
    assert [sql for sql, _params in db.conn.log] == [S.statement(schema_engine, "read_lease"),
                                                     S.statement(schema_engine, "read_shard_map")]
    assert db.executed == ["read_lease", "read_shard_map"]


def test_nodes_settings_and_counts():
    row = ("c1", "coreapp", "10.0.0.5", 6250, 6251, 6252, 6253, "2.53.2", "abc", "coreapp", "connected", 0.4, 60.0)
    db = db_with([row], [("application", '{"heartbeat_interval": 2}', 3)], [("delivered", 7), ("sent", 2)])
    n = db.nodes()[0]
    assert (n["node_id"], n["healthcheck_port"], n["heartbeat_age"]) == ("c1", 6253, 0.4)
    assert db.application_settings() == {"heartbeat_interval": 2, "unhealthy_interval": 30}
    assert db.message_counts() == {"delivered": 7, "sent": 2}


def test_the_reader_never_writes():
    """No module writes the stand-in's tables: ClusterDb has no write method (the mark-read goes
    through PUT /v1/messages/{id}, a planned move through the stand-in's API extension)."""
    for name in ("promote_shard", "mark_incoming_read"):
        assert not hasattr(cdb.ClusterDb, name)


class FakeDriverError(Exception):
    """Stands for pymysql.err.MySQLError / psycopg2.Error (the drivers need not be installed here)."""


def fake_driver(monkeypatch, engine, exc):
    def fail(**kw):
        raise exc

    if engine == "mysql":
        fake = types.SimpleNamespace(err=types.SimpleNamespace(MySQLError=FakeDriverError), connect=fail)
        monkeypatch.setattr(dbc, "pymysql", fake, raising=False)
        monkeypatch.setattr(dbc, "HAS_PYMYSQL", True)
    else:
        fake = types.SimpleNamespace(Error=FakeDriverError, connect=fail)
        monkeypatch.setattr(dbc, "psycopg2", fake, raising=False)
        monkeypatch.setattr(dbc, "HAS_PSYCOPG2", True)


# Error numbers and texts as PyMySQL 1.1 raises them against MariaDB 10.11.
@pytest.mark.parametrize("args, kind, words", [
    ((1049, "Unknown database 'prod_waent'"), "no_database", "'prod_waent' does not exist"),
    ((1045, "Access denied for user 'wa'@'10.0.0.9' (using password: YES)"), "login_refused",
     "refused the login of user 'wa'"),
    ((2003, "Can't connect to MySQL server on 'db1' ([Errno 111] Connection refused)"), "unreachable",
     "cannot reach the MySQL server db1:3306"),
])
def test_mysql_connect_errors(monkeypatch, args, kind, words):
    fake_driver(monkeypatch, "mysql", FakeDriverError(*args))
    with pytest.raises(cdb.ClusterDbError) as e:
        cdb.ClusterDb(PARAMS).connect()
    assert e.value.kind == kind and words in e.value.msg and "pw-secret" not in e.value.msg


# Texts as psycopg2 2.9 raises them against PostgreSQL 15.
@pytest.mark.parametrize("text, kind", [
    ('connection to server at "db1" (10.0.0.2), port 5432 failed: FATAL:  database "prod_waent" does not exist',
     "no_database"),
    ('connection to server at "db1" (10.0.0.2), port 5432 failed: FATAL:  password authentication failed for '
     'user "wa"', "login_refused"),
    ('connection to server at "db1" (10.0.0.2), port 5432 failed: Connection refused', "unreachable"),
])
def test_pgsql_connect_errors(monkeypatch, text, kind):
    fake_driver(monkeypatch, "postgresql", FakeDriverError(text))
    with pytest.raises(cdb.ClusterDbError) as e:
        cdb.ClusterDb(dict(PARAMS, db_engine="postgresql")).connect()
    assert e.value.kind == kind and "pw-secret" not in e.value.msg
    assert "PostgreSQL server db1:5432" in e.value.msg


def test_missing_driver_is_reported(monkeypatch):
    monkeypatch.setattr(dbc, "HAS_PYMYSQL", False)
    monkeypatch.setattr(dbc, "PYMYSQL_IMP_ERR", "Traceback...")
    with pytest.raises(cdb.ClusterDbError) as e:
        cdb.ClusterDb(PARAMS).connect()
    assert e.value.kind == "missing_library" and e.value.msg == "PyMySQL"


def test_render_table_and_ages():
    assert render_table(["A", "LONGER"], [["xx", None], [1, "y"]]) == ["A   LONGER", "xx  -", "1   y"]
    assert [cdb.fmt_age(v) for v in (None, 0.44, 119.9, 125)] == ["never", "0.4s", "119.9s", "2m05s"]


@pytest.mark.parametrize("text, kind, detail", [
    # libpq tries each address of a host: the line that says why wins over the first
    ('connection to server at "db1" (::1), port 5432 failed: Connection refused\n\tIs the server running on that '
     'host and accepting TCP/IP connections?\nconnection to server at "db1" (10.0.0.2), port 5432 failed: FATAL:  '
     'password authentication failed for user "wa"', "login_refused",
     '(connection to server at "db1" (10.0.0.2), port 5432 failed: FATAL:  password authentication failed for user '
     '"wa")'),
    # a role whose name holds "database" is a login failure, not a missing database
    ('connection to server at "db1" (10.0.0.2), port 5432 failed: FATAL:  role "database_reader" does not exist',
     "login_refused", 'role "database_reader" does not exist'),
    ('connection to server at "db1" (10.0.0.2), port 5432 failed: FATAL:  Ident authentication failed for user "wa"',
     "login_refused", "Ident authentication failed"),
    ('connection to server at "db1" (10.0.0.2), port 5432 failed: received invalid response to SSL negotiation: H',
     "bad_response", "db1:5432 did not answer as a PostgreSQL server (connection to server"),
])
def test_pgsql_connect_errors_are_read_line_by_line(monkeypatch, text, kind, detail):
    fake_driver(monkeypatch, "postgresql", FakeDriverError(text))
    with pytest.raises(cdb.ClusterDbError) as e:
        cdb.ClusterDb(dict(PARAMS, db_engine="postgresql")).connect()
    assert e.value.kind == kind and detail in e.value.msg, e.value.msg


def test_a_mysql_greeting_that_is_not_mysql_is_a_bad_response(monkeypatch):
    fake_driver(monkeypatch, "mysql", IndexError("index out of range"))
    with pytest.raises(cdb.ClusterDbError) as e:
        cdb.ClusterDb(PARAMS).connect()
    assert e.value.kind == "bad_response"
    assert e.value.msg == ("db1:3306 did not answer as a MySQL server (IndexError: index out of range): check "
                           "db_engine, db_host and db_port.")
