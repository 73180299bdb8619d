"""The master node: the whole HA decision loop in one place (like Patroni's ha.py).

Every cycle (``min(heartbeat_interval, lease_ttl / 3)`` seconds):

1. write this master's DB heartbeat and read the settings;
2. lease: the primary renews (one UPDATE compared with the DB clock); a secondary tries to
   take a free or lapsed lease (epoch + 1). A primary whose last successful renew was sent
   more than ``renew_deadline`` ago demotes itself, before the lease (``lease_ttl``) can lapse;
3. ping every coreapp's control port and record what was seen (heartbeat mode evidence); an
   answer that says the coreapp lost the database or is fenced counts as a miss;
4. primary only: create/upgrade the schema once, replace dead or missing shard owners with
   healthy coreapps (each promotion is one UPDATE guarded by the lease epoch), push changed
   settings to the nodes, write statistics.

Failure detection (docs/standin.md, *Failure detection*): database monitoring is always on (an
owner whose DB heartbeat is older than ``WA_DB_DEAD_AFTER_SECONDS`` is dead); with two or more
live masters an owner is also dead when the primary and one secondary both got no healthy answer
from it for ``unhealthy_interval``, or when its last ownership confirmation (stamped by the
database) is older than that. Between cycles the primary sleeps only until the next moment the
evidence read so far would declare an owner dead, and decides then.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import logging
import os
import re
import time
from typing import Any

from aiohttp import web

from . import logs
from .config import Config
from .node import BaseNode, Fatal, metric
from .schema import S
from .storage import Lease, Node, SchemaTooNew, Shard, StorageError

log = logging.getLogger("wabiz")


def hash_password(password: str, salt: str | None = None) -> str:
    salt = salt or os.urandom(8).hex()
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt.encode(), 20000).hex()
    return f"pbkdf2_sha256$20000${salt}${digest}"


def application_settings(stored: Any, seeded: dict[str, Any] | None = None) -> dict[str, Any]:
    """The whole application settings object: the documented defaults, the node's seeded
    timers, then what is stored (nested objects merged key by key)."""
    app = copy.deepcopy(S.APPLICATION_DEFAULTS)
    for layer in (seeded or {}, stored if isinstance(stored, dict) else {}):
        for k, v in layer.items():
            if isinstance(v, dict) and isinstance(app.get(k), dict):
                app[k] = {**app[k], **v}
            else:
                app[k] = v
    return app


def _whole(v: Any) -> int | None:
    """An integer setting (the documentation also shows the millisecond ones as strings)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().isdigit():
        return int(v.strip())
    return None


_BOOL_SETTINGS = ("callback_persist", "db_garbagecollector_enable", "notify_user_change_number", "pass_through",
                  "sent_status", "show_security_notifications")


