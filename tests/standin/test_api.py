"""The webapp's REST subset on a loopback cluster: login and tokens, API key, documented error
form, settings stored by the primary and pushed, media, message GC, stats, metrics, a planned
shard move; plus the duplicate node name refusal, a rolling upgrade 2.53.1 -> 2.53.2 (schema 1 -> 2)
and the webapp certificate's subjectAltName."""

from __future__ import annotations

import base64
import json
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid

from wabiz_standin.schema import S
from wabiz_standin.webapp import ensure_certificate

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


def test_planned_shard_move_to_a_named_spare(make_cluster) -> None:
    """POST /v1/account/shards/{id}/owner: the primary promotes the named spare with the
    fenced promotion (shard epoch + 1); the old owner's writes are refused (409), new messages
    are stored by the new owner; refusals answer 400 (1009); the current owner is a no-op."""
    c = make_cluster().start(masters=1, coreapps=3, webapps=1)
    wait_for(c.primary_master, 20, what="a primary master")
    wait_for(c.connected_coreapps, 20, what="a connected coreapp")
    c.login()
    assert c.api("POST", "/v1/account/shards", {"shards": 2})[0] == 200
    owners = wait_for(lambda: (o := c.owners()) and len(o) == 2 and all(o.values()) and o, 10, what="two owners")
    old, other = owners[0], owners[1]
    spare = next(n for n in ("coreapp1", "coreapp2", "coreapp3") if n not in owners.values())
    wait_for(lambda: c.ping(spare), 10, what="the spare answers")
    st = c.storage()
    epoch = st.shard_map()[0].epoch

    def move(shard: object, owner: object) -> tuple[int, dict]:
        return c.api("POST", f"/v1/account/shards/{shard}/owner", {"owner": owner})

    assert c.api("POST", "/v1/account/shards/0/owner", {"owner": spare}, auth="")[0] == 401
    # A registered coreapp no master has reached (nobody listens on its control port).
    st.register_node("ghost", "coreapp", "127.0.0.1", (1, 1, 1, 1), "2.53.2", "x", "coreapp", "disconnected")
    for shard, target, why in ((0, "nobody", "not a registered coreapp"), (0, "master1", "not a registered coreapp"),
                               (0, other, "already owns shard 1"), (0, "ghost", "not healthy"),
                               (5, spare, "shard 5 is not active"), ("x", spare, "shard id")):
        status, body = move(shard, target)
        assert status == 400 and body["errors"][0]["code"] == 1009 and why in body["errors"][0]["details"], body
    status, body = move(0, old)
    assert (status, body["shard"]) == (200, {"id": 0, "owner": old, "previous": old, "epoch": epoch}), body
    assert st.shard_map()[0].epoch == epoch and c.owners() == owners, "moving to the current owner changes nothing"

    status, body = move(0, spare)
    assert (status, body["shard"]) == (200, {"id": 0, "owner": spare, "previous": old, "epoch": epoch + 1}), body
    assert c.owners() == {0: spare, 1: other} and st.shard_map()[0].epoch == epoch + 1
    # The old owner is fenced at once: a write straight to it is refused and nothing is stored.
    req = urllib.request.Request(f"http://127.0.0.1:{c.procs[old].ports[0]}/v1/messages", method="POST",
                                 data=json.dumps({"id": "moved-1", "to": "1", "body": "x", "shard": 0}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            late = r.status
    except urllib.error.HTTPError as e:
        late = e.code
    assert late == 409 and st.message_ids(["moved-1"]) == set()
    assert st.insert_message("moved-2", 0, "1", "x", old, epoch) == "fenced"
    wait_for(lambda: spare in c.connected_coreapps(), 10, interval=0.1, what="the new owner connected")
    wait_for(lambda: c.procs[old].state_lines("demotion"), 5, what="the old owner demoted")
    to = next(str(15550000000 + n) for n in range(100) if S.shard_for(str(15550000000 + n), 2) == 0)
    status, body = c.send(to)
    assert status == 201, body
    msg = st.read_message(body["messages"][0]["id"])
    assert (msg["shard"], msg["owner"], msg["epoch"]) == (0, spare, epoch + 1)
    lines = c.procs["master1"].state_lines("shard_move")
    assert len(lines) == 1 and f"shard=0 owner={spare} previous={old} epoch={epoch + 1}" in lines[0], lines
    st.close()


def test_webapp_certificate_names_the_webapp(tmp_path, monkeypatch) -> None:
    """The self-signed certificate carries subjectAltName (WEBAPP_HOSTNAME, localhost,
    127.0.0.1, the container hostname), so a client verifying it with the PEM as CA accepts it."""
    monkeypatch.delenv("WA_WEB_CERT_DIR", raising=False)
    ip_pem = ensure_certificate(str(tmp_path / "a"), "10.1.2.3")
    name_pem = ensure_certificate(str(tmp_path / "b"), "waweb")
    assert ensure_certificate(str(tmp_path / "b"), "waweb") == name_pem, "made once"

    def sans(pem: str) -> set[str]:
        out = subprocess.run(["openssl", "x509", "-noout", "-ext", "subjectAltName", "-in", pem],
                             capture_output=True, text=True, check=True).stdout
        return {x.strip().replace("IP Address:", "IP:") for x in out.splitlines()[1].split(",")}

    host = socket.gethostname()
    assert sans(ip_pem) == {"IP:10.1.2.3", "DNS:localhost", "IP:127.0.0.1", f"DNS:{host}"}
    assert sans(name_pem) == {"DNS:waweb", "DNS:localhost", "IP:127.0.0.1", f"DNS:{host}"}
    # Verified like a client with ca_path: a real handshake, hostname checking on, the PEM as
    # the only CA, for each name a client may use.
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(name_pem)
    client_ctx = ssl.create_default_context(cafile=name_pem)
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(5)

        def serve() -> None:
            for _ in range(3):
                conn, _addr = srv.accept()
                try:
                    server_ctx.wrap_socket(conn, server_side=True).close()
                except (ssl.SSLError, OSError):
                    conn.close()

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        for name in ("waweb", "localhost", "127.0.0.1"):
            with socket.create_connection(srv.getsockname(), timeout=5) as raw, \
                    client_ctx.wrap_socket(raw, server_hostname=name) as tls:
                assert tls.version()
        t.join(5)
