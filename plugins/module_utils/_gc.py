# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The message garbage collection of message_gc, as the public contract has it.

- ``start``: ``PUT /v1/services/message/gc`` answers ``{"services": {"message": {"gc": {"HOST:CID":
  {"status": "processing"}}}}}``, one entry per node that took the collection. There is no GET.
- Completion arrives only as a webhook callback to ``settings.application.webhooks.url``:
  ``{"services": [{"message": {"gc": {"messages_deleted": N, "node": "HOST:CID", "status":
  "complete"}}}]}``; a failure as an ``errors`` callback (code 1014). ``CallbackListener`` is the
  small threaded HTTP server that receives them (``webhook_listen``) and ``wait`` waits for every
  node of the PUT's envelope.
- ``mark_read``: ``PUT /v1/messages/{id}`` ``{"status": "read"}`` for each id.
- ``message_counts``: the message count of ``GET /v1/stats/db`` when the answer holds one, or of
  the opt-in database cross-check (stand-in clusters only), else unknown.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from socketserver import ThreadingMixIn

from ansible.module_utils.six.moves.urllib.parse import quote
from ansible_collections.wabiz.cluster.plugins.module_utils._api_errors import ApiError, base_of
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_api import parse_message_counts

COLLECTED_STATUSES = ("delivered", "read")
CODE_GC_FAILED = 1014
MAX_CALLBACK_BYTES = 1024 * 1024


def start(api):
    """PUT /v1/services/message/gc: {node: {"status": ...}} of the envelope (one entry per node)."""
    body = api.call("PUT", "/v1/services/message/gc")
    services = body.get("services")
    message = services.get("message") if isinstance(services, dict) else None
    gc = message.get("gc") if isinstance(message, dict) else None
    if not isinstance(gc, dict) or not all(isinstance(v, dict) for v in gc.values()):
        raise ApiError("bad_response", "api_url %s did not answer as the WhatsApp Business API (PUT "
                       "/v1/services/message/gc answered without services.message.gc, one object per node): check "
                       "that api_url names a webapp of the cluster." % base_of(getattr(api, "base", "?")))
    if not gc:
        raise ApiError("unavailable", "no node took the garbage collection (PUT /v1/services/message/gc named none): "
                       "no shard has an owner that serves (check the cluster with wabiz.cluster.failover_check)")
    return dict((str(k), dict(v)) for k, v in gc.items())


def parse_callback(body):
    """The GC events of one webhook callback: ``("gc", status, node, messages_deleted)`` and
    ``("error", code, text)``; other callbacks (messages, statuses) give none. Pure."""
    events = []
    if not isinstance(body, dict):
        return events
    services = body.get("services")
    for entry in services if isinstance(services, list) else [services] if isinstance(services, dict) else []:
        message = entry.get("message") if isinstance(entry, dict) else None
        gc = message.get("gc") if isinstance(message, dict) else None
        for item in gc if isinstance(gc, list) else [gc]:
            if isinstance(item, dict) and item.get("node"):
                deleted = item.get("messages_deleted")
                events.append(("gc", str(item.get("status") or "complete"), str(item["node"]),
                               deleted if isinstance(deleted, int) and not isinstance(deleted, bool) else None))
    errors = body.get("errors")
    for err in errors if isinstance(errors, list) else []:
        if isinstance(err, dict):
            text = ": ".join(str(p) for p in (err.get("title"), err.get("details")) if p) or "no detail"
            events.append(("error", err.get("code"), text))
    return events


