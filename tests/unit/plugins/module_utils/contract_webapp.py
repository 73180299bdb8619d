"""A webapp on a real local socket that answers exactly as api-contract.md shows the public REST
contract (login with the first-login 401/1024, health in HA mode and multiconnect, support,
account/shards with 201, settings, message GC with its webhook callback, mark-read, stats), for
the cluster modules' unit tests. Plain HTTP on 127.0.0.1; ``script`` forces answers (a 429, a
500/1011) for the next calls of a path."""

from __future__ import annotations

import base64
import http.server
import json
import re
import threading
import time
import urllib.request

META = {"api_status": "stable", "version": "2.53.2"}
PASSWORD = "Secret-123!"
API_KEY = "K" * 16
TOKEN = "tok-contract"


def error(code, title, details=""):
    return {"errors": [{"code": code, "title": title, "details": details}], "meta": META}


TOO_MANY = error(1015, "Too many requests", "rate limit")
NOT_READY = error(1011, "Service not ready", "no primary master")

M1, M2 = "master1:aaaaaaaaaaaa", "master2:bbbbbbbbbbbb"
C1, C2, C3 = "coreapp1:111111111111", "coreapp2:222222222222", "coreapp3:333333333333"


def unreachable(node):
    return {"errors": [{"code": 1014, "title": "Internal error",
                        "details": "Unable to reach the node. Please check if wacore is running: {}:6250".format(node.split(":")[0])}]}


def ha_cluster():
    """HA mode (1 shard): only the primary coreapp (C1) connected, the primary master disconnected."""
    return {
        "health": {M1: {"gateway_status": "disconnected", "role": "primary_master"},
                   M2: {"gateway_status": "disconnected", "role": "secondary_master"},
                   C1: {"gateway_status": "connected", "role": "coreapp"},
                   C2: {"gateway_status": "disconnected", "role": "coreapp"},
                   C3: {"gateway_status": "disconnected", "role": "coreapp"}},
        "shards": {M1: [], M2: [], C1: [0], C2: [], C3: []},
        "count": 1,
    }


def multiconnect_cluster():
    """Two shards: C1 and C2 and the primary master connected."""
    c = ha_cluster()
    c["health"][M1]["gateway_status"] = "connected"
    c["health"][C2]["gateway_status"] = "connected"
    c["shards"][C2] = [1]
    c["count"] = 2
    return c


