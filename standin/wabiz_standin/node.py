"""What master, coreapp and webapp nodes share: start-up against the database, the node
registry, the control and healthcheck HTTP servers, and a clean stop on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import secrets
import signal
import time
from typing import Any

import aiohttp
from aiohttp import web

from . import logs
from .config import Config
from .schema import S
from .storage import AsyncStore, SchemaTooNew, StorageError, make_storage

log = logging.getLogger("wabiz")


class Fatal(Exception):
    """Stop the node with one clear line and a non-zero exit code."""


def metric(kind: str, help_text: str, data: list[tuple[dict[str, Any], float]]) -> dict[str, Any]:
    """One metric in the API's JSON form: ``{"type", "help", "data": [{"labels", "value"}]}``."""
    return {"type": kind, "help": help_text, "data": [{"labels": labels, "value": value} for labels, value in data]}


class BaseNode:
    kind = ""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.instance = secrets.token_hex(8)
        self.storage = make_storage(cfg.engine, cfg.db_host, cfg.db_port, cfg.db_user, cfg.db_password,
                                    cfg.db_name, cfg.db_timeout, cfg.db_idle_timeout_ms,
                                    txn_idle_timeout=max(1.0, cfg.fence_seconds))
        self.store = AsyncStore(self.storage, workers=8, timeout=cfg.db_timeout + 1)
        self.stopping = asyncio.Event()
        self.runners: list[web.AppRunner] = []
        self.http: aiohttp.ClientSession | None = None
        self.db_schema = 0
        self.settings: dict[str, Any] = dict(S.DEFAULT_SETTINGS)
        self.settings_revision = -1
        self.started = time.monotonic()

    # -- roles, overridden -------------------------------------------------------------------
    @property
    def role(self) -> str:
        return self.kind

    @property
    def gateway_status(self) -> str:
        return "disconnected"

    def ping_body(self) -> dict[str, Any]:
        return {"node_id": self.cfg.node_id, "kind": self.kind, "role": self.role, "instance": self.instance,
                "gateway_status": self.gateway_status, "version": self.cfg.version}

    def app_metrics(self) -> dict[str, dict[str, Any]]:
        """This node's part of GET /v1/stats/app (overridden per kind)."""
        return {"uptime_seconds": metric("gauge", "Seconds since this node started",
                                         [({}, round(time.monotonic() - self.started, 3))])}

    async def db_metrics(self) -> dict[str, dict[str, Any]]:
        """This node's part of GET /v1/stats/db: empty except on the primary master."""
        return {}

    # -- start-up ------------------------------------------------------------------------
    async def wait_for_schema(self) -> None:
        """Coreapps and webapps wait for the primary master to create the schema."""
        last_log = 0.0
        while not self.stopping.is_set():
            try:
                version, _ = await self.store.call(self.storage.check_compatible, self.cfg.schema_version)
                if version >= 1:
                    self.db_schema = version
                    if version > self.cfg.schema_version:
                        log.warning("database schema %d is newer than this node's %d; running (compatible)",
                                    version, self.cfg.schema_version)
                    return
            except SchemaTooNew as exc:
                raise Fatal(str(exc)) from None
            except StorageError as exc:
                if time.monotonic() - last_log > 10:
                    log.warning("database not ready: %s", exc)
                    last_log = time.monotonic()
                await self._sleep(1.0)
                continue
            if time.monotonic() - last_log > 10:
                log.info("waiting for the primary master to create the schema in %s", self.cfg.db_name)
                last_log = time.monotonic()
            await self._sleep(0.5)

    async def check_duplicate(self) -> None:
        """A node name (HOST:CONTAINER or WA_NODE_ID) that a live node uses is refused."""
        try:
            nodes = await self.store.call(self.storage.nodes)
        except StorageError:
            return
        for n in nodes:
            if n.node_id != self.cfg.node_id or n.instance == self.instance:
                continue
            if n.heartbeat_age is None or n.heartbeat_age > self.cfg.db_dead_after or not n.control_port:
                return
            body = await self.get_json(n.host, n.control_port, "/ping", timeout=1.5)
            if body and body.get("instance") == n.instance:
                raise Fatal(f"duplicate node name {self.cfg.node_id}: a live node at {n.host}:{n.control_port} "
                            f"already uses it (set a unique COREAPP_HOSTNAME/WA_NODE_ID)")

    async def register(self) -> None:
        ports = self.cfg.external_ports
        await self.store.call(self.storage.register_node, self.cfg.node_id, self.kind, self.cfg.external_host,
                              ports, self.cfg.version, self.instance, self.role, self.gateway_status)
        logs.state(log, "registered", kind=self.kind, host=self.cfg.external_host,
                   ports=",".join(map(str, ports)), version=self.cfg.version)

    async def db_heartbeat(self) -> bool:
        """Write this node's heartbeat (DB clock); re-register if the row went missing."""
        try:
            ok = await self.store.call(self.storage.heartbeat, self.cfg.node_id, self.instance, self.role,
                                       self.gateway_status)
            if not ok:
                await self.register()
            return True
        except StorageError as exc:
            log.warning("DB heartbeat failed: %s", exc)
            return False

    async def load_settings(self) -> None:
        try:
            rows = await self.store.call(self.storage.settings)
        except StorageError:
            return
        app = rows.get(S.SETTINGS_APPLICATION)
        if app and app[1] != self.settings_revision:
            self.apply_settings(app[0], app[1], source="db")

    def apply_settings(self, values: dict[str, Any], revision: int, source: str) -> None:
        if revision == self.settings_revision:
            return
        merged = dict(S.DEFAULT_SETTINGS)
        merged.update(values or {})
        changed = {k: v for k, v in merged.items() if self.settings.get(k) != v}
        self.settings = merged
        self.settings_revision = revision
        if changed:
            logs.state(log, "settings_applied", revision=revision, source=source,
                       changes=",".join(f"{k}:{v}" for k, v in sorted(changed.items())))

    # -- HTTP helpers --------------------------------------------------------------------
    async def get_json(self, host: str, port: int, path: str, timeout: float) -> dict[str, Any] | None:
        return await self.request_json("GET", host, port, path, None, timeout)

    async def request_json(self, method: str, host: str, port: int, path: str, body: Any,
                           timeout: float) -> dict[str, Any] | None:
        assert self.http is not None
        try:
            async with self.http.request(method, f"http://{host}:{port}{path}", json=body,
                                         timeout=aiohttp.ClientTimeout(total=timeout)) as resp:
                data = await resp.json(content_type=None)
                if isinstance(data, dict):
                    data.setdefault("_status", resp.status)
                    return data
                return None
        except (TimeoutError, aiohttp.ClientError, ValueError, OSError):
            return None

    # -- HTTP servers --------------------------------------------------------------------
    def control_routes(self, app: web.Application) -> None:
        app.router.add_get("/ping", self.h_ping)
        app.router.add_post("/control/settings-push", self.h_settings_push)
        app.router.add_get("/control/stats", self.h_stats)

    async def h_stats(self, request: web.Request) -> web.Response:
        return web.json_response({"app": self.app_metrics(), "db": await self.db_metrics()})

    async def h_ping(self, request: web.Request) -> web.Response:
        return web.json_response(self.ping_body())

    async def h_settings_push(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.apply_settings(body.get("settings", {}), int(body.get("revision", 0)), source="push")
        return web.json_response({"ok": True, "revision": self.settings_revision})

    async def h_health(self, request: web.Request) -> web.Response:
        return web.json_response({"node_id": self.cfg.node_id, "role": self.role,
                                  "gateway_status": self.gateway_status})

    async def start_site(self, app: web.Application, port: int, ssl_context: Any = None) -> None:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.cfg.listen_address, port, ssl_context=ssl_context, reuse_address=True)
        try:
            await site.start()
        except OSError as exc:
            raise Fatal(f"cannot listen on {self.cfg.listen_address}:{port}: {exc.strerror or exc}") from None
        self.runners.append(runner)

    async def start_coreapp_ports(self, messaging: web.Application | None = None) -> None:
        """Messaging, contacts, control, healthcheck (the order of COREAPP_EXTERNAL_PORTS)."""
        m, c, ctl, hc = self.cfg.listen_ports
        if messaging is None:
            messaging = web.Application()
            messaging.router.add_get("/", self.h_health)
        contacts = web.Application()
        contacts.router.add_get("/", self.h_health)
        control = web.Application()
        self.control_routes(control)
        health = web.Application()
        health.router.add_get("/", self.h_health)
        health.router.add_get("/health", self.h_health)
        for app, port in ((messaging, m), (contacts, c), (control, ctl), (health, hc)):
            await self.start_site(app, port)

    # -- life cycle ----------------------------------------------------------------------
    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), timeout=max(0.0, seconds))
        except TimeoutError:
            pass

    async def main(self) -> None:
        raise NotImplementedError

    async def shutdown(self) -> None:
        pass

    async def run(self, handle_signals: bool = True) -> int:
        if handle_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self.stopping.set)
        self.http = aiohttp.ClientSession()
        try:
            await self.main()
            return 0
        except Fatal as exc:
            log.error("fatal: %s", exc)
            return 3
        finally:
            try:
                await asyncio.wait_for(self.shutdown(), timeout=5)
            except Exception as exc:
                log.warning("shutdown: %s", exc)
            for r in self.runners:
                await r.cleanup()
            await self.http.close()
            self.store.close()
            log.info("stopped")
