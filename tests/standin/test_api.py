"""The webapp's REST API, row by row of the public contract (shared/reference/api-contract.md),
on a loopback cluster per database engine: login and passwords, tokens, API key, the error
envelope and HTTP status by code, trailing slashes, the admin page, health (roles, gateway
status by shard count, unreachable nodes, rate limit), support, stats, metrics, settings, shards,
messages, media through the shared volume, garbage collection reported by webhook. Then the
stand-in's own behaviour: the duplicate node name refusal, a rolling upgrade 2.53.1 -> 2.53.2
(schema 1 -> 2), a planned shard move and the webapp certificate's subjectAltName.

Most tests share one cluster (``api_cluster``) and leave settings and shard count as found."""

from __future__ import annotations

import base64
import http.client
import json
import re
import signal
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from wabiz_standin.config import _api_key
from wabiz_standin.coreapp import GC_PAUSE_MIN, GC_PAUSE_SHARE, gc_pause
from wabiz_standin.master import hash_password
from wabiz_standin.schema import S
from wabiz_standin.webapp import ensure_certificate

from tests.standin.harness import Cluster, free_port, wait_for

VERSION = "2.53.2"
META = {"api_status": "stable", "version": VERSION}
APIKEY = "Apikey test-api-key"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def err(body: Any) -> tuple[int, str]:
    e = body["errors"][0]
    assert set(e) == {"code", "title", "details"} and body["meta"] == META, body
    return e["code"], e["title"]


