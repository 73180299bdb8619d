"""Message garbage-collection benchmark.

A stand-in cluster (2 masters, 2 coreapps, 1 webapp; processes on loopback) on the test MariaDB
or PostgreSQL server gets a messages table of ``rows`` rows, filled server-side in SQL. A steady
client sends messages through the webapp's HTTPS API (POST /v1/messages, then GET of the same id,
one request after another) for an idle window, and keeps sending while the collection runs as a
user would run it: ``ansible localhost -m wabiz.cluster.message_gc``. Reported: fill time, rows
before/after (the module's result and a direct COUNT), GC time, deletion rate, and the API
latency during GC against idle.

    python -m bench.gc --quick                 # 100 000 rows, both engines
    python -m bench.gc --rows 10000000 --engine postgresql
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ROOT, distribution, percentile, pyplot, save_figure, say, write_json
from tests.cluster_modules.conftest import API_KEY, PASSWORD, Runner, make_cert
from tests.standin.harness import Cluster, S, wait_for  # S: the schema names (cluster_schema)
from tests.support import dbservers

FULL_ROWS = 10_000_000
QUICK_ROWS = 100_000
IDLE_SECONDS = 20.0
QUICK_IDLE_SECONDS = 6.0
FILL_ID_PREFIX = "gBFILL"  # the webapp's own ids start with gBEG: fill rows and client rows stay apart
FILL_ONLY = f"WHERE id LIKE '{FILL_ID_PREFIX}%'"
FILL_SPAN_SECONDS = 30 * 86400  # fill rows are spread over the last 30 days

# Production timers, except the master cycle (heartbeat_interval 1 s instead of 5 s) so that a
# fresh cluster promotes its coreapp quickly. The short test timers (harness.FAST_TIMERS: 2 s DB
# timeout, 4 s unhealthy interval, 1.5 s fence) would turn a database slowed down by the
# collection into a failover, which is not what this benchmark measures.
BENCH_TIMERS = {"WA_DEFAULT_HEARTBEAT_INTERVAL": "1"}

# Status mix of the fill. The stand-in's collection deletes 'delivered' and 'read' rows of the
# shard a coreapp owns and keeps everything else; 'received' is an incoming message not read yet
# (cluster_schema.STATUS_INCOMING_UNREAD), which the collection must keep. No 'sent' rows: the
# owner would turn every old one into 'delivered' on its next tick, one huge UPDATE.
# seq % 10: 0 -> received (10 %, kept), 1-2 -> read (20 %), 3-9 -> delivered (70 %).
KEEP_STATUS = S.STATUS_INCOMING_UNREAD
COLLECTED = ("delivered", "read")

# Quantiles (percent) stored for the CDFs: fine in the tail, where GC shows.
CDF_QUANTILES = ([float(q) for q in range(0, 90)] + [90 + q / 2 for q in range(0, 18)]
                 + [99 + q / 10 for q in range(0, 10)] + [99.95, 100.0])


class GcBenchFailed(RuntimeError):
    """The benchmark ran, but its outcome is wrong (rows left, failed requests); carries the result."""

    def __init__(self, msg: str, result: dict[str, Any]) -> None:
        super().__init__(msg)
        self.result = result


# --- database access (the benchmark's own connection, not the cluster's code) -------------------

def _endpoint(engine: str) -> Any:
    """The test server of ``engine``, started if it does not answer (idempotent, shared)."""
    if engine == "mysql":
        return dbservers.start_mariadb()
    if engine == "postgresql":
        return dbservers.start_postgres()
    raise ValueError(f"unknown engine {engine!r} (mysql or postgresql)")


def _connect(ep: Any, database: str) -> Any:
    """An autocommit connection without statement timeouts (the fill runs for minutes)."""
    if ep.engine == "mysql":
        import pymysql

        return pymysql.connect(host=ep.host, port=ep.port, user=ep.admin_user, password=ep.admin_password,
                               database=database, autocommit=True, charset="utf8mb4",
                               init_command="SET time_zone = '+00:00'")  # the stand-in's sessions run in UTC
    import psycopg2

    conn = psycopg2.connect(host=ep.host, port=ep.port, user=ep.admin_user, password=ep.admin_password,
                            dbname=database, application_name="wabiz-bench-gc")
    conn.autocommit = True
    return conn


def _sql(conn: Any, query: str, params: tuple = ()) -> list[tuple]:
    cur = conn.cursor()
    try:
        # No parameters, no %-formatting by the driver: LIKE 'x%' stays as written.
        cur.execute(query, params or None)
        return list(cur.fetchall()) if cur.description else []
    finally:
        cur.close()


def _server_info(conn: Any, engine: str) -> dict[str, Any]:
    if engine == "mysql":
        version, pool = _sql(conn, "SELECT @@version, @@innodb_buffer_pool_size")[0]
        return {"version": f"MariaDB {version}", "innodb_buffer_pool_size": int(pool)}
    version = _sql(conn, "SHOW server_version")[0][0]
    return {"version": f"PostgreSQL {version}", "shared_buffers": _sql(conn, "SHOW shared_buffers")[0][0]}


def counts_by_status(conn: Any, where: str = "") -> dict[str, int]:
    """A direct COUNT(*) by status of the messages table (independent of the module)."""
    rows = _sql(conn, f"SELECT status, COUNT(*) FROM {S.T_MESSAGES} {where} GROUP BY status")
    return {str(s): int(n) for s, n in sorted(rows)}


def expected_counts(rows: int) -> dict[str, int]:
    """Rows per status that fill() writes for ids 1..rows (see the mix above)."""
    def how_many(residues: tuple[int, ...]) -> int:
        return sum(rows // 10 + (1 if 0 < r <= rows % 10 else 0) for r in residues)

    return {k: n for k, n in (("delivered", how_many((3, 4, 5, 6, 7, 8, 9))), ("read", how_many((1, 2))),
                              (KEEP_STATUS, how_many((0,)))) if n}


def fill(conn: Any, engine: str, rows: int, shard: int, owner: str, epoch: int, with_delivered_at: bool,
         progress: Callable[[str], None] = say) -> dict[str, Any]:
    """Insert ``rows`` messages in shard ``shard`` in server-side generated chunks; then ANALYZE.

    Rows are generated by the server (MariaDB's sequence engine, PostgreSQL's generate_series),
    in id order so each index grows at its end, one committed transaction per chunk (a single
    10-million-row transaction would swell the undo log / WAL for nothing)."""
    base = _sql(conn, "SELECT NOW(6) - INTERVAL 1 HOUR" if engine == "mysql"
                else "SELECT clock_timestamp() - interval '1 hour'")[0][0]
    step = FILL_SPAN_SECONDS / max(1, rows)  # seconds between two consecutive messages
    cols = "id, shard_id, recipient, body, status, owner, epoch, created_at" + (
        ", delivered_at" if with_delivered_at else "")
    if engine == "mysql":
        created = "TIMESTAMPADD(MICROSECOND, -ROUND((%s - seq) * %s), %s)"
        delivered = (", CASE WHEN seq MOD 10 = 0 THEN NULL ELSE TIMESTAMPADD(MICROSECOND, "
                     "-ROUND((%s - seq) * %s) + 2000000, %s) END" if with_delivered_at else "")
        query = (f"INSERT INTO {S.T_MESSAGES} ({cols}) "
                 f"SELECT CONCAT('{FILL_ID_PREFIX}', LPAD(seq, 12, '0')), %s, "
                 "CONCAT('1555', LPAD(seq MOD 9999991, 7, '0')), CONCAT('Your order ', seq, ' has shipped'), "
                 f"CASE seq MOD 10 WHEN 0 THEN '{KEEP_STATUS}' WHEN 1 THEN 'read' WHEN 2 THEN 'read' "
                 f"ELSE 'delivered' END, %s, %s, {created}{delivered} FROM seq_{{lo}}_to_{{hi}}")
        chunk = 250_000  # 64 MB buffer pool on the test server: keep each transaction modest
        us = step * 1e6

        def params(lo: int, hi: int) -> tuple:
            return (shard, owner, epoch, rows, us, base) + ((rows, us, base) if with_delivered_at else ())
    else:
        created = "%s::timestamptz - make_interval(secs => (%s - g) * %s)"
        delivered = (", CASE WHEN g %% 10 = 0 THEN NULL ELSE %s::timestamptz - make_interval(secs => "
                     "(%s - g) * %s - 2) END" if with_delivered_at else "")
        query = (f"INSERT INTO {S.T_MESSAGES} ({cols}) "
                 f"SELECT '{FILL_ID_PREFIX}' || lpad(g::text, 12, '0'), %s, "
                 "'1555' || lpad((g %% 9999991)::text, 7, '0'), 'Your order ' || g || ' has shipped', "
                 f"CASE g %% 10 WHEN 0 THEN '{KEEP_STATUS}' WHEN 1 THEN 'read' WHEN 2 THEN 'read' "
                 f"ELSE 'delivered' END, %s, %s, {created}{delivered} FROM generate_series({{lo}}, {{hi}}) g")
        chunk = 1_000_000

        def params(lo: int, hi: int) -> tuple:
            return (shard, owner, epoch, base, rows, step) + ((base, rows, step) if with_delivered_at else ())
    started = time.monotonic()
    done = 0
    last_say = 0.0
    cur = conn.cursor()
    try:
        for lo in range(1, rows + 1, chunk):
            hi = min(rows, lo + chunk - 1)
            cur.execute(query.format(lo=lo, hi=hi), params(lo, hi))
            done = hi
            took = time.monotonic() - started
            if took - last_say >= 10 or done == rows:
                last_say = took
                rate = done / took if took else 0
                progress(f"{engine}: filled {done:,}/{rows:,} rows in {took:.0f} s ({rate:,.0f} rows/s, "
                         f"about {(rows - done) / rate if rate else 0:.0f} s to go)")
        insert_seconds = time.monotonic() - started
        # Fresh statistics, as InnoDB's persistent stats / autovacuum would soon have: the plans of
        # the collection's DELETE depend on them. On PostgreSQL a VACUUM too, as after any bulk
        # load: otherwise autovacuum's insert-triggered pass over the new rows (and the hint-bit
        # writes of the first reader) would land in the idle window.
        cur.execute(f"ANALYZE TABLE {S.T_MESSAGES}" if engine == "mysql" else f"VACUUM (ANALYZE) {S.T_MESSAGES}")
        if cur.description:
            cur.fetchall()
    finally:
        cur.close()
    seconds = time.monotonic() - started
    return {"rows": rows, "seconds": round(seconds, 2), "insert_seconds": round(insert_seconds, 2),
            "rows_per_second": round(rows / seconds), "chunk_rows": chunk,
            "method": (f"INSERT ... SELECT FROM seq_LO_to_HI (sequence engine), {chunk:,} rows per transaction, "
                       "then ANALYZE TABLE" if engine == "mysql" else
                       f"INSERT ... SELECT FROM generate_series(LO, HI), {chunk:,} rows per transaction, "
                       "then VACUUM (ANALYZE)")}


# --- the client -------------------------------------------------------------------------------

class SteadyClient(threading.Thread):
    """One request after another through the webapp's HTTPS API (kept-alive connection, verified
    certificate, Bearer token): POST /v1/messages, then GET /v1/messages/{id} of that message.

    ``samples`` holds (start, kind, seconds, ok, detail), start on time.monotonic()."""

    def __init__(self, port: int, cafile: Path, token: str, timeout: float = 15.0) -> None:
        super().__init__(name="gc-bench-client", daemon=True)
        self.port, self.token, self.timeout = port, token, timeout
        self.ctx = ssl.create_default_context(cafile=str(cafile))
        self.conn: http.client.HTTPSConnection | None = None
        self.stop = threading.Event()
        self.samples: list[tuple[float, str, float, bool, str]] = []
        self.rng = random.Random(7)

    def _request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        if self.conn is None:
            self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ctx, timeout=self.timeout)
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        payload = resp.read()
        try:
            return resp.status, json.loads(payload)
        except ValueError:
            return resp.status, payload[:200].decode(errors="replace")

    def _timed(self, kind: str, method: str, path: str, body: Any, want: int) -> Any:
        start = time.monotonic()
        try:
            status, answer = self._request(method, path, body)
            ok = status == want
            detail = "" if ok else f"HTTP {status}: {str(answer)[:200]}"
        except (OSError, http.client.HTTPException) as exc:
            # A broken connection is a failed request; reconnect for the next one.
            answer, ok, detail = None, False, f"{type(exc).__name__}: {exc}"
            if self.conn is not None:
                self.conn.close()
            self.conn = None
        self.samples.append((start, kind, time.monotonic() - start, ok, detail))
        return answer if ok else None

    def run(self) -> None:
        while not self.stop.is_set():
            to = "1555" + "".join(self.rng.choice("0123456789") for _ in range(7))
            sent = self._timed("post", "POST", "/v1/messages",
                               {"to": to, "type": "text", "text": {"body": "gc bench"}}, 201)
            msg_id = (sent or {}).get("messages", [{}])[0].get("id") if isinstance(sent, dict) else None
            if msg_id and not self.stop.is_set():
                # Read it back at once: a 404 here would be a lost message.
                self._timed("get", "GET", f"/v1/messages/{msg_id}", None, 200)
        if self.conn is not None:
            self.conn.close()


# --- the module, as a user runs it ---------------------------------------------------------------

def run_module(workdir: Path, args: dict[str, Any], timeout: float,
               progress: Callable[[float], None] | None = None, every: float = 15.0) -> tuple[dict[str, Any], float]:
    """``ansible localhost -m wabiz.cluster.message_gc -a ARGS`` from the checkout (ansible.cfg
    applies), with the json callback; (the module's result, wall seconds). ``progress(seconds)``
    is called every ``every`` seconds while it runs (a 10-million-row collection takes minutes)."""
    collections = workdir / "collections"
    if not (collections / "ansible_collections" / "wabiz" / "cluster").exists():
        (collections / "ansible_collections" / "wabiz").mkdir(parents=True, exist_ok=True)
        (collections / "ansible_collections" / "wabiz" / "cluster").symlink_to(ROOT)
    env = Runner(collections, workdir).env  # the module tests' ansible environment (json callback, temp dirs)
    cmd = [str(Path(sys.executable).parent / "ansible"), "localhost", "-c", "local",
           "-m", "wabiz.cluster.message_gc", "-a", json.dumps(args)]
    out, err = workdir / "ansible.out", workdir / "ansible.err"
    started = time.monotonic()
    with open(out, "wb") as fo, open(err, "wb") as fe:
        proc = subprocess.Popen(cmd, env=env, cwd=str(ROOT), stdout=fo, stderr=fe, stdin=subprocess.DEVNULL)
        try:
            while True:
                try:
                    proc.wait(timeout=every)
                    break
                except subprocess.TimeoutExpired:
                    if time.monotonic() - started > timeout:
                        raise
                    if progress:
                        progress(time.monotonic() - started)
        finally:
            if proc.poll() is None:  # only on a timeout or an interrupt: stop the one we started
                proc.kill()
                proc.wait(10)
    wall = time.monotonic() - started
    stdout = out.read_text(errors="replace")
    try:
        result = json.loads(stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    except (ValueError, KeyError, IndexError):
        raise RuntimeError(f"ansible gave no JSON result (rc {proc.returncode}):\n{stdout[-3000:]}\n"
                           f"{err.read_text(errors='replace')[-3000:]}") from None
    return result, wall


# --- analysis ---------------------------------------------------------------------------------

def _window(samples: list[tuple], lo: float, hi: float, kind: str | None = None) -> list[tuple]:
    return [s for s in samples if lo <= s[0] < hi and (kind is None or s[1] == kind)]


def _latency_ms(samples: list[tuple]) -> dict[str, Any]:
    ok = [s[2] * 1000 for s in samples if s[3]]
    return {**distribution(ok, 2), "failed": sum(1 for s in samples if not s[3])}


def _cdf(samples: list[tuple]) -> list[list[float]]:
    ok = [s[2] * 1000 for s in samples if s[3]]
    return [[q, round(percentile(ok, q), 2)] for q in CDF_QUANTILES] if ok else []


def _timeline(samples: list[tuple], t0: float, end: float) -> dict[str, Any]:
    """Per-bin request count, median and max latency (ms) on seconds from t0: a compact
    latency-over-time record that the plot and the JSON share (a 10-million-row run makes
    hundreds of thousands of requests)."""
    span = max(1e-3, end - t0)
    width = max(0.25, round(span / 1200, 2))
    bins: dict[int, list[float]] = {}
    failed: list[float] = []
    for start, _kind, secs, ok, _detail in samples:
        if ok:
            bins.setdefault(int((start - t0) / width), []).append(secs * 1000)
        else:
            failed.append(round(start - t0, 2))
    out = [[round((i + 0.5) * width, 2), len(v), round(percentile(v, 50), 2), round(max(v), 2)]
           for i, v in sorted(bins.items())]
    return {"bin_seconds": width, "columns": ["t", "n", "p50_ms", "max_ms"], "bins": out, "failed_at": failed}


# --- one engine -------------------------------------------------------------------------------

def run(engine: str, rows: int = FULL_ROWS, idle_seconds: float = IDLE_SECONDS) -> dict[str, Any]:
    """Fill, measure idle, collect with the module while the client keeps sending; the result.

    Raises GcBenchFailed (with the result) when rows that must be kept are not exactly what is
    left, or when any API request failed. The processes are stopped and the database dropped in
    every case."""
    t_run = time.monotonic()
    ep = _endpoint(engine)
    work = Path(tempfile.mkdtemp(prefix=f"wabiz-bench-gc-{engine}-"))
    cert = make_cert(work / "certs")
    cluster = Cluster(ep, work, timers=dict(BENCH_TIMERS), prefix=f"bgc{uuid.uuid4().hex[:6]}_")
    database = S.database_name(cluster.prefix)
    result: dict[str, Any] = {"engine": engine, "rows": rows, "database": database}
    client: SteadyClient | None = None
    conn = None
    ok_end = False
    try:
        say(f"{engine}: starting 2 masters, 2 coreapps, 1 webapp (database {database})")
        for i in (1, 2):
            cluster.start_node("master", f"master{i}")
        for i in (1, 2):
            cluster.start_node("coreapp", f"coreapp{i}")
        cluster.start_node("webapp", "webapp1", {"WA_WEB_CERT_DIR": str(cert.parent)})
        wait_for(cluster.primary_master, 60, what="a primary master")
        wait_for(lambda: len(cluster.connected_coreapps()) == 1, 60, what="a connected coreapp")
        wait_for(lambda: _health(cluster), 60, what="the webapp to serve")
        cluster.login()
        wait_for(lambda: cluster.send("15550000001")[0] == 201, 60, what="a first message to be accepted")
        started_in = time.monotonic() - t_run
        say(f"{engine}: cluster serves after {started_in:.1f} s")

        conn = _connect(ep, database)
        result["server"] = _server_info(conn, engine)
        shard, owner, epoch = _sql(conn, f"SELECT shard_id, owner, epoch FROM {S.T_SHARDS} "
                                         "WHERE active = 1 AND owner IS NOT NULL ORDER BY shard_id")[0]
        schema = int(_sql(conn, f"SELECT version FROM {S.T_SCHEMA} WHERE id = 1")[0][0])
        shards = int(_sql(conn, f"SELECT COUNT(*) FROM {S.T_SHARDS} WHERE active = 1")[0][0])
        result["cluster"] = {"masters": 2, "coreapps": 2, "webapps": 1, "active_shards": shards,
                             "gc_shard": int(shard), "gc_owner": owner, "schema_version": schema,
                             "timers": BENCH_TIMERS, "started_seconds": round(started_in, 1)}

        say(f"{engine}: filling {rows:,} rows in shard {shard} (owner {owner})")
        result["fill"] = fill(conn, engine, rows, int(shard), str(owner), int(epoch), schema >= 2)
        say(f"{engine}: fill done in {result['fill']['seconds']:.1f} s; counting")
        t = time.monotonic()
        fill_before = counts_by_status(conn, FILL_ONLY)
        expect = expected_counts(rows)
        if fill_before != expect:
            raise RuntimeError(f"the fill wrote {fill_before}, expected {expect}")
        must_keep = expect.get(KEEP_STATUS, 0)
        result["count_seconds"] = round(time.monotonic() - t, 2)
        result["fill_counts"] = fill_before
        result["must_keep"] = must_keep
        result["collectable"] = rows - must_keep

        # Idle window: the client alone.
        token = cluster.token
        assert token
        client = SteadyClient(cluster.procs["webapp1"].ports[0], cert, token)
        t0 = time.monotonic()
        client.start()
        time.sleep(1.0)  # TLS handshake and first token check out of the idle sample
        idle_lo = time.monotonic()
        load = {"idle_start": os.getloadavg()[0]}  # the machine may be shared: record how busy it was
        say(f"{engine}: client running; idle window of {idle_seconds:.0f} s")
        time.sleep(idle_seconds)
        gc_start = time.monotonic()

        # Completion comes by webhook callback, as from the real client: point the cluster's webhook
        # at the module's listener. The counts come from GET /v1/stats/db.
        hook_port = _free_port()
        status, answer = cluster.api("PATCH", "/v1/settings/application",
                                     {"webhooks": {"url": f"http://127.0.0.1:{hook_port}/"}})
        if status != 200:
            raise RuntimeError(f"could not set the webhook URL: {status} {answer}")
        args = {"api_url": f"https://127.0.0.1:{cluster.procs['webapp1'].ports[0]}", "api_password": PASSWORD,
                "ca_path": str(cert), "webhook_listen": f"127.0.0.1:{hook_port}",
                # Stop once only the rows that must stay are left; more rounds pick up what the
                # client's messages add meanwhile.
                "threshold": must_keep, "max_rounds": 3, "wait_timeout": 3600}
        say(f"{engine}: running wabiz.cluster.message_gc (threshold {must_keep:,}, max_rounds 3)")
        def progress(took: float) -> None:
            samples = client.samples if client else []
            say(f"{engine}: message_gc running for {took:.0f} s; {owner}: {_control_gc(cluster, str(owner))}; "
                f"client {len(samples):,} requests, {sum(1 for x in samples if not x[3])} failed")

        module, wall = run_module(work, args, timeout=4000, progress=progress)
        gc_hi = time.monotonic()
        load["gc_end"] = os.getloadavg()[0]
        # The module's own run (counts and rounds) ends when ansible returns; the seconds before
        # it are ansible starting up (several seconds of CPU on a small machine), which is neither
        # idle nor GC: those requests are left out of both samples.
        gc_lo = max(gc_start, gc_hi - float(module.get("elapsed_seconds") or wall))
        time.sleep(min(3.0, idle_seconds / 4))  # a short tail after GC, for the timeline
        client.stop.set()
        client.join(30)
        end = time.monotonic()
        say(f"{engine}: module finished in {wall:.1f} s (module's own {module.get('elapsed_seconds')} s); "
            "counting")

        fill_after = counts_by_status(conn, FILL_ONLY)
        all_after = counts_by_status(conn)
        samples = client.samples
        idle_hi = gc_start
        idle, during = _window(samples, idle_lo, idle_hi), _window(samples, gc_lo, gc_hi)
        lat = {"idle": _latency_ms(idle), "during_gc": _latency_ms(during),
               "idle_post": _latency_ms(_window(samples, idle_lo, idle_hi, "post")),
               "during_gc_post": _latency_ms(_window(samples, gc_lo, gc_hi, "post")),
               "idle_get": _latency_ms(_window(samples, idle_lo, idle_hi, "get")),
               "during_gc_get": _latency_ms(_window(samples, gc_lo, gc_hi, "get"))}
        failures = [s for s in samples if not s[3]]
        rounds = module.get("rounds") or []
        round_seconds = sum(float(r.get("seconds") or 0) for r in rounds)
        fill_deleted = rows - sum(fill_after.values())
        result.update({
            "module": {k: module.get(k) for k in ("failed", "msg", "changed", "rows_before", "rows_after", "deleted",
                                                  "collectable", "counts_before", "counts_after", "rounds",
                                                  "stopped_because", "elapsed_seconds", "failure_kind")
                       if k in module},
            "module_args": {k: v for k, v in args.items() if "password" not in k},
            "direct_count_after": {"all": all_after, "fill_rows": fill_after,
                                   "client_rows": {k: all_after.get(k, 0) - fill_after.get(k, 0)
                                                   for k in all_after if all_after.get(k, 0) - fill_after.get(k, 0)}},
            "rows_before": module.get("rows_before"), "rows_after": module.get("rows_after"),
            "rows_after_direct": sum(all_after.values()), "fill_rows_after": sum(fill_after.values()),
            "fill_rows_deleted": fill_deleted,
            "gc_seconds": round(wall, 2), "module_seconds": module.get("elapsed_seconds"),
            "gc_round_seconds": round(round_seconds, 2),
            "deletion_rate_rows_per_s": round(fill_deleted / wall) if wall else None,
            "deletion_rate_rows_per_s_in_rounds": round(fill_deleted / round_seconds) if round_seconds else None,
            "latency_ms": lat,
            "loadavg_1min": load,
            "p99_ratio": (round(lat["during_gc"]["p99"] / lat["idle"]["p99"], 2)
                          if lat["idle"].get("n") and lat["during_gc"].get("n") else None),
            "requests": {"total": len(samples), "failed": len(failures),
                         "failed_examples": [{"t": round(s[0] - t0, 2), "kind": s[1], "detail": s[4]}
                                             for s in failures[:10]]},
            "windows": {"idle": [round(idle_lo - t0, 2), round(idle_hi - t0, 2)],
                        "ansible_started": round(gc_start - t0, 2),
                        "gc": [round(gc_lo - t0, 2), round(gc_hi - t0, 2)]},
            "timeline": _timeline(samples, t0, end),
            "cdf_ms": {"columns": ["percent", "ms"], "idle": _cdf(idle), "during_gc": _cdf(during)},
        })
        ok_end = True
    except BaseException:
        say(f"{engine}: failed; last lines of the nodes' logs:\n{cluster.dump_logs()}")
        raise
    finally:
        if client is not None:
            client.stop.set()
            client.join(30)
        if conn is not None:
            conn.close()
        cluster.close()  # kills the nodes it started (by their Popen) and drops the database
        shutil.rmtree(work, ignore_errors=True)
        result["run_seconds"] = round(time.monotonic() - t_run, 1)
        if ok_end:
            say(f"{engine}: stopped the cluster, dropped {database}; {result['run_seconds']:.0f} s in all")

    problems = []
    if result.get("module", {}).get("failed"):
        problems.append(f"the module failed: {result['module'].get('msg')}")
    if result["fill_rows_after"] != result["must_keep"] or set(result["direct_count_after"]["fill_rows"]) - {
            KEEP_STATUS}:
        problems.append(f"{result['fill_rows_after']:,} filled rows are left ({result['direct_count_after']['fill_rows']})"
                        f", but exactly {result['must_keep']:,} '{KEEP_STATUS}' rows must be kept")
    if result["requests"]["failed"]:
        problems.append(f"{result['requests']['failed']} of {result['requests']['total']} API requests failed, "
                        f"e.g. {result['requests']['failed_examples'][:3]}")
    result["problems"] = problems
    if problems:
        raise GcBenchFailed(f"{engine}: " + "; ".join(problems), result)
    return result


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _control_gc(cluster: Cluster, coreapp: str) -> str:
    """The coreapp's own GC status (GET /control/gc), for progress lines."""
    try:
        port = cluster.procs[coreapp].control_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/control/gc", timeout=2) as r:
            body = json.loads(r.read())
        return f"{body.get('status')}, {int(body.get('messages_deleted') or body.get('deleted') or 0):,} deleted"
    except (OSError, ValueError, KeyError):
        return "status unknown"


def _health(cluster: Cluster) -> bool:
    try:
        return cluster.api("GET", "/v1/health", auth=f"Apikey {API_KEY}", timeout=2)[0] == 200
    except OSError:
        return False


# --- report -----------------------------------------------------------------------------------

def plot(results: dict[str, dict], name: str = "gc") -> Path:
    """One PNG: per engine, latency over time (GC window shaded) above the CDFs idle vs during GC."""
    plt = pyplot()
    engines = [e for e in ("mysql", "postgresql") if e in results and results[e].get("timeline")]
    engines += [e for e in results if e not in engines and results[e].get("timeline")]
    cols = max(1, len(engines))
    fig, axes = plt.subplots(2, cols, figsize=(7.5 * cols, 9), squeeze=False)
    for col, engine in enumerate(engines):
        r = results[engine]
        label = {"mysql": "MariaDB", "postgresql": "PostgreSQL"}.get(r.get("engine", engine), engine)
        if engine != r.get("engine", engine):  # e.g. an earlier attempt kept next to the result
            label += f" ({engine})"
        lat = r["latency_ms"]
        ax = axes[0][col]
        bins = r["timeline"]["bins"]
        t = [b[0] for b in bins]
        ax.scatter(t, [b[3] for b in bins], s=4, color="tab:red", alpha=0.5,
                   label=f"max per {r['timeline']['bin_seconds']:g} s")
        ax.plot(t, [b[2] for b in bins], color="tab:blue", linewidth=0.8, label="median")
        gc_lo, gc_hi = r["windows"]["gc"]
        ax.axvspan(gc_lo, gc_hi, color="tab:orange", alpha=0.15, label="message_gc running")
        ax.axvspan(*r["windows"]["idle"], color="tab:green", alpha=0.08, label="idle window")
        for x in r["timeline"]["failed_at"]:
            ax.axvline(x, color="black", linewidth=0.6)
        ax.set_yscale("log")
        ax.set_xlabel("seconds")
        ax.set_ylabel("request latency (ms)")
        ax.set_title(f"{'FAILED: ' if r.get('problems') else ''}{label}: {r['rows']:,} rows, {r['fill_rows_deleted']:,} collected in "
                     f"{r['gc_seconds']:.1f} s ({r['deletion_rate_rows_per_s']:,} rows/s)\n"
                     f"p99 idle {lat['idle'].get('p99')} ms, during GC {lat['during_gc'].get('p99')} ms "
                     f"(x{r.get('p99_ratio')}), failed {r['requests']['failed']}", fontsize=9)
        ax.legend(fontsize=7, loc="upper left")
        ax = axes[1][col]
        for key, color, what in (("idle", "tab:green", "idle"), ("during_gc", "tab:orange", "during GC")):
            pts = r["cdf_ms"][key]
            if pts:
                ax.plot([p[1] for p in pts], [p[0] / 100 for p in pts], drawstyle="steps-post", color=color,
                        label=f"{what}: n={lat[key]['n']}, p50 {lat[key]['p50']} ms, p99 {lat[key]['p99']} ms, "
                              f"max {lat[key]['max']} ms")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.01)
        ax.set_xlabel("request latency (ms), POST /v1/messages and GET /v1/messages/{id}")
        ax.set_ylabel("fraction of requests")
        ax.set_title(f"{label}: latency CDF, idle vs during GC", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, name)


