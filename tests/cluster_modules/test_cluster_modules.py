"""The four cluster modules, run by ``ansible`` against a stand-in cluster on loopback, on
MariaDB and PostgreSQL, speaking only the public REST contract (api-contract.md): the API URL and
credentials alone, the database only with the opt-in ``db_cross_check``. Every change is verified
independently (SQL on the stand-in's tables or the nodes' own answers, tests/standin/harness.py),
not with the module's own report.

The tests share one cluster per engine and run in file order (see conftest.py).
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import time

from tests.standin.harness import wait_for

from .conftest import API_KEY, PASSWORD, ModCluster

ALL_NODES = ["master1", "master2", "coreapp1", "coreapp2", "coreapp3"]
COREAPPS = {"coreapp1", "coreapp2", "coreapp3"}
NUMBER = {"cc": "1", "phone_number": "6315551234"}


def app_settings_in_db(mc: ModCluster) -> dict:
    rows = mc.sql("SELECT value FROM wa_settings WHERE name = 'application'")
    return json.loads(rows[0][0])


def active_shards(mc: ModCluster) -> dict[int, tuple[str | None, int]]:
    rows = mc.sql("SELECT shard_id, owner, epoch FROM wa_shard_map WHERE active = 1 ORDER BY shard_id")
    return {int(r[0]): (r[1], int(r[2])) for r in rows}


def message_counts(mc: ModCluster) -> dict[str, int]:
    return {str(s): int(n) for s, n in mc.sql("SELECT status, COUNT(*) FROM wa_messages GROUP BY status")}


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_healthy(mc: ModCluster, run, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    wait_for(mc.healthy_now, timeout, what="one primary master and every shard's owner connected")
    while True:
        r = run("failover_check", mc.check_args(fail_on_unhealthy=False))
        if r.get("healthy"):
            return r
        if time.monotonic() > deadline:
            raise AssertionError(f"the cluster is not healthy again after {timeout}s: {r.get('findings') or r}")
        time.sleep(0.5)


# -- failover_check on a healthy cluster ---------------------------------------------------------

def test_failover_check_healthy(mc: ModCluster, run) -> None:
    c = mc.c
    wait_for(mc.healthy_now, 20, what="a settled cluster")
    r = run("failover_check", mc.check_args(expected_nodes=ALL_NODES, webapp_urls=[mc.url("webapp2")]),
            via="ansible")
    assert not r.get("failed"), r.get("msg")
    assert r["healthy"] is True and r["findings"] == [] and r["changed"] is False, r
    assert sorted(n["node"] for n in r["nodes"]) == sorted(ALL_NODES)
    owner = c.owners()[0]
    assert r["primary_master"] == c.primary_master() and r["mode"] == "ha" and r["shard_count"] == 1
    assert [(s["shard"], s["owner"], s["owner_status"]) for s in r["shards"]] == [(0, owner, "connected")]
    assert sorted(r["spares"]) == sorted(COREAPPS - {owner})
    assert sorted(r["webapps"]) == sorted([mc.url("webapp1"), mc.url("webapp2")])
    assert all(w["ok"] for w in r["webapps"].values())
    assert r["sources"] == ["GET /v1/account/shards", "GET /v1/health", "GET /v1/settings/application",
                            "GET /v1/support"]
    by_node = {n["node"]: n for n in r["nodes"]}
    assert by_node[owner]["status"] == "connected" and by_node[owner]["shards"] == [0]
    assert by_node[r["primary_master"]]["status"] == "disconnected", "HA mode: the primary master is disconnected"
    for name in ALL_NODES:
        assert name in r["table"]
    assert "healthy: yes" in r["table_lines"]
    print(f"failover_check on 7 nodes ({mc.db['db_engine']}): module {r['elapsed']:.2f}s, "
          f"ansible run {run.durations[-1][1]:.2f}s")
    assert r["elapsed"] < 3.0, "the calls run in parallel"

    # Ad hoc, as documented: key=value arguments, the API key alone, no CA (validate_certs=false), check mode.
    adhoc = " ".join(f"{k}={v}" for k, v in {"api_url": mc.url(), "api_key": API_KEY, "validate_certs": "false"}.items())
    r2 = run("failover_check", adhoc, check=True, via="ansible")
    assert r2.get("healthy") is True and r2["owners_inferred"] is True, r2.get("msg") or r2
    assert r2["sources"] == ["GET /v1/health"] and "api_key alone" in r2["notes"][0]


def test_failover_check_database_cross_check(mc: ModCluster, run) -> None:
    """Stand-in only: the opt-in cross-check reads the stand-in's tables too and finds them in line."""
    r = run("failover_check", mc.cross_check_args())
    assert r.get("healthy") is True, r.get("findings") or r
    assert "database (db_cross_check)" in r["sources"]
    assert all(n["heartbeat_age"] is not None and n["heartbeat_age"] < 3 for n in r["nodes"]), r["nodes"]


