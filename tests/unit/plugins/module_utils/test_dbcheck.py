"""Privilege evaluation and the reading of login failures for the client's database login (the SQL side is
integration-tested)."""

from __future__ import annotations

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _dbcheck as dbcheck
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils.test_clusterdb import (
    FakeDriverError,
    fake_driver,
)

ALL = ["SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "INDEX", "DROP"]


@pytest.mark.parametrize(
    "pattern, prefix, covers",
    [
        ("wa\\_%", "wa_", True),
        ("wa%", "wa_prod_", True),
        ("%", "anything", True),
        ("w_\\_%", "wa_", True),
        ("wa\\_x", "wa_", False),  # one database, not every name with the prefix
        ("wa\\_%", "w", False),  # the grant is narrower than the prefix
        ("wa\\_%", "wb_", False),
        ("WA\\_%", "wa_", True),  # MySQL database names compare case-insensitively here
        ("wa%x%", "wa_", False),
        ("wa\\_%", None, False),
        ("", "wa_", False),
    ],
)
def test_like_covers_prefix(pattern, prefix, covers):
    assert dbcheck.like_covers_prefix(pattern, prefix) is covers


def test_mysql_global_all_privileges():
    privs, scope = dbcheck.mysql_privileges(ALL + ["RELOAD"], [], None)
    assert all(privs.values())
    assert scope == "on *.*"


def test_mysql_schema_grant_covering_prefix_counts():
    schema = [("wa\\_%", p) for p in ALL]
    privs, scope = dbcheck.mysql_privileges(["USAGE"], schema, "wa_")
    assert all(privs.values())
    assert "`wa\\_%`" in scope


def test_mysql_schema_grant_on_other_prefix_does_not_count():
    schema = [("other\\_%", p) for p in ALL]
    privs = dbcheck.mysql_privileges(["USAGE"], schema, "wa_")[0]
    assert not any(privs.values())


def test_mysql_missing_some_privileges_are_named():
    privs = dbcheck.mysql_privileges(["SELECT", "INSERT", "UPDATE", "DELETE"], [], None)[0]
    assert [k for k, v in privs.items() if not v] == ["Create", "Alter", "Index", "Drop"]


@pytest.mark.parametrize("rolsuper, rolcreatedb, ok", [(True, False, True), (False, True, True), (False, False, False)])
def test_pgsql_privileges_follow_createdb(rolsuper, rolcreatedb, ok):
    privs, scope = dbcheck.pgsql_privileges(rolsuper, rolcreatedb)
    assert set(privs) == set(dbcheck.REQUIRED_PRIVILEGES)
    assert all(v is ok for v in privs.values())
    assert "CREATEDB" in scope


def test_unreachable_port_is_its_own_kind():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    with pytest.raises(dbcheck.DbCheckError) as err:
        dbcheck.check_reachable("mysql", "127.0.0.1", port, 2)
    assert err.value.kind == "unreachable"
    assert f"cannot reach the MySQL server at 127.0.0.1:{port}" in err.value.msg


def test_mysql_grantee_format():
    assert dbcheck._mysql_grantee("wa@%") == "'wa'@'%'"
    assert dbcheck._mysql_grantee("a@b@10.0.0.%") == "'a@b'@'10.0.0.%'"


# -- the login failures, read by the connection layer shared with the cluster modules ----------
PG = 'connection to server at "db1" (10.0.0.2), port 5432 failed: '


@pytest.mark.parametrize("text, kind, words", [
    (PG + 'FATAL:  password authentication failed for user "wa"', "login_refused",
     "refused the login of user 'wa' (" + PG + "FATAL:  password authentication failed for user \"wa\"): check "
     "username and password, and that pg_hba.conf lets this host in."),
    (PG + 'FATAL:  role "wa" does not exist', "login_refused", "check username and password"),
    (PG + 'FATAL:  no pg_hba.conf entry for host "10.0.0.9", user "wa", database "postgres"', "login_refused",
     "pg_hba.conf lets this host in"),
    # not a login failure: the database the check logs in to is missing (the same rule as the cluster modules)
    (PG + 'FATAL:  database "postgres" does not exist', "login_refused",
     "the database 'postgres' that the check logs in to does not exist there."),
    (PG + "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?", "unreachable",
     "cannot reach the PostgreSQL server at db1:5432: " + PG + "Connection refused"),
    (PG + "expected authentication request from server, but received H", "unreachable", "received H"),
])
def test_pgsql_login_failures(monkeypatch, text, kind, words):
    fake_driver(monkeypatch, "postgresql", FakeDriverError(text + "\n"))
    with pytest.raises(dbcheck.DbCheckError) as e:
        dbcheck._pgsql_check("db1", 5432, "wa", "pw-secret", 3, "postgres")
    assert e.value.kind == kind and words in e.value.msg and "pw-secret" not in e.value.msg, e.value.msg


@pytest.mark.parametrize("exc, kind, words", [
    (FakeDriverError(1045, "Access denied for user 'wa'@'10.0.0.9' (using password: YES)"), "login_refused",
     "the MySQL server at db1:3306 refused the login of user 'wa' (error 1045: Access denied"),
    (FakeDriverError(2003, "Can't connect to MySQL server on 'db1'"), "unreachable",
     "cannot reach the MySQL server at db1:3306 (error 2003: Can't connect"),
    (FakeDriverError(1040, "Too many connections"), "query_failed",
     "connecting to the MySQL server at db1:3306 failed: (1040, 'Too many connections')"),
    # a greeting that is not MySQL's: a clear failure, not a traceback
    (FakeDriverError("Packet sequence number wrong - got 101 expected 1"), "unreachable",
     "cannot reach the MySQL server at db1:3306 (Packet sequence number wrong"),
    (IndexError("index out of range"), "unreachable", "(IndexError: index out of range)"),
])
def test_mysql_login_failures(monkeypatch, exc, kind, words):
    fake_driver(monkeypatch, "mysql", exc)
    with pytest.raises(dbcheck.DbCheckError) as e:
        dbcheck._mysql_check("db1", 3306, "wa", "pw-secret", "wa_", 3)
    assert e.value.kind == kind and words in e.value.msg and "pw-secret" not in e.value.msg, e.value.msg
    if kind == "login_refused":
        assert e.value.details == {"error_code": 1045}
