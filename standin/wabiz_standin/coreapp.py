"""The coreapp node: registers, heartbeats, answers the masters' pings, and persists the
messages of the shard it owns.

Ownership and fencing (see docs/standin.md):

- every ``tick`` (``min(1 s, fence / 3)``) the owner *confirms* its ownership: one UPDATE of its
  shard row, matching only while the row still names it at the epoch it believes in, stamps
  ``confirmed_at`` with the database clock and raises the row's ``fence_until`` to
  ``now + pad`` (``pad`` = the fence time plus a clock-rate margin). It notes the monotonic
  time the confirmation was *sent* (``confirmed_at``);
- it accepts messages only while ``now - confirmed_at < fence`` (``WA_COREAPP_FENCE_SECONDS``):
  a coreapp cut off from the database, or paused, stops accepting by itself. So no owner of a
  shard is accepting after the row's ``fence_until`` (database clock);
- a newly promoted coreapp reads how far ``fence_until`` is ahead of the database clock and
  starts accepting only once that has passed (at once when the old owner's last confirmation is
  older than its fence time; the full fence time when nothing can be shown);
- a planned move asks the owner to release: it stops accepting, then sets ``fence_until`` to
  the database's now, so the new owner may start at once;
- and every message write is one transaction that locks the shard row and inserts only if the
  row still names this coreapp at the epoch it believes in, so a paused-and-resumed old owner's
  writes are refused by the database.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from . import logs
from .config import Config
from .node import BaseNode, metric
from .schema import S
from .storage import StorageError

log = logging.getLogger("wabiz")

GC_BATCH = 1000
# Between two GC batches the coreapp sleeps GC_PAUSE_SHARE times the batch's own duration, at
# least GC_PAUSE_MIN seconds: the GC holds the database at most 2/3 of the time however slow its
# batches get (a loaded or I/O-bound server), instead of a fixed 20 ms gap after any batch.
GC_PAUSE_MIN = 0.02
GC_PAUSE_SHARE = 0.5
CALLBACK_ATTEMPTS = 3
# How much a confirmation's fence_until exceeds the fence time: covers a difference between the
# rates of this node's monotonic clock and the database's clock (1 %, far above NTP's 0.05 %).
CLOCK_RATE_MARGIN = 0.01
FENCE_PAD_SECONDS = 0.05
HOLD_SECONDS = 1.0  # a request that arrives just before this coreapp may accept is held, not refused


def gc_pause(batch_seconds: float) -> float:
    """Seconds to sleep after a GC batch that took ``batch_seconds``."""
    return max(GC_PAUSE_MIN, GC_PAUSE_SHARE * batch_seconds)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Coreapp(BaseNode):
    kind = "coreapp"

    def __init__(self, cfg: Config) -> None:
        super().__init__(cfg)
        self.shard: tuple[int, int] | None = None  # (shard_id, shard epoch)
        self.confirmed_at = 0.0  # monotonic send time of the last successful confirmation
        self.accept_after = 0.0
        self.last_db_ok = 0.0  # monotonic time the last ownership read/confirmation answered
        self.releasing: tuple[int, int, float] | None = None  # (shard, epoch, until) of a planned move
        self.shard_changed = asyncio.Event()
        self.fenced_logged = False
        self.last_db_heartbeat = 0.0
        self.refresh_now = asyncio.Event()
        self.refresh_lock = asyncio.Lock()
        self.gc: dict[str, Any] = {"status": "idle", "messages_deleted": 0}
        self.gc_deleted_total = 0
        self.gc_task: asyncio.Task | None = None
        self.accepted = 0

    @property
    def tick(self) -> float:
        return max(0.1, min(1.0, self.cfg.fence_seconds / 3))

    @property
    def fence_pad(self) -> float:
        """What a confirmation adds to the DB's now for fence_until (>= the fence time)."""
        return self.cfg.fence_seconds * (1 + CLOCK_RATE_MARGIN) + FENCE_PAD_SECONDS

    def is_releasing(self) -> bool:
        r = self.releasing
        return r is not None and self.shard == (r[0], r[1]) and time.monotonic() < r[2]

    def accepting(self) -> bool:
        now = time.monotonic()
        return self.shard is not None and now >= self.accept_after and now - self.confirmed_at < self.cfg.fence_seconds \
            and not self.is_releasing()

    def db_ok(self) -> bool:
        return time.monotonic() - self.last_db_ok < self.cfg.fence_seconds

    def fenced(self) -> bool:
        """An owner past its start wait that may not accept (lost the database, or releasing)."""
        return self.shard is not None and time.monotonic() >= self.accept_after and not self.accepting()

    @property
    def gateway_status(self) -> str:
        if self.shard is None:
            return "disconnected"
        return "connected" if self.accepting() else "connecting"

    def ping_body(self) -> dict[str, Any]:
        body = super().ping_body()
        body["shard"] = self.shard[0] if self.shard else None
        body["shard_epoch"] = self.shard[1] if self.shard else None
        body["accepted"] = self.accepted
        # What the masters count as a miss although the ping answered (docs/standin.md).
        body["db_ok"] = self.db_ok()
        body["fenced"] = self.fenced()
        return body

    def app_metrics(self) -> dict[str, dict[str, Any]]:
        out = super().app_metrics()
        out["messages_accepted"] = metric("counter", "Messages this coreapp persisted", [({}, self.accepted)])
        out["shard_owned"] = metric("gauge", "1 for the shard this coreapp owns (labels: shard, epoch)",
                                    [({"shard": str(self.shard[0]), "epoch": str(self.shard[1])}, 1)]
                                    if self.shard else [])
        out["gc_messages_deleted"] = metric("counter", "Messages deleted by garbage collection",
                                            [({}, self.gc_deleted_total)])
        return out

    # -- loop ------------------------------------------------------------------------------
    async def main(self) -> None:
        for w in self.cfg.warnings:
            log.warning("%s", w)
        await self.wait_for_schema()
        messaging = web.Application(client_max_size=64 * 1024 * 1024)
        messaging.router.add_post("/v1/messages", self.h_message)
        messaging.router.add_get("/", self.h_health)
        await self.start_coreapp_ports(messaging)
        await self.check_duplicate()
        await self.register()
        await self.load_settings()
        self.last_db_heartbeat = time.monotonic()
        log.info("coreapp started: fence %.1fs, tick %.2fs, DB heartbeat %.1fs",
                 self.cfg.fence_seconds, self.tick, self.cfg.db_heartbeat)
        watchdog = asyncio.ensure_future(self.fence_watchdog())
        while not self.stopping.is_set():
            await self.refresh_ownership()
            if time.monotonic() - self.last_db_heartbeat >= self.cfg.db_heartbeat:
                if await self.db_heartbeat():
                    self.last_db_heartbeat = time.monotonic()
                await self.load_settings()
            if self.accepting() and self.shard:
                try:
                    await self.store.call(self.storage.mark_delivered, self.shard[0], self.cfg.delivery_delay,
                                          self.cfg.node_id, self.shard[1], self.db_schema)
                except StorageError:
                    pass
            self.refresh_now.clear()
            try:
                await asyncio.wait_for(self.refresh_now.wait(), timeout=self.tick)
            except TimeoutError:
                pass
        watchdog.cancel()

    async def fence_watchdog(self) -> None:
        """Log the moment the coreapp stops accepting because its ownership went unconfirmed
        for the fence time (accepting() already answers False from that moment)."""
        while not self.stopping.is_set():
            if self.shard and self.confirmed_at and not self.fenced_logged and not self.accepting() \
                    and time.monotonic() >= self.accept_after and not self.is_releasing():
                logs.state(log, "self_fence", shard=self.shard[0], shard_epoch=self.shard[1],
                           reason="ownership_not_confirmed")
                self.fenced_logged = True
            await asyncio.sleep(0.1)

    async def refresh_ownership(self) -> None:
        """Confirm the shard this coreapp owns (a stamped UPDATE at its epoch); when that does
        not match, or it owns none, read which shard names it."""
        async with self.refresh_lock:
            timeout = max(0.5, self.cfg.fence_seconds / 2)
            sent = time.monotonic()
            try:
                if self.shard is not None and not self.is_releasing():
                    if await self.store.call(self.storage.confirm_shard, self.shard[0], self.cfg.node_id,
                                             self.shard[1], self.fence_pad, timeout=timeout):
                        self.last_db_ok = time.monotonic()
                        self.confirmed_at = sent
                        self.fenced_logged = False
                        return
                elif self.releasing is not None and not self.is_releasing():
                    self.releasing = None  # the planned move did not happen: confirm again next tick
                owned = await self.store.call(self.storage.owned_shards_fence, self.cfg.node_id, timeout=timeout)
            except StorageError as exc:
                log.warning("ownership check failed: %s", exc)
                return
            received = self.last_db_ok = time.monotonic()
            current = owned[0] if owned else None
            key = (current[0], current[1]) if current else None
            if key == self.shard:
                return  # e.g. releasing: keeps the shard, does not confirm
            if self.shard is not None:
                logs.state(log, "demotion", shard=self.shard[0], shard_epoch=self.shard[1],
                           reason="shard_reassigned" if key is None else "epoch_changed")
            self.shard, self.confirmed_at, self.releasing, self.fenced_logged = key, 0.0, None, False
            self.shard_changed.set()
            self.shard_changed = asyncio.Event()
            if current is not None:
                left = current[2]
                # No earlier owner accepts after fence_until (DB clock); the read ran before it
                # answered, so waiting ``left`` from now (plus the rate margin) is enough. Nothing
                # recorded (None): the full fence time after learning, as without confirmations.
                wait = self.cfg.fence_seconds if left is None else \
                    (left * (1 + CLOCK_RATE_MARGIN) + FENCE_PAD_SECONDS if left > 0 else 0.0)
                self.accept_after = received + wait
                logs.state(log, "promotion", role="primary_coreapp", shard=current[0], shard_epoch=current[1],
                           accepting_in=f"{wait:.2f}s",
                           proof="none" if left is None else ("lapsed" if left <= 0 else "waiting"))
            await self.db_heartbeat()
            if current is not None:
                sent = time.monotonic()
                try:
                    if await self.store.call(self.storage.confirm_shard, current[0], self.cfg.node_id, current[1],
                                             self.fence_pad, timeout=timeout):
                        self.last_db_ok = time.monotonic()
                        self.confirmed_at = sent
                except StorageError as exc:
                    log.warning("ownership confirmation failed: %s", exc)

    # -- messaging ---------------------------------------------------------------------------
    def _refuse(self, status: int, why: str) -> web.Response:
        return web.json_response({"error": why, "node_id": self.cfg.node_id}, status=status)

    async def h_message(self, request: web.Request) -> web.Response:
        body = await request.json()
        shard = self.shard
        if shard is None or body.get("shard") != shard[0]:
            return self._refuse(409, "not the owner of this shard")
        if self.is_releasing():
            # A planned move is under way: hold the request briefly until the shard has moved,
            # then refuse it so the webapp sends it to the new owner at once.
            changed = self.shard_changed
            try:
                await asyncio.wait_for(changed.wait(), timeout=HOLD_SECONDS)
            except TimeoutError:
                pass
            return self._refuse(409, "shard moved (planned); retry at the new owner")
        if not self.accepting():
            wait = self.accept_after - time.monotonic()
            if 0 < wait <= HOLD_SECONDS:
                await asyncio.sleep(wait)  # about to start accepting: hold the request briefly
            elif wait > 0:
                return self._refuse(503, "promoted; waiting for the old owner's fence time")
            if not self.accepting() and not self.db_ok():
                # Cut off from the database (or just resumed from a pause): refuse at once so the
                # webapp re-routes; the loop re-confirms within a tick once the database answers.
                self.refresh_now.set()
                return self._refuse(409, "fenced: ownership not confirmed (database unreachable); refusing")
            if not self.accepting():
                await self.refresh_ownership()  # re-check before accepting
            shard = self.shard
            if not self.accepting() or shard is None or body.get("shard") != shard[0]:
                return self._refuse(409, "ownership not confirmed; refusing")
        try:
            result = await self.store.call(self.storage.insert_message, str(body["id"]), shard[0], str(body["to"]),
                                           str(body.get("body", "")), self.cfg.node_id, shard[1])
        except StorageError as exc:
            return self._refuse(503, f"not persisted: {exc}")
        if result == "fenced":
            log.warning("write for shard %d refused by the database: epoch %d is no longer current",
                        shard[0], shard[1])
            self.refresh_now.set()
            return self._refuse(409, "fenced: this coreapp no longer owns the shard at that epoch")
        self.accepted += 1
        return web.json_response({"id": body["id"], "result": result, "shard": shard[0], "shard_epoch": shard[1]},
                                 status=201)

    # -- control -----------------------------------------------------------------------------
    def control_routes(self, app: web.Application) -> None:
        super().control_routes(app)
        app.router.add_post("/control/refresh", self.h_refresh)
        app.router.add_post("/control/release", self.h_release)
        app.router.add_put("/control/gc", self.h_gc_start)
        app.router.add_get("/control/gc", self.h_gc_status)
        app.router.add_post("/control/media", self.h_media_check)

    async def h_refresh(self, request: web.Request) -> web.Response:
        self.refresh_now.set()
        return web.json_response({"ok": True})

    async def h_release(self, request: web.Request) -> web.Response:
        """A planned move (primary master): stop accepting for shard/epoch, then record on the
        DB clock that this owner stopped (fence_until = now), so the new owner needs no wait.
        Only an owner past its own start wait may lower fence_until: every earlier owner's
        window had closed by then. Without a promotion within the hold time it resumes (its
        next confirmation raises fence_until again)."""
        body = await request.json()
        key = (body.get("shard"), body.get("epoch")) if isinstance(body, dict) else None
        if self.shard is None or key != self.shard:
            return web.json_response({"released": False, "reason": "not the owner at that epoch",
                                      "shard": self.shard}, status=409)
        shard = self.shard
        hold = max(2.0, 2 * self.cfg.fence_seconds)
        self.releasing = (shard[0], shard[1], time.monotonic() + hold)
        if time.monotonic() < self.accept_after:
            return web.json_response({"released": False, "reason": "still within its start wait"})
        async with self.refresh_lock:  # no confirmation in flight may raise fence_until after this
            try:
                ok = await self.store.call(self.storage.release_shard, shard[0], self.cfg.node_id, shard[1],
                                           timeout=max(0.5, self.cfg.fence_seconds / 2))
            except StorageError as exc:
                # The statement may still run later (a timed-out call): never resume at this
                # epoch, so a late release cannot lower fence_until under a resumed owner. The
                # masters replace a fenced owner (its pings say so) if the move does not happen.
                self.releasing = (shard[0], shard[1], float("inf"))
                return web.json_response({"released": False, "reason": str(exc)})
        if ok:
            logs.state(log, "release", shard=shard[0], shard_epoch=shard[1], reason="planned_move")
        return web.json_response({"released": ok})

    async def h_media_check(self, request: web.Request) -> web.Response:
        """A webapp hands over an upload: the file must be in this coreapp's media directory (the
        shared media volume), with the size and digest the webapp wrote."""
        body = await request.json()
        media_id = str(body.get("id", ""))
        path = Path(self.cfg.media_dir) / media_id
        if not re.fullmatch(r"[0-9a-f-]{36}", media_id) or not path.is_file():
            return web.json_response({"error": f"media file {media_id} is not in {self.cfg.media_dir} on "
                                               f"{self.cfg.node_id}: is the shared media volume mounted here?"},
                                     status=404)
        digest = await asyncio.to_thread(_sha256, path)
        if path.stat().st_size != body.get("size") or digest != body.get("sha256"):
            return web.json_response({"error": f"media file {media_id} in {self.cfg.media_dir} on "
                                               f"{self.cfg.node_id} differs from the upload (not the same share?)"},
                                     status=409)
        return web.json_response({"id": media_id, "node_id": self.cfg.node_id})

    async def h_gc_start(self, request: web.Request) -> web.Response:
        if self.shard is None:
            return web.json_response({"status": "skipped", "reason": "owns no shard"})
        if self.gc_task is None or self.gc_task.done():
            self.gc = {"status": "processing", "messages_deleted": 0, "shard": self.shard[0]}
            self.gc_task = asyncio.ensure_future(self.run_gc(self.shard[0]))
            logs.state(log, "gc_start", shard=self.shard[0])
        return web.json_response(self.gc)

    async def h_gc_status(self, request: web.Request) -> web.Response:
        return web.json_response(self.gc)

    async def run_gc(self, shard_id: int) -> None:
        """Delete delivered/read messages in small batches (a keyset walk per status, see
        cluster_schema's gc_batch), yielding between batches so the API keeps serving; report
        the result by a webhook callback."""
        try:
            for status in S.GC_STATUSES:
                after: str | None = ""  # keyset cursor: each batch starts where the last one ended
                while after is not None and not self.stopping.is_set():
                    started = time.monotonic()
                    n, after = await self.store.call(self.storage.gc_batch, shard_id, status, GC_BATCH, after,
                                                     timeout=30)
                    self.gc["messages_deleted"] += n
                    self.gc_deleted_total += n
                    if after is not None:
                        await asyncio.sleep(gc_pause(time.monotonic() - started))
            self.gc["status"] = "complete"
            callback: dict[str, Any] = {"services": [{"message": {"gc": {
                "messages_deleted": self.gc["messages_deleted"], "node": self.cfg.node_id, "status": "complete"}}}]}
        except StorageError as exc:
            self.gc["status"] = "failed"
            self.gc["error"] = str(exc)
            callback = {"errors": [{"code": 1014, "title": "Internal error",
                                    "details": f"message garbage collection on {self.cfg.node_id} failed: {exc}"}]}
        logs.state(log, "gc_done", shard=shard_id, status=self.gc["status"], deleted=self.gc["messages_deleted"])
        await self.send_callback(callback, "gc")

    async def send_callback(self, payload: dict[str, Any], what: str) -> bool:
        """POST a callback (JSON) to settings.application.webhooks.url, retried with the
        settings' backoff (capped at 5 s) for a few attempts."""
        url = (self.settings.get("webhooks") or {}).get("url")
        if not url:
            log.warning("no webhook url in the application settings: the %s callback is not delivered", what)
            return False
        assert self.http is not None
        delay = min(5.0, max(0.1, float(self.settings.get("callback_backoff_delay_ms", 3000)) / 1000))
        status: Any = None
        for attempt in range(1, CALLBACK_ATTEMPTS + 1):
            try:
                async with self.http.post(url, json=payload, timeout=aiohttp.ClientTimeout(total=10)) as resp:
                    status = resp.status
                    if 200 <= resp.status < 300:
                        logs.state(log, "callback", what=what, http=status, attempt=attempt)
                        return True
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                status = type(exc).__name__
            if attempt < CALLBACK_ATTEMPTS:
                await self._sleep(delay * attempt)
        log.warning("%s callback to the webhook failed after %d attempts (last: %s)", what, CALLBACK_ATTEMPTS, status)
        return False

    async def shutdown(self) -> None:
        if self.shard:
            logs.state(log, "demotion", shard=self.shard[0], shard_epoch=self.shard[1], reason="shutdown")
        self.shard = None
        try:
            await self.store.call(self.storage.deregister, self.cfg.node_id, self.instance, timeout=2)
        except StorageError:
            pass
