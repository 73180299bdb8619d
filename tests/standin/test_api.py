"""The webapp's REST subset on a loopback cluster: login and tokens, API key, documented error
form, settings stored by the primary and pushed, media, message GC, stats, metrics; plus the
duplicate node name refusal and a rolling upgrade 2.53.1 -> 2.53.2 (schema 1 -> 2)."""

from __future__ import annotations

import base64
import signal
import time
import uuid

from wabiz_standin.schema import S

from tests.standin.harness import wait_for


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_rest_subset(make_cluster) -> None:
    c = make_cluster().start(masters=2, coreapps=2, webapps=1)
    c.start_node("webapp", "webapp2", {"WA_TOKEN_TTL_SECONDS": "2"})
    wait_for(c.primary_master, 20, what="primary")
    wait_for(c.connected_coreapps, 20, what="a connected coreapp")
    wait_for(lambda: c.api("GET", "/v1/health", auth="Apikey test-api-key")[0] == 200, 20, what="webapp up")

    # -- login: the first login must set a new password; errors use the documented form.
    status, body = c.api("POST", "/v1/users/login", None, auth=basic("admin", "secret"))
    assert status == 400 and body["errors"][0]["code"] == 1005 and "new_password" in body["errors"][0]["details"]
    status, body = c.api("POST", "/v1/users/login", None, auth=basic("admin", "wrong"))
    assert status == 401 and set(body["errors"][0]) >= {"code", "title", "details"}
    token = c.login()
    status, body = c.api("POST", "/v1/users/login", None, auth=basic("admin", "secret"))
    assert status == 401, "the old password no longer works"
    assert c.api("GET", "/v1/settings/application")[0] == 200

    # -- API key: health, stats and metrics only.
    assert c.api("GET", "/v1/health", auth="Apikey test-api-key")[0] == 200
    assert c.api("GET", "/v1/health", auth="Apikey wrong")[0] == 401
    assert c.api("GET", "/v1/settings/application", auth="Apikey test-api-key")[0] == 401
    assert c.api("POST", "/v1/messages", {"to": "123"}, auth="Apikey test-api-key")[0] == 401
    assert c.api("GET", "/v1/health", auth="")[0] == 401
    status, body = c.api("POST", "/v1/messages", {"to": "not a number"})
    assert status == 400 and body["errors"][0]["title"] == "Parameter value is not valid"
    status, body = c.api("GET", "/v1/nothing-here")
    assert status == 404 and body["errors"][0]["code"] == 1006

    # -- health in the documented per-node form.
    health = c.api("GET", "/v1/health")[1]["health"]
    assert {h["role"] for h in health.values()} == {"primary_master", "secondary_master", "coreapp"}
    assert all(set(h) == {"gateway_status", "role"} for h in health.values())

    # -- settings: stored by the primary, pushed to the nodes, logged.
    status, body = c.api("PATCH", "/v1/settings/application", {"unhealthy_interval": 1})
    assert status == 400, "unhealthy_interval must stay above heartbeat_interval"
    status, body = c.api("PATCH", "/v1/settings/application", {"unhealthy_interval": 6})
    assert status == 200, body
    assert c.api("GET", "/v1/settings/application")[1]["settings"]["application"] == \
        {"heartbeat_interval": 1, "unhealthy_interval": 6}
    primary = c.primary_master()
    secondary = next(n for n in ("master1", "master2") if n != primary)
    assert any("unhealthy_interval:6" in x for x in c.procs[primary].state_lines("settings_change"))
    wait_for(lambda: any("unhealthy_interval:6" in x and "source=push" in x
                         for x in c.procs[secondary].state_lines("settings_applied")), 10, what="settings pushed")

    # -- support lists nodes with versions and shards.
    support = c.api("GET", "/v1/support")[1]["support"]
    assert support["schema_version"] == S.SCHEMA_VERSION and support["shards"] == 1
    assert {n["version"] for n in support["nodes"].values()} == {"2.53.2"}
    assert sum(len(n["shards"]) for n in support["nodes"].values()) == 1

    # -- media on the shared volume.
    status, body = c.api("POST", "/v1/media", raw=b"\x89PNG fake image", content_type="image/png")
    assert status == 201
    media_id = body["media"][0]["id"]
    assert (c.workdir / "media" / media_id).read_bytes() == b"\x89PNG fake image"
    status, data = c.api("GET", f"/v1/media/{media_id}")
    assert status == 200 and data == b"\x89PNG fake image"
    assert c.api("GET", f"/v1/media/{uuid.uuid4().hex}")[0] == 404

    # -- messages, read-back, GC in batches while the API keeps serving.
    ids = [c.send(str(18000000000 + n))[1]["messages"][0]["id"] for n in range(5)]
    assert c.api("GET", f"/v1/messages/{ids[0]}")[1]["messages"][0]["status"] in ("sent", "delivered")
    st = c.storage()
    owner = c.owners()[0]
    epoch = st.shard_map()[0].epoch
    with st.cursor() as cur:  # 5000 old delivered messages for the GC to collect
        rows = ", ".join(f"('bulk{n}', 0, '1', '', 'delivered', '{owner}', {epoch}, {S._now(st.engine)})"
                         for n in range(5000))
        cur.execute(f"INSERT INTO {S.T_MESSAGES} (id, shard_id, recipient, body, status, owner, epoch, created_at) "
                    f"VALUES {rows}")
    wait_for(lambda: all(st.read_message(i)["status"] == "delivered" for i in ids), 10, what="delivery")
    status, body = c.api("PUT", "/v1/services/message/gc")
    assert status == 200 and body["gc"][owner]["status"] in ("processing", "completed"), body
    latencies = []
    for n in range(5):
        t0 = time.monotonic()
        assert c.send(str(18100000000 + n))[0] == 201
        latencies.append(time.monotonic() - t0)
    wait_for(lambda: c.api("GET", "/v1/services/message/gc")[1]["gc"][owner]["status"] == "completed", 30,
             what="gc completed")
    gc = c.api("GET", "/v1/services/message/gc")[1]["gc"][owner]
    assert gc["deleted"] >= 5005
    assert st.message_ids(ids) == set(), "delivered messages were collected"
    print(f"send latency during GC: max {max(latencies) * 1000:.0f} ms")
    assert max(latencies) < 2.0

    # -- stats (filled by the primary) and metrics.
    stats = wait_for(lambda: (b := c.api("GET", "/v1/stats/app", auth="Apikey test-api-key")[1]["stats"]["app"])
                     .get("primary_master") and b, 15, what="stats")
    assert stats["primary_master"] == primary and stats["nodes"]["coreapp"] == 2
    status, text = c.api("GET", "/metrics", auth="Apikey test-api-key")
    assert status == 200 and b"wa_webapp_messages_sent_total" in text and b"wa_cluster_shards 1" in text

    # -- tokens expire (webapp2 issues tokens for 2 s); tokens work on every webapp.
    assert c.api("GET", "/v1/settings/application", webapp="webapp2", auth=f"Bearer {token}")[0] == 200
    short = c.login(webapp="webapp2")
    assert c.api("GET", "/v1/settings/application", webapp="webapp1", auth=f"Bearer {short}")[0] == 200
    time.sleep(2.5)
    status, body = c.api("GET", "/v1/settings/application", webapp="webapp1", auth=f"Bearer {short}")
    assert status == 401 and body["errors"][0]["details"] == "invalid or expired token"
    st.close()


