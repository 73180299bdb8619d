# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place that connects to MySQL/MariaDB (PyMySQL) and PostgreSQL (psycopg2) and reads
why a connection failed; db_env's login check (_dbcheck) and the cluster modules (_clusterdb)
both connect through ``connect``.

The drivers are optional imports (None when missing). A failed connection is a DbError whose
``kind`` is decided here, by one rule per engine: ``missing_library``, ``unreachable``,
``login_refused``, ``no_database``, ``bad_response`` (something answers, but not as the engine's
server) or ``connect_failed`` (the server refused for another reason). The caller's words say,
for each, the kind it reports and the sentence, naming its own options; the callers add their
own kinds for what fails later (``no_schema``, ``query_failed``, ``missing_privileges``). No
message ever holds the password.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import traceback

try:
    import pymysql

    HAS_PYMYSQL = True
    PYMYSQL_IMP_ERR = None
except ImportError:
    pymysql = None
    HAS_PYMYSQL = False
    PYMYSQL_IMP_ERR = traceback.format_exc()

try:
    import psycopg2

    HAS_PSYCOPG2 = True
    PSYCOPG2_IMP_ERR = None
except ImportError:
    psycopg2 = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMP_ERR = traceback.format_exc()

ENGINE_NAMES = {"mysql": "MySQL", "postgresql": "PostgreSQL"}
DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}

# MySQL server and client error numbers (pymysql.constants.ER / CR)
_MYSQL_LOGIN_ERRORS = (1044, 1045, 1130, 1698)  # access denied (db / user), host not allowed, socket auth
_MYSQL_UNREACHABLE_ERRORS = (2002, 2003, 2005, 2006, 2013)  # cannot connect, unknown host, gone away, lost
_MYSQL_UNKNOWN_DB = 1049
_MYSQL_NO_TABLE = 1146
_PG_UNDEFINED_TABLE = "42P01"

# psycopg2's words (one line of its message, lower case) for each kind, most telling first: a
# missing database and a role that does not exist are told apart by the quoted name that follows.
_PG_NO_DATABASE = re.compile(r'database ".*" does not exist')
_PG_NO_ROLE = re.compile(r'role ".*" does not exist')
_PG_NOT_POSTGRES = ("invalid response to ssl negotiation", "expected authentication request", "unsupported frontend",
                    "invalid length of startup packet")
_PG_LOGIN_REFUSED = ("authentication failed", "no pg_hba.conf entry", "password is required")


class DbError(Exception):
    """``kind`` tells callers and tests the failures apart; ``msg`` is one sentence without the
    password; ``exception`` is the import traceback of a missing driver; ``details`` what a check
    had found when it failed."""

    def __init__(self, kind, msg, exception=None, **details):
        super(DbError, self).__init__(msg)
        self.kind = kind
        self.msg = msg
        self.exception = exception
        self.details = details


def missing_library(engine):
    """(library name, import traceback) when the driver for ``engine`` is missing, else None."""
    if engine == "mysql" and not HAS_PYMYSQL:
        return "PyMySQL", PYMYSQL_IMP_ERR
    if engine == "postgresql" and not HAS_PSYCOPG2:
        return "psycopg2", PSYCOPG2_IMP_ERR
    return None


def _mysql_kind(exc):
    """(kind, detail, error number or None) of what PyMySQL raised while connecting."""
    if not isinstance(exc, pymysql.err.MySQLError):  # parsing a greeting that is not MySQL's (struct.error...)
        return "bad_response", "%s: %s" % (type(exc).__name__, exc), None
    code = exc.args[0] if exc.args else None
    text = exc.args[1] if len(exc.args) > 1 else str(exc)
    if not isinstance(code, int):  # "Packet sequence number wrong" and the like: not a MySQL greeting
        return "bad_response", text or str(exc) or type(exc).__name__, None
    detail = "error %s: %s" % (code, text)
    if code == _MYSQL_UNKNOWN_DB:
        return "no_database", detail, code
    if code in _MYSQL_LOGIN_ERRORS:
        return "login_refused", detail, code
    if code in _MYSQL_UNREACHABLE_ERRORS:
        return "unreachable", detail, code
    return "connect_failed", detail, code


def _pgsql_line_kind(line):
    low = line.lower()
    if _PG_NO_DATABASE.search(low):
        return "no_database"
    if any(m in low for m in _PG_NOT_POSTGRES):
        return "bad_response"
    if any(m in low for m in _PG_LOGIN_REFUSED) or _PG_NO_ROLE.search(low):
        return "login_refused"
    return None


def _pgsql_kind(text):
    """(kind, the line that says so) of psycopg2's message; libpq may report several addresses of
    one host, a line each, so the most telling line wins and else the first is the detail."""
    lines = [line.strip() for line in text.splitlines() if line.strip()] or [text]
    kinds = [(_pgsql_line_kind(line), line) for line in lines]
    for wanted in ("no_database", "bad_response", "login_refused"):
        for kind, line in kinds:
            if kind == wanted:
                return kind, line
    return "unreachable", lines[0]


def connect(engine, words, host, port, user, password, database=None, timeout=5.0, io_timeout=None,
            autocommit=False):
    """An open connection (MySQL: ``database`` may be None; PostgreSQL: the database to log in to).

    ``timeout`` bounds the connection, ``io_timeout`` (default ``timeout``) each MySQL read and
    write. A failure raises DbError: ``words`` maps each kind above to the caller's
    ``(kind to raise, sentence)``, the sentence a %-template of ``engine`` (MySQL, PostgreSQL),
    ``host``, ``port``, ``user``, ``database``, ``detail`` (the driver's reason in short) and
    ``text`` (the driver's whole message); a kind the caller leaves out reads as its
    ``unreachable``.
    """
    missing = missing_library(engine)
    if missing:
        raise DbError("missing_library", missing[0], missing[1])
    try:
        if engine == "mysql":
            io_timeout = io_timeout or timeout
            return pymysql.connect(host=host, port=int(port), user=user, password=password or "", database=database,
                                   connect_timeout=timeout, read_timeout=io_timeout, write_timeout=io_timeout,
                                   autocommit=autocommit, charset="utf8mb4")
        conn = psycopg2.connect(host=host, port=int(port), user=user, password=password, dbname=database,
                                connect_timeout=max(1, int(round(timeout))))
        if autocommit:
            conn.autocommit = True
        return conn
    except Exception as exc:
        if engine != "mysql" and not isinstance(exc, psycopg2.Error):
            raise
        facts = {"engine": ENGINE_NAMES[engine], "host": host, "port": port, "user": user, "database": database}
        raise _connect_error(engine, words, exc, password, facts) from None


def _connect_error(engine, words, exc, password, facts):
    text = str(exc).strip() or type(exc).__name__
    code = None
    if engine == "mysql":
        kind, detail, code = _mysql_kind(exc)
    else:
        kind, detail = _pgsql_kind(text)
    raised, sentence = words.get(kind) or words["unreachable"]
    facts.update(detail=_masked(detail, password), text=_masked(text, password))
    details = {"error_code": code} if code is not None else {}
    return DbError(raised, sentence % facts, **details)


def _masked(text, password):
    return text.replace(password, "********") if password else text


def is_missing_table(engine, exc):
    """True when a statement failed because its table does not exist (no schema yet)."""
    if engine == "mysql":
        return bool(exc.args) and exc.args[0] == _MYSQL_NO_TABLE
    return getattr(exc, "pgcode", None) == _PG_UNDEFINED_TABLE