def test_in_a_playbook(mc: ModCluster, run, tmp_path) -> None:
    """The modules in a playbook, the API options through group/wabiz.cluster.cluster, the database options
    through group/wabiz.cluster.cluster_db (app_settings and shard_table are not in it), failover_check in an
    until loop."""
    book = tmp_path / "check.yml"
    book.write_text(json.dumps([{
        "hosts": "localhost", "gather_facts": False,
        "module_defaults": {"group/wabiz.cluster.cluster": mc.api(),
                            "group/wabiz.cluster.cluster_db": {**mc.db, "heartbeat_threshold": 3}},
        "tasks": [
            {"name": "health", "wabiz.cluster.failover_check": {"fail_on_unhealthy": False}, "register": "health",
             "until": "health.healthy", "retries": 5, "delay": 1},
            {"name": "map", "wabiz.cluster.shard_table": {}, "register": "map", "check_mode": True},
            {"name": "settings", "wabiz.cluster.app_settings": {"settings": {}}, "register": "settings",
             "check_mode": True},
            {"name": "verdict", "ansible.builtin.assert": {"that": [
                "health.healthy", "health.findings == []", "map.shards == 1",
                "map.map[0].owner == health.shards[0].owner", "settings.changed == false"]}},
        ]}]))
    res = run.playbook(book)
    assert res["health"]["healthy"] is True and res["health"]["attempts"] == 1, res["health"]
    assert res["map"]["changed"] is False and res["map"]["shards"] == 1, res["map"]
    assert not res["settings"].get("failed"), res["settings"]
    assert not res["verdict"].get("failed"), res["verdict"]


def test_failover_check_clear_errors(mc: ModCluster, run) -> None:
    r = run("failover_check", {**mc.check_args(), "api_key": "wrong-key-0123456789", "api_password": None,
                               "api_new_password": None}, via="ansible")
    assert r.get("failed") and r["failure_kind"] == "auth", r
    assert "wrong-key-0123456789" not in json.dumps(r), "the API key is never echoed"
    r = run("failover_check", mc.cross_check_args(db_password="wrong-db-password"))
    assert r.get("failed") and r["failure_kind"] == "login_refused", r
    assert "wrong-db-password" not in r["msg"]
    r = run("failover_check", mc.cross_check_args(db_name_prefix="nosuchprefix_"))
    assert r.get("failed") and r["failure_kind"] == "no_database" and "nosuchprefix_waent" in r["msg"], r
    r = run("failover_check", {**mc.check_args(), **mc.db, "db_password": "wrong-db-password"})
    assert r.get("healthy") is True, "without db_cross_check the database options are not used"
    r = run("failover_check", mc.check_args(api_url="https://127.0.0.1:9", api_retries=0))
    assert r.get("failed") and r["failure_kind"] == "unreachable" and "127.0.0.1:9" in r["msg"], r
    no_ca = mc.check_args()
    del no_ca["ca_path"]
    r = run("failover_check", no_ca)
    assert r.get("failed") and r["failure_kind"] == "tls" and "ca_path" in r["msg"], r


# -- app_settings ---------------------------------------------------------------------------------

