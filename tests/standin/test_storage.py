"""The storage layer and the schema against real MariaDB and PostgreSQL: the lease and its
fencing epoch, fenced message writes, schema creation, upgrade and the too-new refusal."""

from __future__ import annotations

import time
import uuid
import zlib
from collections.abc import Iterator

import pytest
from wabiz_standin.schema import S
from wabiz_standin.storage import SchemaTooNew, Storage, make_storage

from tests.standin.harness import drop_database, engine_of


@pytest.fixture
def storage(db_server) -> Iterator[Storage]:
    name = S.database_name(f"t{uuid.uuid4().hex[:8]}_")
    st = make_storage(engine_of(db_server), db_server.host, db_server.port, db_server.admin_user,
                      db_server.admin_password, name, timeout=5)
    assert st.ensure_database() is True
    assert st.ensure_database() is False
    st.bootstrap()
    yield st
    st.close()
    drop_database(db_server, name)


def test_routing_hash_is_stable_crc32() -> None:
    assert S.shard_for("16505551234", 4) == zlib.crc32(b"16505551234") % 4
    assert {S.shard_for(str(n), 1) for n in range(50)} == {0}
    assert len({S.shard_for(str(15550000000 + n), 8) for n in range(200)}) == 8


def test_schema_versions_per_release() -> None:
    assert S.schema_version_for("2.53.1") == 1
    assert S.schema_version_for("2.53.2") == 2
    assert S.normalize_engine("postgresql") == S.PGSQL and S.normalize_engine("mariadb") == S.MYSQL
    for engine in S.ENGINES:
        for name in S.STATEMENT_NAMES:
            assert S.statement(engine, name)


def test_lease_epoch_increases_and_only_a_live_holder_renews(storage: Storage) -> None:
    e1 = storage.acquire_lease("m1", 1.0)
    assert e1 == 1
    assert storage.acquire_lease("m2", 1.0) is None, "a live lease must not be taken"
    assert storage.renew_lease("m1", e1, 1.0)
    assert not storage.renew_lease("m2", e1, 1.0)
    lease = storage.read_lease()
    assert (lease.holder, lease.epoch, lease.expired) == ("m1", 1, False)
    assert 0 < lease.seconds_left <= 1.0
    time.sleep(1.2)
    assert storage.read_lease().expired
    assert not storage.renew_lease("m1", e1, 1.0), "a lapsed lease must be re-acquired, not renewed"
    e2 = storage.acquire_lease("m2", 5.0)
    assert e2 == e1 + 1
    assert storage.acquire_lease("m1", 5.0) is None


def test_schema_created_then_upgraded_and_too_new_refused(storage: Storage) -> None:
    assert storage.upgrade_schema(1, "m1") == (0, 1)
    assert storage.schema_version() == (1, 1)
    assert storage.upgrade_schema(2, "m1") == (1, 2)
    assert storage.schema_version() == (2, 1)
    assert storage.check_compatible(1) == (2, 1), "2.53.1 code still runs on the additive schema 2"
    with storage.cursor() as cur:
        cur.execute(f"UPDATE {S.T_SCHEMA} SET version = 3, compat = 3")
    with pytest.raises(SchemaTooNew, match="upgrade the node"):
        storage.check_compatible(2)


def test_message_writes_are_fenced_by_the_shard_epoch(storage: Storage) -> None:
    storage.upgrade_schema(S.SCHEMA_VERSION, "m1")
    epoch = storage.acquire_lease("m1", 30)
    shard = storage.shard_map()[0]
    assert storage.promote(0, shard.epoch, "c1", "m1", epoch)
    assert not storage.promote(0, shard.epoch, "c2", "m1", epoch), "a stale expected shard epoch is refused"
    assert not storage.promote(0, shard.epoch + 1, "c2", "m1", epoch + 7), "a stale lease epoch is refused"
    assert storage.insert_message("a1", 0, "123", "x", "c1", 1) == "stored"
    assert storage.insert_message("a1", 0, "123", "x", "c1", 1) == "duplicate"
    assert storage.promote(0, 1, "c2", "m1", epoch)
    assert storage.insert_message("a2", 0, "123", "x", "c1", 1) == "fenced", "old owner must be refused"
    assert storage.insert_message("a3", 0, "123", "x", "c2", 1) == "fenced", "new owner with a wrong epoch too"
    assert storage.insert_message("a4", 0, "123", "x", "c2", 2) == "stored"
    assert storage.message_ids(["a1", "a2", "a3", "a4"]) == {"a1", "a4"}