def test_duplicate_node_name_is_refused(make_cluster) -> None:
    c = make_cluster().start(masters=1, coreapps=1, webapps=0)
    wait_for(c.connected_coreapps, 20, what="a connected coreapp")
    dup = c.start_node("coreapp", "coreapp1-dup", {"WA_NODE_ID": "coreapp1"})
    dup.popen.wait(timeout=20)
    assert dup.popen.returncode != 0
    assert "duplicate node name coreapp1" in dup.output()
    assert c.connected_coreapps() == ["coreapp1"]


def test_rolling_upgrade_from_2_53_1_to_2_53_2(make_cluster) -> None:
    c = make_cluster()
    old = {"WA_VERSION": "2.53.1"}
    c.start_node("master", "master1", old)
    c.start_node("coreapp", "coreapp1", old)
    c.start_node("coreapp", "coreapp2", old)
    c.start_node("webapp", "webapp1", old)
    wait_for(c.connected_coreapps, 20, what="a connected coreapp")
    st = c.storage()
    assert st.schema_version() == (1, 1)
    c.login()
    before = [c.send(str(19000000000 + n))[1]["messages"][0]["id"] for n in range(3)]
    # Upgrade the masters: a 2.53.2 master joins, the 2.53.1 one stops, the new primary
    # upgrades the schema; the 2.53.1 coreapps keep serving on the additive schema 2.
    c.start_node("master", "master2")
    wait_for(lambda: c.roles().get("master2") == "secondary_master", 15, what="master2 up")
    c.kill("master1", signal.SIGTERM)
    wait_for(lambda: c.primary_master() == "master2", 15, what="master2 primary")
    wait_for(lambda: st.schema_version() == (2, 1), 10, what="schema 2")
    assert any("from_version=1 to_version=2" in x for x in c.procs["master2"].state_lines("schema_upgrade"))
    status, body = c.send("19000000099")
    assert status == 201, "2.53.1 coreapps still accept messages on schema 2"
    assert st.message_ids(before + [body["messages"][0]["id"]]) == set(before + [body["messages"][0]["id"]])
    versions = {k: v["version"] for k, v in c.api("GET", "/v1/support")[1]["support"]["nodes"].items()}
    assert versions == {"master2": "2.53.2", "coreapp1": "2.53.1", "coreapp2": "2.53.1"}
    # A node whose code is too old for the database refuses to start, with one clear line.
    with st.cursor() as cur:
        cur.execute(f"UPDATE {S.T_SCHEMA} SET version = 3, compat = 3")
    late = c.start_node("coreapp", "coreapp3")
    late.popen.wait(timeout=20)
    assert late.popen.returncode == 3 and "upgrade the node" in late.output()
    st.close()