def test_app_settings(mc: ModCluster, run) -> None:
    c = mc.c
    basic = "Basic " + base64.b64encode(b"admin:secret").decode()
    assert app_settings_in_db(mc)["unhealthy_interval"] == 6
    # A fresh cluster (when this test runs alone): the first login must change the password (401 / 1024),
    # which check mode does not do.
    status, body = c.api("POST", "/v1/users/login", None, auth=basic)
    if status == 401 and body["errors"][0]["code"] == 1024:
        r = run("app_settings", mc.api(unhealthy_interval=7), check=True)
        assert r.get("failed") and r["failure_kind"] == "password_change_required" and "check mode" in r["msg"], r

    r = run("app_settings", mc.api(unhealthy_interval=7), diff=True, via="ansible")
    assert r["changed"] is True and r["changes"] == {"unhealthy_interval": 7}, r
    assert r["settings"]["unhealthy_interval"] == 7 and r["before"]["unhealthy_interval"] == 6
    assert "unhealthy_interval: 7" in r["diff"]["after"] and "unhealthy_interval: 6" in r["diff"]["before"]
    assert app_settings_in_db(mc)["unhealthy_interval"] == 7
    status, body = c.api("POST", "/v1/users/login", None, auth=basic)
    assert status == 401 and body["errors"][0]["code"] == 1005, "the first login changed the password"
    c.login(password=PASSWORD)

    r = run("app_settings", mc.api(unhealthy_interval=7))
    assert r["changed"] is False and r["changes"] == {}
    # The database options belong to group/wabiz.cluster.cluster_db: app_settings refuses them, masked.
    r = run("app_settings", {**mc.api(unhealthy_interval=7), **mc.db})
    assert r.get("failed") and r["failure_kind"] == "invalid_option" and "takes no database option" in r["msg"], r
    assert mc.db["db_password"] not in json.dumps(r)

    # With a token cache, later tasks reuse the token: one login (one new token row) for two runs.
    cache = mc.cert.parent / "tokens.json"
    tokens = mc.sql("SELECT COUNT(*) FROM wa_tokens")[0][0]
    for _ in range(2):
        r = run("app_settings", mc.api(unhealthy_interval=7, api_token_cache=str(cache)))
        assert r["changed"] is False
    assert mc.sql("SELECT COUNT(*) FROM wa_tokens")[0][0] == tokens + 1
    assert oct(cache.stat().st_mode & 0o777) == "0o600" and PASSWORD not in cache.read_text()

    r = run("app_settings", mc.api(unhealthy_interval=6), check=True, diff=True)
    assert r["changed"] is True and r["changes"] == {"unhealthy_interval": 6}
    assert "unhealthy_interval: 6" in r["diff"]["after"]
    assert app_settings_in_db(mc)["unhealthy_interval"] == 7, "check mode changes nothing"

    r = run("app_settings", mc.api(heartbeat_interval=7))
    assert r.get("failed") and r["failure_kind"] == "invalid", r
    assert "must be greater than heartbeat_interval" in r["msg"]
    assert app_settings_in_db(mc)["heartbeat_interval"] == 1, "a refused change is not sent"

    r = run("app_settings", {**mc.api(), "api_password": "not-the-password", "api_new_password": "not-it-either",
                             "unhealthy_interval": 6})
    assert r.get("failed") and r["failure_kind"] == "auth" and "wrong password" in r["msg"], r

    r = run("app_settings", mc.api(unhealthy_interval=6))
    assert r["changed"] is True and app_settings_in_db(mc)["unhealthy_interval"] == 6


# -- shard_table ----------------------------------------------------------------------------------