class ContractWebapp:
    def __init__(self, cluster=None, must_change=False, support=True):
        self.cluster = cluster or ha_cluster()
        self.password = "secret" if must_change else PASSWORD
        self.must_change = must_change
        self.with_support = support
        self.settings = {"callback_persist": True, "webhooks": {"url": ""}, "media": {"auto_download": []},
                         "garbagecollector_enable": True, "heartbeat_interval": 5, "unhealthy_interval": 30,
                         "wa_id": "16315551234"}
        self.script: dict[str, list] = {}
        self.calls: list[tuple[str, str, object]] = []
        self.marked: list[str] = []
        self.stats_db = {}
        self.gc_deleted = 7
        self.gc_callback = "complete"  # or "error" or None (never calls back)
        self.on_shards_post = None  # callable(count) changing self.cluster
        self.extension = False
        self.on_move = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _send(self, status, body, headers=None):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                path = self.path.split("?")[0].rstrip("/") or "/"
                outer.calls.append((self.command, path, body))
                forced = outer.script.get(path)
                if forced:
                    status, answer, *hdrs = forced.pop(0)
                    return self._send(status, answer, hdrs[0] if hdrs else None)
                status, answer = outer.answer(self.command, path, body, self.headers.get("Authorization", ""))
                self._send(status, answer)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()

    def paths(self, method=None):
        return [p for m, p, _b in self.calls if method is None or m == method]

    # -- the contract ---------------------------------------------------------------------------
    def answer(self, method, path, body, auth):
        if path == "/v1/users/login" and method == "POST":
            return self.login(auth, body or {})
        apikey = auth == "Apikey " + API_KEY
        bearer = auth == "Bearer " + TOKEN
        if path in ("/v1/health", "/v1/stats/db") and not (apikey or bearer):
            return 401, error(1005, "Access denied")
        if path not in ("/v1/health", "/v1/stats/db") and not bearer:
            return 401, error(1005, "Access denied")
        c = self.cluster
        if path == "/v1/health" and method == "GET":
            return 200, {"health": json.loads(json.dumps(c["health"])), "meta": META}
        if path == "/v1/support" and method == "GET" and self.with_support:
            return 200, {"support": dict((n, json.loads(json.dumps(h)) if "errors" in h else {
                "multi_connect": True, "role": h.get("role"), "shards": c["shards"].get(n, []),
                "socket_conn": "UP" if h.get("gateway_status") == "connected" else "DN", "db_engine": "MYSQL",
                "debug_info": {}}) for n, h in c["health"].items()), "meta": META}
        if path == "/v1/account/shards" and method == "GET":
            return 200, {"account": {"shards": c["count"]}, "meta": META}
        if path == "/v1/account/shards" and method == "POST":
            missing = [k for k in ("cc", "phone_number", "shards") if k not in (body or {})]
            if missing:
                return 400, error(1008, "Required parameter is missing", missing[0])
            if body["shards"] not in (1, 2, 4, 8, 16, 32):
                return 400, error(1009, "Parameter value is not valid", "shards")
            if self.on_shards_post:
                self.on_shards_post(body["shards"])
            return 201, {"meta": META}
        m = re.fullmatch(r"/v1/account/shards/(\d+)/owner", path)
        if m and method == "POST":
            if not self.extension:
                return 404, error(1006, "Resource not found", "URL path not found")
            self.on_move(int(m.group(1)), body["owner"])
            return 200, {"meta": META}
        if path == "/v1/settings/application":
            if method == "GET":
                return 200, {"settings": {"application": json.loads(json.dumps(self.settings))}, "meta": META}
            if method == "PATCH":
                unknown = [k for k in body if k not in self.settings]
                if unknown:
                    return 400, error(1009, "Parameter value is not valid", unknown[0])
                self.settings.update(body)
                return 200, {"meta": META}
        if path == "/v1/services/message/gc" and method == "PUT":
            nodes = [n for n, s in c["shards"].items() if s]
            threading.Thread(target=self._gc_callbacks, args=(nodes,), daemon=True).start()
            return 200, {"services": {"message": {"gc": dict((n, {"status": "processing"}) for n in nodes)}},
                         "meta": META}
        m = re.fullmatch(r"/v1/messages/([^/]+)", path)
        if m and method == "PUT":
            if body != {"status": "read"}:
                return 400, error(1009, "Parameter value is not valid", "status")
            self.marked.append(m.group(1))
            return 200, {"meta": META}
        if path == "/v1/stats/db" and method == "GET":
            return 200, {"stats": {"db": self.stats_db}, "meta": META}
        return 404, error(1006, "Resource not found", "URL path not found")

    def login(self, auth, body):
        try:
            user, _sep, pw = base64.b64decode(auth.split(" ", 1)[1]).decode().partition(":")
        except Exception:
            return 401, error(1005, "Access denied")
        if user != "admin" or pw != self.password:
            return 401, error(1005, "Access denied", "invalid username or password")
        if self.must_change and not body.get("new_password"):
            return 401, error(1024, "Password change required")
        if body.get("new_password"):
            self.password, self.must_change = body["new_password"], False
        return 200, {"users": [{"token": TOKEN, "expires_after": "2099-01-01 00:00:00+00:00"}], "meta": META}

    def _gc_callbacks(self, nodes):
        url = (self.settings.get("webhooks") or {}).get("url")
        if not url or self.gc_callback is None:
            return
        time.sleep(0.05)
        for n in nodes:
            if self.gc_callback == "error":
                body = {"errors": [{"code": 1014, "title": "Internal error",
                                    "details": f"garbage collection failed on {n}"}]}
            else:
                body = {"services": [{"message": {"gc": {"messages_deleted": self.gc_deleted, "node": n,
                                                         "status": "complete"}}}]}
            req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
            try:
                urllib.request.urlopen(req, timeout=5).read()
            except OSError:  # the module stopped listening (it had what it waited for, or gave up)
                pass


def run_module(mod, args, capsys, check=False, diff=False):
    """Run ``mod.main()`` with ``args`` as AnsiballZ would; the result dict (``failed`` when it failed)."""
    import pytest
    from ansible.module_utils.testing import patch_module_args

    full = dict(args, _ansible_check_mode=check, _ansible_diff=diff)
    with patch_module_args(full), pytest.raises(SystemExit):
        mod.main()
    out = capsys.readouterr().out
    return json.loads(out)