def raw_request(c: Cluster, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None,
                webapp: str = "webapp1") -> tuple[int, dict[str, str], bytes]:
    """A request exactly as given (urllib would add a Content-Type of its own)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", c.procs[webapp].ports[0], context=ctx, timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


class Webhook:
    """A real local HTTP listener receiving the callbacks (JSON POSTs)."""

    def __init__(self) -> None:
        received: list[Any] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def webapp9(api_cluster: Cluster) -> str:
    """A second webapp with the defaults the harness turns off or shortens: the health rate
    limit on (the variable empty = unset), an API key too short to be accepted, tokens of 2 s."""
    api_cluster.start_node("webapp", "webapp9", {"WA_API_KEY": "short-key", "WA_STANDIN_HEALTH_RATE_LIMIT": "",
                                                 "WA_TOKEN_TTL_SECONDS": "2"})
    wait_for(lambda: api_cluster.webapp_up("webapp9"), 20, what="webapp9 up")
    return "webapp9"


def owner0(c: Cluster) -> str:
    owner = c.owners()[0]
    assert owner
    return owner


# -- Login and users ---------------------------------------------------------------------------

def test_login_first_login_without_new_password_is_401_1024_and_weak_passwords_400_1009(api_cluster) -> None:
    c = api_cluster
    st = c.storage()
    with st.cursor() as cur:  # back to a fresh install: admin/secret, change required
        cur.execute(f"UPDATE {S.T_USERS} SET password_hash = %s, must_change = 1 WHERE username = 'admin'",
                    (hash_password("secret"),))
    st.close()
    status, body = c.api("POST", "/v1/users/login", None, auth=basic("admin", "secret"))
    assert status == 401 and err(body) == (1024, "Password change required"), body
    for weak in ("Sh0rt!", "A1!" + "a" * 62, "nouppercase1!", "NOLOWERCASE1!", "NoDigits!!", "NoSpecial123",
                 "With space1!", "Ünicode-123a", "Tab\tIn-123"):
        status, body = c.api("POST", "/v1/users/login", {"new_password": weak}, auth=basic("admin", "secret"))
        assert status == 400 and err(body)[0] == 1009, (weak, body)
    status, body = c.api("POST", "/v1/users/login", {"new_password": "Secret-123"}, auth=basic("admin", "secret"))
    assert status == 200 and body["meta"] == META, body
    user = body["users"][0]
    expires = datetime.strptime(user["expires_after"], "%Y-%m-%d %H:%M:%S+00:00").replace(tzinfo=UTC)
    assert abs(expires - datetime.now(UTC) - timedelta(days=7)) < timedelta(minutes=1), "tokens last 7 days"
    assert c.api("GET", "/v1/settings/application", auth=f"Bearer {user['token']}")[0] == 200
    status, body = c.api("POST", "/v1/users/login", None, auth=basic("admin", "secret"))
    assert status == 401 and err(body) == (1005, "Access denied"), "the old password no longer works"
    assert c.api("POST", "/v1/users/login", None, auth=basic("admin", "Secret-123"))[0] == 200
    c.login()


def test_login_wrong_or_missing_token_is_401_1005(api_cluster, webapp9) -> None:
    c = api_cluster
    for auth in ("Bearer not-a-token", "", "Basic " + base64.b64encode(b"admin:Secret-123").decode()):
        status, body = c.api("GET", "/v1/settings/application", auth=auth)
        assert status == 401 and err(body) == (1005, "Access denied"), (auth, body)
    # Tokens work on every webapp; webapp9 issues tokens of 2 s.
    assert c.api("GET", "/v1/settings/application", webapp=webapp9)[0] == 200
    short = c.api("POST", "/v1/users/login", None, webapp=webapp9, auth=basic("admin", "Secret-123"))[1]
    short_token = short["users"][0]["token"]
    assert c.api("GET", "/v1/settings/application", auth=f"Bearer {short_token}")[0] == 200
    time.sleep(2.5)
    status, body = c.api("GET", "/v1/settings/application", auth=f"Bearer {short_token}")
    assert status == 401 and body["errors"][0]["details"] == "invalid or expired token"


def test_api_key_12_to_128_characters_else_disabled(api_cluster, webapp9) -> None:
    c = api_cluster
    for method, path in (("GET", "/v1/health"), ("GET", "/metrics"), ("GET", "/v1/stats/app"),
                         ("GET", "/v1/stats/db")):
        assert c.api(method, path, auth=APIKEY)[0] == 200, path
    for method, path, body in (("GET", "/v1/settings/application", None), ("POST", "/v1/messages", {"to": "123"}),
                               ("GET", "/v1/support", None)):
        status, answer = c.api(method, path, body, auth=APIKEY)
        assert status == 401 and err(answer)[0] == 1005, path
    assert c.api("GET", "/v1/health", auth="Apikey wrong-key-123")[0] == 401
    # webapp9's key has 9 characters: API-key auth is off there, said once in its log.
    status, body = c.api("GET", "/v1/health", webapp=webapp9, auth="Apikey short-key")
    assert status == 401 and err(body)[0] == 1005
    assert len([x for x in c.procs[webapp9].output().splitlines() if "WA_API_KEY must be 12 to 128" in x]) == 1
    warnings: list[str] = []
    assert _api_key({"WA_API_KEY": "k" * 128}, warnings) == "k" * 128 and not warnings
    assert _api_key({"WA_API_KEY": "k" * 129}, warnings) is None and len(warnings) == 1


# -- Errors ------------------------------------------------------------------------------------

def test_errors_envelope_and_http_status_by_code(api_cluster) -> None:
    c = api_cluster
    status, body = c.api("GET", "/v1/nothing-here")
    assert (status, body) == (404, {"errors": [{"code": 1006, "title": "Resource not found",
                                                "details": "URL path not found"}], "meta": META})
    status, body = c.api("DELETE", "/v1/health")
    assert status == 404 and err(body)[0] == 1006, "a method the path does not have"
    status, body = c.api("POST", "/v1/messages", {"type": "text", "text": {"body": "x"}})
    assert status == 400 and err(body) == (1008, "Required parameter is missing")
    status, body = c.api("POST", "/v1/messages", {"to": "not a number"})
    assert status == 400 and err(body) == (1009, "Parameter value is not valid")
    status, body = c.api("POST", "/v1/messages", raw=b"{not json")
    assert status == 400 and err(body)[0] == 1009


def test_errors_paths_with_and_without_trailing_slash(api_cluster) -> None:
    c = api_cluster
    assert c.api("GET", "/v1/settings/application/")[0] == 200
    assert c.api("GET", "/v1/health/", auth=APIKEY)[0] == 200
    assert c.api("GET", "/metrics/", auth=APIKEY)[0] == 200
    assert c.api("GET", "/v1/account/shards/")[1]["account"] == {"shards": 1}
    status, body = c.api("POST", "/v1/messages/", {"to": "15550001111", "type": "text", "text": {"body": "x"}})
    assert status == 201 and c.api("GET", f"/v1/messages/{body['messages'][0]['id']}/")[0] == 200


def test_errors_get_root_is_the_admin_page_without_auth(api_cluster) -> None:
    status, headers, page = raw_request(api_cluster, "GET", "/")
    assert status == 200 and headers["content-type"].startswith("text/html") and b"<html" in page


# -- Health, support, stats, metrics -------------------------------------------------------------

def test_health_ha_one_shard_only_the_primary_coreapp_is_connected(api_cluster) -> None:
    c = api_cluster
    owner = owner0(c)
    primary = c.primary_master()
    wait_for(lambda: owner in c.connected_coreapps(), 10, what="the owner connected")
    status, body = c.api("GET", "/v1/health", auth=APIKEY)
    assert status == 200 and body["meta"] == META
    health = body["health"]
    assert {"master1", "master2", "coreapp1", "coreapp2", "coreapp3"} <= set(health)
    assert all(set(h) == {"gateway_status", "role"} for h in health.values()), health
    assert {n: h["role"] for n, h in health.items() if h["role"] != "coreapp"} == \
        {primary: "primary_master", next(m for m in ("master1", "master2") if m != primary): "secondary_master"}
    assert [n for n, h in health.items() if h["gateway_status"] == "connected"] == [owner], \
        "HA: only the primary coreapp is connected, the primary master included in the disconnected"


def test_health_unreachable_node_is_listed_with_error_1014(api_cluster) -> None:
    c = api_cluster
    st = c.storage()
    st.register_node("ghost:0123456789ab", "coreapp", "127.0.0.1", (1, 1, 1, 1), VERSION, "x", "coreapp",
                     "disconnected")
    try:
        health = c.api("GET", "/v1/health", auth=APIKEY)[1]["health"]
        ghost = health["ghost:0123456789ab"]
        assert list(ghost) == ["errors"] and ghost["errors"][0]["code"] == 1014
        assert ghost["errors"][0]["title"] == "Internal error"
        assert ghost["errors"][0]["details"].endswith("Please check if wacore is running: 127.0.0.1:1")
        assert all("gateway_status" in h for n, h in health.items() if n != "ghost:0123456789ab")
    finally:
        st.deregister("ghost:0123456789ab", "x")
        st.close()


def test_health_rate_limit_10_calls_per_60s_on_by_default(api_cluster, webapp9) -> None:
    c = api_cluster
    for n in range(10):
        assert c.api("GET", "/v1/health", webapp=webapp9)[0] == 200, n
    status, body = c.api("GET", "/v1/health", webapp=webapp9)
    assert status == 429 and err(body) == (1015, "Too many requests")
    assert c.api("GET", "/v1/health", auth=APIKEY)[0] == 200, "per webapp; off on webapp1 (the harness's knob)"


def test_support_per_node_role_shards_socket_conn(api_cluster) -> None:
    c = api_cluster
    owner = owner0(c)
    status, body = c.api("GET", "/v1/support")
    assert status == 200 and set(body) == {"support", "meta"}
    support = body["support"]
    assert {"master1", "master2", "coreapp1", "coreapp2", "coreapp3"} <= set(support)
    engine = "MYSQL" if c.endpoint.engine == "mysql" else "PGSQL"
    for node_id, n in support.items():
        assert set(n) == {"multi_connect", "role", "shards", "socket_conn", "db_engine", "debug_info"}, n
        assert n["multi_connect"] is True and n["db_engine"] == engine
        assert n["debug_info"]["version"] == VERSION and n["debug_info"]["schema_version"] == S.SCHEMA_VERSION
        assert n["shards"] == ([0] if node_id == owner else [])
        assert n["socket_conn"] == ("UP" if node_id == owner else "DN")
    assert {n["role"] for n in support.values()} == {"primary_master", "secondary_master", "coreapp"}


def test_stats_app_and_db_per_node_prometheus_on_request(api_cluster) -> None:
    c = api_cluster
    primary = c.primary_master()
    assert c.send("15550002222")[0] == 201

    def counted() -> bool:
        body = c.api("GET", "/v1/stats/db", auth=APIKEY)[1]
        total = ((body.get("stats") or {}).get("db") or {}).get(primary, {}).get("messages_total") or {}
        return sum(d["value"] for d in total.get("data", [])) >= 1

    # The primary caches its DB counts for a second (a count over a large table is not free); an
    # earlier test's read may still be in that cache.
    wait_for(counted, 3, interval=0.3, what="the message in the DB stats")
    for path in ("/v1/stats/db", "/v1/stats/db/internal"):
        status, body = c.api("GET", path, auth=APIKEY)
        assert status == 200 and set(body["stats"]) == {"db"}, body
        db = body["stats"]["db"]
        assert {"master1", "master2", "coreapp1", "coreapp2", "coreapp3"} <= set(db)
        assert [n for n, m in db.items() if m] == [primary], "only the primary master fills the DB stats"
        total = db[primary]["messages_total"]
        assert total["type"] == "gauge" and total["help"]
        assert all(set(d) == {"labels", "value"} and set(d["labels"]) == {"status"} for d in total["data"])
        assert sum(d["value"] for d in total["data"]) >= 1
    for path in ("/v1/stats/app", "/v1/stats/app/internal"):
        app = c.api("GET", path, auth=APIKEY)[1]["stats"]["app"]
        assert all(m["uptime_seconds"]["type"] == "gauge" for n, m in app.items() if n in c.procs)
        assert app[owner0(c)]["shard_owned"]["data"][0]["labels"]["shard"] == "0"
    status, text = c.api("GET", "/v1/stats/db?format=prometheus", auth=APIKEY)
    assert status == 200 and b"# TYPE messages_total gauge" in text
    assert re.search(rb'messages_total\{node="' + primary.encode() + rb'",status="\w+"\} \d+', text), text
    status, text = c.api("GET", "/v1/stats/app?format=prometheus", auth=APIKEY)
    assert status == 200 and b'uptime_seconds{node="coreapp1"}' in text


def test_metrics_json_by_default_prometheus_on_request(api_cluster) -> None:
    c = api_cluster
    status, body = c.api("GET", "/metrics", auth=APIKEY)
    assert status == 200 and body["meta"] == META
    uptime = body["metrics"]["web_uptime"]
    assert uptime["type"] == "gauge" and uptime["data"][0]["labels"] == {"node": "webapp1"}
    assert body["metrics"]["cluster_shards"]["data"][0]["value"] == 1
    status, text = c.api("GET", "/metrics?format=prometheus", auth=APIKEY)
    assert status == 200 and b"# TYPE web_uptime gauge" in text and b'cluster_shards{node="webapp1"} 1' in text


# -- Settings ---------------------------------------------------------------------------------

def test_settings_application_get_patch_delete(api_cluster) -> None:
    c = api_cluster
    status, body = c.api("GET", "/v1/settings/application")
    assert status == 200 and body["meta"] == META
    app = body["settings"]["application"]
    # The whole object; heartbeat/unhealthy as the harness seeds them (1 s, 4 s).
    assert app == {**S.APPLICATION_DEFAULTS, "heartbeat_interval": 1, "unhealthy_interval": 4,
                   "wa_id": app["wa_id"]}
    assert c.api("GET", "/v1/settings/application", auth=APIKEY)[0] == 401, "admin only"
    for bad in ({"nope": 1}, {}, {"heartbeat_interval": "x"}, {"heartbeat_interval": True},
                {"unhealthy_interval": 1}, {"callback_persist": "yes"}, {"webhooks": {"url": "ftp://x"}},
                {"webhooks": {"max_concurrent_requests": 7}}, {"media": {"auto_download": ["pdf"]}},
                {"wa_id": "15550000000"}):
        status, body = c.api("PATCH", "/v1/settings/application", bad)
        assert status == 400 and err(body)[0] == 1009, (bad, body)
    status, body = c.api("PATCH", "/v1/settings/application/", {
        "unhealthy_interval": 6, "callback_persist": False, "webhooks": {"url": "http://127.0.0.1:9/hook"},
        "media": {"auto_download": ["image", "audio"]}})
    assert (status, body) == (200, {"meta": META}), body
    app = c.api("GET", "/v1/settings/application")[1]["settings"]["application"]
    assert app["unhealthy_interval"] == 6 and app["callback_persist"] is False
    assert app["webhooks"] == {"url": "http://127.0.0.1:9/hook", "max_concurrent_requests": 6}
    assert app["media"] == {"auto_download": ["audio", "image"]}
    primary = c.primary_master()
    secondary = next(n for n in ("master1", "master2") if n != primary)
    assert any("unhealthy_interval:6" in x for x in c.procs[primary].state_lines("settings_change"))
    # The secondary applies the change once, from the push or from its own DB poll, whichever comes
    # first (the poll can win the race); the push itself must have reached every node it targets.
    wait_for(lambda: any("unhealthy_interval:6" in x and ("source=push" in x or "source=db" in x)
                         for x in c.procs[secondary].state_lines("settings_applied")), 10, what="settings applied")
    pushes = c.procs[primary].state_lines("settings_push")
    reached = re.search(r"nodes=(\d+)/(\d+)", pushes[-1]) if pushes else None
    assert reached and reached[1] == reached[2] != "0", pushes
    status, body = c.api("DELETE", "/v1/settings/application")
    assert (status, body) == (200, {"meta": META}), body
    again = c.api("GET", "/v1/settings/application")[1]["settings"]["application"]
    assert again == {**S.APPLICATION_DEFAULTS, "heartbeat_interval": 1, "unhealthy_interval": 4,
                     "wa_id": app["wa_id"]}, "DELETE resets to the defaults"


# -- Shards -----------------------------------------------------------------------------------

def test_shards_get_and_post_requires_cc_phone_number_shards_201(api_cluster) -> None:
    c = api_cluster
    assert c.api("GET", "/v1/account/shards") == (200, {"account": {"shards": 1}, "meta": META})
    status, body = c.api("POST", "/v1/account/shards", {"shards": 2})
    assert status == 400 and err(body)[0] == 1008 and "cc" in body["errors"][0]["details"] \
        and "phone_number" in body["errors"][0]["details"]
    reg = {"cc": "1", "phone_number": "5550100"}
    for bad in ({**reg, "shards": 3}, {**reg, "shards": "2"}, {**reg, "cc": "x1", "shards": 2},
                {**reg, "shards": 2, "pin": "12"}, {**reg, "shards": 2, "cert": "***"}):
        status, body = c.api("POST", "/v1/account/shards", bad)
        assert status == 400 and err(body)[0] == 1009, (bad, body)
    status, body = c.api("POST", "/v1/account/shards", {**reg, "shards": 2, "pin": "123456",
                                                        "cert": base64.b64encode(b"cert").decode()})
    assert status == 201, body
    try:
        assert c.api("GET", "/v1/account/shards")[1]["account"] == {"shards": 2}
        owners = wait_for(lambda: (o := c.owners()) and len(o) == 2 and all(o.values()) and o, 10, what="two owners")
        assert c.api("GET", "/v1/settings/application")[1]["settings"]["application"]["wa_id"] == "15550100"
        primary = c.primary_master()

        def connected() -> list[str]:
            health = c.api("GET", "/v1/health", auth=APIKEY)[1]["health"]
            return sorted(n for n, h in health.items() if h.get("gateway_status") == "connected")

        # Multiconnect with X shards: the X owners and the primary master are connected.
        wait_for(lambda: connected() == sorted([*owners.values(), primary]), 10, what="X owners + primary connected")
    finally:
        assert c.api("POST", "/v1/account/shards", {**reg, "shards": 1})[0] == 201
    wait_for(lambda: len(c.owners()) == 1 and len(c.connected_coreapps()) == 1, 10, what="back to one shard")
    wait_for(lambda: [n for n, h in c.api("GET", "/v1/health", auth=APIKEY)[1]["health"].items()
                      if h.get("gateway_status") == "connected"] == [owner0(c)], 10, what="HA health again")


# -- Messages, media, garbage collection -----------------------------------------------------------

def test_messages_post_missing_to_400_1008_else_201(api_cluster) -> None:
    c = api_cluster
    status, body = c.api("POST", "/v1/messages", {"recipient_type": "individual", "type": "text",
                                                  "text": {"body": "hi"}})
    assert status == 400 and err(body)[0] == 1008
    status, body = c.api("POST", "/v1/messages", {"to": "15550003333", "recipient_type": "individual",
                                                  "type": "text", "text": {"body": "hi"}})
    assert status == 201 and set(body) == {"messages", "meta"} and list(body["messages"][0]) == ["id"]


def test_messages_put_status_read(api_cluster) -> None:
    c = api_cluster
    msg_id = c.send("15550004444")[1]["messages"][0]["id"]
    assert c.api("PUT", f"/v1/messages/{msg_id}", {"status": "read"}) == (200, {"meta": META})
    assert c.api("GET", f"/v1/messages/{msg_id}")[1]["messages"][0]["status"] == "read"
    assert c.api("PUT", f"/v1/messages/{msg_id}/", {"status": "read"})[0] == 200, "already read: still 200"
    status, body = c.api("PUT", "/v1/messages/gBEGnosuchmessage", {"status": "read"})
    assert status == 404 and err(body)[0] == 1006
    status, body = c.api("PUT", f"/v1/messages/{msg_id}", {"status": "sent"})
    assert status == 400 and err(body)[0] == 1009
    status, body = c.api("PUT", f"/v1/messages/{msg_id}", {})
    assert status == 400 and err(body)[0] == 1008


def test_media_post_needs_content_type_201_uuid_through_the_shared_volume(api_cluster) -> None:
    c = api_cluster
    auth = {"Authorization": f"Bearer {c.token}"}
    status, _h, body = raw_request(c, "POST", "/v1/media", auth, b"\x89PNG fake image")
    assert status == 400 and err(json.loads(body))[0] == 1008, body
    status, body = c.api("POST", "/v1/media", raw=b"\x89PNG fake image", content_type="image/png")
    assert status == 201 and body["meta"] == META, body
    media_id = body["media"][0]["id"]
    assert uuid.UUID(media_id).version == 4 and str(uuid.UUID(media_id)) == media_id
    assert (c.workdir / "media" / media_id).read_bytes() == b"\x89PNG fake image"
    assert c.api("GET", f"/v1/media/{media_id}") == (200, b"\x89PNG fake image")
    assert c.api("GET", f"/v1/media/{uuid.uuid4()}")[0] == 404


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


def test_gc_pause_follows_the_batch_time_with_a_floor() -> None:
    assert gc_pause(0.0) == GC_PAUSE_MIN
    assert gc_pause(1.0) == pytest.approx(GC_PAUSE_SHARE)
    assert gc_pause(10.0) > gc_pause(1.0) > GC_PAUSE_MIN


def test_gc_put_processing_then_one_webhook_callback_per_node(api_cluster, webhook) -> None:
    c = api_cluster
    assert c.api("PATCH", "/v1/settings/application", {"webhooks": {"url": webhook.url}})[0] == 200
    st = c.storage()
    try:
        owner = owner0(c)
        wait_for(lambda: any(webhook.url in x for x in c.procs[owner].state_lines("settings_applied")), 10,
                 what="the owner has the webhook url")
        epoch = st.shard_map()[0].epoch
        ids = [c.send(str(18000000000 + n))[1]["messages"][0]["id"] for n in range(5)]
        # 5000 old delivered/read messages for the GC to collect (several batches of each status),
        # interleaved in id order with rows it must keep: 'sent' ones (created in the future, so
        # the owner does not mark them delivered meanwhile), incoming unread ones, and delivered
        # ones of a shard that no coreapp owns.
        now, later = S._now(st.engine), S._plus(st.engine, "86400")
        kinds = [(0, "delivered", now)] * 3 + [(0, "read", now), (0, "sent", later),
                                               (0, S.STATUS_INCOMING_UNREAD, now), (S.MAX_SHARDS - 1, "delivered", now)]
        bulk = {f"bulk{n:05d}": kinds[n % len(kinds)] for n in range(8750)}
        keep = {i for i, (shard, status, _t) in bulk.items() if shard != 0 or status not in S.GC_STATUSES}
        assert len(bulk) - len(keep) == 5000
        with st.cursor() as cur:
            rows = ", ".join(f"('{i}', {shard}, '1', '', '{status}', '{owner}', {epoch}, {t})"
                             for i, (shard, status, t) in bulk.items())
            cur.execute(f"INSERT INTO {S.T_MESSAGES} (id, shard_id, recipient, body, status, owner, epoch, "
                        f"created_at) VALUES {rows}")
        wait_for(lambda: all(st.read_message(i)["status"] == "delivered" for i in ids), 10, what="delivery")
        status, body = c.api("PUT", "/v1/services/message/gc")
        assert (status, body) == (200, {"services": {"message": {"gc": {owner: {"status": "processing"}}}},
                                        "meta": META}), body
        latencies = []
        for n in range(5):
            t0 = time.monotonic()
            assert c.send(str(18100000000 + n))[0] == 201
            latencies.append(time.monotonic() - t0)
        callback = wait_for(lambda: webhook.received, 30, what="the GC callback")[0]
        gc = callback["services"][0]["message"]["gc"]
        assert set(callback) == {"services"} and (gc["node"], gc["status"]) == (owner, "complete"), callback
        assert gc["messages_deleted"] >= 5005
        assert st.message_ids(ids) == set(), "delivered messages were collected"
        assert st.message_ids(list(bulk)) == keep, "exactly the sent, unread and other shard's rows stay"
        print(f"send latency during GC: max {max(latencies) * 1000:.0f} ms")
        assert max(latencies) < 2.0
        time.sleep(1.0)
        assert len(webhook.received) == 1, "one callback per node"
        # The GET is an extension (the contract reports by callback only).
        status, body = c.api("GET", "/v1/services/message/gc")
        assert body["services"]["message"]["gc"][owner]["status"] == "complete"
        # A failing run is reported as an errors callback (1014).
        with st.cursor() as cur:
            cur.execute(f"ALTER TABLE {S.T_MESSAGES} RENAME TO wa_messages_away")
        try:
            assert c.api("PUT", "/v1/services/message/gc")[0] == 200
            failed = wait_for(lambda: webhook.received[1:], 20, what="the failure callback")[0]
        finally:
            with st.cursor() as cur:
                cur.execute(f"ALTER TABLE wa_messages_away RENAME TO {S.T_MESSAGES}")
        assert set(failed) == {"errors"} and failed["errors"][0]["code"] == 1014
        assert owner in failed["errors"][0]["details"]
    finally:
        assert c.api("DELETE", "/v1/settings/application")[0] == 200
        with st.cursor() as cur:  # the kept rows would weigh on the next tests' counts
            cur.execute(f"DELETE FROM {S.T_MESSAGES} WHERE id LIKE 'bulk%'")
        st.close()


def test_messages_coreapp_unreachable_500_1014_and_media_needs_the_share(make_cluster, tmp_path) -> None:
    """A coreapp without the shared media volume fails the upload visibly; with its coreapp
    gone, a message is refused with 500/1014 naming the coreapp's address."""
    c = make_cluster()
    c.start_node("master", "master1")
    c.start_node("coreapp", "coreapp1", {"WA_MEDIA_DIR": str(tmp_path / "not-shared")})
    c.start_node("webapp", "webapp1")
    wait_for(c.connected_coreapps, 20, what="a connected coreapp")
    wait_for(c.webapp_up, 20, what="the webapp")
    c.login()
    status, body = c.api("POST", "/v1/media", raw=b"data", content_type="application/pdf")
    assert status == 500 and err(body)[0] == 1014 and "shared media volume" in body["errors"][0]["details"], body
    assert not list((c.workdir / "media").glob("*-*")), "the refused upload is removed"
    c.kill("coreapp1")
    t0 = time.monotonic()
    status, body = c.send("15550005555", timeout=20)
    assert status == 500 and err(body) == (1014, "Internal error"), body
    assert body["errors"][0]["details"].endswith(
        f"Please check if wacore is running: 127.0.0.1:{c.procs['coreapp1'].ports[0]}")
    assert time.monotonic() - t0 < 6, "a short retry, then the error"


