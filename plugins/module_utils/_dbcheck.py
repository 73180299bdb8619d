# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Log in to the client's database server the way the client will, and check what it may do.

The connection and the reading of its failures are ``_dbconnect``'s (shared with the cluster
modules); the SQL that differs between the engines lives here. Failures are raised as
DbCheckError (``_dbconnect.DbError``) with a ``kind`` (``unreachable``, ``login_refused``,
``missing_privileges``, ``query_failed``) so that callers and tests can tell them apart, and a
plain sentence that never contains the password.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket

from ansible_collections.wabiz.cluster.plugins.module_utils._dbconnect import (
    ENGINE_NAMES,
    DbError,
    connect,
    psycopg2,
    pymysql,
)

DbCheckError = DbError

# What the WhatsApp Business API client does with its databases: creates them, creates and
# alters its tables and indexes, reads and writes rows, drops what it retires.
REQUIRED_PRIVILEGES = ("Select", "Insert", "Update", "Delete", "Create", "Alter", "Index", "Drop")

# db_env's sentences for each way a login fails (see _dbconnect.connect); the kinds it does not
# name (an answer that is not the engine's) read as unreachable.
CONNECT_WORDS = {
    "mysql": {
        "unreachable": ("unreachable", "cannot reach the MySQL server at %(host)s:%(port)s (%(detail)s)"),
        "login_refused": ("login_refused", "the MySQL server at %(host)s:%(port)s refused the login of user "
                          "'%(user)s' (%(detail)s): check username and password, and that the account may connect "
                          "from this host."),
        "connect_failed": ("query_failed", "connecting to the MySQL server at %(host)s:%(port)s failed: %(text)s"),
    },
    "postgresql": {
        "unreachable": ("unreachable", "cannot reach the PostgreSQL server at %(host)s:%(port)s: %(text)s"),
        "login_refused": ("login_refused", "the PostgreSQL server at %(host)s:%(port)s refused the login of user "
                          "'%(user)s' (%(detail)s): check username and password, and that pg_hba.conf lets this host "
                          "in."),
        "no_database": ("login_refused", "the PostgreSQL server at %(host)s:%(port)s refused the login of user "
                        "'%(user)s' (%(detail)s): the database '%(database)s' that the check logs in to does not "
                        "exist there."),
    },
}


