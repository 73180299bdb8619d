"""The one storage interface of the stand-in, with a MySQL (PyMySQL) and a PostgreSQL
(psycopg2) implementation.

All SQL comes from ``cluster_schema`` (``S.statement(engine, name)``); an implementation only
knows how to connect, how to spell a few engine-specific things and how to recognise a
duplicate key. Calls are synchronous and autocommit (a message write is one short explicit
transaction); the async nodes run them in a thread pool with a timeout (``AsyncStore``).
Each thread keeps its own connection and drops it on any error.
"""

from __future__ import annotations

import abc
import asyncio
import functools
import json
import math
import os
import select
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from .schema import S

T = TypeVar("T")


class StorageError(Exception):
    """The database could not be reached or refused a statement."""


class SchemaTooNew(StorageError):
    """The database schema is newer than this code can run against."""


@dataclass
class Lease:
    holder: str | None
    epoch: int
    expired: bool
    seconds_left: float | None


@dataclass
class Shard:
    shard_id: int
    active: bool
    owner: str | None
    epoch: int
    assigned_age: float | None


@dataclass
class Node:
    node_id: str
    kind: str
    host: str
    ports: tuple[int | None, int | None, int | None, int | None]
    version: str
    instance: str
    role: str | None
    gateway_status: str | None
    heartbeat_age: float | None

    @property
    def control_port(self) -> int | None:
        return self.ports[2]

    @property
    def messaging_port(self) -> int | None:
        return self.ports[0]


TLS_VARIABLES = ("WA_DB_SSL_CA", "WA_DB_SSL_CERT", "WA_DB_SSL_KEY")


def tls_paths(env: dict[str, str] | None = None) -> dict[str, str]:
    """The database TLS files the environment names, as the real client reads them:
    ``WA_DB_SSL_CA`` (the CA that signed the server's certificate: the server's certificate
    and host name are then verified), ``WA_DB_SSL_CERT`` and ``WA_DB_SSL_KEY`` (a client
    certificate and its key). Any of them turns TLS on; none keeps the driver's default."""
    env = os.environ if env is None else env
    keys = {"WA_DB_SSL_CA": "ca", "WA_DB_SSL_CERT": "cert", "WA_DB_SSL_KEY": "key"}
    return {short: env[name].strip() for name, short in keys.items() if env.get(name, "").strip()}