def test_shard_table_count(mc: ModCluster, run) -> None:
    c = mc.c
    c.login(password=PASSWORD)  # the first login's password change (when this test runs alone)
    r = run("shard_table", mc.api())
    assert r["changed"] is False and r["shards"] == 1, r
    assert r["map"][0]["owner"] == c.owners()[0] and r["map"][0]["owner_status"] == "connected"
    assert sorted(x["node"] for x in r["coreapps"]) == sorted(COREAPPS)

    r = run("shard_table", mc.api(shards=4, **NUMBER))
    assert r.get("failed") and r["failure_kind"] == "refused", r
    assert "3 healthy coreapp(s)" in r["msg"] and "need at least 5" in r["msg"]
    assert len(active_shards(mc)) == 1

    r = run("shard_table", mc.api(shards=2))
    assert r.get("failed") and r["failure_kind"] == "invalid_option" and "cc and phone_number" in r["msg"], r

    r = run("shard_table", mc.api(shards=2, **NUMBER), check=True)
    assert r["changed"] is True and r["plan"] == ["set the shard count from 1 to 2"], r
    assert len(active_shards(mc)) == 1, "check mode changes nothing"

    r = run("shard_table", mc.api(shards=2, **NUMBER), via="ansible")
    assert r["changed"] is True and r["shards"] == 2, r
    shards = active_shards(mc)
    owners = {s[0] for s in shards.values()}
    assert len(shards) == 2 and None not in owners and len(owners) == 2
    assert c.connected_coreapps() == sorted(owners), "the module returned once both owners are connected"

    r = run("shard_table", mc.api(shards=2, **NUMBER))
    assert r["changed"] is False and r["plan"] == []
    f = run("failover_check", mc.check_args())
    assert f.get("healthy") is True and f["mode"] == "multiconnect", f.get("findings") or f

    r = run("shard_table", mc.api(shards=1, **NUMBER))
    assert r["changed"] is True and len(active_shards(mc)) == 1
    wait_for(lambda: len(c.connected_coreapps()) == 1, 10, what="the owner of shard 1 to stop serving")


def test_shard_table_move(mc: ModCluster, run) -> None:
    c = mc.c
    c.login(password=PASSWORD)
    wait_for(mc.healthy_now, 20, what="a settled cluster")
    (owner, epoch), = [active_shards(mc)[0]]
    spare = sorted(COREAPPS - {owner})[0]
    args = mc.api(move_shard=0, move_to=spare)

    r = run("shard_table", args)
    assert r.get("failed") and r["failure_kind"] == "unsupported" and "standin_extensions=true" in r["msg"], r
    args["standin_extensions"] = True
    r = run("shard_table", args, check=True, diff=True)
    assert r["changed"] is True and r["plan"] == [f"move shard 0 from {owner} to {spare}"], r
    assert active_shards(mc)[0] == (owner, epoch), "check mode changes nothing"

    r = run("shard_table", args, via="ansible")  # through the stand-in's planned-move extension
    assert r["changed"] is True and r["previous_owner"] == owner, r
    assert active_shards(mc)[0] == (spare, epoch + 1), "the new owner holds the shard at a higher epoch"
    wait_for(lambda: c.connected_coreapps() == [spare], 5, what="the old owner to stop")
    assert 0 < r["ownerless_seconds"] < 10
    print(f"planned move ({mc.db['db_engine']}): shard 0 without a connected owner for {r['ownerless_seconds']:.2f}s")
    status, body = c.send("15551230000")
    assert status == 201, body
    assert c.storage().read_message(body["messages"][0]["id"])["owner"] == spare

    r = run("shard_table", args)
    assert r["changed"] is False and r["plan"] == [], "moving a shard to its owner changes nothing"
    assert active_shards(mc)[0] == (spare, epoch + 1)

    r = run("shard_table", {**args, "move_to": "nosuchnode"})
    assert r.get("failed") and r["failure_kind"] == "refused" and "no coreapp of that name" in r["msg"], r


# -- message_gc -----------------------------------------------------------------------------------