class _Server(ThreadingMixIn, HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class CallbackListener(object):
    """A threaded HTTP server on ``host:port`` that answers every webhook callback 200 and keeps
    the GC events (``events``); ``close()`` stops it."""

    def __init__(self, listen):
        host, port = parse_listen(listen)
        self.events = []
        self.callbacks = 0
        self.cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                try:
                    length = min(int(self.headers.get("Content-Length") or 0), MAX_CALLBACK_BYTES)
                    body = json.loads(self.rfile.read(length).decode("utf-8", "replace")) if length else {}
                except ValueError:
                    body = None
                self._answer()
                with outer.cond:
                    outer.callbacks += 1
                    outer.events.extend(parse_callback(body))
                    outer.cond.notify_all()

            def do_GET(self):
                self._answer()

            def _answer(self):
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        try:
            self.server = _Server((host, port), Handler)
        except (OSError, ValueError) as exc:
            raise ApiError("listen_failed", "cannot listen for the GC callbacks on webhook_listen %s (%s): name a free "
                           "address and port of this host, the one settings.application.webhooks.url points at (or "
                           "a relay to it)." % (listen, getattr(exc, "strerror", None) or exc)) from None
        self.address = "%s:%s" % (host, self.server.server_address[1])
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1})
        self.thread.daemon = True
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def parse_listen(listen):
    """(host, port) of ``host:port`` (``[v6]:port``, or ``:port`` for every address); ValueError."""
    text = (listen or "").strip()
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("webhook_listen must be HOST:PORT with a port of 1 to 65535 (got %r), for example "
                         "0.0.0.0:8085" % listen)
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def wait(listener, nodes, timeout, clock=time.time):
    """Wait for the callback of every node in ``nodes`` (the PUT's envelope) until ``timeout``:
    {node: {"status", "messages_deleted"}}. An errors callback (code 1014) for a pending node (named
    in its details, or any when none is named) is a ``gc_failed`` ApiError; no callback in time is a
    ``timeout`` ApiError naming the nodes still pending."""
    deadline = clock() + float(timeout)
    done = {}
    seen = 0
    with listener.cond:
        while True:
            for event in listener.events[seen:]:
                if event[0] == "error":
                    if event[1] not in (CODE_GC_FAILED, str(CODE_GC_FAILED)):
                        continue
                    pending = sorted(set(nodes) - set(done))
                    named = [n for n in pending if n in event[2] or n.split(":")[0] in event[2]]
                    raise ApiError("gc_failed", "the garbage collection failed on %s (error callback, code %s: %s)"
                                   % (", ".join(named or pending) or "a node", event[1], event[2]))
                status, node, deleted = event[1:]
                if node in nodes:
                    done[node] = {"status": status, "messages_deleted": deleted}
            seen = len(listener.events)
            if all(n in done for n in nodes):
                return done
            left = deadline - clock()
            if not left > 0:
                pending = sorted(set(nodes) - set(done))
                raise ApiError("timeout", "no GC completion callback from %s within %ss (is "
                               "settings.application.webhooks.url pointing at webhook_listen %s, or at a relay to "
                               "it?); the collection may still be running" % (", ".join(pending), timeout,
                                                                              listener.address))
            listener.cond.wait(min(left, 1.0))


def mark_read(api, ids):
    """PUT /v1/messages/{id} {"status": "read"} for each id; how many were marked."""
    for message_id in ids:
        api.call("PUT", "/v1/messages/%s" % quote(str(message_id), safe=""), {"status": "read"})
    return len(ids)


def message_counts(api, db=None):
    """(total or None, {status: count}, source or None): the database cross-check's counts by status,
    else the message count of GET /v1/stats/db when it holds one, else unknown."""
    if db is not None:
        if db.conn is None:
            db.connect()
        counts = db.message_counts()
        return sum(counts.values()), counts, "database"
    try:
        body = api.call("GET", "/v1/stats/db", apikey_ok=True)
    except ApiError as exc:
        if exc.kind in ("auth", "tls", "unreachable", "bad_response", "password_change_required"):
            raise
        return None, {}, None
    total, by_status = parse_message_counts(body)
    return total, by_status, ("GET /v1/stats/db" if total is not None else None)


def counts_after_round(api, db, before, deleted, tries=4, sleep=time.sleep):
    """(total, by status) after a round. The DB stats may be cached a moment (the stand-in's primary
    master keeps them for a second): while they do not show the ``deleted`` messages gone yet, read
    them again, a second apart, at most ``tries`` times (new messages may have arrived meanwhile)."""
    total, counts = message_counts(api, db)[:2]
    for _attempt in range(tries - 1):
        if db is not None or total is None or before is None or total <= before - deleted:
            break
        sleep(1.0)
        total, counts = message_counts(api, db)[:2]
    return total, counts


def collectable(counts):
    """Messages a collection may delete (delivered and read) when the counts by status are known, else None."""
    if not counts:
        return None
    return sum(counts.get(s, 0) for s in COLLECTED_STATUSES)


def next_step(rows_after, threshold, deleted, round_no, max_rounds):
    """None to run another round, else why to stop (pure, unit-tested)."""
    if rows_after is None:
        return "one round: the message count is unknown (GET /v1/stats/db holds none), so threshold does not apply"
    if rows_after <= threshold:
        return "below threshold"
    if not deleted:
        return "nothing more to collect (%d messages remain above the threshold of %d)" % (rows_after, threshold)
    if round_no >= max_rounds:
        return "max_rounds reached with %d messages above the threshold of %d" % (rows_after, threshold)
    return None