def _n(value: Any) -> str:
    """A count with thousands separators; '?' when unknown (e.g. the module's rows_before when
    GET /v1/stats/db held no count)."""
    return f"{value:,}" if isinstance(value, (int, float)) else "?"


def _summary(engine: str, r: dict[str, Any]) -> str:
    lat = r.get("latency_ms") or {}
    if not lat:
        return f"{engine}: no result"
    return (f"{engine}: {_n(r['rows'])} rows, fill {r['fill']['seconds']:.1f} s; GC {r['gc_seconds']:.1f} s "
            f"(module {r['module_seconds']} s, rounds {r['gc_round_seconds']} s), {_n(r['fill_rows_deleted'])} deleted "
            f"({_n(r['deletion_rate_rows_per_s'])} rows/s), rows {_n(r['rows_before'])} -> {_n(r['rows_after'])} "
            f"(direct {_n(r['rows_after_direct'])}, kept {_n(r['fill_rows_after'])}/{_n(r['must_keep'])}); "
            f"p99 idle {lat['idle'].get('p99')} ms, during GC {lat['during_gc'].get('p99')} ms "
            f"(x{r['p99_ratio']}); failed requests {r['requests']['failed']}")


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m bench.gc [--quick] [--rows N] [--engine mysql|postgresql|both]``."""
    ap = argparse.ArgumentParser(prog="python -m bench.gc", description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} rows and a short idle window")
    ap.add_argument("--rows", type=int, help=f"rows in the messages table (default {FULL_ROWS:,})")
    ap.add_argument("--engine", choices=("mysql", "postgresql", "both"), default="both")
    ap.add_argument("--idle", type=float, help="seconds of the idle window (default "
                    f"{IDLE_SECONDS:g}, {QUICK_IDLE_SECONDS:g} with --quick)")
    a = ap.parse_args(argv)
    # Stopped with SIGTERM, or SIGINT when started in the background (where the shell ignores
    # SIGINT): unwind through run()'s cleanup, which stops the nodes and drops the database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rows = a.rows or (QUICK_ROWS if a.quick else FULL_ROWS)
    idle = a.idle or (QUICK_IDLE_SECONDS if a.quick else IDLE_SECONDS)
    engines = ["mysql", "postgresql"] if a.engine == "both" else [a.engine]
    started = time.monotonic()
    results: dict[str, dict] = {}
    failures: dict[str, str] = {}
    for engine in engines:
        try:
            results[engine] = run(engine, rows, idle)
        except GcBenchFailed as exc:
            results[engine] = exc.result
            failures[engine] = str(exc)
        except Exception as exc:  # one engine's failure must not lose the other's result
            failures[engine] = f"{type(exc).__name__}: {exc}"
        say(_summary(engine, results[engine]) if engine in results else f"{engine}: {failures[engine]}")
    write_json("gc", {"quick": a.quick, "rows": rows, "idle_seconds": idle, "engines": engines,
                      "host": {"cpus": os.cpu_count()}, "seconds": round(time.monotonic() - started, 1),
                      "results": results, "failures": failures})
    if any(r.get("timeline") for r in results.values()):
        plot(results)
    for engine, msg in failures.items():
        print(f"FAILED {msg}" if msg.startswith(engine) else f"FAILED {engine}: {msg}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
