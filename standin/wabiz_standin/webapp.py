"""The webapp node: the public REST contract on HTTPS (container port 443).

Routing: ``POST /v1/messages`` goes to the owner of shard ``crc32(to) % shards``, read from the
shard map in the database (cached, refreshed every ``WA_ROUTE_REFRESH_SECONDS`` <= 1 s), so the
API keeps serving with every master down. Admin changes (settings, shard count, planned shard
moves) are forwarded to the primary master, which stores them under its lease epoch and pushes
them to the nodes. Every error is ``{"errors": [{code, title, details}], "meta"}`` with the HTTP
status the contract gives each code (``HTTP_STATUS``).
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
import string
import subprocess
import time
import uuid
from collections import Counter, deque
from pathlib import Path
from typing import Any

from aiohttp import web

from . import logs
from .config import Config
from .master import application_settings, hash_password, validate_settings
from .node import BaseNode, Fatal, metric
from .schema import S
from .storage import Node, StorageError

log = logging.getLogger("wabiz")
access_log = logging.getLogger("wabiz.access")

SEND_RETRY_SECONDS = 3.0


TITLES = {
    1005: "Access denied", 1006: "Resource not found", 1008: "Required parameter is missing",
    1009: "Parameter value is not valid", 1011: "Service not ready", 1014: "Internal error",
    1015: "Too many requests", 1017: "Not a primary master", 1018: "Not a primary coreapp",
    1024: "Password change required",
}
HTTP_STATUS = {1005: 401, 1006: 404, 1008: 400, 1009: 400, 1011: 500, 1014: 500, 1015: 429, 1017: 500, 1018: 500,
               1024: 401}
MEDIA_MAX_BYTES = 100 * 1024 * 1024
FAILED_LOGINS = (30, 3600.0)  # failed logins per client address per hour, then 429
HEALTH_WINDOW = 60.0
PASSWORD_CHARS = re.compile("[A-Za-z0-9" + re.escape(string.punctuation) + "]*")
SOCKET_CONN = {"connected": "UP", "connecting": "SC", "disconnected": "DN"}
ADMIN_PAGE = """<!DOCTYPE html>
<html><head><title>WhatsApp Business API</title></head>
<body><h1>WhatsApp Business API</h1><p>{node} (stand-in {version})</p></body></html>
"""


def password_problem(password: Any) -> str | None:
    """Why a new password is refused, or None: 8 to 64 characters from letters, digits and ASCII
    punctuation, with at least one upper-case letter, one lower-case letter, one digit and one
    punctuation character."""
    if not isinstance(password, str) or not 8 <= len(password) <= 64:
        return "new_password: 8 to 64 characters"
    if not PASSWORD_CHARS.fullmatch(password):
        return "new_password: only letters, digits and ASCII punctuation are allowed"
    if not (re.search("[A-Z]", password) and re.search("[a-z]", password) and re.search("[0-9]", password)
            and any(c in string.punctuation for c in password)):
        return "new_password: at least one upper-case letter, one lower-case letter, one digit and one special " \
               "character"
    return None


def prometheus(metrics: dict[str, dict[str, dict[str, Any]]]) -> str:
    """Prometheus text of ``{node_id: {METRIC: {"type", "help", "data"}}}``; each sample gets a
    ``node`` label (none for the key "")."""
    def esc(v: Any) -> str:
        return str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")

    names: dict[str, dict[str, Any]] = {}
    for by_name in metrics.values():
        for name, m in (by_name or {}).items():
            if isinstance(m, dict) and "data" in m:
                names.setdefault(name, m)
    lines: list[str] = []
    for name in sorted(names):
        prom = re.sub(r"[^a-zA-Z0-9_:]", "_", name)
        lines += [f"# HELP {prom} {esc(names[name].get('help', ''))}", f"# TYPE {prom} {names[name].get('type', 'gauge')}"]
        for node_id, by_name in sorted(metrics.items()):
            for d in ((by_name or {}).get(name) or {}).get("data", []):
                labels = {**({"node": node_id} if node_id else {}), **(d.get("labels") or {})}
                lines.append(prom + "{" + ",".join(f'{k}="{esc(v)}"' for k, v in labels.items()) + "} "
                             + str(d.get("value")))
    return "\n".join(lines) + "\n"


class Window:
    """Events in a sliding time window (the rate limits)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.times: deque[float] = deque()

    def count(self) -> int:
        cutoff = time.monotonic() - self.seconds
        while self.times and self.times[0] <= cutoff:
            self.times.popleft()
        return len(self.times)

    def add(self) -> None:
        self.times.append(time.monotonic())


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
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.sent = 0
        self.meta = {"api_status": "stable", "version": cfg.version}
        self.failed_logins: dict[str, Window] = {}
        self.health_calls = Window(HEALTH_WINDOW)

    @property
    def role(self) -> str:
        return "webapp"

    # -- answers ---------------------------------------------------------------------------
    def reply(self, payload: dict[str, Any] | None = None, status: int = 200) -> web.Response:
        return web.json_response({**(payload or {}), "meta": self.meta}, status=status)

    def error(self, code: int, details: str, status: int | None = None) -> web.Response:
        return web.json_response({"errors": [{"code": code, "title": TITLES[code], "details": details}],
                                  "meta": self.meta}, status=status or HTTP_STATUS[code])

    def unreachable(self, n: Node) -> dict[str, Any]:
        return {"errors": [{"code": 1014, "title": TITLES[1014], "details": f"Unable to reach {n.node_id}. "
                            f"Please check if wacore is running: {self.node_host(n.host)}:{n.control_port}"}]}

    def node_host(self, host: str) -> str:
        """Where a node is reached: a single-connect webapp reaches its client's nodes at
        WACORE_HOSTNAME (the coreapp's own host name means nothing on a bridge network)."""
        return host if self.cfg.multiconnect else self.cfg.wacore_host

    async def request_json(self, method: str, host: str, port: int, path: str, body: Any,
                           timeout: float) -> dict[str, Any] | None:
        return await super().request_json(method, self.node_host(host), port, path, body, timeout)

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
        app = web.Application(middlewares=[self.mw_errors], client_max_size=MEDIA_MAX_BYTES + 64 * 1024)
        routes: dict[str, dict[str, Any]] = {
            "/v1/users/login": {"POST": self.h_login},
            "/v1/health": {"GET": self.h_health_api},
            "/v1/settings/application": {"GET": self.h_settings_get, "PATCH": self.h_settings_patch,
                                         "DELETE": self.h_settings_delete},
            "/v1/account/shards": {"GET": self.h_shards_get, "POST": self.h_shards_post},
            "/v1/account/shards/{shard_id}/owner": {"POST": self.h_shard_owner_post},
            "/v1/support": {"GET": self.h_support},
            "/v1/messages": {"POST": self.h_send},
            "/v1/messages/{id}": {"GET": self.h_message_get, "PUT": self.h_message_put},
            "/v1/media": {"POST": self.h_media_post},
            "/v1/media/{id}": {"GET": self.h_media_get},
            "/v1/services/message/gc": {"PUT": self.h_gc, "GET": self.h_gc_status},
            "/v1/stats/app": {"GET": self.h_stats},
            "/v1/stats/app/internal": {"GET": self.h_stats},
            "/v1/stats/db": {"GET": self.h_stats},
            "/v1/stats/db/internal": {"GET": self.h_stats},
            "/metrics": {"GET": self.h_metrics},
        }
        app.router.add_get("/", self.h_admin_page)
        for path, methods in routes.items():
            for variant in (path, path + "/"):  # the contract: with and without a trailing slash
                resource = app.router.add_resource(variant)
                for method, handler in methods.items():
                    resource.add_route(method, handler)
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
        except web.HTTPRequestEntityTooLarge:
            resp = self.error(1009, f"the request body is larger than {MEDIA_MAX_BYTES // (1024 * 1024)} MB")
        except web.HTTPException as exc:
            # Unknown paths, and known paths with a method they do not have.
            resp = self.error(1006, "URL path not found") if exc.status in (404, 405) else \
                self.error(1014, exc.reason, status=exc.status)
        except json.JSONDecodeError:
            resp = self.error(1009, "the body is not JSON")
        except StorageError as exc:
            resp = self.error(1011, f"database: {exc}")
        except Exception as exc:
            log.exception("internal error")
            resp = self.error(1014, type(exc).__name__)
        route = request.match_info.route.resource
        path = (route.canonical.rstrip("/") or "/") if route is not None else "unmatched"
        self.requests[(request.method, path, resp.status)] += 1
        access_log.info("%s %s %d %.1fms", request.method, request.path, resp.status,
                        (time.monotonic() - started) * 1000)
        return resp

    async def auth(self, request: web.Request, apikey_ok: bool = False) -> web.Response | None:
        """None when the request may proceed, else the error response."""
        header = request.headers.get("Authorization", "")
        scheme, _, cred = header.partition(" ")
        if scheme.lower() == "apikey":
            key = self.cfg.api_key
            if apikey_ok and key and hmac.compare_digest(cred.strip().encode(), key.encode()):
                return None
            why = "invalid API key" if apikey_ok and key else \
                "API-key authentication is disabled" if apikey_ok else "an API key is not accepted here"
            return self.error(1005, why)
        if scheme.lower() == "bearer" and cred:
            cached = self.token_cache.get(cred)
            if cached and cached[1] > time.monotonic():
                return None
            found = await self.store.call(self.storage.check_token, cred)
            if found:
                self.token_cache[cred] = (found[0], time.monotonic() + min(5.0, found[1]))
                return None
            return self.error(1005, "invalid or expired token")
        return self.error(1005, "Authorization: Bearer TOKEN required" + (" (or Apikey)" if apikey_ok else ""))

    async def json_body(self, request: web.Request) -> dict[str, Any]:
        """The JSON object of the body ({} when there is none); a non-object is refused (1009)."""
        if not request.can_read_body:
            return {}
        raw = await request.read()
        if not raw.strip():
            return {}
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise json.JSONDecodeError("not an object", "", 0)
        return body

    async def h_admin_page(self, request: web.Request) -> web.Response:
        """GET /: the admin page (load balancer and Kubernetes probes use it), no auth."""
        return web.Response(text=ADMIN_PAGE.format(node=self.cfg.node_id, version=self.cfg.version),
                            content_type="text/html")

    async def h_login(self, request: web.Request) -> web.Response:
        addr = request.remote or "-"
        if len(self.failed_logins) > 10000:  # forget addresses whose window is empty
            self.failed_logins = {a: w for a, w in self.failed_logins.items() if w.count()}
        failures = self.failed_logins.setdefault(addr, Window(FAILED_LOGINS[1]))
        if failures.count() >= FAILED_LOGINS[0]:
            return self.error(1015, f"more than {FAILED_LOGINS[0]} failed logins from {addr} in an hour")
        scheme, _, cred = request.headers.get("Authorization", "").partition(" ")
        try:
            user, _, password = base64.b64decode(cred).decode().partition(":") if scheme.lower() == "basic" \
                else ("", "", "")
        except ValueError:
            user, password = "", ""
        if not user:
            return self.error(1005, "HTTP Basic authentication required")
        row = await self.store.call(self.storage.read_user, user)
        if not row or not check_password(password, row[1]):
            failures.add()
            return self.error(1005, "invalid username or password")
        try:
            body = await self.json_body(request)
        except json.JSONDecodeError:
            body = {}
        new_password = body.get("new_password")
        if row[2] and new_password is None:
            return self.error(1024, "the default password must be changed: log in with new_password")
        if new_password is not None:
            problem = password_problem(new_password)
            if problem:
                return self.error(1009, problem)
            await self.store.call(self.storage.set_password, user, hash_password(new_password))
            logs.state(log, "password_change", user=user)
        token = secrets.token_urlsafe(32)
        await self.store.call(self.storage.insert_token, token, user, self.cfg.token_ttl)
        expires = time.strftime("%Y-%m-%d %H:%M:%S+00:00", time.gmtime(time.time() + self.cfg.token_ttl))
        return self.reply({"users": [{"token": token, "expires_after": expires}]})

    # -- health, support ---------------------------------------------------------------------
    async def probe_nodes(self, ping_timeout: float = 1.5) -> list[tuple[Node, dict[str, Any] | None]]:
        """Every registered master and coreapp with its /ping answer (None: not reached, or
        another process answers on its port)."""
        nodes = [n for n in await self.store.call(self.storage.nodes) if n.kind in ("master", "coreapp")]
        pings = await asyncio.gather(*(self.get_json(n.host, n.control_port or 0, "/ping", timeout=ping_timeout)
                                       for n in nodes))
        return [(n, p if p and p.get("instance") == n.instance else None) for n, p in zip(nodes, pings, strict=True)]

    async def h_health_api(self, request: web.Request) -> web.Response:
        denied = await self.auth(request, apikey_ok=True)
        if denied is not None:
            return denied
        limit = self.cfg.health_rate_limit
        if limit and self.health_calls.count() >= limit:
            return self.error(1015, f"at most {limit} health calls per {HEALTH_WINDOW:.0f} s")
        self.health_calls.add()
        if not self.cfg.multiconnect:
            return await self.single_connect_health()
        health: dict[str, Any] = {}
        for n, ping in await self.probe_nodes():
            health[n.node_id] = {"gateway_status": ping.get("gateway_status"), "role": ping.get("role")} \
                if ping else self.unreachable(n)
        return self.reply({"health": health})

    async def single_connect_health(self) -> web.Response:
        """A single-connect client's health: its coreapp's gateway status, not a node list. The
        single-instance form has no ``disconnected``: a coreapp still waiting for its shard is
        ``connecting``."""
        coreapps = [(n, ping) for n, ping in await self.probe_nodes() if n.kind == "coreapp"]
        for _n, ping in coreapps:
            if ping:
                status = ping.get("gateway_status")
                return self.reply({"health": {"gateway_status": "connecting" if status == "disconnected" else status}})
        if coreapps:
            return self.reply({"health": self.unreachable(coreapps[0][0])})
        return self.reply({"health": {"gateway_status": "uninitialized"}})

    async def h_support(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        shards = await self.store.call(self.storage.shard_map)
        active = [s for s in shards if s.active]
        owned: dict[str, list[int]] = {}
        for s in active:
            if s.owner:
                owned.setdefault(s.owner, []).append(s.shard_id)
        schema_version, _ = await self.store.call(self.storage.schema_version)
        support: dict[str, Any] = {}
        # A short ping timeout: the support view must stay fast while a dead host's packets go
        # unanswered (a drill polls it every half second); such a node shows as UNK.
        for n, ping in await self.probe_nodes(ping_timeout=0.4):
            gateway = (ping or {}).get("gateway_status")
            support[n.node_id] = {
                "multi_connect": self.cfg.multiconnect, "role": (ping or {}).get("role") or n.role or n.kind,
                "shards": owned.get(n.node_id, []), "socket_conn": SOCKET_CONN.get(gateway or "", "UNK"),
                "db_engine": self.cfg.engine,
                "debug_info": {"kind": n.kind, "version": n.version, "reachable": ping is not None,
                               "gateway_status": gateway, "heartbeat_age": round(n.heartbeat_age or 0, 3),
                               "shard_epoch": (ping or {}).get("shard_epoch"), "master_epoch": (ping or {}).get("epoch"),
                               "schema_version": schema_version, "active_shards": len(active),
                               "reported_by": self.cfg.node_id}}
        return self.reply({"support": support})

    # -- settings and shards -------------------------------------------------------------------
    async def current_settings(self) -> dict[str, Any]:
        rows = await self.store.call(self.storage.settings)
        return application_settings(rows.get(S.SETTINGS_APPLICATION, ({}, 0))[0], self.cfg.default_settings)

    async def forward_to_primary(self, path: str, body: Any) -> dict[str, Any] | web.Response:
        """POST to the primary master's control port: its answer, or the error response."""
        lease = await self.store.call(self.storage.read_lease)
        if not lease.holder or lease.expired:
            return self.error(1011, "no primary master holds the lease")
        node = next((n for n in await self.store.call(self.storage.nodes) if n.node_id == lease.holder), None)
        if node is None or not node.control_port:
            return self.error(1011, "the primary master is not registered")
        res = await self.request_json("POST", node.host, node.control_port, path, body, timeout=10)
        if res is None:
            return self.error(1014, f"the primary master does not answer: {node.host}:{node.control_port}")
        status = res.pop("_status", 200)
        if status == 400:
            return self.error(1009, str(res.get("error")))
        if status == 421:
            return self.error(1017, f"{lease.holder} is no longer the primary master")
        if status >= 300:
            return self.error(1011, str(res.get("error")))
        return res

    async def h_settings_get(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        return self.reply({"settings": {"application": await self.current_settings()}})

    async def h_settings_patch(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        body = await self.json_body(request)
        _new, why = validate_settings(await self.current_settings(), body)
        if why:
            return self.error(1009, why)
        res = await self.forward_to_primary("/control/settings", body)
        return res if isinstance(res, web.Response) else self.reply()

    async def h_settings_delete(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        res = await self.forward_to_primary("/control/settings/reset", {})
        return res if isinstance(res, web.Response) else self.reply()

    async def h_shards_get(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        shards = await self.store.call(self.storage.shard_map)
        return self.reply({"account": {"shards": sum(1 for s in shards if s.active)}})

    async def h_shards_post(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        body = await self.json_body(request)
        missing = [k for k in ("cc", "phone_number", "shards") if body.get(k) in (None, "")]
        if missing:
            return self.error(1008, f"missing: {', '.join(missing)}")
        cc, phone, shards = str(body["cc"]), str(body["phone_number"]), body["shards"]
        if not re.fullmatch(r"[0-9]{1,3}", cc):
            return self.error(1009, "cc: the country calling code, 1 to 3 digits")
        if not re.fullmatch(r"[0-9]{4,15}", phone):
            return self.error(1009, "phone_number: the number without the country code, 4 to 15 digits")
        if shards not in S.VALID_SHARD_COUNTS or isinstance(shards, bool):
            return self.error(1009, f"shards must be one of {', '.join(map(str, S.VALID_SHARD_COUNTS))}")
        if shards != 1 and not self.cfg.multiconnect:
            return self.error(1009, "shards: a single-connect client has one connection (more shards need the "
                                    "multiconnect layout, WA_APP_MULTICONNECT=1)")
        pin, cert = body.get("pin"), body.get("cert")
        if pin is not None and not (isinstance(pin, str) and re.fullmatch(r"[0-9]{6}", pin)):
            return self.error(1009, "pin: the 6-digit two-step verification PIN")
        if cert is not None:
            try:
                if not isinstance(cert, str) or not base64.b64decode(cert, validate=True):
                    raise ValueError
            except ValueError:
                return self.error(1009, "cert: the base64 certificate from WhatsApp Manager")
        res = await self.forward_to_primary("/control/shards", {"shards": shards, "cc": cc, "phone_number": phone})
        if isinstance(res, web.Response):
            return res
        await self.refresh_routes(force=True)
        return self.reply(status=201)

    async def h_shard_owner_post(self, request: web.Request) -> web.Response:
        """Planned move of one shard to a named spare coreapp (done by the primary master)."""
        denied = await self.auth(request)
        if denied is not None:
            return denied
        raw = request.match_info["shard_id"]
        if not re.fullmatch(r"[0-9]{1,2}", raw):
            return self.error(1009, "shard id: an active shard number")
        body = await self.json_body(request)
        owner = body.get("owner")
        if owner is None:
            return self.error(1008, "owner: the node id of a coreapp is required")
        if not isinstance(owner, str) or not owner.strip():
            return self.error(1009, "owner: the node id of a coreapp is required")
        res = await self.forward_to_primary("/control/move-shard", {"shard": int(raw), "owner": owner.strip()})
        if isinstance(res, web.Response):
            return res
        await self.refresh_routes(force=True)
        return self.reply(res)

    # -- messages ----------------------------------------------------------------------------
    async def h_send(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        body = await self.json_body(request)
        to = body.get("to")
        if to is None or to == "":
            return self.error(1008, "to: the recipient's phone number is required")
        if not isinstance(to, str) or not re.fullmatch(r"\+?[0-9]{3,20}", to):
            return self.error(1009, "to: a phone number (digits)")
        text = body["text"].get("body", "") if isinstance(body.get("text"), dict) else ""
        msg_id = "gBEG" + uuid.uuid4().hex.upper()
        deadline = time.monotonic() + SEND_RETRY_SECONDS
        code, last = 1011, "no route"
        moved = False
        while True:
            if not self.routes:
                await self.refresh_routes(force=True)
            routes = self.routes
            if routes:
                route = routes[S.shard_for(to, len(routes))]
                if route[1] and route[3] and route[4]:
                    res, moved = await self.send_attempt(route, {"id": msg_id, "to": to, "body": text,
                                                                 "shard": route[0]}, deadline)
                    if moved:
                        code, last = 1014, f"{route[1]} no longer owns shard {route[0]}"
                    elif res and res.get("_status") == 201:
                        self.sent += 1
                        return self.reply({"messages": [{"id": msg_id}]}, status=201)
                    if res is None:
                        code, last = 1014, f"Unable to reach {route[1]}. Please check if wacore is running: " \
                                           f"{route[3]}:{route[4]}"
                    else:
                        code, last = 1018, f"{route[1]} did not accept the message: {res.get('error')}"
                        # A planned move: the old owner held the request until the shard moved;
                        # re-route at once.
                        moved = res.get("_status") == 409 and "moved" in str(res.get("error", ""))
                else:
                    code, last = 1011, f"shard {route[0]} has no primary coreapp"
            if time.monotonic() >= deadline:
                return self.error(code, f"message not accepted: {last}")
            await asyncio.sleep(0.02 if moved else 0.2)
            moved = False
            await self.refresh_routes(force=True)

    async def send_attempt(self, route: tuple, body: dict[str, Any], deadline: float) -> tuple[dict[str, Any] | None, bool]:
        """One delivery to the shard's owner: (answer, False), or (None, True) when the shard map
        (refreshed in the background) names another owner first. A killed owner's machine never
        answers, so without this the request would wait out the whole retry deadline after the
        promotion. Giving up is safe: a message id is stored once (a repeat is a duplicate)."""
        attempt = asyncio.ensure_future(self.request_json("POST", route[3], route[4], "/v1/messages", body,
                                                          timeout=max(1.0, deadline - time.monotonic())))
        while True:
            done, _pending = await asyncio.wait({attempt}, timeout=0.1)
            if done:
                return attempt.result(), False
            routes = self.routes
            now = next((r for r in routes if r[0] == route[0]), None)
            if now is None or tuple(now[1:5]) != tuple(route[1:5]):
                attempt.cancel()
                return None, True

    async def h_message_get(self, request: web.Request) -> web.Response:
        """Read back a message by id (the loss check; an extension): persisted -> 200, unknown -> 404."""
        denied = await self.auth(request)
        if denied is not None:
            return denied
        msg = await self.store.call(self.storage.read_message, request.match_info["id"])
        if not msg:
            return self.error(1006, "no such message")
        return self.reply({"messages": [msg]})

    async def h_message_put(self, request: web.Request) -> web.Response:
        """PUT /v1/messages/{id} {"status": "read"}: mark a message read (before the GC)."""
        denied = await self.auth(request)
        if denied is not None:
            return denied
        body = await self.json_body(request)
        if body.get("status") in (None, ""):
            return self.error(1008, "status is required")
        if body["status"] != "read":
            return self.error(1009, 'status: only "read" can be set')
        msg_id = request.match_info["id"]
        if not await self.store.call(self.storage.mark_read, msg_id) and \
                not await self.store.call(self.storage.read_message, msg_id):
            return self.error(1006, "no such message")
        return self.reply()

    # -- media -------------------------------------------------------------------------------
    async def h_media_post(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        if not request.headers.get("Content-Type", "").strip():
            return self.error(1008, "Content-Type: the media's MIME type is required")
        data = await request.read()
        if not data:
            return self.error(1008, "the media file (request body) is required")
        media_id = str(uuid.uuid4())
        root = Path(self.cfg.media_dir)

        def write() -> str:
            sha = hashlib.sha256(data).hexdigest()
            tmp = root / f".{media_id}.tmp"
            tmp.write_bytes(data)
            os.replace(tmp, root / media_id)
            (root / f"{media_id}.json").write_text(json.dumps(
                {"mime_type": request.content_type, "sha256": sha, "size": len(data)}))
            return sha

        sha = await asyncio.to_thread(write)
        problem = await self.hand_over_media(media_id, len(data), sha)
        if problem:
            for f in (root / media_id, root / f"{media_id}.json"):
                f.unlink(missing_ok=True)
            return self.error(1014, problem)
        return self.reply({"media": [{"id": media_id}]}, status=201)

    async def hand_over_media(self, media_id: str, size: int, sha: str) -> str | None:
        """A coreapp confirms the upload in its own media directory (the shared volume): None,
        or why not."""
        await self.refresh_routes(force=True)
        owners = [(r[1], r[3], r[5]) for r in self.routes if r[1] and r[3] and r[5]]
        if not owners:
            return "no primary coreapp to hand the media to"
        last = ""
        for owner, host, port in owners:
            res = await self.request_json("POST", host, port, "/control/media",
                                          {"id": media_id, "size": size, "sha256": sha}, timeout=30)
            if res is None:
                last = f"Unable to reach {owner}. Please check if wacore is running: {host}:{port}"
                continue
            if res.get("_status") == 200:
                return None
            return str(res.get("error"))
        return last

    async def h_media_get(self, request: web.Request) -> web.Response:
        denied = await self.auth(request)
        if denied is not None:
            return denied
        media_id = request.match_info["id"]
        path = Path(self.cfg.media_dir) / media_id
        if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", media_id) \
                or not path.exists():
            return self.error(1006, "no such media")
        meta = json.loads((path.parent / f"{media_id}.json").read_text())
        return web.Response(body=await asyncio.to_thread(path.read_bytes),
                            content_type=meta.get("mime_type") or "application/octet-stream")

    # -- gc ------------------------------------------------------------------------------------
    async def _gc_all(self, method: str) -> web.Response:
        await self.refresh_routes(force=True)
        owners = sorted({(r[1], r[3], r[5]) for r in self.routes if r[1] and r[3] and r[5]})
        results = await asyncio.gather(*(self.request_json(method, host, port, "/control/gc", {}, timeout=5)
                                         for _owner, host, port in owners))
        gc: dict[str, Any] = {}
        for (owner, host, port), res in zip(owners, results, strict=True):
            if res is None:
                gc[owner] = {"errors": [{"code": 1014, "title": TITLES[1014], "details": f"Unable to reach {owner}. "
                                         f"Please check if wacore is running: {host}:{port}"}]}
            elif method == "PUT":
                gc[owner] = {"status": res.get("status")}
            else:
                gc[owner] = {k: v for k, v in res.items() if k in ("status", "messages_deleted", "shard", "error")}
        return self.reply({"services": {"message": {"gc": gc}}})

    async def h_gc(self, request: web.Request) -> web.Response:
        """Start the garbage collection on every shard owner; each reports completion by a
        webhook callback."""
        denied = await self.auth(request)
        if denied is not None:
            return denied
        logs.state(log, "gc_request")
        return await self._gc_all("PUT")

    async def h_gc_status(self, request: web.Request) -> web.Response:
        """GET: each owner's last GC run (an extension; the contract reports by callback only)."""
        denied = await self.auth(request)
        if denied is not None:
            return denied
        return await self._gc_all("GET")

    # -- stats and metrics -----------------------------------------------------------------------
    async def h_stats(self, request: web.Request) -> web.Response:
        """/v1/stats/app|db[/internal]: every registered master and coreapp's metrics (the DB
        stats only from the primary master)."""
        denied = await self.auth(request, apikey_ok=True)
        if denied is not None:
            return denied
        kind = "db" if request.path.startswith("/v1/stats/db") else "app"
        nodes = [n for n in await self.store.call(self.storage.nodes) if n.kind in ("master", "coreapp")]
        answers = await asyncio.gather(*(self.get_json(n.host, n.control_port or 0, "/control/stats", timeout=5)
                                         for n in nodes))
        stats: dict[str, Any] = {}
        for n, res in zip(nodes, answers, strict=True):
            stats[n.node_id] = res.get(kind, {}) if res and res.get("_status") == 200 else self.unreachable(n)
        if request.query.get("format") == "prometheus":
            return web.Response(text=prometheus({k: v for k, v in stats.items() if "errors" not in v}),
                                content_type="text/plain")
        return self.reply({"stats": {kind: stats}})

    async def h_metrics(self, request: web.Request) -> web.Response:
        denied = await self.auth(request, apikey_ok=True)
        if denied is not None:
            return denied
        node = {"node": self.cfg.node_id}
        m = {
            "web_uptime": metric("gauge", "Number of seconds since web server has started",
                                 [(node, int(time.monotonic() - self.started))]),
            "api_requests": metric("counter", "API requests served, by method_path and HTTP status",
                                   [({**node, "method": f"{meth}_{path.strip('/').replace('/', '_')}",
                                      "result": str(status)}, n)
                                    for (meth, path, status), n in sorted(self.requests.items())]),
            "web_messages_sent": metric("counter", "Messages this webapp got acknowledged", [(node, self.sent)]),
            "cluster_shards": metric("gauge", "Active shards", [(node, len(self.routes))]),
            "cluster_shards_owned": metric("gauge", "Active shards with an owner",
                                           [(node, sum(1 for r in self.routes if r[1]))]),
        }
        try:
            counts = await self.store.call(self.storage.count_messages, timeout=2)
            m["messages"] = metric("gauge", "Messages in the database by status",
                                   [({**node, "status": k}, v) for k, v in sorted(counts.items())])
        except StorageError:
            pass
        if request.query.get("format") == "prometheus":
            return web.Response(text=prometheus({"": m}), content_type="text/plain")  # samples carry "node"
        return self.reply({"metrics": m})

    async def shutdown(self) -> None:
        try:
            await self.store.call(self.storage.deregister, self.cfg.node_id, self.instance, timeout=2)
        except StorageError:
            pass