class Storage(abc.ABC):
    """What every node needs from the database. Subclasses: MySQLStorage, PgStorage."""

    engine: str = ""

    def __init__(self, host: str, port: int, user: str, password: str, database: str,
                 timeout: float = 5.0, idle_timeout_ms: int | None = None,
                 txn_idle_timeout: float | None = None) -> None:
        self.host, self.port, self.user, self.password = host, port, user, password
        self.database = database
        self.timeout = timeout
        # Server-side limits of every session: a lock wait never outlasts ``timeout``, and a
        # transaction left open by a paused or hung node is aborted by the server after
        # ``txn_idle_timeout`` seconds, releasing its shard-row lock (else a SIGSTOPped old
        # owner, paused inside a message write, would block its own replacement).
        self.txn_idle_timeout = txn_idle_timeout
        self.idle_timeout = idle_timeout_ms / 1000.0 if idle_timeout_ms else None
        self.tls = tls_paths()
        self._local = threading.local()

    # -- engine specifics ----------------------------------------------------------------
    @abc.abstractmethod
    def _connect(self, database: str | None) -> Any:
        """A new autocommit connection (to ``database``, or the server's default one)."""

    @abc.abstractmethod
    def _is_duplicate(self, exc: Exception) -> bool:
        """Whether ``exc`` is a duplicate-key error."""

    @abc.abstractmethod
    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        """The driver's exception classes."""

    @abc.abstractmethod
    def _is_disconnect(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the connection itself is gone (the server restarted, or closed
        or killed the session), not that a statement failed."""

    @abc.abstractmethod
    def _fileno(self, conn: Any) -> int | None:
        """The socket of a kept connection (None: the driver knows it is closed)."""

    def _ended_by_server(self, conn: Any) -> bool:
        """Whether the server has ended a kept connection while it sat idle: a server that
        restarts, kills the session or closes it for idleness sends its goodbye (an error
        packet, then end of file) unasked, so the socket is readable although no statement
        is pending. One poll without waiting: no round trip, and a stalled server is not
        mistaken for a gone one."""
        try:
            fd = self._fileno(conn)
            return fd is None or bool(select.select([fd], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    # -- connection handling -------------------------------------------------------------
    def q(self, name: str) -> str:
        return S.statement(self.engine, name)

    def _conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        last = getattr(self._local, "last_used", 0.0)
        if conn is not None and self.idle_timeout and time.monotonic() - last > self.idle_timeout * 0.9:
            # The server closes connections idle longer than WA_DB_CONNECTION_IDLE_TIMEOUT:
            # do not use one that may already be gone.
            self._drop()
            conn = None
        elif conn is not None and self._ended_by_server(conn):
            # Found by the fault campaign: after a database restart a rarely used thread's write
            # (a login's token) went out on its dead connection and failed. Writes are not sent
            # twice, so the connection is checked before it is used.
            self._drop()
            conn = None
        if conn is None:
            conn = self._connect(self.database)
            self._local.conn = conn
        self._local.last_used = time.monotonic()
        return conn

    def _drop(self) -> None:
        conn = getattr(self._local, "conn", None)
        self._local.conn = None
        if conn is not None:
            try:
                conn.close()
            except Exception:
                pass

    @contextmanager
    def cursor(self) -> Iterator[Any]:
        try:
            cur = self._conn().cursor()
            try:
                yield cur
            finally:
                cur.close()
        except self._driver_errors() as exc:
            self._drop()
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"{type(exc).__name__}: {exc}".strip()) from exc

    def _once_more_if_stale(self, run: Callable[[Any], T]) -> T:
        """``run(cursor)``; when a kept connection turns out to be gone (a database restart
        leaves one dead connection in every thread), once more on a fresh one. Only for what is
        safe to repeat: reads, and transactions whose first statement is what failed."""
        reused = getattr(self._local, "conn", None) is not None
        try:
            with self.cursor() as cur:
                return run(cur)
        except StorageError as exc:
            if not (reused and exc.__cause__ is not None and self._is_disconnect(exc.__cause__)):
                raise
        with self.cursor() as cur:  # cursor() dropped the dead connection: this one is new
            return run(cur)

    def execute(self, name: str, params: tuple = ()) -> int:
        with self.cursor() as cur:
            cur.execute(self.q(name), params)
            return cur.rowcount

    def fetchall(self, name: str, params: tuple = ()) -> list[tuple]:
        def read(cur: Any) -> list[tuple]:
            cur.execute(self.q(name), params)
            return list(cur.fetchall())
        return self._once_more_if_stale(read)

    def close(self) -> None:
        self._drop()

    # -- database and schema -------------------------------------------------------------
    def ensure_database(self) -> bool:
        """Create ``${prefix}waent`` when missing; return whether it was created."""
        conn = self._connect(None)
        try:
            cur = conn.cursor()
            cur.execute(S.database_exists_sql(self.engine), (self.database,))
            if cur.fetchone():
                return False
            try:
                cur.execute(S.create_database_sql(self.engine, self.database))
            except self._driver_errors() as exc:
                # Two nodes raced to create it: fine if it exists now.
                cur.execute(S.database_exists_sql(self.engine), (self.database,))
                if not cur.fetchone():
                    raise StorageError(f"cannot create database {self.database}: {exc}") from exc
                return False
            return True
        finally:
            conn.close()

    def bootstrap(self) -> None:
        """Tables the election needs (idempotent; any master may run it)."""
        with self.cursor() as cur:
            for stmt in S.bootstrap_statements(self.engine):
                cur.execute(stmt)

    def schema_version(self) -> tuple[int, int]:
        """(version, compat) of the database; (0, 0) when the schema is not created yet."""
        try:
            rows = self.fetchall("read_schema_version")
        except StorageError:
            return (0, 0)
        return (int(rows[0][0]), int(rows[0][1])) if rows else (0, 0)

    def check_compatible(self, code_version: int) -> tuple[int, int]:
        version, compat = self.schema_version()
        if version > code_version and compat > code_version:
            raise SchemaTooNew(f"database schema version {version} needs code schema >= {compat}; "
                               f"this node knows only {code_version}: upgrade the node")
        return version, compat

    def upgrade_schema(self, to_version: int, by: str) -> tuple[int, int]:
        """Create or upgrade the schema (primary master only). Returns (from, to)."""
        current, _ = self.check_compatible(to_version)
        if current >= to_version:
            if current >= 1:
                self.ensure_fence_columns()
            return current, current
        with self.cursor() as cur:
            for stmt in S.migration_statements(self.engine, current, to_version):
                cur.execute(stmt)
            for stmt in S.fence_statements(self.engine):
                cur.execute(stmt)
            cur.execute(self.q("write_schema_version"), (to_version, S.SCHEMA_COMPAT[to_version], by))
        return current, to_version

    def ensure_fence_columns(self) -> None:
        """The shard map's confirmation columns (idempotent; a database made before them)."""
        with self.cursor() as cur:
            for stmt in S.fence_statements(self.engine):
                cur.execute(stmt)

    # -- lease ---------------------------------------------------------------------------
    def read_lease(self) -> Lease:
        rows = self.fetchall("read_lease")
        if not rows:
            return Lease(None, 0, True, None)
        holder, epoch, expired, left = rows[0][:4]
        return Lease(holder, int(epoch), bool(int(expired)), float(left) if left is not None else None)

    def acquire_lease(self, holder: str, ttl: float) -> int | None:
        """Take a free or lapsed lease; return the new epoch, or None."""
        if self.execute("acquire_lease", (holder, ttl)) != 1:
            return None
        lease = self.read_lease()
        return lease.epoch if lease.holder == holder else None

    def renew_lease(self, holder: str, epoch: int, ttl: float) -> bool:
        return self.execute("renew_lease", (ttl, holder, epoch)) == 1

    def release_lease(self, holder: str, epoch: int) -> bool:
        return self.execute("release_lease", (holder, epoch)) == 1

    # -- shard map -----------------------------------------------------------------------
    def shard_map(self) -> list[Shard]:
        return [Shard(int(r[0]), bool(int(r[1])), r[2], int(r[3]), None if r[5] is None else float(r[5]))
                for r in self.fetchall("read_shard_map")]

    def routes(self) -> list[tuple]:
        """(shard_id, owner, epoch, host, messaging_port, control_port) for active shards."""
        return self.fetchall("read_routes")

    def promote(self, shard_id: int, expected_epoch: int, owner: str, holder: str, lease_epoch: int) -> bool:
        return self.execute("promote_shard", (owner, lease_epoch, shard_id, expected_epoch, holder, lease_epoch)) == 1

    def unassign(self, shard_id: int, expected_epoch: int, holder: str, lease_epoch: int) -> bool:
        return self.execute("unassign_shard", (lease_epoch, shard_id, expected_epoch, holder, lease_epoch)) == 1

    def set_shard_count(self, shards: int, holder: str, lease_epoch: int) -> bool:
        with self.cursor() as cur:
            cur.execute("BEGIN")
            try:
                cur.execute(self.q("set_shard_count"), (shards, shards, shards, lease_epoch, holder, lease_epoch))
                if cur.rowcount < 1:
                    cur.execute("ROLLBACK")
                    return False
                cur.execute(self.q("write_setting"), (S.SETTINGS_SHARDS, json.dumps(shards), holder, lease_epoch))
                cur.execute("COMMIT")
                return True
            except BaseException:
                cur.execute("ROLLBACK")
                raise

    def owned_shards(self, owner: str) -> list[tuple[int, int]]:
        return [(int(a), int(b)) for a, b in self.fetchall("read_owned_shards", (owner,))]

    def owned_shards_fence(self, owner: str) -> list[tuple[int, int, float | None]]:
        """(shard_id, epoch, fence_left): fence_left = seconds until no earlier owner of the
        shard may still be accepting (DB clock; <= 0 passed; None = cannot be shown)."""
        return [(int(a), int(b), None if c is None else float(c))
                for a, b, c in self.fetchall("read_owned_shards_fence", (owner,))]

    def confirm_shard(self, shard_id: int, owner: str, epoch: int, pad: float) -> bool:
        """Stamp this owner's confirmation with the DB clock (only while the row names it at
        ``epoch``); raises the shard's fence_until to now + pad."""
        return self.execute("confirm_shard", (pad, pad, shard_id, owner, epoch)) == 1

    def release_shard(self, shard_id: int, owner: str, epoch: int) -> bool:
        """A planned move: this owner has stopped accepting; fence_until = now (DB clock)."""
        return self.execute("release_shard", (shard_id, owner, epoch)) == 1

    def shard_confirmations(self) -> dict[int, dict[str, Any]]:
        """Per active shard: owner, epoch, confirmed_epoch, confirmed_age, fence_left (DB clock)."""
        rows = S.rows_as_dicts("read_shard_confirmations", self.fetchall("read_shard_confirmations"))
        for r in rows:
            r["epoch"] = int(r["epoch"])
            r["confirmed_epoch"] = None if r["confirmed_epoch"] is None else int(r["confirmed_epoch"])
        return {int(r["shard_id"]): r for r in rows}

    # -- nodes ---------------------------------------------------------------------------
    def register_node(self, node_id: str, kind: str, host: str, ports: tuple[int, ...], version: str,
                      instance: str, role: str, gateway_status: str) -> None:
        p = list(ports) + [None] * (4 - len(ports))
        self.execute("register_node", (node_id, kind, host, p[0], p[1], p[2], p[3], version, instance, role,
                                       gateway_status))

    def heartbeat(self, node_id: str, instance: str, role: str, gateway_status: str) -> bool:
        return self.execute("node_heartbeat", (role, gateway_status, node_id, instance)) == 1

    def deregister(self, node_id: str, instance: str) -> None:
        self.execute("deregister_node", (node_id, instance))

    def nodes(self) -> list[Node]:
        return [Node(r[0], r[1], r[2], (r[3], r[4], r[5], r[6]), r[7], r[8], r[9], r[10],
                     None if r[11] is None else float(r[11])) for r in self.fetchall("read_nodes")]

    # -- observations --------------------------------------------------------------------
    def record_observation(self, master_id: str, node_id: str, ok: bool) -> None:
        self.execute("record_observation", (master_id, node_id, 1 if ok else 0))

    def observations(self) -> list[tuple[str, str, float | None, float | None]]:
        return [(r[0], r[1], None if r[2] is None else float(r[2]), None if r[3] is None else float(r[3]))
                for r in self.fetchall("read_observations")]

    # -- settings ------------------------------------------------------------------------
    def settings(self) -> dict[str, tuple[Any, int]]:
        return {name: (json.loads(value), int(rev)) for name, value, rev in self.fetchall("read_settings")}

    def write_setting(self, name: str, value: Any, holder: str, lease_epoch: int) -> bool:
        return self.execute("write_setting", (name, json.dumps(value, sort_keys=True), holder, lease_epoch)) > 0

    # -- messages ------------------------------------------------------------------------
    def insert_message(self, msg_id: str, shard_id: int, recipient: str, body: str, owner: str,
                       epoch: int) -> str:
        """Persist one message, fenced: one transaction that locks the shard row against a
        concurrent promotion and inserts only if the row still names ``owner`` at ``epoch``.
        Returns "stored", "duplicate" (the id was stored before) or "fenced"."""
        # A connection left dead by a database restart fails at BEGIN, before anything ran:
        # that much is repeated on a fresh connection; a failure later in the transaction is not.
        self._once_more_if_stale(lambda cur: cur.execute("BEGIN"))
        with self.cursor() as cur:
            try:
                cur.execute(self.q("lock_shard_for_write"), (shard_id,))
                row = cur.fetchone()
                if not row or row[0] != owner or int(row[1]) != epoch or not int(row[2]):
                    cur.execute("ROLLBACK")
                    return "fenced"
                try:
                    cur.execute(self.q("insert_message"), (msg_id, shard_id, recipient, body, owner, epoch))
                except self._driver_errors() as exc:
                    if self._is_duplicate(exc):
                        cur.execute("ROLLBACK")
                        return "duplicate"
                    raise
                cur.execute("COMMIT")
                return "stored"
            except BaseException:
                try:
                    cur.execute("ROLLBACK")
                except Exception:
                    pass
                raise

    def read_message(self, msg_id: str) -> dict[str, Any] | None:
        rows = self.fetchall("read_message", (msg_id,))
        if not rows:
            return None
        r = rows[0]
        return {"id": r[0], "shard": int(r[1]), "to": r[2], "status": r[3], "owner": r[4], "epoch": int(r[5])}

    def message_ids(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            with self.cursor() as cur:
                cur.execute(f"SELECT id FROM {S.T_MESSAGES} WHERE id IN ({', '.join(['%s'] * len(chunk))})",
                            tuple(chunk))
                found.update(r[0] for r in cur.fetchall())
        return found

    def mark_delivered(self, shard_id: int, min_age: float, owner: str, epoch: int, db_schema: int) -> int:
        name = "mark_delivered_v2" if db_schema >= 2 else "mark_delivered_v1"
        return self.execute(name, (shard_id, min_age, shard_id, owner, epoch))

    def mark_read(self, msg_id: str) -> int:
        """Mark a stored message read; 0 when it is unknown or already read."""
        return self.execute("mark_message_read", (msg_id,))

    def gc_batch(self, shard_id: int, status: str, batch: int, after_id: str = "") -> tuple[int, str | None]:
        """Delete the next ``batch`` messages of ``status`` (one of S.GC_STATUSES) in the shard
        whose id follows ``after_id`` ("" = from the first). Returns (rows deleted, the cursor for
        the next batch), the cursor None once this status has no more rows to walk."""
        found, last_id = self.fetchall("gc_batch_end", (shard_id, status, after_id, batch))[0]
        if not found:
            return 0, None
        deleted = self.execute("gc_batch", (shard_id, status, after_id, last_id))
        # Fewer than batch found: the walk of this status is done.
        return deleted, (last_id if int(found) >= batch else None)

    def count_messages(self) -> dict[str, int]:
        return {r[0]: int(r[1]) for r in self.fetchall("count_messages")}

    # -- users and tokens ----------------------------------------------------------------
    def ensure_admin(self, password_hash: str) -> None:
        self.execute("ensure_admin", ("admin", password_hash))

    def read_user(self, username: str) -> tuple[str, str, bool] | None:
        rows = self.fetchall("read_user", (username,))
        return (rows[0][0], rows[0][1], bool(int(rows[0][2]))) if rows else None

    def set_password(self, username: str, password_hash: str) -> None:
        self.execute("set_password", (password_hash, username))

    def insert_token(self, token: str, username: str, ttl: float) -> None:
        self.execute("insert_token", (token, username, ttl))

    def check_token(self, token: str) -> tuple[str, float] | None:
        rows = self.fetchall("check_token", (token,))
        return (rows[0][0], float(rows[0][1])) if rows else None

    # -- stats ---------------------------------------------------------------------------
    def write_stat(self, name: str, value: Any) -> None:
        self.execute("write_stat", (name, json.dumps(value, sort_keys=True)))

    def stats(self) -> dict[str, tuple[Any, float]]:
        return {n: (json.loads(v), float(a or 0)) for n, v, a in self.fetchall("read_stats")}

    def db_now(self) -> Any:
        return self.fetchall("db_now")[0][0]


class MySQLStorage(Storage):
    engine = S.MYSQL

    def _connect(self, database: str | None) -> Any:
        import pymysql

        # TLS: with a CA, PyMySQL verifies the server's certificate and host name; without
        # one it encrypts only (and presents the client certificate, if any).
        tls = {"ssl": dict(self.tls)} if self.tls else {}
        try:
            conn = pymysql.connect(
                host=self.host, port=self.port, user=self.user, password=self.password, database=database,
                autocommit=True, connect_timeout=max(1, int(self.timeout)), read_timeout=self.timeout,
                write_timeout=self.timeout, charset="utf8mb4",
                init_command=f"SET time_zone = '+00:00', innodb_lock_wait_timeout = {max(1, math.ceil(self.timeout))}",
                **tls)
        except (pymysql.MySQLError, OSError) as exc:  # OSError: a TLS file missing or unreadable, a bad handshake
            raise StorageError(f"cannot connect to MySQL at {self.host}:{self.port}: {exc}") from exc
        if self.txn_idle_timeout:
            cur = conn.cursor()
            try:  # MariaDB >= 10.3; MySQL has no such variable (then wait_timeout bounds it)
                cur.execute(f"SET SESSION idle_transaction_timeout = {max(1, math.ceil(self.txn_idle_timeout))}")
            except pymysql.MySQLError:
                pass
            finally:
                cur.close()
        return conn

    def _is_duplicate(self, exc: Exception) -> bool:
        import pymysql

        return isinstance(exc, pymysql.err.IntegrityError) and exc.args and exc.args[0] == 1062

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        import pymysql

        return (pymysql.MySQLError, StorageError, OSError)

    def _is_disconnect(self, exc: BaseException) -> bool:
        import pymysql

        # 2006 server has gone away, 2013 lost connection during query, 2055 lost connection
        # (with the OS error); InterfaceError: PyMySQL's own "the connection is closed".
        return isinstance(exc, pymysql.err.InterfaceError) or (
            isinstance(exc, pymysql.err.OperationalError) and bool(exc.args) and exc.args[0] in (2006, 2013, 2055))

    def _fileno(self, conn: Any) -> int | None:
        sock = getattr(conn, "_sock", None)  # PyMySQL keeps the socket there; None once closed
        return sock.fileno() if sock is not None else None


class PgStorage(Storage):
    engine = S.PGSQL

    def _connect(self, database: str | None) -> Any:
        import psycopg2

        tls: dict[str, str] = {}
        if self.tls:
            # verify-full with a CA (certificate and host name checked), else encrypt only.
            tls["sslmode"] = "verify-full" if "ca" in self.tls else "require"
            names = {"ca": "sslrootcert", "cert": "sslcert", "key": "sslkey"}
            tls.update({names[k]: v for k, v in self.tls.items()})
        try:
            conn = psycopg2.connect(
                host=self.host, port=self.port, user=self.user, password=self.password,
                dbname=database or "postgres", connect_timeout=max(1, int(self.timeout)),
                options=f"-c statement_timeout={int(self.timeout * 1000)} -c lock_timeout={int(self.timeout * 1000)}"
                        + (f" -c idle_in_transaction_session_timeout={int(self.txn_idle_timeout * 1000)}"
                           if self.txn_idle_timeout else ""),
                keepalives=1, keepalives_idle=5, keepalives_interval=2, keepalives_count=2,
                application_name="wabiz-standin", **tls)
        except psycopg2.Error as exc:
            raise StorageError(f"cannot connect to PostgreSQL at {self.host}:{self.port}: {exc}".strip()) from exc
        conn.autocommit = True
        return conn

    def _is_duplicate(self, exc: Exception) -> bool:
        return getattr(exc, "pgcode", None) == "23505"

    def _driver_errors(self) -> tuple[type[BaseException], ...]:
        import psycopg2

        return (psycopg2.Error, StorageError, OSError)

    def _is_disconnect(self, exc: BaseException) -> bool:
        import psycopg2

        # A lost connection carries no SQLSTATE, or a connection-exception (08...) or
        # shutdown one (57P01-03: the server stopping, or pg_terminate_backend); a lock or
        # statement timeout is an OperationalError too, but with a code of its own.
        code = getattr(exc, "pgcode", None) or ""
        return isinstance(exc, (psycopg2.OperationalError, psycopg2.InterfaceError)) and (
            not code or code.startswith("08") or code in ("57P01", "57P02", "57P03"))

    def _fileno(self, conn: Any) -> int | None:
        return None if conn.closed else conn.fileno()


def make_storage(engine: str, host: str, port: int, user: str, password: str, database: str,
                 timeout: float = 5.0, idle_timeout_ms: int | None = None,
                 txn_idle_timeout: float | None = None) -> Storage:
    cls = MySQLStorage if S.normalize_engine(engine) == S.MYSQL else PgStorage
    return cls(host, port, user, password, database, timeout, idle_timeout_ms, txn_idle_timeout)


class AsyncStore:
    """Runs Storage calls in a thread pool, each bounded by a timeout, so a hung database
    never blocks a node's event loop (a master's renew deadline depends on this)."""

    def __init__(self, storage: Storage, workers: int = 4, timeout: float = 5.0) -> None:
        self.storage = storage
        self.timeout = timeout
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="db")

    async def call(self, fn: Callable[..., Any] | str, *args: Any, timeout: float | None = None) -> Any:
        func = getattr(self.storage, fn) if isinstance(fn, str) else fn
        loop = asyncio.get_running_loop()
        fut = loop.run_in_executor(self.pool, functools.partial(func, *args))
        try:
            return await asyncio.wait_for(fut, timeout or self.timeout)
        except TimeoutError:
            raise StorageError(f"database call {getattr(func, '__name__', fn)} timed out") from None

    def close(self) -> None:
        self.pool.shutdown(wait=False)