def test_message_gc(mc: ModCluster, run) -> None:
    c = mc.c
    c.login(password=PASSWORD)
    for n in range(25):
        status, body = c.send(str(15557000000 + n))
        assert status == 201, body
    wait_for(lambda: message_counts(mc).get("sent", 0) == 0, 15, what="the messages to be delivered")
    owner = active_shards(mc)[0][0]
    inbound = [f"inbound{n}" for n in range(3)]
    for msg_id in inbound:  # incoming messages not read yet (the stand-in writes none by itself)
        mc.sql("INSERT INTO wa_messages (id, shard_id, recipient, body, status, owner, epoch, created_at) "
               "VALUES (%s, 0, '15550000000', 'in', 'received', %s, 1, NOW())", (msg_id, owner))
    before = message_counts(mc)
    assert before.get("delivered", 0) >= 25 and before["received"] == 3

    port = free_port()
    r = run("app_settings", mc.api(settings={"webhooks": {"url": f"http://127.0.0.1:{port}/"}}))
    assert not r.get("failed"), r
    args = {**mc.api(), "threshold": 0, "wait_timeout": 30, "webhook_listen": f"127.0.0.1:{port}",
            "mark_read_ids": inbound}
    r = run("message_gc", args, check=True)
    assert r["changed"] is True and r["status"] == "check_mode" and r["rounds"] == [], r
    assert r["rows_before"] == sum(before.values()) and r["counts_source"] == "GET /v1/stats/db", r
    assert message_counts(mc) == before, "check mode changes nothing"

    r = run("message_gc", args, via="ansible")
    assert r["changed"] is True and r["status"] == "complete", r
    assert r["marked_read"] == 3 and r["rows_before"] == sum(before.values()) and r["rows_after"] == 0, r
    assert r["rounds"][0]["nodes"][owner]["status"] == "complete" and r["deleted"] == sum(before.values())
    assert r["stopped_because"] == "below threshold"
    assert message_counts(mc) == {}, "every delivered and (marked) read message is gone"
    print(f"message_gc ({mc.db['db_engine']}): {r['rows_before']} -> {r['rows_after']} messages in "
          f"{r['elapsed_seconds']:.2f}s")

    r = run("message_gc", {**args, "mark_read_ids": []})
    assert r["changed"] is False and r["rounds"] == [] and r["stopped_because"] == "nothing to collect", r

    # Without a listener: started, not waited for (the completion callback goes to the webhook URL alone).
    status, body = c.send("15557009999")
    assert status == 201, body
    wait_for(lambda: message_counts(mc).get("delivered", 0) == 1, 15, what="the message to be delivered")
    r = run("message_gc", mc.api())
    assert r["changed"] is True and r["status"] == "processing" and r["rounds"][0]["nodes"] == {
        owner: {"status": "processing"}}, r
    wait_for(lambda: message_counts(mc) == {}, 15, what="the collection to finish")


# -- failover_check names the fault ---------------------------------------------------------------

def test_failover_check_paused_node(mc: ModCluster, run) -> None:
    c = mc.c
    wait_healthy(mc, run)
    owner = c.owners()[0]
    spare = sorted(COREAPPS - {owner})[-1]
    c.kill(spare, signal.SIGSTOP)
    try:
        time.sleep(4.0)  # the DB heartbeat (every 1 s) is now older than the 3 s threshold
        r = run("failover_check", mc.cross_check_args(), via="ansible")
    finally:
        c.kill(spare, signal.SIGCONT)
    assert r.get("failed") and r["healthy"] is False, r
    assert any(f.startswith(f"coreapp {spare} cannot be reached") for f in r["findings"]), r["findings"]
    stale = [f for f in r["findings"] if f.startswith(f"coreapp {spare}'s last database heartbeat is ")]
    assert stale and stale[0].endswith("old (threshold 3s)"), r["findings"]
    assert not [f for f in r["findings"] if f.startswith("shard ")], "the shard's owner is fine"
    print(f"failover_check with a paused node ({mc.db['db_engine']}): module {r['elapsed']:.2f}s")
    assert r["elapsed"] < 6.0
    wait_healthy(mc, run)