def check_reachable(engine, host, port, timeout):
    """Open (and close) a TCP connection: the first thing that fails for a wrong host or port."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.close()
    except (socket.error, OSError) as exc:
        raise DbCheckError(
            "unreachable",
            "cannot reach the %s server at %s:%s: %s (is the server running, and do host, port and "
            "firewall let this host in?)" % (ENGINE_NAMES[engine], host, port, exc),
        ) from exc


# --- MySQL / MariaDB -----------------------------------------------------------------------

def _like_tokens(pattern):
    """Tokens of a SQL LIKE pattern with backslash escapes: a character, '_1' (any one) or '%'."""
    tokens = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            tokens.append(("lit", pattern[i + 1]))
            i += 2
            continue
        if c == "%":
            tokens.append(("any", None))
        elif c == "_":
            tokens.append(("one", None))
        else:
            tokens.append(("lit", c))
        i += 1
    return tokens


def like_covers_prefix(pattern, prefix):
    """True when the database-name pattern of a MySQL grant matches *every* name that starts with
    ``prefix`` (so the client may create any database it names with that prefix).

    ``wa\\_%`` covers prefix ``wa_``; ``wa%`` covers ``wa_``; ``wa\\_x`` (one database) does not;
    ``%`` covers everything.
    """
    if not prefix:
        return False
    tokens = _like_tokens(pattern)
    if not tokens or tokens[-1][0] != "any":
        return False
    head = tokens[:-1]
    if any(token[0] == "any" for token in head) or len(head) > len(prefix):
        return False
    for i, (kind, char) in enumerate(head):
        if kind == "lit" and char.lower() != prefix[i].lower():
            return False
    return True


def _mysql_grantee(current_user):
    user, host = current_user.rpartition("@")[::2]
    return "'%s'@'%s'" % (user, host)


def mysql_privileges(global_privs, schema_privs, prefix):
    """Which REQUIRED_PRIVILEGES the user holds for the client's databases.

    ``global_privs``: PRIVILEGE_TYPE values on ``*.*``; ``schema_privs``: (schema pattern,
    PRIVILEGE_TYPE) pairs. Returns ``({name: bool}, scope sentence)``.
    """
    held = set(p.upper() for p in global_privs)
    patterns = []
    for schema, priv in schema_privs:
        if like_covers_prefix(schema, prefix):
            held.add(priv.upper())
            if schema not in patterns:
                patterns.append(schema)
    result = dict((name, name.upper() in held) for name in REQUIRED_PRIVILEGES)
    scope = "on *.*"
    if patterns:
        scope += " or on databases matching %s" % ", ".join("`%s`" % p for p in patterns)
    return result, scope


def _mysql_check(host, port, user, password, prefix, timeout):
    conn = connect("mysql", CONNECT_WORDS["mysql"], host, port, user, password, timeout=timeout)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION(), CURRENT_USER()")
            version, current = cur.fetchone()
            grantee = _mysql_grantee(current)
            cur.execute("SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = %s",
                        (grantee,))
            global_privs = [r[0] for r in cur.fetchall()]
            cur.execute("SELECT TABLE_SCHEMA, PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
                        "WHERE GRANTEE = %s", (grantee,))
            schema_privs = [(r[0], r[1]) for r in cur.fetchall()]
    except pymysql.err.MySQLError as exc:
        raise DbCheckError("query_failed", "reading the privileges of '%s' on %s:%s failed: %s"
                           % (user, host, port, exc)) from exc
    finally:
        conn.close()
    privileges, scope = mysql_privileges(global_privs, schema_privs, prefix)
    return {"server_version": version, "account": current, "privileges": privileges, "scope": scope}


# --- PostgreSQL ----------------------------------------------------------------------------

def pgsql_privileges(rolsuper, rolcreatedb):
    """The client creates its databases and owns them; owners hold every privilege on their
    objects. So on PostgreSQL what it needs is the right to create databases."""
    ok = bool(rolsuper or rolcreatedb)
    privileges = dict((name, ok) for name in REQUIRED_PRIVILEGES)
    scope = ("as owner of the databases it creates (needs the CREATEDB attribute or SUPERUSER; "
             "an owner holds every privilege on its objects)")
    return privileges, scope


def _pgsql_check(host, port, user, password, timeout, dbname):
    conn = connect("postgresql", CONNECT_WORDS["postgresql"], host, port, user, password, database=dbname,
                   timeout=timeout)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW server_version")
            version = cur.fetchone()[0]
            cur.execute("SELECT current_user, rolsuper, rolcreatedb FROM pg_roles WHERE rolname = current_user")
            current, rolsuper, rolcreatedb = cur.fetchone()
        conn.rollback()
    except psycopg2.Error as exc:
        raise DbCheckError("query_failed", "reading the attributes of role '%s' on %s:%s failed: %s"
                           % (user, host, port, exc)) from exc
    finally:
        conn.close()
    privileges, scope = pgsql_privileges(rolsuper, rolcreatedb)
    return {"server_version": version, "account": current, "privileges": privileges, "scope": scope}


def validate_connection(engine, host, port, user, password, prefix=None, timeout=10, pg_dbname="postgres"):
    """Reach, log in, read the server version and the user's privileges.

    Returns ``{server_version, account, privileges: {name: bool}, missing: [...], scope}``;
    raises DbCheckError (kind ``missing_privileges`` when the login works but rights are missing).
    """
    check_reachable(engine, host, port, timeout)
    if engine == "mysql":
        result = _mysql_check(host, port, user, password, prefix, timeout)
    else:
        result = _pgsql_check(host, port, user, password, timeout, pg_dbname)
    result["missing"] = [p for p in REQUIRED_PRIVILEGES if not result["privileges"][p]]
    if result["missing"]:
        raise DbCheckError(
            "missing_privileges",
            "user '%s' logs in to the %s server at %s:%s (version %s) but lacks privileges the WhatsApp "
            "client needs %s: %s." % (user, ENGINE_NAMES[engine], host, port, result["server_version"],
                                      result["scope"], ", ".join(result["missing"])),
            **result)
    return result