def test_read_statements_match_their_documented_columns(storage: Storage) -> None:
    storage.upgrade_schema(S.SCHEMA_VERSION, "m1")
    storage.acquire_lease("m1", 30)
    storage.register_node("c1", "coreapp", "h", (1, 2, 3, 4), "2.53.2", "i", "coreapp", "disconnected")
    for name, cols in S.COLUMNS.items():
        params = ("x",) if name == "read_message" else ()
        with storage.cursor() as cur:
            cur.execute(S.statement(storage.engine, name), params)
            assert len(cur.description) == len(cols), name
    lease = S.rows_as_dicts("read_lease", storage.fetchall("read_lease"))[0]
    assert lease["holder"] == "m1" and lease["expired"] == 0 and 29 < lease["seconds_left"] <= 30
    nodes = S.rows_as_dicts("read_nodes", storage.fetchall("read_nodes"))
    assert nodes[0]["node_id"] == "c1" and 0 <= nodes[0]["heartbeat_age"] < 5
    shards = S.rows_as_dicts("read_shard_map", storage.fetchall("read_shard_map"))
    assert len(shards) == S.MAX_SHARDS and [s["shard_id"] for s in shards if s["active"]] == [0]


def test_a_paused_writer_cannot_block_its_replacement(db_server, storage: Storage) -> None:
    """An owner paused inside a message write holds the shard row's share lock; the server
    aborts its idle transaction after txn_idle_timeout, so the promotion goes through and the
    paused writer's commit fails."""
    storage.upgrade_schema(S.SCHEMA_VERSION, "m1")
    epoch = storage.acquire_lease("m1", 60)
    assert storage.promote(0, 0, "c1", "m1", epoch)
    paused = make_storage(engine_of(db_server), db_server.host, db_server.port, db_server.admin_user,
                          db_server.admin_password, storage.database, timeout=5, txn_idle_timeout=1)
    with paused.cursor() as cur:  # "paused" right after taking the lock, before INSERT/COMMIT
        cur.execute("BEGIN")
        cur.execute(paused.q("lock_shard_for_write"), (0,))
        assert cur.fetchone()[0] == "c1"
        t0 = time.monotonic()
        assert storage.promote(0, 1, "c2", "m1", epoch), "the promotion is not blocked for long"
        waited = time.monotonic() - t0
        time.sleep(0.2)
        with pytest.raises(Exception):  # noqa: B017 - the driver's own error for a killed session
            cur.execute(paused.q("insert_message"), ("p1", 0, "1", "x", "c1", 1))
            cur.execute("COMMIT")
    paused.close()
    print(f"promotion waited {waited:.2f}s for the paused writer's transaction to be aborted")
    assert waited < 4
    assert storage.message_ids(["p1"]) == set()