def test_failover_check_master_stopped(mc: ModCluster, run) -> None:
    c = mc.c
    primary = c.primary_master()
    secondary = ({"master1", "master2"} - {primary}).pop()
    c.kill(secondary)  # SIGKILL: its registration stays
    r = run("failover_check", mc.check_args(fail_on_unhealthy=False), via="ansible")
    assert r["healthy"] is False and not r.get("failed"), r
    assert any(secondary in f and "cannot be reached" in f for f in r["findings"]), r["findings"]
    assert f"only 1 master(s) answer ({primary}); HA needs 2 so that one can take over" in r["findings"]
    assert r["primary_master"] == primary

    c.start_node("master", secondary)
    wait_healthy(mc, run)
    c.kill(secondary, signal.SIGTERM)  # a clean stop removes its registration: only the inventory knows
    r = wait_for(lambda: (x := run("failover_check", mc.check_args(fail_on_unhealthy=False,
                                                                  expected_nodes=ALL_NODES))).get("findings")
                 and any(f.startswith(f"{secondary} is expected but not listed") for f in x["findings"]) and x,
                 15, interval=1, what="the stopped master to be unlisted")
    assert r["healthy"] is False
    c.start_node("master", secondary)
    wait_healthy(mc, run)

    # The primary itself: the check names it, whether or not the other master has taken over yet.
    c.kill(primary)
    r = run("failover_check", mc.check_args(fail_on_unhealthy=False))
    assert r["healthy"] is False, r
    assert any(primary in f for f in r["findings"]), r["findings"]
    assert r["primary_master"] in (None, secondary)
    c.start_node("master", primary)
    wait_healthy(mc, run)


def test_failover_check_primary_coreapp_stopped(mc: ModCluster, run) -> None:
    c = mc.c
    owner = c.owners()[0]
    c.kill(owner)  # SIGKILL the primary coreapp
    r = run("failover_check", mc.check_args(fail_on_unhealthy=False), via="ansible")
    assert r["healthy"] is False, r
    assert any(f.startswith("shard 0") for f in r["findings"]), r["findings"]
    assert r["shards"][0]["owner_status"] in ("unreachable", None)

    new = wait_for(lambda: (o := c.owners()[0]) != owner and o, 20, what="a master to promote a spare")
    wait_for(lambda: c.connected_coreapps() == [new], 10, what="the new owner to serve")
    r = run("failover_check", mc.check_args(fail_on_unhealthy=False))
    assert [(s["owner"], s["owner_status"]) for s in r["shards"]] == [(new, "connected")], r
    assert not [f for f in r["findings"] if f.startswith("shard ")], r["findings"]
    # The dead coreapp is still registered, so the cluster is still reported, by name.
    assert any(f.startswith(f"coreapp {owner} cannot be reached") for f in r["findings"]), r["findings"]


def test_failover_check_survives_the_real_health_rate_limit(mc: ModCluster, run) -> None:
    """A webapp with the real client's health rate limit (10 calls per 60 s, the stand-in's
    default): failover_check polled past it backs off on the 429 / 1015, says so, and still judges."""
    c = mc.c
    c.start_node("webapp", "webapp3", {"WA_WEB_CERT_DIR": str(mc.cert.parent), "WA_STANDIN_HEALTH_RATE_LIMIT": ""})
    try:
        wait_for(lambda: mc.healthy_now(), 20, what="a settled cluster")
        url = mc.url("webapp3")
        wait_for(lambda: _served(mc, "webapp3"), 30, what="webapp3 to serve")
        limited = None
        for attempt in range(15):
            # The earlier tests stopped nodes that stay registered: judge, do not fail on findings.
            r = run("failover_check", {"api_url": url, "api_key": API_KEY, "ca_path": str(mc.cert),
                                       "api_rate_limit_wait": 90, "fail_on_unhealthy": False})
            assert not r.get("failed"), (attempt, r.get("msg"))
            if r.get("rate_limited"):
                limited = r
                break
        assert limited is not None, "the webapp never answered 429 within 15 checks: the limit is not on"
        # It judged the cluster as a run without the limit does: the owner of shard 0 is connected.
        assert isinstance(limited["healthy"], bool) and limited["shard_count"] == 1, limited
        assert [s["owner_status"] for s in limited["shards"]] == ["connected"], limited["shards"]
        assert limited["rate_limited"]["answers"] >= 1 and limited["rate_limited"]["waited_seconds"] > 0
        assert any("429" in str(w) or "rate" in str(w).lower() for w in limited.get("warnings", [])), limited.get("warnings")
    finally:
        c.kill("webapp3", signal.SIGTERM)


def _served(mc: ModCluster, webapp: str) -> bool:
    try:
        return mc.c.api("GET", "/", webapp=webapp, timeout=2)[0] == 200
    except OSError:
        return False
