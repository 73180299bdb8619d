# -*- coding: utf-8 -*-
# Copyright (c) wabiz.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one home of the stand-in cluster's database schema.

Pure Python (no Ansible import, Python 3.8+), shared by the stand-in services
(``standin/wabiz_standin``; the image copies this file to
``/opt/whatsapp/lib/wabiz_standin/cluster_schema.py``) and by the collection's modules.

It stays one file (over the ~400 lines other files keep to) because it is the contract
between two programs: the stand-in image copies exactly this file, and one file cannot drift
from itself. Its SQL is data (one statement table per engine), read one name at a time.

Everything is keyed by engine, ``MYSQL`` or ``PGSQL`` (the values of ``WA_DB_ENGINE``).
Statements use the ``%s`` parameter style that both PyMySQL and psycopg2 understand.
Every time is stamped and compared with the database server's clock (``NOW(6)`` on MySQL,
``clock_timestamp()`` on PostgreSQL); no statement takes a time from the caller.

Public API (names other code may rely on):

- ``MYSQL``, ``PGSQL``, ``ENGINES``, ``normalize_engine(value)``
- ``DB_NAME_SUFFIX``, ``database_name(prefix)``, ``create_database_sql(engine, name)``,
  ``database_exists_sql(engine)``
- table names ``T_SCHEMA`` ``T_LEASE`` ``T_SHARDS`` ``T_NODES`` ``T_OBSERVATIONS``
  ``T_SETTINGS`` ``T_MESSAGES`` ``T_USERS`` ``T_TOKENS`` ``T_STATS``, ``ALL_TABLES``
- ``SCHEMA_VERSION`` (newest), ``SCHEMA_COMPAT``, ``schema_version_for(wa_version)``,
  ``bootstrap_statements(engine)``, ``migration_statements(engine, from_version, to_version)``,
  ``fence_statements(engine)``
- ``MAX_SHARDS``, ``VALID_SHARD_COUNTS``, ``DEFAULT_SETTINGS``, ``APPLICATION_DEFAULTS``,
  ``shard_for(recipient, shards)``
- ``statement(engine, name)`` and ``STATEMENT_NAMES``; the read-only ones for modules:
  ``read_schema_version``, ``read_lease``, ``read_shard_map``, ``read_routes``, ``read_nodes``,
  ``read_settings``, ``read_observations``, ``read_stats``; ``COLUMNS[name]`` and
  ``rows_as_dicts(name, rows)`` name their result columns.
