"""Privilege evaluation for the client's database login (the SQL side is integration-tested)."""

from __future__ import annotations

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _dbcheck as dbcheck

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