def test_gc_batch_walks_one_status_of_one_shard_from_its_cursor(storage: Storage) -> None:
    """gc_batch deletes the next batch of one collectable status of one shard after the cursor
    and hands back the next cursor; 'sent', unread and other shards' rows stay, a status
    outside S.GC_STATUSES deletes nothing, and a walk over several batches deletes every
    collectable row."""
    storage.upgrade_schema(S.SCHEMA_VERSION, "m1")
    statuses = ("delivered", "read", "sent", S.STATUS_INCOMING_UNREAD)
    rows = [(f"m{n:03d}", n % 3 // 2, statuses[n % 4]) for n in range(120)]  # shards 0, 0, 1, ...
    with storage.cursor() as cur:
        for msg_id, shard, status in rows:
            cur.execute(f"INSERT INTO {S.T_MESSAGES} (id, shard_id, recipient, body, status, owner, epoch, "
                        f"created_at) VALUES (%s, %s, '1', '', %s, 'c1', 1, {S._now(storage.engine)})",
                        (msg_id, shard, status))
    delivered = sorted(i for i, shard, status in rows if shard == 0 and status == "delivered")
    assert storage.gc_batch(0, "delivered", 4) == (4, delivered[3])
    assert storage.gc_batch(0, "delivered", 4, delivered[3]) == (4, delivered[7])
    left = [i for i in delivered if i in storage.message_ids(delivered)]
    assert left == delivered[8:], "each batch starts after the cursor"
    assert storage.gc_batch(0, "sent", 1000) == (0, None)
    assert storage.gc_batch(0, S.STATUS_INCOMING_UNREAD, 1000) == (0, None)
    # A walk to the end, as the coreapp runs it; the last batch finds fewer than batch rows.
    deleted = 8
    for status in S.GC_STATUSES:
        after: str | None = ""
        while after is not None:
            n, after = storage.gc_batch(0, status, 4, after)
            deleted += n
    keep = {i for i, shard, status in rows if shard != 0 or status not in S.GC_STATUSES}
    assert deleted == len(rows) - len(keep)
    assert storage.message_ids([i for i, _s, _t in rows]) == keep
    assert storage.gc_batch(0, "read", 4) == (0, None)


def test_gc_batch_cursor_leaves_rows_behind_it_for_the_next_run(storage: Storage) -> None:
    """A row that becomes collectable behind the cursor is left to the next run (documented in
    cluster_schema); one ahead of it is deleted in this run."""
    storage.upgrade_schema(S.SCHEMA_VERSION, "m1")
    with storage.cursor() as cur:
        for msg_id in ("a1", "a2", "a3", "b1", "c1", "c2", "c3"):
            cur.execute(f"INSERT INTO {S.T_MESSAGES} (id, shard_id, recipient, body, status, owner, epoch, "
                        f"created_at) VALUES (%s, 0, '1', '', %s, 'c1', 1, {S._now(storage.engine)})",
                        (msg_id, "sent" if msg_id in ("a3", "c3") else "delivered"))
    assert storage.gc_batch(0, "delivered", 3) == (3, "b1")
    with storage.cursor() as cur:
        cur.execute(f"UPDATE {S.T_MESSAGES} SET status = 'delivered' WHERE id IN ('a3', 'c3')")
    assert storage.gc_batch(0, "delivered", 3, "b1") == (3, "c3")
    assert storage.gc_batch(0, "delivered", 3, "c3") == (0, None)
    assert storage.message_ids(["a1", "a2", "a3", "b1", "c1", "c2", "c3"]) == {"a3"}
    assert storage.gc_batch(0, "delivered", 3) == (1, None), "the next run starts from the first id"


def _kill_session_of(db_server, storage: Storage) -> None:
    """End ``storage``'s kept connection from the server side, as a database restart does."""
    with storage.cursor() as cur:
        cur.execute("SELECT CONNECTION_ID()" if storage.engine == S.MYSQL else "SELECT pg_backend_pid()")
        session = cur.fetchone()[0]
    admin = make_storage(engine_of(db_server), db_server.host, db_server.port, db_server.admin_user,
                         db_server.admin_password, storage.database, timeout=5)
    with admin.cursor() as cur:
        cur.execute(f"KILL {int(session)}" if storage.engine == S.MYSQL else f"SELECT pg_terminate_backend({int(session)})")
    admin.close()
    time.sleep(0.2)


def test_reads_and_writes_survive_a_connection_the_server_ended(db_server, storage: Storage) -> None:
    """Found by the fault campaign (restart_database): after a database restart every thread's
    kept connection is dead, and the webapp answered the next login with 500 "Service not
    ready ... Lost connection to MySQL server during query" (a read), and in a later run
    (round 21, seven rounds after a restart) again, from the login's token write on a thread
    that had not run since. A kept connection the server ended is noticed before use (its
    socket is readable while no statement is pending) and replaced; a read, and a message
    write whose BEGIN is what fails, also go once more on a fresh connection."""
    storage.upgrade_schema(S.SCHEMA_VERSION, "m1")
    epoch = storage.acquire_lease("m1", 60)
    assert storage.promote(0, 0, "c1", "m1", epoch)
    storage.ensure_admin("hash")
    _kill_session_of(db_server, storage)
    assert storage.read_user("admin") is not None, "a read on a dead kept connection is tried once more"
    _kill_session_of(db_server, storage)
    assert storage.insert_message("k1", 0, "1", "x", "c1", 1) == "stored"
    _kill_session_of(db_server, storage)
    storage.set_password("admin", "other")  # a plain write on the thread whose connection was ended
    assert storage.read_user("admin")[1] == "other"
    _kill_session_of(db_server, storage)
    storage.insert_token("t1", "admin", 60)
    assert storage.check_token("t1") is not None
    assert storage.message_ids(["k1"]) == {"k1"}
