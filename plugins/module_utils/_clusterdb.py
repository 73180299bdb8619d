# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read (and, for the few documented cases, write) the cluster's database.

Every statement comes from ``cluster_schema`` (the one home of the schema, shared with the
stand-in); this file only connects (PyMySQL or psycopg2, autocommit, so times come from the
database server's clock at each statement) and turns rows into dicts. Failures are
ClusterDbError with a ``kind``: ``missing_library``, ``unreachable``, ``bad_response`` (something
answers at db_host:db_port, but not as the engine's server), ``login_refused``, ``no_database``,
``no_schema``, ``query_failed``; the message never holds the password. The options themselves
(db_connect_timeout, db_port) are checked by ``_api.check_options`` before a connection is tried.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.wabiz.cluster.plugins.module_utils import cluster_schema as S
from ansible_collections.wabiz.cluster.plugins.module_utils._dbdrivers import (
    ENGINE_NAMES,
    HAS_PSYCOPG2,
    HAS_PYMYSQL,
    PSYCOPG2_IMP_ERR,
    PYMYSQL_IMP_ERR,
    psycopg2,
    pymysql,
)

DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}
_MYSQL_LOGIN_ERRORS = (1044, 1045, 1130, 1698)
_MYSQL_UNKNOWN_DB = 1049
_MYSQL_NO_TABLE = 1146
# psycopg2's words when the other end does not speak the PostgreSQL protocol
_PG_NOT_POSTGRES = ("invalid response to ssl negotiation", "expected authentication request", "unsupported frontend",
                    "invalid length of startup packet")


def cluster_db_argument_spec():
    """The cluster database options (doc fragment wabiz.cluster.cluster_db)."""
    return dict(
        db_engine=dict(type="str", choices=["mysql", "postgresql"]),
        db_host=dict(type="str", default="127.0.0.1"),
        db_port=dict(type="int"),
        db_user=dict(type="str"),
        db_password=dict(type="str", no_log=True),
        db_name_prefix=dict(type="str", default=""),
        db_connect_timeout=dict(type="float", default=5.0),
    )


class ClusterDbError(Exception):
    def __init__(self, kind, msg, exception=None):
        super(ClusterDbError, self).__init__(msg)
        self.kind = kind
        self.msg = msg
        self.exception = exception


def missing_library(engine):
    """(library, traceback) when the driver for ``engine`` is not importable, else None."""
    if engine == "mysql" and not HAS_PYMYSQL:
        return "PyMySQL", PYMYSQL_IMP_ERR
    if engine == "postgresql" and not HAS_PSYCOPG2:
        return "psycopg2", PSYCOPG2_IMP_ERR
    return None


class ClusterDb(object):
    """One autocommit connection to the cluster database ``<db_name_prefix>waent``."""

    def __init__(self, params):
        self.engine = params["db_engine"]
        self.schema_engine = S.MYSQL if self.engine == "mysql" else S.PGSQL
        self.host = params.get("db_host") or "127.0.0.1"
        self.port = params.get("db_port") or DEFAULT_PORTS[self.engine]
        self.user = params["db_user"]
        self.password = params.get("db_password") or ""
        self.database = S.database_name(params.get("db_name_prefix") or "")
        self.timeout = float(params.get("db_connect_timeout") or 5)
        self.conn = None
        self.executed = []  # names of the cluster_schema statements run (for the module's result)

    @property
    def where(self):
        return "%s server %s:%s" % (ENGINE_NAMES[self.engine], self.host, self.port)

    def connect(self):
        missing = missing_library(self.engine)
        if missing:
            raise ClusterDbError("missing_library", missing[0], missing[1])
        if self.engine == "mysql":
            self._connect_mysql()
        else:
            self._connect_pgsql()
        return self

    def _connect_mysql(self):
        try:
            self.conn = pymysql.connect(host=self.host, port=int(self.port), user=self.user, password=self.password,
                                        database=self.database, connect_timeout=self.timeout,
                                        read_timeout=max(self.timeout, 10), write_timeout=max(self.timeout, 10),
                                        autocommit=True, charset="utf8mb4")
        except pymysql.err.MySQLError as exc:
            code = exc.args[0] if exc.args else None
            text = exc.args[1] if len(exc.args) > 1 else str(exc)
            if not isinstance(code, int):  # "Packet sequence number wrong" and the like: not a MySQL greeting
                raise self._not_the_server(text or str(exc) or type(exc).__name__) from None
            if code == _MYSQL_UNKNOWN_DB:
                raise ClusterDbError("no_database", self._no_db_msg()) from None
            if code in _MYSQL_LOGIN_ERRORS:
                raise ClusterDbError("login_refused", "the %s refused the login of user '%s' (error %s: %s): check "
                                     "db_user and db_password." % (self.where, self.user, code, text)) from None
            raise ClusterDbError("unreachable", "cannot reach the %s (error %s: %s): is it running, and are db_host "
                                 "and db_port right?" % (self.where, code, text)) from None
        except Exception as exc:  # PyMySQL parsing a greeting that is not MySQL's (struct.error, IndexError...)
            raise self._not_the_server("%s: %s" % (type(exc).__name__, exc)) from None

    def _not_the_server(self, detail):
        detail = detail.replace(self.password, "********") if self.password else detail
        return ClusterDbError("bad_response", "%s:%s did not answer as a %s server (%s): check db_engine, db_host and "
                              "db_port." % (self.host, self.port, ENGINE_NAMES[self.engine], detail))

    def _connect_pgsql(self):
        try:
            self.conn = psycopg2.connect(host=self.host, port=int(self.port), user=self.user, password=self.password,
                                         dbname=self.database, connect_timeout=max(1, int(round(self.timeout))))
            self.conn.autocommit = True
        except psycopg2.Error as exc:
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            low = text.lower()
            if "database" in low and "does not exist" in low:
                raise ClusterDbError("no_database", self._no_db_msg()) from None
            if any(m in low for m in _PG_NOT_POSTGRES):
                raise self._not_the_server(text) from None
            if "password authentication failed" in low or "no pg_hba.conf entry" in low or \
                    ("role" in low and "does not exist" in low) or "password is required" in low:
                raise ClusterDbError("login_refused", "the %s refused the login of user '%s' (%s): check db_user "
                                     "and db_password." % (self.where, self.user, text)) from None
            raise ClusterDbError("unreachable", "cannot reach the %s (%s): is it running, and are db_host and "
                                 "db_port right?" % (self.where, text)) from None

    def _no_db_msg(self):
        return ("the cluster database '%s' does not exist on the %s: check db_name_prefix (the cluster's "
                "WA_DB_NAME_PREFIX), or the cluster has never been started." % (self.database, self.where))

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:
                pass
            self.conn = None

    def __enter__(self):
        return self.connect()

    def __exit__(self, *exc):
        self.close()

    # -- statements ---------------------------------------------------------------------------
    def run(self, name, params=(), fetch=True):
        """Run the cluster_schema statement ``name``; rows (fetch) or the affected row count."""
        sql = S.statement(self.schema_engine, name)
        self.executed.append(name)
        try:
            cur = self.conn.cursor()
            try:
                cur.execute(sql, params)
                return cur.fetchall() if fetch else cur.rowcount
            finally:
                cur.close()
        except Exception as exc:
            if self._is_missing_table(exc):
                raise ClusterDbError("no_schema", "the cluster database '%s' on the %s has no cluster schema yet "
                                     "(no primary master has created it)." % (self.database, self.where)) from None
            raise ClusterDbError("query_failed", "reading the cluster database '%s' on the %s failed (%s): %s"
                                 % (self.database, self.where, name, str(exc).strip().splitlines()[0] if str(exc)
                                    else type(exc).__name__)) from None

    def _is_missing_table(self, exc):
        if self.engine == "mysql":
            return bool(exc.args) and exc.args[0] == _MYSQL_NO_TABLE
        return getattr(exc, "pgcode", None) == "42P01"

    def rows(self, name, params=()):
        """Rows of a read statement as dicts keyed by cluster_schema.COLUMNS (the one place that names
        each statement's result columns)."""
        return S.rows_as_dicts(name, self.run(name, params))

    def lease(self):
        rows = self.rows("read_lease")
        if not rows:
            return {"holder": None, "epoch": 0, "expired": True, "seconds_left": None, "held_for": None}
        lease = rows[0]
        lease["epoch"] = int(lease["epoch"])
        lease["expired"] = bool(int(lease["expired"]))
        return lease

    def shard_map(self):
        return [{"shard": int(r["shard_id"]), "active": bool(int(r["active"])), "owner": r["owner"],
                 "epoch": int(r["epoch"]), "master_epoch": int(r["master_epoch"]), "assigned_age": r["assigned_age"]}
                for r in self.rows("read_shard_map")]

    def nodes(self):
        return self.rows("read_nodes")

    def settings(self):
        out = {}
        for name, value, revision in self.run("read_settings"):
            try:
                out[name] = (json.loads(value), int(revision))
            except ValueError:
                out[name] = (value, int(revision))
        return out

    def application_settings(self):
        app = dict(S.DEFAULT_SETTINGS)
        value = self.settings().get(S.SETTINGS_APPLICATION, ({}, 0))[0]
        if isinstance(value, dict):
            app.update(value)
        return app

    def observations(self):
        return [{"master": r["master_id"], "node_id": r["node_id"], "ok_age": r["ok_age"],
                 "attempt_age": r["attempt_age"]} for r in self.rows("read_observations")]

    def message_counts(self):
        return dict((str(r["status"]), int(r["count"])) for r in self.rows("count_messages"))

    def schema_version(self):
        rows = self.run("read_schema_version")
        return int(rows[0][0]) if rows else 0

    def promote_shard(self, shard, expected_epoch, owner, holder, lease_epoch):
        """The primary's guarded promotion statement (see docs/cluster-modules.md): 1 when done."""
        return self.run("promote_shard", (owner, lease_epoch, shard, expected_epoch, holder, lease_epoch),
                        fetch=False)

    def mark_incoming_read(self):
        return self.run(S.MODULE_MARK_INCOMING_READ, fetch=False)


def render_table(headers, rows):
    """A plain-text table (list of lines) with columns padded to their widest cell."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], len(v))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in cells:
        lines.append("  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip())
    return lines


def fmt_age(seconds):
    """'0.4s', '2m05s', '-' for None (heartbeat ages in tables and findings)."""
    if seconds is None:
        return "never"
    if seconds < 120:
        return "%.1fs" % seconds
    return "%dm%02ds" % (int(seconds) // 60, int(seconds) % 60)