"""

from __future__ import annotations

import zlib

MYSQL = "MYSQL"
PGSQL = "PGSQL"
ENGINES = (MYSQL, PGSQL)

_ENGINE_ALIASES = {
    "mysql": MYSQL, "mariadb": MYSQL,
    "pgsql": PGSQL, "postgres": PGSQL, "postgresql": PGSQL,
}

DB_NAME_SUFFIX = "waent"

T_SCHEMA = "wa_schema_info"
T_LEASE = "wa_master_lease"
T_SHARDS = "wa_shard_map"
T_NODES = "wa_nodes"
T_OBSERVATIONS = "wa_observations"
T_SETTINGS = "wa_settings"
T_MESSAGES = "wa_messages"
T_USERS = "wa_users"
T_TOKENS = "wa_tokens"
T_STATS = "wa_stats"
ALL_TABLES = (T_SCHEMA, T_LEASE, T_SHARDS, T_NODES, T_OBSERVATIONS, T_SETTINGS, T_MESSAGES,
              T_USERS, T_TOKENS, T_STATS)

# Schema versions. Version 2 (shipped with 2.53.2) only adds things, so code that knows
# version 1 still works against it: SCHEMA_COMPAT[v] is the oldest code schema that can run
# against a database at version v. A node whose code is older than SCHEMA_COMPAT[db] refuses
# to start with one clear line; otherwise it runs (and logs that the DB is newer).
SCHEMA_VERSION = 2
SCHEMA_COMPAT = {1: 1, 2: 1}
_SCHEMA_BY_WA_VERSION = (("2.53.2", 2), ("0", 1))

MAX_SHARDS = 32
VALID_SHARD_COUNTS = (1, 2, 4, 8, 16, 32)

# Application settings (GET/PATCH /v1/settings/application), stored as JSON in T_SETTINGS
# under the name "application". Seconds.
DEFAULT_SETTINGS = {
    "heartbeat_interval": 5,
    "unhealthy_interval": 30,
}
SETTINGS_APPLICATION = "application"
SETTINGS_SHARDS = "shards"

# The whole application settings object as GET /v1/settings/application answers it, with the
# documented defaults (DELETE resets to these; ``heartbeat_interval`` and ``unhealthy_interval``
# are seeded from DEFAULT_SETTINGS or the node's environment). ``wa_id`` is set by the account
# registration (POST /v1/account/shards) and is read-only.
APPLICATION_DEFAULTS = {
    "callback_backoff_delay_ms": 3000,
    "callback_persist": True,
    "db_garbagecollector_enable": False,
    "heartbeat_interval": 5,
    "max_callback_backoff_delay_ms": 900000,
    "media": {"auto_download": []},
    "notify_user_change_number": False,
    "pass_through": False,
    "sent_status": False,
    "show_security_notifications": False,
    "unhealthy_interval": 30,
    "wa_id": None,
    "webhooks": {"max_concurrent_requests": 6, "url": ""},
}
MEDIA_AUTO_DOWNLOAD_TYPES = ("audio", "document", "image", "sticker", "video", "voice")
WEBHOOK_CONCURRENCY = (6, 12, 18, 24)


def normalize_engine(value: str) -> str:
    """Return MYSQL or PGSQL for any accepted spelling; raise ValueError otherwise."""
    v = (value or "").strip()
    if v.upper() in ENGINES:
        return v.upper()
    if v.lower() in _ENGINE_ALIASES:
        return _ENGINE_ALIASES[v.lower()]
    raise ValueError("unknown database engine %r (expected MYSQL or PGSQL)" % (value,))


def database_name(prefix: str) -> str:
    """The cluster database: ``${WA_DB_NAME_PREFIX}waent``."""
    return "%s%s" % (prefix or "", DB_NAME_SUFFIX)


def _check_identifier(name: str) -> str:
    if not name or len(name) > 63 or not all(c.isalnum() or c == "_" for c in name):
        raise ValueError("invalid database name %r (letters, digits, _ only)" % (name,))
    return name


def create_database_sql(engine: str, name: str) -> str:
    engine = normalize_engine(engine)
    _check_identifier(name)
    if engine == MYSQL:
        return "CREATE DATABASE IF NOT EXISTS `%s` CHARACTER SET utf8mb4" % name
    return 'CREATE DATABASE "%s" ENCODING \'UTF8\'' % name


def database_exists_sql(engine: str) -> str:
    """One parameter: the database name; returns one row when it exists."""
    if normalize_engine(engine) == MYSQL:
        return "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = %s"
    return "SELECT datname FROM pg_database WHERE datname = %s"


def schema_version_for(wa_version: str) -> int:
    """The schema version a given stand-in version writes (2.53.1 -> 1, 2.53.2+ -> 2)."""
    def key(v: str) -> tuple:
        out = []
        for part in v.lstrip("v").split("."):
            try:
                out.append(int(part))
            except ValueError:
                out.append(0)
        return tuple(out)

    for ver, schema in _SCHEMA_BY_WA_VERSION:
        if key(wa_version) >= key(ver):
            return schema
    return 1


def shard_for(recipient: str, shards: int) -> int:
    """Stable routing: crc32(recipient) % shards (never Python's randomized hash())."""
    return zlib.crc32(recipient.encode("utf-8")) % max(1, int(shards))


# --- SQL dialect helpers ------------------------------------------------------------------

def _now(engine: str) -> str:
    return "NOW(6)" if engine == MYSQL else "clock_timestamp()"


def _plus(engine: str, param: str = "%s") -> str:
    """DB now + ``param`` seconds (float)."""
    if engine == MYSQL:
        return "DATE_ADD(NOW(6), INTERVAL ROUND(%s * 1000000) MICROSECOND)" % param
    return "(clock_timestamp() + make_interval(secs => %s))" % param


def _minus(engine: str, param: str = "%s") -> str:
    if engine == MYSQL:
        return "DATE_SUB(NOW(6), INTERVAL ROUND(%s * 1000000) MICROSECOND)" % param
    return "(clock_timestamp() - make_interval(secs => %s))" % param


def _age(engine: str, col: str) -> str:
    """Seconds from ``col`` to the DB's now (NULL when col is NULL)."""
    if engine == MYSQL:
        return "(TIMESTAMPDIFF(MICROSECOND, %s, NOW(6)) / 1000000.0)" % col
    return "EXTRACT(EPOCH FROM (clock_timestamp() - %s))" % col


def _ts(engine: str) -> str:
    return "DATETIME(6)" if engine == MYSQL else "TIMESTAMPTZ"


def _share_lock(engine: str) -> str:
    return "LOCK IN SHARE MODE" if engine == MYSQL else "FOR SHARE"


def _insert_new(engine: str, table: str, columns: str, values: str, key: str) -> str:
    """An INSERT that skips rows whose ``key`` already exists."""
    if engine == MYSQL:
        return "INSERT IGNORE INTO %s (%s) %s" % (table, columns, values)
    return "INSERT INTO %s (%s) %s ON CONFLICT (%s) DO NOTHING" % (table, columns, values, key)


def _upsert(engine: str, table: str, columns: str, values: str, key: str, sets: tuple, alias: str = "") -> str:
    """An INSERT that updates the row with the same ``key`` instead. Each of ``sets`` is a column
    (set to the inserted value) or ``(column, expression)``, where ``{new}`` is the inserted value
    and ``{old}`` the stored one; ``alias`` names the stored row on PostgreSQL."""
    if engine == MYSQL:
        head, new, old = table, "VALUES(%s)", "%s"
        tail = "ON DUPLICATE KEY UPDATE "
    else:
        head = "%s AS %s" % (table, alias) if alias else table
        new, old = "EXCLUDED.%s", (alias + ".%s") if alias else "%s"
        tail = "ON CONFLICT (%s) DO UPDATE SET " % key
    parts = []
    for item in sets:
        col, expr = (item, "{new}") if isinstance(item, str) else item
        parts.append("%s = %s" % (col, expr.format(new=new % col, old=old % col)))
    return "INSERT INTO %s (%s) %s %s%s" % (head, columns, values, tail, ", ".join(parts))


# --- DDL -------------------------------------------------------------------------------------

def bootstrap_statements(engine: str) -> list:
    """Idempotent DDL that any master may run before the election: the schema-info table, the
    lease row and the node registry with the masters' observations (the election and the
    registration of masters need them). Everything else is created by the primary
    through ``migration_statements``."""
    e = normalize_engine(engine)
    ts = _ts(e)
    stmts = [
        "CREATE TABLE IF NOT EXISTS %s (id INT PRIMARY KEY, version INT NOT NULL, "
        "compat INT NOT NULL, upgraded_by VARCHAR(255) NULL, upgraded_at %s NULL)" % (T_SCHEMA, ts),
        "CREATE TABLE IF NOT EXISTS %s (id INT PRIMARY KEY, holder VARCHAR(255) NULL, "
        "epoch BIGINT NOT NULL DEFAULT 0, acquired_at %s NULL, renewed_at %s NULL, "
        "expires_at %s NULL)" % (T_LEASE, ts, ts, ts),
        "CREATE TABLE IF NOT EXISTS %s (node_id VARCHAR(255) PRIMARY KEY, kind VARCHAR(16) NOT NULL, "
        "host VARCHAR(255) NOT NULL, messaging_port INT NULL, contacts_port INT NULL, "
        "control_port INT NULL, healthcheck_port INT NULL, version VARCHAR(32) NOT NULL, "
        "instance VARCHAR(64) NOT NULL, role VARCHAR(32) NULL, gateway_status VARCHAR(32) NULL, "
        "started_at %s NULL, last_heartbeat %s NULL)" % (T_NODES, ts, ts),
        "CREATE TABLE IF NOT EXISTS %s (master_id VARCHAR(255) NOT NULL, node_id VARCHAR(255) NOT NULL, "
        "last_ok %s NULL, last_attempt %s NULL, PRIMARY KEY (master_id, node_id))" % (T_OBSERVATIONS, ts, ts),
    ]
    stmts.append(_insert_new(e, T_LEASE, "id, holder, epoch", "VALUES (1, NULL, 0)", "id"))
    return stmts


def _v1(e: str) -> list:
    ts = _ts(e)
    text = "LONGTEXT" if e == MYSQL else "TEXT"
    stmts = [
        "CREATE TABLE IF NOT EXISTS %s (shard_id INT PRIMARY KEY, active SMALLINT NOT NULL DEFAULT 0, "
        "owner VARCHAR(255) NULL, epoch BIGINT NOT NULL DEFAULT 0, master_epoch BIGINT NOT NULL DEFAULT 0, "
        "updated_at %s NULL)" % (T_SHARDS, ts),
        "CREATE TABLE IF NOT EXISTS %s (name VARCHAR(64) PRIMARY KEY, value %s NOT NULL, "
        "revision BIGINT NOT NULL DEFAULT 0, updated_at %s NULL)" % (T_SETTINGS, text, ts),
        "CREATE TABLE IF NOT EXISTS %s (id VARCHAR(64) PRIMARY KEY, shard_id INT NOT NULL, "
        "recipient VARCHAR(64) NOT NULL, body %s NULL, status VARCHAR(16) NOT NULL, "
        "owner VARCHAR(255) NOT NULL, epoch BIGINT NOT NULL, created_at %s NOT NULL)" % (T_MESSAGES, text, ts),
        "CREATE INDEX IF NOT EXISTS wa_messages_shard_status ON %s (shard_id, status)" % T_MESSAGES,
        "CREATE TABLE IF NOT EXISTS %s (username VARCHAR(64) PRIMARY KEY, password_hash VARCHAR(255) NOT NULL, "
        "must_change SMALLINT NOT NULL DEFAULT 1)" % T_USERS,
        "CREATE TABLE IF NOT EXISTS %s (token VARCHAR(128) PRIMARY KEY, username VARCHAR(64) NOT NULL, "
        "expires_at %s NOT NULL)" % (T_TOKENS, ts),
        "CREATE TABLE IF NOT EXISTS %s (name VARCHAR(64) PRIMARY KEY, value %s NOT NULL, "
        "updated_at %s NULL)" % (T_STATS, text, ts),
    ]
    # All 32 shard rows exist from the start; the shard count only toggles "active", so a
    # shard's epoch never goes back (a fencing token must only grow).
    values = ", ".join("(%d, %d, 0)" % (i, 1 if i == 0 else 0) for i in range(MAX_SHARDS))
    stmts.append(_insert_new(e, T_SHARDS, "shard_id, active, epoch", "VALUES " + values, "shard_id"))
    return stmts


def _v2(e: str) -> list:
    ts = _ts(e)
    return [
        "ALTER TABLE %s ADD COLUMN IF NOT EXISTS delivered_at %s NULL" % (T_MESSAGES, ts),
        "CREATE INDEX IF NOT EXISTS wa_messages_status_delivered ON %s (status, delivered_at)" % T_MESSAGES,
    ]


_MIGRATIONS = {1: _v1, 2: _v2}


def fence_statements(engine: str) -> list:
    """Idempotent DDL the primary master runs at every schema check (any schema version >= 1):
    the shard map's ownership-confirmation columns (see the ``confirm_shard`` statement).
    ``confirmed_at`` / ``confirmed_epoch``: the database time and shard epoch of the owner's
    last confirmation; ``fence_until``: the latest database time at which any owner of the
    shard, past or present, may still be accepting messages (NULL: nobody ever confirmed)."""
    e = normalize_engine(engine)
    ts = _ts(e)
    return ["ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s" % (T_SHARDS, col) for col in (
        "confirmed_at %s NULL" % ts, "confirmed_epoch BIGINT NULL", "fence_until %s NULL" % ts)]


def migration_statements(engine: str, from_version: int, to_version: int) -> list:
    """Statements that take the schema from ``from_version`` (0 = empty) to ``to_version``.
    The caller runs them in order and then records the version (statement
    ``write_schema_version``)."""
    e = normalize_engine(engine)
    if to_version > SCHEMA_VERSION:
        raise ValueError("schema version %d is unknown (newest is %d)" % (to_version, SCHEMA_VERSION))
    out = []
    for v in range(from_version + 1, to_version + 1):
        out.extend(_MIGRATIONS[v](e))
    return out


# --- statements ------------------------------------------------------------------------------

def _statements(e: str) -> dict:
    now = _now(e)
    lease_live = "(holder = %%s AND epoch = %%s AND expires_at > %s)" % now
    # Guard for primary-only writes: the caller's (holder, epoch) still holds a live lease.
    guard = "EXISTS (SELECT 1 FROM %s l WHERE l.id = 1 AND l.holder = %%s AND l.epoch = %%s " \
            "AND l.expires_at > %s)" % (T_LEASE, now)
    s = {}
    # -- schema
    s["read_schema_version"] = "SELECT version, compat FROM %s WHERE id = 1" % T_SCHEMA
    s["write_schema_version"] = _upsert(
        e, T_SCHEMA, "id, version, compat, upgraded_by, upgraded_at", "VALUES (1, %%s, %%s, %%s, %s)" % now,
        "id", ("version", "compat", "upgraded_by", "upgraded_at"))
    # -- lease. Columns: holder, epoch, expired (0/1), seconds_left (DB clock), held_for.
    s["read_lease"] = (
        "SELECT holder, epoch, CASE WHEN expires_at IS NULL OR expires_at <= %s THEN 1 ELSE 0 END AS expired, "
        "-%s AS seconds_left, %s AS held_for FROM %s WHERE id = 1"
        % (now, _age(e, "expires_at"), _age(e, "acquired_at"), T_LEASE))
    # Params: holder, ttl. Takes a free or lapsed lease and bumps the epoch (fencing token).
    s["acquire_lease"] = (
        "UPDATE %s SET holder = %%s, epoch = epoch + 1, acquired_at = %s, renewed_at = %s, expires_at = %s "
        "WHERE id = 1 AND (holder IS NULL OR expires_at IS NULL OR expires_at <= %s)"
        % (T_LEASE, now, now, _plus(e), now))
    # Params: ttl, holder, epoch. Only a live lease is renewed; a lapsed one must be re-acquired.
    s["renew_lease"] = (
        "UPDATE %s SET renewed_at = %s, expires_at = %s WHERE id = 1 AND %s"
        % (T_LEASE, now, _plus(e), lease_live))
    # Params: holder, epoch. Clean hand-over on shutdown.
    s["release_lease"] = (
        "UPDATE %s SET holder = NULL, expires_at = NULL WHERE id = 1 AND holder = %%s AND epoch = %%s"
        % T_LEASE)
    # -- shard map. Columns: shard_id, active, owner, epoch, master_epoch, assigned_age
    s["read_shard_map"] = (
        "SELECT shard_id, active, owner, epoch, master_epoch, %s AS assigned_age FROM %s ORDER BY shard_id"
        % (_age(e, "updated_at"), T_SHARDS))
    # Shard map joined with the owners' registered addresses (what webapps route with).
    s["read_routes"] = (
        "SELECT s.shard_id, s.owner, s.epoch, n.host, n.messaging_port, n.control_port "
        "FROM %s s LEFT JOIN %s n ON n.node_id = s.owner WHERE s.active = 1 ORDER BY s.shard_id"
        % (T_SHARDS, T_NODES))
    # Params: new_owner, master_epoch, shard_id, expected_shard_epoch, holder, lease_epoch.
    # Promotion: one statement bumps the shard epoch and names the owner, only while the
    # caller's lease is live and nobody changed the shard since it was read.
    s["promote_shard"] = (
        "UPDATE %s SET owner = %%s, epoch = epoch + 1, master_epoch = %%s, updated_at = %s "
        "WHERE shard_id = %%s AND active = 1 AND epoch = %%s AND %s" % (T_SHARDS, now, guard))
    # Params: master_epoch, shard_id, expected_shard_epoch, holder, lease_epoch.
    s["unassign_shard"] = (
        "UPDATE %s SET owner = NULL, epoch = epoch + 1, master_epoch = %%s, updated_at = %s "
        "WHERE shard_id = %%s AND epoch = %%s AND %s" % (T_SHARDS, now, guard))
    # Params: shards, shards, shards, master_epoch, holder, lease_epoch. Toggle active shards;
    # shards that go inactive lose their owner with an epoch bump (fences the old owner).
    s["set_shard_count"] = (
        "UPDATE %s SET active = CASE WHEN shard_id < %%s THEN 1 ELSE 0 END, "
        "epoch = CASE WHEN shard_id >= %%s AND owner IS NOT NULL THEN epoch + 1 ELSE epoch END, "
        "owner = CASE WHEN shard_id < %%s THEN owner ELSE NULL END, master_epoch = %%s, updated_at = %s "
        "WHERE %s" % (T_SHARDS, now, guard))
    # Params: owner. What a coreapp reads to know what it owns.
    s["read_owned_shards"] = (
        "SELECT shard_id, epoch FROM %s WHERE owner = %%s AND active = 1 ORDER BY shard_id" % T_SHARDS)
    # Params: shard_id. Inside a message transaction: lock the shard row against promotion.
    s["lock_shard_for_write"] = (
        "SELECT owner, epoch, active FROM %s WHERE shard_id = %%s %s" % (T_SHARDS, _share_lock(e)))
    # -- nodes. Columns: node_id, kind, host, ports x4, version, instance, role, gateway_status,
    # heartbeat_age (seconds, DB clock), uptime.
    s["read_nodes"] = (
        "SELECT node_id, kind, host, messaging_port, contacts_port, control_port, healthcheck_port, "
        "version, instance, role, gateway_status, %s AS heartbeat_age, %s AS uptime FROM %s ORDER BY node_id"
        % (_age(e, "last_heartbeat"), _age(e, "started_at"), T_NODES))
    node_cols = ("node_id, kind, host, messaging_port, contacts_port, control_port, healthcheck_port, "
                 "version, instance, role, gateway_status, started_at, last_heartbeat")
    # Every column but the key is rewritten on a re-registration.
    s["register_node"] = _upsert(
        e, T_NODES, node_cols, "VALUES (%s, %s, %s)" % (", ".join(["%s"] * 11), now, now),
        "node_id", tuple(node_cols.split(", ")[1:]))
    # Params: role, gateway_status, node_id, instance.
    s["node_heartbeat"] = (
        "UPDATE %s SET role = %%s, gateway_status = %%s, last_heartbeat = %s WHERE node_id = %%s AND instance = %%s"
        % (T_NODES, now))
    s["deregister_node"] = "DELETE FROM %s WHERE node_id = %%s AND instance = %%s" % T_NODES
    # -- observations (heartbeat mode). Params: master_id, node_id, ok (1/0).
    ok_case = "CASE WHEN %%s = 1 THEN %s ELSE NULL END" % now
    s["record_observation"] = _upsert(
        e, T_OBSERVATIONS, "master_id, node_id, last_ok, last_attempt", "VALUES (%%s, %%s, %s, %s)" % (ok_case, now),
        "master_id, node_id", (("last_ok", "COALESCE({new}, {old})"), "last_attempt"), alias="o")
    # Columns: master_id, node_id, ok_age, attempt_age (seconds, DB clock; NULL = never).
    s["read_observations"] = (
        "SELECT master_id, node_id, %s AS ok_age, %s AS attempt_age FROM %s ORDER BY node_id, master_id"
        % (_age(e, "last_ok"), _age(e, "last_attempt"), T_OBSERVATIONS))
    # -- settings. Columns: name, value (JSON text), revision.
    s["read_settings"] = "SELECT name, value, revision FROM %s ORDER BY name" % T_SETTINGS
    # Params: name, value, holder, lease_epoch (insert only by the live primary).
    # The revision grows only when the value changes.
    if e == MYSQL:
        dual, bump = " FROM DUAL", "(value <> VALUES(value))"
    else:
        dual, bump = "", "CASE WHEN t.value <> EXCLUDED.value THEN 1 ELSE 0 END"
    s["write_setting"] = _upsert(
        e, T_SETTINGS, "name, value, revision, updated_at", "SELECT %%s, %%s, 1, %s%s WHERE %s" % (now, dual, guard),
        "name", (("revision", "{old} + " + bump), "value", "updated_at"), alias="t")
    # -- messages
    # Params: id, shard_id, recipient, body, owner, epoch.
    s["insert_message"] = (
        "INSERT INTO %s (id, shard_id, recipient, body, status, owner, epoch, created_at) "
        "VALUES (%%s, %%s, %%s, %%s, 'sent', %%s, %%s, %s)" % (T_MESSAGES, now))
    s["read_message"] = (
        "SELECT id, shard_id, recipient, status, owner, epoch, %s AS age FROM %s WHERE id = %%s"
        % (_age(e, "created_at"), T_MESSAGES))
    # Params: shard_id, min_age_seconds, owner, shard_epoch  (only while the shard is still ours).
    mine = "EXISTS (SELECT 1 FROM %s s WHERE s.shard_id = %%s AND s.owner = %%s AND s.epoch = %%s)" % T_SHARDS
    s["mark_delivered_v1"] = (
        "UPDATE %s SET status = 'delivered' WHERE shard_id = %%s AND status = 'sent' AND created_at < %s AND %s"
        % (T_MESSAGES, _minus(e), mine))
    s["mark_delivered_v2"] = (
        "UPDATE %s SET status = 'delivered', delivered_at = %s WHERE shard_id = %%s AND status = 'sent' "
        "AND created_at < %s AND %s" % (T_MESSAGES, now, _minus(e), mine))
    # Garbage collection of delivered/read messages: a keyset walk over one status at a time
    # (GC_STATUSES), in batches. The IN list keeps 'sent' rows out whatever status is passed.
    # A batch first finds where it ends: its batch-th id after the cursor (gc_batch_end; params
    # shard_id, status, after_id, batch; columns: found, last_id), then deletes that id range
    # (gc_batch; params shard_id, status, after_id, last_id). Each batch starts at the cursor, so
    # it never steps over the index entries earlier batches deleted and purge has not removed yet
    # (restarting at the range's start did: with purge held back, 23 ms per 1000-row batch on
    # MariaDB at the start of a 1 million row run, 139 ms by its end). Rows the range gains
    # between the two statements are collectable too. A row that becomes delivered/read during
    # the run with an id behind the cursor is left for the next run: acceptable, the collection
    # is periodic, and it never deletes a row that is not collectable.
    gc_rows = "WHERE shard_id = %s AND status = %s AND status IN ('delivered', 'read') AND id > %s"
    if e == MYSQL:
        # Through the (shard_id, status) index, whose entries end in the primary key id (InnoDB):
        # (shard_id, status, id > cursor) is a range in id order. Without FORCE INDEX MariaDB may
        # walk the primary key instead (and lock its gaps, where new messages go).
        idx = "FORCE INDEX (wa_messages_shard_status)"
        s["gc_batch_end"] = ("SELECT COUNT(*), MAX(id) FROM (SELECT id FROM %s %s %s ORDER BY id LIMIT %%s) d"
                             % (T_MESSAGES, idx, gc_rows))
        s["gc_batch"] = "DELETE m FROM %s m %s %s AND id <= %%s" % (T_MESSAGES, idx, gc_rows)
    else:
        # PostgreSQL's (shard_id, status) index does not hold id: the planner walks the primary
        # key from the cursor and filters shard and status (the dead entries behind the cursor
        # are never visited either).
        s["gc_batch_end"] = ("SELECT COUNT(*), MAX(id) FROM (SELECT id FROM %s %s ORDER BY id LIMIT %%s) d"
                             % (T_MESSAGES, gc_rows))
        s["gc_batch"] = "DELETE FROM %s %s AND id <= %%s" % (T_MESSAGES, gc_rows)
    s["count_messages"] = "SELECT status, COUNT(*) FROM %s GROUP BY status ORDER BY status" % T_MESSAGES
    # Params: message id. PUT /v1/messages/{id} {"status": "read"} (the data guide: mark messages
    # read before the garbage collection).
    s["mark_message_read"] = "UPDATE %s SET status = 'read' WHERE id = %%s AND status <> 'read'" % T_MESSAGES
    # -- users and tokens
    s["read_user"] = "SELECT username, password_hash, must_change FROM %s WHERE username = %%s" % T_USERS
    s["ensure_admin"] = _insert_new(e, T_USERS, "username, password_hash, must_change", "VALUES (%s, %s, 1)",
                                    "username")
    s["set_password"] = "UPDATE %s SET password_hash = %%s, must_change = 0 WHERE username = %%s" % T_USERS
    # Params: token, username, ttl seconds. Columns of check: username, seconds_left.
    s["insert_token"] = ("INSERT INTO %s (token, username, expires_at) VALUES (%%s, %%s, %s)"
                         % (T_TOKENS, _plus(e)))
    s["check_token"] = ("SELECT username, -%s AS seconds_left FROM %s WHERE token = %%s AND expires_at > %s"
                        % (_age(e, "expires_at"), T_TOKENS, now))
    s["purge_tokens"] = "DELETE FROM %s WHERE expires_at <= %s" % (T_TOKENS, now)
    # -- stats (filled by the primary master)
    s["write_stat"] = _upsert(e, T_STATS, "name, value, updated_at", "VALUES (%%s, %%s, %s)" % now, "name",
                              ("value", "updated_at"))
    s["read_stats"] = "SELECT name, value, %s AS age FROM %s ORDER BY name" % (_age(e, "updated_at"), T_STATS)
    s["db_now"] = "SELECT %s" % now
    # -- ownership confirmations (fence_statements adds the columns). Params: pad, pad,
    # shard_id, owner, epoch. The owner stamps its confirmation with the DB clock, and raises
    # fence_until to now + pad (pad >= its fence time F, plus a clock-rate margin) -- never lowers
    # it. Matches only while the row still names the owner at that epoch: once a promotion has
    # committed (epoch + 1), no confirmation of the old owner can succeed.
    until = _plus(e)
    s["confirm_shard"] = (
        "UPDATE %s SET confirmed_at = %s, confirmed_epoch = epoch, "
        "fence_until = GREATEST(COALESCE(fence_until, %s), %s) "
        "WHERE shard_id = %%s AND owner = %%s AND epoch = %%s AND active = 1" % (T_SHARDS, now, until, until))
    # Params: shard_id, owner, epoch. A planned move: the owner has stopped accepting (and had
    # been accepting, so every earlier owner's window had closed) and says so with the DB clock.
    s["release_shard"] = (
        "UPDATE %s SET fence_until = %s WHERE shard_id = %%s AND owner = %%s AND epoch = %%s AND active = 1"
        % (T_SHARDS, now))
    # Params: owner. Columns: shard_id, epoch, fence_left (seconds until fence_until on the DB
    # clock; <= 0 when it has passed; NULL when no owner ever confirmed).
    s["read_owned_shards_fence"] = (
        "SELECT shard_id, epoch, -%s AS fence_left FROM %s WHERE owner = %%s AND active = 1 ORDER BY shard_id"
        % (_age(e, "fence_until"), T_SHARDS))
    # Columns: shard_id, owner, epoch, confirmed_epoch, confirmed_age, fence_left (DB clock).
    s["read_shard_confirmations"] = (
        "SELECT shard_id, owner, epoch, confirmed_epoch, %s AS confirmed_age, -%s AS fence_left "
        "FROM %s WHERE active = 1 ORDER BY shard_id" % (_age(e, "confirmed_at"), _age(e, "fence_until"), T_SHARDS))
    return s


_STATEMENTS = {e: _statements(e) for e in ENGINES}
# An incoming message not yet read: the data guide says the garbage collection keeps it (mark
# it read first, PUT /v1/messages/{id}). The stand-in stores outgoing messages (sent -> delivered).
STATUS_INCOMING_UNREAD = "received"
# What the garbage collection deletes, one status after the other (gc_batch).
GC_STATUSES = ("delivered", "read")
STATEMENT_NAMES = tuple(sorted(_STATEMENTS[MYSQL]))

# Result columns of the read statements, in order (for rows_as_dicts).
COLUMNS = {
    "read_schema_version": ("version", "compat"),
    "read_lease": ("holder", "epoch", "expired", "seconds_left", "held_for"),
    "read_shard_map": ("shard_id", "active", "owner", "epoch", "master_epoch", "assigned_age"),
    "read_routes": ("shard_id", "owner", "epoch", "host", "messaging_port", "control_port"),
    "read_nodes": ("node_id", "kind", "host", "messaging_port", "contacts_port", "control_port",
                   "healthcheck_port", "version", "instance", "role", "gateway_status", "heartbeat_age",
                   "uptime"),
    "read_observations": ("master_id", "node_id", "ok_age", "attempt_age"),
    "read_settings": ("name", "value", "revision"),
    "read_stats": ("name", "value", "age"),
    "read_message": ("id", "shard_id", "recipient", "status", "owner", "epoch", "age"),
    "count_messages": ("status", "count"),
    "read_shard_confirmations": ("shard_id", "owner", "epoch", "confirmed_epoch", "confirmed_age",
                                 "fence_left"),
}


_FLOAT_SUFFIXES = ("_age", "seconds_left", "held_for", "uptime", "fence_left")


def rows_as_dicts(name: str, rows: list) -> list:
    """Rows of a read statement as dicts keyed by COLUMNS[name]; Decimal ages become floats."""
    cols = COLUMNS[name]
    out = []
    for row in rows:
        item = {}
        for i, col in enumerate(cols):
            value = row[i] if i < len(row) else None
            if value is not None and (col == "age" or col.endswith(_FLOAT_SUFFIXES)):
                value = float(value)
            item[col] = value
        out.append(item)
    return out


def statement(engine: str, name: str) -> str:
    """The SQL text of a named statement for an engine (see the comments in _statements for
    each statement's parameters and columns)."""
    return _STATEMENTS[normalize_engine(engine)][name]