def test_login_30_failed_logins_per_hour_then_429(api_cluster, webapp9) -> None:
    """Last of the webapp9 tests: afterwards webapp9 refuses every login from 127.0.0.1."""
    c = api_cluster
    for n in range(30):
        status, body = c.api("POST", "/v1/users/login", None, webapp=webapp9, auth=basic("admin", f"wrong{n}"))
        assert status == 401 and err(body)[0] == 1005, n
    status, body = c.api("POST", "/v1/users/login", None, webapp=webapp9, auth=basic("admin", "wrong"))
    assert status == 429 and err(body) == (1015, "Too many requests")
    assert c.api("POST", "/v1/users/login", None, webapp=webapp9, auth=basic("admin", "Secret-123"))[0] == 429
    assert c.api("POST", "/v1/users/login", None, auth=basic("admin", "Secret-123"))[0] == 200, "per webapp"


# -- The stand-in's own behaviour -----------------------------------------------------------------

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
    support = c.api("GET", "/v1/support")[1]["support"]
    versions = {k: v["debug_info"]["version"] for k, v in support.items() if v["debug_info"]["reachable"]}
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
    assert c.api("POST", "/v1/account/shards", {"cc": "1", "phone_number": "5550100", "shards": 2})[0] == 201
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


def test_single_connect_client_runs_without_masters_and_answers_the_single_instance_health(make_cluster) -> None:
    """Without WA_APP_MULTICONNECT=1 (Meta's docker-compose.yml) one coreapp process is the whole
    client: it holds the account's one shard with its shard keeper in the same process, and the
    webapp reaches it at WACORE_HOSTNAME and answers the single-instance health form."""
    c = make_cluster()
    keeper = ",".join(str(free_port()) for _ in range(4))
    core = c.start_node("coreapp", "wacore", {"WA_APP_MULTICONNECT": "", "WA_STANDIN_SINGLE_MASTER_PORTS": keeper})
    c.start_node("webapp", "webapp1", {"WA_APP_MULTICONNECT": "", "WACORE_HOSTNAME": "127.0.0.1"})
    wait_for(lambda: c.connected_coreapps() == ["wacore"], 30, what="the single-connect coreapp connected")
    wait_for(c.webapp_up, 20, what="webapp up")
    c.login()
    status, body = c.api("GET", "/v1/health")
    assert status == 200 and body["health"] == {"gateway_status": "connected"}, body
    status, body = c.send("15550001111")
    assert status == 201, body
    st = c.storage()
    try:
        assert st.read_message(body["messages"][0]["id"])["shard"] == 0
        assert sorted(n.kind for n in st.nodes() if n.kind != "webapp") == ["coreapp", "master"]
    finally:
        st.close()
    status, body = c.api("GET", "/v1/support")
    assert status == 200 and {v["multi_connect"] for v in body["support"].values()} == {False}, body
    status, body = c.api("POST", "/v1/account/shards", {"cc": "1", "phone_number": "5550001", "shards": 2})
    assert status == 400 and body["errors"][0]["code"] == 1009 and "single-connect" in body["errors"][0]["details"]
    # One signal stops the coreapp and its keeper: the process ends cleanly.
    c.kill("wacore", signal.SIGTERM)
    assert core.popen.returncode == 0, core.output()[-2000:]
    assert "primary_master" in core.output() and "promotion" in core.output()