def validate_settings(current: dict[str, Any], patch: Any) -> tuple[dict[str, Any] | None, str]:
    """Apply a PATCH body to the current settings: (new object, "") or (None, why refused)."""
    if not isinstance(patch, dict) or not patch:
        return None, "a JSON object with the settings to change is required"
    new = copy.deepcopy(current)
    for key, value in patch.items():
        if key == "wa_id":
            return None, "wa_id is read-only (set by POST /v1/account/shards)"
        if key not in S.APPLICATION_DEFAULTS:
            return None, f"{key} is not an application setting"
        if key in _BOOL_SETTINGS:
            if not isinstance(value, bool):
                return None, f"{key} must be true or false"
            new[key] = value
        elif key in ("heartbeat_interval", "unhealthy_interval", "callback_backoff_delay_ms",
                     "max_callback_backoff_delay_ms"):
            n = _whole(value)
            if n is None or n < (1 if key.endswith("interval") else 0):
                return None, f"{key} must be a whole number" + (" of seconds >= 1" if key.endswith("interval") else "")
            new[key] = n
        elif key == "media":
            if not isinstance(value, dict) or set(value) - {"auto_download"}:
                return None, 'media must be {"auto_download": [TYPES]}'
            types = value.get("auto_download", new["media"]["auto_download"])
            if not isinstance(types, list) or not all(t in S.MEDIA_AUTO_DOWNLOAD_TYPES for t in types):
                return None, f"media.auto_download: a list of {', '.join(S.MEDIA_AUTO_DOWNLOAD_TYPES)}"
            new["media"] = {**new["media"], "auto_download": sorted(set(types))}
        elif key == "webhooks":
            if not isinstance(value, dict) or set(value) - {"url", "max_concurrent_requests"}:
                return None, 'webhooks must be {"url": URL, "max_concurrent_requests": N}'
            url = value.get("url", new["webhooks"]["url"])
            if not isinstance(url, str) or (url and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", url)):
                return None, "webhooks.url must be an http(s):// URL or empty"
            conc = value.get("max_concurrent_requests", new["webhooks"]["max_concurrent_requests"])
            if _whole(conc) not in S.WEBHOOK_CONCURRENCY:
                return None, f"webhooks.max_concurrent_requests must be one of {list(S.WEBHOOK_CONCURRENCY)}"
            new["webhooks"] = {**new["webhooks"], "url": url, "max_concurrent_requests": _whole(conc)}
    if new["unhealthy_interval"] <= new["heartbeat_interval"]:
        return None, "heartbeat_interval and unhealthy_interval: 1 <= heartbeat_interval < unhealthy_interval"
    return new, ""


class Master(BaseNode):
    kind = "master"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.is_primary = False
        self.epoch = 0
        self.last_renew_sent = 0.0  # monotonic time the last successful renew was sent
        self.release_epoch: int | None = None  # a lease this master gave up and must still hand back
        self.primary_since = 0.0  # monotonic time this master won the lease
        self.schema_ready = False
        self.pushed_revision = -1
        self.cycle_no = 0
        self.no_candidate_logged: set[int] = set()
        self.shard_lock = asyncio.Lock()  # the loop and the control API both manage shards
        self.active_shards = 1
        self.db_stats: tuple[float, dict[str, Any]] = (0.0, {})
        # Evidence counts only for the time this master watched it with a working database:
        # since it became primary, and since its last database outage (a gap between two of its
        # DB heartbeats longer than a cycle plus the DB timeout).
        self.db_ok_since = 0.0
        self.last_db_ok = 0.0
        self.next_deadline: float | None = None  # monotonic: when an owner would be declared dead
        self.decisions = 0

    # -- role ------------------------------------------------------------------------------
    @property
    def role(self) -> str:
        return "primary_master" if self.primary_now() else "secondary_master"

    @property
    def gateway_status(self) -> str:
        # The health page: in HA (one shard) only the primary coreapp is connected; with X > 1
        # shards the X owners and the primary master are.
        return "connected" if self.primary_now() and self.active_shards > 1 else "disconnected"

    def primary_now(self) -> bool:
        """Primary only while the renew deadline has not passed (checked at every use)."""
        return self.is_primary and time.monotonic() - self.last_renew_sent < self.cfg.renew_deadline

    def ping_body(self) -> dict[str, Any]:
        body = super().ping_body()
        body["epoch"] = self.epoch if self.primary_now() else None
        return body

    @property
    def loop_interval(self) -> float:
        return max(0.2, min(float(self.settings["heartbeat_interval"]), self.cfg.lease_ttl / 3))

    # -- start-up --------------------------------------------------------------------------
    async def main(self) -> None:
        cfg = self.cfg
        for w in cfg.warnings:
            log.warning("%s", w)
        await self.prepare_database()
        await self.start_coreapp_ports()
        await self.check_duplicate()
        await self.register()
        log.info("master started: lease ttl %.1fs, renew deadline %.1fs, DB heartbeat %.1fs, dead after %.1fs",
                 cfg.lease_ttl, cfg.renew_deadline, cfg.db_heartbeat, cfg.db_dead_after)
        watchdog = asyncio.ensure_future(self.renew_deadline_watchdog())
        deadlines = asyncio.ensure_future(self.deadline_watch())
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                await self.cycle()
            except StorageError as exc:
                log.warning("cycle: database error: %s", exc)
            except Exception:
                log.exception("cycle failed")
            if self.is_primary and not self.primary_now():
                self.demote("renew deadline passed")
            await self.wait_for_next_cycle(started + self.loop_interval)
        watchdog.cancel()
        deadlines.cancel()

    async def wait_for_next_cycle(self, next_cycle: float) -> None:
        await self._sleep(next_cycle - time.monotonic())

    async def deadline_watch(self) -> None:
        """Decide at the moment the evidence read so far would declare a shard owner dead
        (``next_deadline``), whatever the cycle is doing: its pings to a dead host wait out their
        timeout, and a deadline that falls then must not wait for them (detection at the
        deadline, not after the next cycle's pings)."""
        while not self.stopping.is_set():
            at = self.next_deadline if self.primary_now() else None
            now = time.monotonic()
            if at is None or at > now:
                await self._sleep(0.25 if at is None else min(at - now, 0.25))
                continue
            self.next_deadline = None
            try:
                await self.manage_shards()
            except StorageError as exc:
                log.warning("deadline check: database error: %s", exc)
            except Exception:
                log.exception("deadline check failed")

    async def renew_deadline_watchdog(self) -> None:
        """Demote (and say so) the moment the renew deadline passes, even while the loop is
        stuck in a database call: primary_now() already answers False from that moment."""
        while not self.stopping.is_set():
            if self.is_primary and not self.primary_now():
                self.demote("renew deadline passed")
            await asyncio.sleep(0.1)

    async def prepare_database(self) -> None:
        last_log = 0.0
        while not self.stopping.is_set():
            try:
                created = await self.store.call(self.storage.ensure_database)
                if created:
                    logs.state(log, "database_created", name=self.cfg.db_name)
                await self.store.call(self.storage.bootstrap)
                version, _ = await self.store.call(self.storage.check_compatible, self.cfg.schema_version)
                self.db_schema = version
                return
            except SchemaTooNew as exc:
                raise Fatal(str(exc)) from None
            except StorageError as exc:
                if time.monotonic() - last_log > 10:
                    log.warning("database not ready: %s", exc)
                    last_log = time.monotonic()
                await self._sleep(1.0)

    # -- the loop --------------------------------------------------------------------------
    async def cycle(self) -> None:
        self.cycle_no += 1
        if await self.db_heartbeat():
            now = time.monotonic()
            if now - self.last_db_ok > self.loop_interval + self.cfg.db_timeout + 1.0:
                self.db_ok_since = now  # a database outage (or the start): watch afresh
            self.last_db_ok = now
        if self.schema_ready or self.db_schema >= 1:
            await self.load_settings()
        await self.update_lease()
        await self.ping_coreapps()
        if self.primary_now():
            await self.act_as_primary()

    async def update_lease(self) -> None:
        ttl = self.cfg.lease_ttl
        sent = time.monotonic()
        timeout = max(0.5, min(self.cfg.db_timeout, self.cfg.renew_deadline / 4))
        if self.is_primary:
            try:
                ok = await self.store.call(self.storage.renew_lease, self.cfg.node_id, self.epoch, ttl,
                                           timeout=timeout)
            except StorageError as exc:
                log.warning("lease renew failed: %s", exc)
                return  # the renew deadline decides
            if ok:
                self.last_renew_sent = sent
            else:
                self.demote("lease lost")
            return
        if self.release_epoch is not None:
            # Stepped down at the renew deadline: hand the lease back as soon as the database
            # answers, so that a master takes it now rather than when it lapses (found by the
            # fault campaign: no primary for 10 s after the primary's 15 s partition). It acts
            # as primary no more, and every primary write is guarded by the lease's holder and
            # epoch, so nothing it sent before can land under the next primary's epoch.
            try:
                if await self.store.call(self.storage.release_lease, self.cfg.node_id, self.release_epoch,
                                         timeout=timeout):
                    logs.state(log, "lease_released", epoch=self.release_epoch, reason="renew_deadline_passed")
            except StorageError as exc:
                log.warning("lease release failed: %s", exc)
                return
            self.release_epoch = None
        try:
            lease: Lease = await self.store.call(self.storage.read_lease, timeout=timeout)
            if lease.holder and not lease.expired:
                return
            epoch = await self.store.call(self.storage.acquire_lease, self.cfg.node_id, ttl, timeout=timeout)
        except StorageError as exc:
            log.warning("lease acquire failed: %s", exc)
            return
        if epoch:
            self.is_primary, self.epoch, self.last_renew_sent, self.primary_since = True, epoch, sent, sent
            self.pushed_revision = -1
            self.no_candidate_logged.clear()
            logs.state(log, "election", result="won", role="primary_master", epoch=epoch,
                       previous=lease.holder or "-")

    def demote(self, reason: str) -> None:
        if not self.is_primary:
            return
        self.is_primary = False
        if reason == "renew deadline passed":
            self.release_epoch = self.epoch
        logs.state(log, "demotion", role="secondary_master", epoch=self.epoch, reason=reason.replace(" ", "_"))

    async def ping_coreapps(self) -> None:
        try:
            nodes = await self.store.call(self.storage.nodes)
        except StorageError:
            return
        hb = float(self.settings["heartbeat_interval"])
        timeout = max(0.3, min(2.0, hb * 0.5))

        async def one(n: Node) -> None:
            body = await self.get_json(n.host, n.control_port or 0, "/ping", timeout=timeout)
            # A healthy answer: the node itself (not a restarted one under its name) that can
            # reach the database and is not fenced. An owner that answers pings but lost the
            # database is a miss, so the heartbeat detector replaces it.
            ok = bool(body) and body.get("node_id") == n.node_id and body.get("instance") == n.instance \
                and body.get("db_ok", True) is not False and not body.get("fenced", False)
            try:
                await self.store.call(self.storage.record_observation, self.cfg.node_id, n.node_id, ok)
            except StorageError:
                pass

        await asyncio.gather(*(one(n) for n in nodes if n.kind == "coreapp" and n.control_port))

    # -- primary work ----------------------------------------------------------------------
    async def act_as_primary(self) -> None:
        if not self.schema_ready:
            await self.upgrade_schema()
            if not self.schema_ready:
                return
            await self.load_settings()
        await self.manage_shards()
        if self.primary_now():
            await self.push_settings()
        if self.cycle_no % 5 == 0 and self.primary_now():
            await self.write_stats()

    async def upgrade_schema(self) -> None:
        try:
            before, after = await self.store.call(self.storage.upgrade_schema, self.cfg.schema_version,
                                                  self.cfg.node_id, timeout=60)
        except SchemaTooNew as exc:
            log.error("%s", exc)
            return
        if after != before:
            logs.state(log, "schema_upgrade", from_version=before, to_version=after, epoch=self.epoch)
        self.db_schema = max(before, after)
        await self.store.call(self.storage.ensure_admin, hash_password("secret"))
        current = await self.store.call(self.storage.settings)
        if S.SETTINGS_APPLICATION not in current:
            await self.store.call(self.storage.write_setting, S.SETTINGS_APPLICATION, self.cfg.default_settings,
                                  self.cfg.node_id, self.epoch)
        if S.SETTINGS_SHARDS not in current:
            await self.store.call(self.storage.write_setting, S.SETTINGS_SHARDS, 1, self.cfg.node_id, self.epoch)
        self.schema_ready = True

    def node_health(self, nodes: list[Node], observations: list[tuple]) -> tuple[str, dict[str, dict[str, Any]]]:
        """Mode ("heartbeat" | "db") and, per coreapp, whether it is eligible and how many
        seconds are left before each detector declares it dead (<= 0: dead now)."""
        hb = float(self.settings["heartbeat_interval"])
        unhealthy = float(self.settings["unhealthy_interval"])
        master_fresh = max(3 * self.loop_interval, 2.0)
        live_masters = {n.node_id for n in nodes if n.kind == "master" and n.heartbeat_age is not None
                        and n.heartbeat_age < master_fresh}
        live_masters.add(self.cfg.node_id)
        mode = "heartbeat" if len(live_masters) >= 2 else "db"
        now = time.monotonic()
        tenure = now - self.primary_since
        watch = now - max(self.primary_since, self.db_ok_since)
        seen: dict[str, dict[str, float]] = {}
        for master_id, node_id, ok_age, _attempt in observations:
            if master_id in live_masters and ok_age is not None:
                seen.setdefault(node_id, {})[master_id] = ok_age
        secondaries = sorted(live_masters - {self.cfg.node_id})
        # DB monitoring, always on: the DB-mode rule. In heartbeat mode never more eager than
        # the heartbeat detector (no failover for a pause shorter than unhealthy - heartbeat).
        dead_after = self.cfg.db_dead_after if mode == "db" else max(self.cfg.db_dead_after, unhealthy)
        out: dict[str, dict[str, Any]] = {}
        for n in nodes:
            if n.kind != "coreapp":
                continue
            db_age = n.heartbeat_age if n.heartbeat_age is not None else float("inf")
            by = seen.get(n.node_id, {})
            best = min(by.values(), default=float("inf"))
            own = by.get(self.cfg.node_id, float("inf"))
            # "Unhealthy": the primary and one secondary both missed it (the freshest healthy
            # answer either saw is older than unhealthy_interval); with two masters, both.
            ping_age = min(own, max((by.get(m, float("inf")) for m in secondaries), default=own))
            left: dict[str, float] = {
                # DB mode: a silence counts only once this primary has itself watched for a
                # whole dead-after period; after a database stall (during which the old primary
                # demoted itself) every heartbeat looks old, and must not read as a death.
                "silent_db": max(dead_after - db_age, dead_after - tenure),
            }
            if mode == "heartbeat":
                left["silent"] = unhealthy - min(ping_age, watch)
            eligible = db_age < self.cfg.db_dead_after and best <= 2 * hb + 1
            out[n.node_id] = {"eligible": eligible, "ok_age": best, "ping_age": ping_age, "db_age": db_age,
                              "left": left}
        return mode, out

    async def manage_shards(self) -> None:
        async with self.shard_lock:
            await self._manage_shards()

    async def _manage_shards(self) -> None:
        read_at = time.monotonic()
        nodes, shards, observations, confirmations = await asyncio.gather(
            self.store.call(self.storage.nodes), self.store.call(self.storage.shard_map),
            self.store.call(self.storage.observations), self.store.call(self.storage.shard_confirmations))
        mode, health = self.node_health(nodes, observations)
        unhealthy = float(self.settings["unhealthy_interval"])
        grace = unhealthy if mode == "heartbeat" else self.cfg.db_dead_after
        watch = time.monotonic() - max(self.primary_since, self.db_ok_since)
        active: list[Shard] = [s for s in shards if s.active]
        self.active_shards = len(active)
        owners = {s.owner for s in active if s.owner}
        free = sorted(nid for nid, h in health.items() if h["eligible"] and nid not in owners)
        deadline: float | None = None
        for s in active:
            reason = None
            if s.owner is None:
                reason = "ownerless"
            elif s.owner not in health:
                reason = "owner_gone"
            else:
                h = health[s.owner]
                left = dict(h["left"])
                conf = confirmations.get(s.shard_id)
                if mode == "heartbeat" and conf is not None and conf["owner"] == s.owner \
                        and conf["epoch"] == s.epoch:
                    # Always-on DB evidence at heartbeat speed: the owner's last confirmation
                    # (DB clock) at this epoch; never confirmed: since it was assigned.
                    age = conf["confirmed_age"] if conf["confirmed_epoch"] == s.epoch else s.assigned_age
                    if age is not None:
                        h["confirmed_age"] = age
                        left["unconfirmed"] = unhealthy - min(age, watch)
                which = min(left, key=lambda k: left[k])
                wait = max(left[which], grace - s.assigned_age if s.assigned_age is not None else 0.0)
                if wait <= 0:
                    age = {"silent": h["ping_age"], "silent_db": h["db_age"]}.get(which, h.get("confirmed_age", 0.0))
                    kind = {"unconfirmed": "owner_unconfirmed", "silent": "owner_silent"}.get(
                        which, "owner_silent" if mode == "db" else "owner_db_silent")
                    reason = f"{kind}_{age:.1f}s_{mode}_mode"
                else:
                    at = read_at + wait + 0.02
                    deadline = at if deadline is None else min(deadline, at)
            if reason is None:
                continue
            if not free:
                if s.shard_id not in self.no_candidate_logged:
                    log.warning("shard %d needs an owner (%s) but no healthy coreapp is free", s.shard_id, reason)
                    self.no_candidate_logged.add(s.shard_id)
                continue
            if not self.primary_now():
                return
            candidate = free.pop(0)
            ok = await self.store.call(self.storage.promote, s.shard_id, s.epoch, candidate, self.cfg.node_id,
                                       self.epoch)
            if not ok:
                log.warning("promotion of %s for shard %d refused (lease or shard changed)", candidate, s.shard_id)
                continue
            self.decisions += 1
            self.no_candidate_logged.discard(s.shard_id)
            event = "shard_move" if s.owner else "promotion"
            conf = confirmations.get(s.shard_id) or {}
            fence_left = conf.get("fence_left")
            logs.state(log, event, shard=s.shard_id, owner=candidate, previous=s.owner or "-",
                       shard_epoch=s.epoch + 1, master_epoch=self.epoch, reason=reason, mode=mode,
                       fence_left="none" if fence_left is None else f"{fence_left:.2f}s")
            node = next((n for n in nodes if n.node_id == candidate), None)
            if node and node.control_port:
                asyncio.ensure_future(self.request_json("POST", node.host, node.control_port, "/control/refresh",
                                                        {}, timeout=1.0))
        self.next_deadline = deadline

    async def push_settings(self) -> None:
        if self.settings_revision == self.pushed_revision or self.settings_revision < 0:
            return
        try:
            nodes = await self.store.call(self.storage.nodes)
        except StorageError:
            return
        body = {"settings": self.settings, "revision": self.settings_revision}
        targets = [n for n in nodes if n.control_port and n.node_id != self.cfg.node_id and n.kind != "webapp"]
        results = await asyncio.gather(*(self.request_json("POST", n.host, n.control_port or 0,
                                                           "/control/settings-push", body, timeout=1.0)
                                         for n in targets))
        reached = sum(1 for r in results if r)
        self.pushed_revision = self.settings_revision
        logs.state(log, "settings_push", revision=self.settings_revision, nodes=f"{reached}/{len(targets)}")

    async def write_stats(self) -> None:
        try:
            counts = await self.store.call(self.storage.count_messages)
            nodes = await self.store.call(self.storage.nodes)
            shards = await self.store.call(self.storage.shard_map)
            await self.store.call(self.storage.write_stat, "app", {
                "messages": counts, "messages_total": sum(counts.values()),
                "nodes": {k: sum(1 for n in nodes if n.kind == k) for k in ("master", "coreapp", "webapp")},
                "shards": sum(1 for s in shards if s.active), "primary_master": self.cfg.node_id,
                "master_epoch": self.epoch})
            await self.store.call(self.storage.write_stat, "db", {
                "engine": self.cfg.engine, "database": self.cfg.db_name, "schema_version": self.db_schema,
                "messages_total": sum(counts.values())})
        except StorageError as exc:
            log.warning("stats: %s", exc)

    # -- stats -------------------------------------------------------------------------------
    def app_metrics(self) -> dict[str, dict[str, Any]]:
        out = super().app_metrics()
        out["master_primary"] = metric("gauge", "1 while this master holds the lease",
                                       [({}, 1 if self.primary_now() else 0)])
        out["master_epoch"] = metric("gauge", "Lease epoch of this master (0 when secondary)",
                                     [({}, self.epoch if self.primary_now() else 0)])
        out["master_cycles"] = metric("counter", "Decision cycles run", [({}, self.cycle_no)])
        return out

    async def db_metrics(self) -> dict[str, dict[str, Any]]:
        """Only the primary master fills the DB stats (cached for a second: a count over a large
        messages table is not free)."""
        if not self.primary_now():
            return {}
        at, cached = self.db_stats
        if time.monotonic() - at < 1.0:
            return cached
        counts, shards = await asyncio.gather(self.store.call(self.storage.count_messages),
                                              self.store.call(self.storage.shard_map))
        out = {
            "messages_total": metric("gauge", "Messages in the database by status",
                                     [({"status": k}, v) for k, v in sorted(counts.items())]),
            "shards_active": metric("gauge", "Active shards", [({}, sum(1 for x in shards if x.active))]),
            "shards_owned": metric("gauge", "Active shards with an owner",
                                   [({}, sum(1 for x in shards if x.active and x.owner))]),
            "schema_version": metric("gauge", "Schema version of the cluster database", [({}, self.db_schema)]),
        }
        self.db_stats = (time.monotonic(), out)
        return out

    # -- control API (the webapp forwards admin changes to the primary) -----------------------
    def control_routes(self, app: web.Application) -> None:
        super().control_routes(app)
        app.router.add_post("/control/settings", self.h_settings)
        app.router.add_post("/control/settings/reset", self.h_settings_reset)
        app.router.add_post("/control/shards", self.h_shards)
        app.router.add_post("/control/move-shard", self.h_move_shard)

    def _not_primary(self) -> web.Response:
        return web.json_response({"error": "not the primary master"}, status=421)

    async def stored_settings(self) -> dict[str, Any]:
        rows = await self.store.call(self.storage.settings)
        return application_settings(rows.get(S.SETTINGS_APPLICATION, ({}, 0))[0], self.cfg.default_settings)

    async def write_settings(self, new: dict[str, Any], changes: str) -> web.Response:
        ok = await self.store.call(self.storage.write_setting, S.SETTINGS_APPLICATION, new, self.cfg.node_id,
                                   self.epoch)
        if not ok:
            return self._not_primary()
        logs.state(log, "settings_change", changes=changes, master_epoch=self.epoch)
        await self.load_settings()
        await self.push_settings()
        return web.json_response({"settings": self.settings, "revision": self.settings_revision})

    async def h_settings(self, request: web.Request) -> web.Response:
        if not self.primary_now():
            return self._not_primary()
        patch = await request.json()
        new, why = validate_settings(await self.stored_settings(), patch)
        if new is None:
            return web.json_response({"error": why}, status=400)
        changes = ",".join(f"{k}:{json.dumps(v, separators=(',', ':')) if isinstance(v, dict | list) else v}"
                           for k, v in sorted(patch.items()))
        return await self.write_settings(new, changes)

    async def h_settings_reset(self, request: web.Request) -> web.Response:
        """DELETE /v1/settings/application: back to the defaults; the registration's wa_id stays."""
        if not self.primary_now():
            return self._not_primary()
        new = application_settings({"wa_id": (await self.stored_settings()).get("wa_id")}, self.cfg.default_settings)
        return await self.write_settings(new, "reset")

    async def h_shards(self, request: web.Request) -> web.Response:
        if not self.primary_now():
            return self._not_primary()
        body = await request.json()
        shards = body.get("shards")
        if shards not in S.VALID_SHARD_COUNTS:
            return web.json_response({"error": f"shards must be one of {list(S.VALID_SHARD_COUNTS)}"}, status=400)
        before = sum(1 for s in await self.store.call(self.storage.shard_map) if s.active)
        ok = await self.store.call(self.storage.set_shard_count, shards, self.cfg.node_id, self.epoch)
        if not ok:
            return self._not_primary()
        logs.state(log, "shard_count", from_shards=before, to_shards=shards, master_epoch=self.epoch)
        if body.get("cc") and body.get("phone_number"):
            current = await self.stored_settings()
            wa_id = f"{body['cc']}{body['phone_number']}"
            if current.get("wa_id") != wa_id:
                await self.store.call(self.storage.write_setting, S.SETTINGS_APPLICATION, {**current, "wa_id": wa_id},
                                      self.cfg.node_id, self.epoch)
                logs.state(log, "registration", wa_id=wa_id, master_epoch=self.epoch)
        await self.manage_shards()
        return web.json_response({"account": {"shards": shards}})

    async def h_move_shard(self, request: web.Request) -> web.Response:
        """Planned move of a shard to a named spare coreapp: the same guarded promotion as a
        failover (shard epoch + 1 under the lease epoch), so the old owner is fenced."""
        if not self.primary_now():
            return self._not_primary()
        body = await request.json()
        shard_id = body.get("shard") if isinstance(body, dict) else None
        target = body.get("owner") if isinstance(body, dict) else None
        if not isinstance(shard_id, int) or isinstance(shard_id, bool) or not isinstance(target, str) or not target:
            return web.json_response({"error": "shard (integer) and owner (node id) are required"}, status=400)

        def bad(why: str) -> web.Response:
            return web.json_response({"error": why}, status=400)

        async with self.shard_lock:
            nodes, shards, observations = await asyncio.gather(
                self.store.call(self.storage.nodes), self.store.call(self.storage.shard_map),
                self.store.call(self.storage.observations))
            shard = next((s for s in shards if s.shard_id == shard_id and s.active), None)
            if shard is None:
                return bad(f"shard {shard_id} is not active")
            if shard.owner == target:  # idempotent: already there
                return web.json_response({"shard": {"id": shard_id, "owner": target, "previous": target,
                                                    "epoch": shard.epoch}})
            mode, health = self.node_health(nodes, observations)
            node = next((n for n in nodes if n.node_id == target), None)
            if node is None or node.kind != "coreapp" or target not in health:
                return bad(f"{target} is not a registered coreapp")
            h = health[target]
            if not h["eligible"]:
                return bad(f"{target} is not healthy (last ping answer {h['ok_age']:.1f}s ago, "
                           f"DB heartbeat {h['db_age']:.1f}s ago)")
            owned = next((s.shard_id for s in shards if s.active and s.owner == target), None)
            if owned is not None:
                return bad(f"{target} already owns shard {owned}")
            if not self.primary_now():
                return self._not_primary()
            # No needless wait: ask the old owner to stop and record that on the DB clock
            # (fence_until = now), so the new owner may start at once. Without its answer the
            # new owner waits out what fence_until says, as in a failover.
            released = False
            old = next((n for n in nodes if n.node_id == shard.owner), None) if shard.owner else None
            if old is not None and old.control_port:
                res = await self.request_json("POST", old.host, old.control_port, "/control/release",
                                              {"shard": shard_id, "epoch": shard.epoch}, timeout=1.5)
                released = bool(res and res.get("released"))
            if not self.primary_now():
                return self._not_primary()
            ok = await self.store.call(self.storage.promote, shard_id, shard.epoch, target, self.cfg.node_id,
                                       self.epoch)
            if not ok:
                if not self.primary_now():
                    return self._not_primary()
                return web.json_response({"error": f"shard {shard_id} changed meanwhile; retry"}, status=409)
            epoch = shard.epoch + 1
            logs.state(log, "shard_move", shard=shard_id, owner=target, previous=shard.owner or "-", epoch=epoch,
                       master_epoch=self.epoch, reason="planned", mode=mode, released="yes" if released else "no")
            self.no_candidate_logged.discard(shard_id)
        # Poke the new owner (as a failover does) and the old one (it also finds out by itself
        # within one tick; its writes are refused by the epoch check either way).
        for nid in (target, shard.owner):
            n = next((x for x in nodes if x.node_id == nid), None)
            if n is not None and n.control_port:
                asyncio.ensure_future(self.request_json("POST", n.host, n.control_port, "/control/refresh", {},
                                                        timeout=1.0))
        return web.json_response({"shard": {"id": shard_id, "owner": target, "previous": shard.owner,
                                            "epoch": epoch}})

    async def shutdown(self) -> None:
        if self.is_primary:
            try:
                await self.store.call(self.storage.release_lease, self.cfg.node_id, self.epoch, timeout=2)
                logs.state(log, "demotion", role="secondary_master", epoch=self.epoch, reason="shutdown")
            except StorageError:
                pass
            self.is_primary = False
        try:
            await self.store.call(self.storage.deregister, self.cfg.node_id, self.instance, timeout=2)
        except StorageError:
            pass
