# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the cluster's database: the opt-in cross-check of failover_check and message_gc
(``db_cross_check``), for stand-in clusters only (a real cluster's database is the product's own,
not this schema). Nothing here writes: no module changes the stand-in's tables.

Every statement comes from ``cluster_schema`` (the one home of the schema, shared with the
stand-in); this file only connects (through ``_dbconnect``, autocommit, so times come from the
database server's clock at each statement) and turns rows into dicts. Failures are
ClusterDbError (``_dbconnect.DbError``) with a ``kind``: ``missing_library``, ``unreachable``,
``bad_response`` (something answers at db_host:db_port, but not as the engine's server),
``login_refused``, ``no_database``, ``no_schema``, ``query_failed``; the message never holds the
password. The options themselves (db_connect_timeout, db_port) are checked by
``_cluster_options.check_options`` before a connection is tried.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.wabiz.cluster.plugins.module_utils import cluster_schema as S
from ansible_collections.wabiz.cluster.plugins.module_utils._dbconnect import (
    DEFAULT_PORTS,
    ENGINE_NAMES,
    DbError,
    connect,
    is_missing_table,
)

ClusterDbError = DbError

# The cluster modules' sentences for each way a connection fails (see _dbconnect.connect).
_UNREACHABLE = ("unreachable", "cannot reach the %(engine)s server %(host)s:%(port)s (%(detail)s): is it running, "
                "and are db_host and db_port right?")
CONNECT_WORDS = {
    "unreachable": _UNREACHABLE,
    "connect_failed": _UNREACHABLE,
    "login_refused": ("login_refused", "the %(engine)s server %(host)s:%(port)s refused the login of user "
                      "'%(user)s' (%(detail)s): check db_user and db_password."),
    "no_database": ("no_database", "the cluster database '%(database)s' does not exist on the %(engine)s server "
                    "%(host)s:%(port)s: check db_name_prefix (the cluster's WA_DB_NAME_PREFIX), or the cluster has "
                    "never been started."),
    "bad_response": ("bad_response", "%(host)s:%(port)s did not answer as a %(engine)s server (%(detail)s): check "
                     "db_engine, db_host and db_port."),
}


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
        self.conn = connect(self.engine, CONNECT_WORDS, self.host, self.port, self.user, self.password,
                            database=self.database, timeout=self.timeout, io_timeout=max(self.timeout, 10),
                            autocommit=True)
        return self

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
            if is_missing_table(self.engine, exc):
                raise ClusterDbError("no_schema", "the cluster database '%s' on the %s has no cluster schema yet "
                                     "(no primary master has created it)." % (self.database, self.where)) from None
            raise ClusterDbError("query_failed", "reading the cluster database '%s' on the %s failed (%s): %s"
                                 % (self.database, self.where, name, str(exc).strip().splitlines()[0] if str(exc)
                                    else type(exc).__name__)) from None

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


def fmt_age(seconds):
    """'0.4s', '2m05s', '-' for None (heartbeat ages in tables and findings)."""
    if seconds is None:
        return "never"
    if seconds < 120:
        return "%.1fs" % seconds
    return "%dm%02ds" % (int(seconds) // 60, int(seconds) % 60)
