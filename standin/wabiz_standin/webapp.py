"""The webapp node: the REST subset on HTTPS (container port 443).

Routing: ``POST /v1/messages`` goes to the owner of shard ``crc32(to) % shards``, read from the
shard map in the database (cached, refreshed every ``WA_ROUTE_REFRESH_SECONDS`` <= 1 s), so the
API keeps serving with every master down. Admin changes (settings, shard count, planned shard
moves) are forwarded to the primary master, which stores them under its lease epoch and pushes
them to the nodes.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from . import logs
from .config import Config
from .master import hash_password
from .node import BaseNode, Fatal
from .schema import S
from .storage import StorageError

log = logging.getLogger("wabiz")
access_log = logging.getLogger("wabiz.access")

SEND_RETRY_SECONDS = 3.0


def error(status: int, code: int, title: str, details: str = "") -> web.Response:
    err: dict[str, Any] = {"code": code, "title": title}
    if details:
        err["details"] = details
    return web.json_response({"errors": [err], "meta": {"api_status": "stable"}}, status=status)


def check_password(password: str, stored: str) -> bool:
    try:
        _algo, _iters, salt, _digest = stored.split("$")
    except ValueError:
        return False
    return hmac.compare_digest(hash_password(password, salt), stored)


def subject_alt_names(host: str) -> list[str]:
    """``DNS:``/``IP:`` entries for WEBAPP_HOSTNAME, localhost, 127.0.0.1 and the container's
    hostname (what clients verifying the certificate with a CA file connect to)."""
    out: list[str] = []
    for name in (host, "localhost", "127.0.0.1", socket.gethostname()):
        name = (name or "").strip().strip("[]")
        try:
            entry = f"IP:{ipaddress.ip_address(name)}"
        except ValueError:
            # openssl's config syntax: nothing that could end or extend the entry list.
            entry = f"DNS:{name}" if re.fullmatch(r"[A-Za-z0-9*_.-]{1,253}", name) else ""
        if entry and entry not in out:
            out.append(entry)
    return out


def ensure_certificate(data_dir: str, host: str) -> str:
    """A self-signed certificate made at first start with the openssl CLI, kept in the data
    volume as one PEM file (key + certificate) written atomically, so webapps sharing the
    volume never load a key and a certificate of two different runs. It names the webapp in
    subjectAltName (Python clients verifying it with a CA file require it)."""
    certs = Path(os.environ.get("WA_WEB_CERT_DIR") or Path(data_dir) / "certs")
    pem = certs / "webapp.pem"
    if pem.exists():
        return str(pem)
    certs.mkdir(parents=True, exist_ok=True)
    openssl = shutil.which("openssl")
    if not openssl:
        raise Fatal("openssl is not installed: cannot make the webapp's self-signed certificate")
    tmp = certs / f".new-{os.getpid()}-{secrets.token_hex(4)}"
    key, cert = Path(f"{tmp}.key"), Path(f"{tmp}.crt")
    try:
        res = subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                              "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "3650",
                              "-subj", f"/CN={host}", "-addext", "subjectAltName=" + ",".join(subject_alt_names(host))],
                             capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise Fatal(f"openssl could not make a certificate: {res.stderr.strip().splitlines()[-1:]}")
        fd = os.open(f"{tmp}.pem", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.read_text() + cert.read_text())
        if not pem.exists():
            os.replace(f"{tmp}.pem", pem)
    finally:
        for f in (key, cert, Path(f"{tmp}.pem")):
            f.unlink(missing_ok=True)
    return str(pem)


class Webapp(BaseNode):
    kind = "webapp"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.routes: list[tuple] = []  # (shard_id, owner, epoch, host, messaging_port, control_port)
        self.routes_at = 0.0
        self.routes_lock = asyncio.Lock()
        self.token_cache: dict[str, tuple[str, float]] = {}
        self.requests: Counter[tuple[str, int]] = Counter()
        self.sent = 0

    @property
    def role(self) -> str:
        return "webapp"

    # -- start -------------------------------------------------------------------------------
    async def main(self) -> None:
        for w in self.cfg.warnings:
            log.warning("%s", w)
        pem = ensure_certificate(self.cfg.data_dir, self.cfg.external_host)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(pem)
        await self.wait_for_schema()
        await self.register()
        await self.load_settings()
        Path(self.cfg.media_dir).mkdir(parents=True, exist_ok=True)
        app = web.Application(middlewares=[self.mw_errors], client_max_size=64 * 1024 * 1024)
        r = app.router
        r.add_post("/v1/users/login", self.h_login)
        r.add_get("/v1/health", self.h_health_api)
        r.add_get("/v1/settings/application", self.h_settings_get)
        r.add_patch("/v1/settings/application", self.h_settings_patch)
        r.add_get("/v1/account/shards", self.h_shards_get)
        r.add_post("/v1/account/shards", self.h_shards_post)
        r.add_post("/v1/account/shards/{shard_id}/owner", self.h_shard_owner_post)
        r.add_get("/v1/support", self.h_support)
        r.add_post("/v1/messages", self.h_send)
        r.add_get("/v1/messages/{id}", self.h_message_get)
        r.add_post("/v1/media", self.h_media_post)
        r.add_get("/v1/media/{id}", self.h_media_get)
        r.add_put("/v1/services/message/gc", self.h_gc)
        r.add_get("/v1/services/message/gc", self.h_gc_status)
        r.add_get("/v1/stats/app", self.h_stats)
        r.add_get("/v1/stats/db", self.h_stats)
        r.add_get("/metrics", self.h_metrics)
        await self.start_site(app, self.cfg.listen_ports[0], ssl_context=ctx)
        log.info("webapp listening on https://%s:%d", self.cfg.listen_address, self.cfg.listen_ports[0])
        last_hb = time.monotonic()
        while not self.stopping.is_set():
            await self.refresh_routes()
            if time.monotonic() - last_hb >= self.cfg.db_heartbeat:
                await self.db_heartbeat()
                await self.load_settings()
                last_hb = time.monotonic()
            await self._sleep(self.cfg.route_refresh)

    async def refresh_routes(self, force: bool = False) -> None:
        async with self.routes_lock:
            if not force and time.monotonic() - self.routes_at < self.cfg.route_refresh / 2:
                return
            try:
                routes = await self.store.call(self.storage.routes, timeout=2)
            except StorageError as exc:
                log.warning("shard map refresh failed (serving from cache): %s", exc)
                return
            old = {r[0]: r[1] for r in self.routes}
            new = {r[0]: r[1] for r in routes}
            if old != new:
                logs.state(log, "routes", shards=len(routes),
                           owners=",".join(f"{k}:{v or '-'}" for k, v in sorted(new.items())))
            self.routes, self.routes_at = routes, time.monotonic()

    # -- auth and errors ---------------------------------------------------------------------
    @web.middleware
    async def mw_errors(self, request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.monotonic()
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            resp = error(exc.status, 1006 if exc.status == 404 else 1000, exc.reason, "")
        except json.JSONDecodeError:
            resp = error(400, 1009, "Parameter value is not valid", "the body is not JSON")
        except StorageError as exc:
            resp = error(503, 1011, "Service not ready", f"database: {exc}")
        except Exception as exc:
            log.exception("internal error")
            resp = error(500, 1014, "Internal error", type(exc).__name__)
        route = request.match_info.route.resource
        path = route.canonical if route is not None else "unmatched"
        self.requests[(path, resp.status)] += 1
        access_log.info("%s %s %d %.1fms", request.method, request.path, resp.status,
                        (time.monotonic() - started) * 1000)
        return resp

    async def auth(self, request: web.Request, apikey_ok: bool = False) -> web.Response | None:
        """None when the request may proceed, else the error response."""
        header = request.headers.get("Authorization", "")
        scheme, _, cred = header.partition(" ")
        if scheme.lower() == "apikey" and apikey_ok and self.cfg.api_key:
            if hmac.compare_digest(cred.strip(), self.cfg.api_key):
                return None
            return error(401, 1005, "Access denied", "invalid API key")
        if scheme.lower() == "bearer" and cred:
            cached = self.token_cache.get(cred)
            if cached and cached[1] > time.monotonic():
                return None
            found = await self.store.call(self.storage.check_token, cred)
            if found:
                self.token_cache[cred] = (found[0], time.monotonic() + min(5.0, found[1]))
                return None
            return error(401, 1005, "Access denied", "invalid or expired token")
        return error(401, 1005, "Access denied", "Authorization: Bearer TOKEN required"
                     + (" (or Apikey)" if apikey_ok else ""))

    async def h_login(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        scheme, _, cred = header.partition(" ")
        try:
            user, _, password = base64.b64decode(cred).decode().partition(":") if scheme.lower() == "basic" \
                else ("", "", "")
        except ValueError:
            user, password = "", ""
        if not user:
            return error(401, 1005, "Access denied", "HTTP Basic authentication required")
        row = await self.store.call(self.storage.read_user, user)
        if not row or not check_password(password, row[1]):
            return error(401, 1005, "Access denied", "invalid username or password")
        body: dict[str, Any] = {}
        if request.can_read_body:
            try:
                body = await request.json()
            except json.JSONDecodeError:
                body = {}
        new_password = body.get("new_password") if isinstance(body, dict) else None
        if row[2] and not new_password:
            return error(400, 1005, "Access denied", "Password change required: log in with new_password")
        if new_password is not None:
            if not isinstance(new_password, str) or len(new_password) < 8 or len(new_password) > 64:
                return error(400, 1009, "Parameter value is not valid", "new_password: 8 to 64 characters")
            await self.store.call(self.storage.set_password, user, hash_password(new_password))
            logs.state(log, "password_change", user=user)
        token = secrets.token_urlsafe(32)
        await self.store.call(self.storage.insert_token, token, user, self.cfg.token_ttl)
        expires = time.strftime("%Y-%m-%d %H:%M:%S+00:00", time.gmtime(time.time() + self.cfg.token_ttl))
        return web.json_response({"users": [{"token": token, "expires_after": expires}],
                                  "meta": {"api_status": "stable", "version": self.cfg.version}})

    # -- health, support, settings, shards ---------------------------------------------------
    async def live_nodes(self, ping_timeout: float = 1.5) -> list[tuple[Any, dict[str, Any] | None]]:
        nodes = await self.store.call(self.storage.nodes)
        nodes = [n for n in nodes if n.kind in ("master", "coreapp") and n.heartbeat_age is not None
                 and n.heartbeat_age < self.cfg.db_dead_after + self.cfg.db_heartbeat]
        pings = await asyncio.gather(*(self.get_json(n.host, n.control_port or 0, "/ping", timeout=ping_timeout)
                                       for n in nodes))
        return list(zip(nodes, pings, strict=False))

    async def h_health_api(self, request: web.Request) -> web.Response:
        denied = await self.auth(request, apikey_ok=True)
        if denied is not None:
            return denied
        health: dict[str, Any] = {}
        for n, ping in await self.live_nodes():
            if ping and ping.get("instance") == n.instance:
                health[n.node_id] = {"gateway_status": ping.get("gateway_status"), "role": ping.get("role")}
            else:
                health[n.node_id] = {"role": n.role, "errors": [
                    {"code": 1011, "title": "Service not ready", "details": "the node does not answer"}]}
        return web.json_response({"health": health, "meta": {"api_status": "stable", "version": self.cfg.version}})

    async def h_support(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        shards = await self.store.call(self.storage.shard_map)
        owned: dict[str, list[int]] = {}
        for s in shards:
            if s.active and s.owner:
                owned.setdefault(s.owner, []).append(s.shard_id)
        nodes = {}
        # A short ping timeout: the support view must stay fast while a dead host's packets go
        # unanswered (a drill polls it every half second); such a node shows as unreachable.
        for n, ping in await self.live_nodes(ping_timeout=0.4):
            nodes[n.node_id] = {"role": (ping or {}).get("role", n.role), "version": n.version,
                                "shards": owned.get(n.node_id, []),
                                "socket": (ping or {}).get("gateway_status", "unreachable"),
                                "heartbeat_age": round(n.heartbeat_age or 0, 3)}
        version, _ = await self.store.call(self.storage.schema_version)
        return web.json_response({"support": {
            "webapp": {"node_id": self.cfg.node_id, "version": self.cfg.version},
            "schema_version": version, "shards": sum(1 for s in shards if s.active), "nodes": nodes},
            "meta": {"api_status": "stable", "version": self.cfg.version}})

    async def h_settings_get(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        rows = await self.store.call(self.storage.settings)
        app = dict(S.DEFAULT_SETTINGS)
        app.update(rows.get(S.SETTINGS_APPLICATION, ({}, 0))[0])
        return web.json_response({"settings": {"application": app}, "meta": {"api_status": "stable"}})

    async def forward_to_primary(self, path: str, body: Any) -> web.Response:
        lease = await self.store.call(self.storage.read_lease)
        if not lease.holder or lease.expired:
            return error(503, 1011, "Service not ready", "no primary master holds the lease")
        node = next((n for n in await self.store.call(self.storage.nodes) if n.node_id == lease.holder), None)
        if node is None or not node.control_port:
            return error(503, 1011, "Service not ready", "the primary master is not registered")
        res = await self.request_json("POST", node.host, node.control_port, path, body, timeout=10)
        if res is None:
            return error(503, 1011, "Service not ready", "the primary master does not answer")
        status = res.pop("_status", 200)
        if status == 400:
            return error(400, 1009, "Parameter value is not valid", str(res.get("error")))
        if status >= 300:
            return error(503, 1011, "Service not ready", str(res.get("error")))
        return web.json_response({**res, "meta": {"api_status": "stable"}})

    async def h_settings_patch(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        body = await request.json()
        if not isinstance(body, dict) or not body:
            return error(400, 1009, "Parameter value is not valid", "a JSON object of settings is required")
        return await self.forward_to_primary("/control/settings", body)

    async def h_shards_get(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        shards = await self.store.call(self.storage.shard_map)
        return web.json_response({"account": {"shards": sum(1 for s in shards if s.active)},
                                  "meta": {"api_status": "stable"}})

    async def h_shards_post(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        body = await request.json()
        shards = body.get("shards") if isinstance(body, dict) else None
        if shards not in S.VALID_SHARD_COUNTS:
            return error(400, 1009, "Parameter value is not valid",
                         f"shards must be one of {', '.join(map(str, S.VALID_SHARD_COUNTS))}")
        return await self.forward_to_primary("/control/shards", {"shards": shards})

    async def h_shard_owner_post(self, request: web.Request) -> web.Response:
        """Planned move of one shard to a named spare coreapp (done by the primary master)."""
        denied = await self.auth(request)
        if denied is not None:
            return denied
        raw = request.match_info["shard_id"]
        if not re.fullmatch(r"[0-9]{1,2}", raw):
            return error(400, 1009, "Parameter value is not valid", "shard id: an active shard number")
        body = await request.json()
        owner = body.get("owner") if isinstance(body, dict) else None
        if not isinstance(owner, str) or not owner.strip():
            return error(400, 1009, "Parameter value is not valid", "owner: the node id of a coreapp is required")
        resp = await self.forward_to_primary("/control/move-shard", {"shard": int(raw), "owner": owner.strip()})
        if resp.status == 200:
            await self.refresh_routes(force=True)
        return resp

    # -- messages ----------------------------------------------------------------------------
    async def h_send(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        body = await request.json()
        to = body.get("to") if isinstance(body, dict) else None
        if not isinstance(to, str) or not re.fullmatch(r"\+?[0-9]{3,20}", to):
            return error(400, 1009, "Parameter value is not valid", "to: a phone number (digits) is required")
        text = body.get("text", {}).get("body", "") if isinstance(body.get("text"), dict) else ""
        msg_id = "gBEG" + uuid.uuid4().hex.upper()
        deadline = time.monotonic() + SEND_RETRY_SECONDS
        last = "no route"
        while True:
            if not self.routes:
                await self.refresh_routes(force=True)
            routes = self.routes
            if routes:
                shard = S.shard_for(to, len(routes))
                route = routes[shard]
                if route[1] and route[3] and route[4]:
                    res = await self.request_json("POST", route[3], route[4], "/v1/messages",
                                                  {"id": msg_id, "to": to, "body": text, "shard": route[0]},
                                                  timeout=max(1.0, deadline - time.monotonic()))
                    if res and res.get("_status") == 201:
                        self.sent += 1
                        return web.json_response({"messages": [{"id": msg_id}],
                                                  "meta": {"api_status": "stable"}}, status=201)
                    last = (res or {}).get("error") or f"owner {route[1]} does not answer"
                else:
                    last = f"shard {route[0]} has no owner"
            if time.monotonic() >= deadline:
                return error(503, 1011, "Service not ready", f"message not accepted: {last}")
            await asyncio.sleep(0.2)
            await self.refresh_routes(force=True)

    async def h_message_get(self, request: web.Request) -> web.Response:
        """Read back a message by id (the loss check): persisted -> 200, unknown -> 404."""
        denied = await self.auth(request)
        if denied is not None:
            return denied
        msg = await self.store.call(self.storage.read_message, request.match_info["id"])
        if not msg:
            return error(404, 1006, "Resource not found", "no such message")
        return web.json_response({"messages": [msg], "meta": {"api_status": "stable"}})

    # -- media -------------------------------------------------------------------------------
    async def h_media_post(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        data = await request.read()
        if not data:
            return error(400, 1009, "Parameter value is not valid", "empty media body")
        media_id = uuid.uuid4().hex
        root = Path(self.cfg.media_dir)
        tmp = root / f".{media_id}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, root / media_id)
        (root / f"{media_id}.json").write_text(json.dumps({
            "mime_type": request.content_type, "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}))
        return web.json_response({"media": [{"id": media_id}], "meta": {"api_status": "stable"}}, status=201)

    async def h_media_get(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        media_id = request.match_info["id"]
        path = Path(self.cfg.media_dir) / media_id
        if not re.fullmatch(r"[0-9a-f]{32}", media_id) or not path.exists():
            return error(404, 1006, "Resource not found", "no such media")
        meta = json.loads((path.parent / f"{media_id}.json").read_text())
        return web.Response(body=path.read_bytes(), content_type=meta.get("mime_type") or "application/octet-stream")

    # -- gc ------------------------------------------------------------------------------------
    async def _gc_all(self, method: str) -> web.Response:
        await self.refresh_routes(force=True)
        owners = {(r[1], r[3], r[5]) for r in self.routes if r[1] and r[3] and r[5]}
        results = await asyncio.gather(*(self.request_json(method, host, port, "/control/gc", {}, timeout=5)
                                         for _owner, host, port in owners))
        gc = {}
        for (owner, _h, _p), res in zip(owners, results, strict=False):
            if res is None:
                gc[owner] = {"status": "failed", "details": "the coreapp does not answer"}
            else:
                res.pop("_status", None)
                gc[owner] = res
        return web.json_response({"gc": gc, "meta": {"api_status": "stable"}})

    async def h_gc(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        logs.state(log, "gc_request")
        return await self._gc_all("PUT")

    async def h_gc_status(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        return await self._gc_all("GET")

    # -- stats and metrics -----------------------------------------------------------------------
    async def h_stats(self, request: web.Request) -> web.Response:
        denied = await self.auth(request, apikey_ok=True)
        if denied is not None:
            return denied
        name = request.path.rsplit("/", 1)[-1]
        stats = await self.store.call(self.storage.stats)
        value, age = stats.get(name, ({}, None))
        return web.json_response({"stats": {name: {**value, "age_seconds": age}}, "meta": {"api_status": "stable"}})

    async def h_metrics(self, request: web.Request) -> web.Response:
        denied = await self.auth(request, apikey_ok=True)
        if denied is not None:
            return denied
        lines = ["# HELP wa_webapp_requests_total Requests served by this webapp.",
                 "# TYPE wa_webapp_requests_total counter"]
        for (path, status), n in sorted(self.requests.items()):
            lines.append(f'wa_webapp_requests_total{{path="{path}",status="{status}"}} {n}')
        lines += ["# HELP wa_webapp_messages_sent_total Messages this webapp got acknowledged.",
                  "# TYPE wa_webapp_messages_sent_total counter", f"wa_webapp_messages_sent_total {self.sent}",
                  "# HELP wa_cluster_shards Active shards.", "# TYPE wa_cluster_shards gauge",
                  f"wa_cluster_shards {len(self.routes)}",
                  "# HELP wa_cluster_shards_owned Active shards with an owner.", "# TYPE wa_cluster_shards_owned gauge",
                  f"wa_cluster_shards_owned {sum(1 for r in self.routes if r[1])}"]
        try:
            counts = await self.store.call(self.storage.count_messages, timeout=2)
            lines += ["# HELP wa_messages Messages in the database by status.", "# TYPE wa_messages gauge"]
            lines += [f'wa_messages{{status="{k}"}} {v}' for k, v in sorted(counts.items())]
        except StorageError:
            pass
        return web.Response(text="\n".join(lines) + "\n", content_type="text/plain")

    async def shutdown(self) -> None:
        try:
            await self.store.call(self.storage.deregister, self.cfg.node_id, self.instance, timeout=2)
        except StorageError:
            pass
