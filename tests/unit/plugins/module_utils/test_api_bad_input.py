"""Bad input to the cluster modules: an api_url that answers but not as the API
(garbage, a closed connection, HTML, JSON of another shape), a database port that is not a
database, and out-of-range options. Each must give one clear sentence that names the option,
change nothing, and never show a secret. Real throwaway listeners on 127.0.0.1, the real
REST client and the real modules (run in process, as AnsiballZ would run them)."""

from __future__ import annotations

import base64
import http.server
import json
import math
import os
import subprocess
import threading
import time

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.wabiz.cluster.plugins.module_utils import _api as api
from ansible_collections.wabiz.cluster.plugins.module_utils import _cluster_options as options
from ansible_collections.wabiz.cluster.plugins.module_utils import _clusterdb as cdb
from ansible_collections.wabiz.cluster.plugins.modules import app_settings, failover_check, message_gc, shard_table
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils.listeners import Listener

API_PW = "Api-Secret-4711"
NEW_PW = "New-Secret-4712"
API_KEY = "Key-Secret-4713"
DB_PW = "Db-Secret-4714"
SECRETS = (API_PW, NEW_PW, API_KEY, DB_PW, base64.b64encode((f"admin:{API_PW}").encode()).decode())
NOT_THE_API = "did not answer as the WhatsApp Business API ("


# -- throwaway listeners -----------------------------------------------------------------------
class WebServer:
    """http.server in a thread answering every request with ``status``, ``ctype`` and ``body``
    (``body`` may be a callable of the handler, e.g. to echo the request's headers)."""

    def __init__(self, status=200, ctype="text/html", body=b"<html><body><h1>It works!</h1></body></html>"):
        outer = self
        self.requests = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def _answer(self):
                outer.requests += 1
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                data = body(self) if callable(body) else body
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = _answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def listener(request):
    made = []

    def make(kind, **kw):
        srv = WebServer(**kw) if kind == "web" else Listener(kind, **kw)
        made.append(srv)
        return srv

    yield make
    for srv in made:
        srv.close()


def params(url, **kw):
    p = dict(api_url=url, api_username="admin", api_password=API_PW, api_new_password=None, api_key=None,
             api_token=None, api_token_cache=None, validate_certs=False, ca_path=None, api_timeout=3.0,
             api_retries=0)
    p.update(kw)
    return p


def assert_no_secret(text):
    for secret in SECRETS:
        assert secret not in text, f"a secret is shown: {text}"


def bad_answer_of(url, **kw):
    client = api.WabizApi(params(url, **kw), sleep=lambda s: None)
    with pytest.raises(api.ApiError) as e:
        client.call("GET", "/v1/settings/application")
    assert_no_secret(e.value.msg)
    return e.value


# -- the REST client against listeners that are not the API ------------------------------------
@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("kind", ["garbage", "close"])
def test_a_tcp_listener_is_not_the_api(listener, kind, scheme):
    srv = listener(kind)
    err = bad_answer_of(f"{scheme}://127.0.0.1:{srv.port}")
    assert err.kind == "bad_response"
    assert err.msg.startswith(f"api_url {scheme}://127.0.0.1:{srv.port} {NOT_THE_API}"), err.msg
    assert "check that api_url names a webapp" in err.msg
    if kind == "garbage" and scheme == "http":
        assert "the answer is not HTTP: 'SSH-2.0-OpenSSH_9.2p1'" in err.msg
    if kind == "close" and scheme == "http":
        assert "the connection was closed without an HTTP answer" in err.msg
    if scheme == "https":
        assert "no TLS handshake" in err.msg or "closed without an HTTP answer" in err.msg


def test_an_html_web_server_is_not_the_api(listener):
    srv = listener("web", status=200)
    err = bad_answer_of(f"http://127.0.0.1:{srv.port}")
    assert err.kind == "bad_response" and NOT_THE_API in err.msg
    assert "answered HTTP 200 with text/html, not JSON: '<html><body><h1>It works!</h1></body></html>'" in err.msg


@pytest.mark.parametrize("status, kind", [(401, "auth"), (404, "not_found"), (405, "http"), (502, "http")])
def test_an_html_error_answer_keeps_the_meaning_of_its_status(listener, status, kind):
    """A proxy's 502 page while a webapp restarts, or a 404/405 of a webapp without an endpoint, is
    that HTTP error (callers retry or fall back on it), and says what came back."""
    srv = listener("web", status=status)
    err = bad_answer_of(f"http://127.0.0.1:{srv.port}")
    assert (err.kind, err.status) == (kind, status)
    if status != 401:  # a refused login says so in its own words
        assert "the answer was text/html, not JSON: '<html><body><h1>It works!</h1></body></html>'" in err.msg


def test_a_json_server_of_another_shape_is_not_the_api(listener):
    srv = listener("web", ctype="application/json", body=b'{"hello": "world"}')
    err = bad_answer_of(f"http://127.0.0.1:{srv.port}")
    assert err.kind == "bad_response"
    assert f"api_url http://127.0.0.1:{srv.port} {NOT_THE_API}the answer to POST /v1/users/login holds no token" \
        in err.msg


def test_a_json_list_answer_with_a_token_is_not_an_object(listener):
    srv = listener("web", ctype="application/json", body=b'["x"]')
    err = bad_answer_of(f"http://127.0.0.1:{srv.port}", api_password=None, api_token="tok-123")
    assert err.kind == "bad_response" and err.status == 200 and "not a JSON object" in err.msg


def test_a_server_echoing_the_request_never_shows_the_credentials(listener):
    def echo(handler):
        return (f"<html><pre>{handler.command} {handler.path}\n{handler.headers}</pre></html>").encode()

    srv = listener("web", body=echo)
    err = bad_answer_of(f"http://127.0.0.1:{srv.port}")
    assert "Authorization: Basic ********" in err.msg or "Authorization" not in err.msg
    client = api.WabizApi(params(f"http://127.0.0.1:{srv.port}", api_password=None, api_key=API_KEY))
    with pytest.raises(api.ApiError) as e:
        client.call("GET", "/v1/health", apikey_ok=True)
    assert_no_secret(e.value.msg)


def test_garbage_is_not_retried_but_a_closed_connection_is_within_api_retries(listener):
    garbage, closing = listener("garbage"), listener("close")
    slept = []
    for srv, tries in ((garbage, 1), (closing, 3)):
        client = api.WabizApi(params(f"http://127.0.0.1:{srv.port}", api_retries=2), sleep=slept.append)
        with pytest.raises(api.ApiError):
            client.call("GET", "/v1/settings/application")
        assert srv.connections == tries
    assert slept == [0.6, 1.2], "two back-offs, each at most 2 s"


def test_a_silent_listener_times_out_within_the_deadline(listener):
    srv = listener("silent")
    client = api.WabizApi(params(f"http://127.0.0.1:{srv.port}", api_timeout=0.3, api_retries=1),
                          sleep=lambda s: None)
    started = time.monotonic()
    with pytest.raises(api.ApiError) as e:
        client.call("GET", "/v1/settings/application")
    assert e.value.kind == "timeout" and "timed out" in e.value.msg
    assert srv.connections == 2 and time.monotonic() - started < 3


def test_retries_are_bounded_even_when_the_validator_was_skipped():
    assert api.WabizApi(params("https://wa:9090", api_retries=10**6)).retries == api.MAX_RETRIES
    assert api.WabizApi(params("https://wa:9090", api_retries=-5)).retries == 0


def test_an_unwritable_token_cache_is_a_clear_error(listener, tmp_path):
    srv = listener("web", ctype="application/json", body=json.dumps({"users": [{"token": "tok-1"}]}).encode())
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    client = api.WabizApi(params(f"http://127.0.0.1:{srv.port}", api_token_cache=str(blocker / "tokens.json")))
    with pytest.raises(api.ApiError) as e:
        client.login()
    assert e.value.kind == "token_cache" and f"cannot write api_token_cache {blocker / 'tokens.json'}" in e.value.msg


def test_a_damaged_token_cache_entry_means_a_new_login(tmp_path):
    cache = tmp_path / "tokens.json"
    client = api.WabizApi(params("https://wa:9090", api_token_cache=str(cache)))
    cache.write_text(json.dumps({client.cache.key: {"token": "t", "expires": "soon"}}))
    assert client.cached_token() is None


# -- the shared validator ----------------------------------------------------------------------
def all_options(**kw):
    p = params("https://wa.example.internal:9090", validate_certs=True, api_timeout=10.0, api_retries=2)
    p.update(db_engine="mysql", db_host="127.0.0.1", db_port=None, db_user="wa", db_password=DB_PW,
             db_name_prefix="", db_connect_timeout=5.0)
    p.update(kw)
    return p


def test_the_defaults_and_valid_values_pass(tmp_path):
    assert options.option_problems(all_options()) == []
    valid = all_options(api_url="wa.example.internal:9090/", db_port=3306, api_retries=0,
                        api_token_cache=str(tmp_path / "new" / "dir" / "tokens.json"))
    assert options.option_problems(valid) == []
    cert = tmp_path / "ca.pem"
    # A real CA certificate, made here: the check loads it as the TLS layer would.
    made = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=wabiz-test-ca",
                           "-days", "1", "-keyout", str(tmp_path / "ca.key"), "-out", str(cert)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert made.returncode == 0, made.stderr
    assert options.option_problems(all_options(ca_path=str(cert))) == []


@pytest.mark.parametrize("option, value, words", [
    ("api_timeout", -1.0, "api_timeout must be more than 0 (got -1): set the seconds to wait for each API answer"),
    ("api_timeout", 0.0, "api_timeout must be more than 0 (got 0)"),
    ("api_timeout", math.nan, "api_timeout must be a finite number (got nan)"),
    ("api_timeout", math.inf, "api_timeout must be a finite number (got inf)"),
    ("api_timeout", 1e12, "api_timeout must be at most 3600"),
    ("api_retries", -1, "api_retries must be 0 or more (got -1)"),
    ("api_retries", 11, "api_retries must be at most 10 (got 11)"),
    ("db_connect_timeout", -2.0, "db_connect_timeout must be more than 0 (got -2): set the seconds to wait for the "
                                 "database connection"),
    ("db_port", 0, "db_port must be 1 or more (got 0)"),
    ("db_port", 70000, "db_port must be at most 65535 (got 70000)"),
    ("api_url", "", "api_url is empty"),
    ("api_url", "ftp://wa:21", "api_url must start with https:// (or http://), not ftp://"),
    ("api_url", "https://[::1", "api_url is not a valid URL"),
    ("api_url", "https://wa:notaport", "api_url is not a valid URL"),
    ("api_url", f"https://admin:{API_PW}@wa:9090", "api_url must not hold a user name or password"),
    ("api_url", "https://:9090", "api_url names no host"),
])
def test_bad_shared_options_are_refused_by_name(option, value, words):
    problems = options.option_problems(all_options(**{option: value}))
    assert len(problems) == 1 and words in problems[0], problems
    assert_no_secret(problems[0])


def test_bad_files_are_refused_by_name(tmp_path):
    missing = str(tmp_path / "ca.pem")
    assert options.option_problems(all_options(ca_path=missing)) == [
        f"ca_path {missing}: file not found. Set ca_path to the PEM file of the CA that signed the webapp's "
        "certificate (or leave it unset to use the system's CAs)."]
    assert "is not a file" in options.option_problems(all_options(ca_path=str(tmp_path)))[0]
    (tmp_path / "junk.pem").write_text("not a certificate\n")
    assert "holds no PEM CA certificate" in options.option_problems(all_options(ca_path=str(tmp_path / "junk.pem")))[0]
    assert options.option_problems(all_options(api_token_cache=str(tmp_path))) == [
        f"api_token_cache {tmp_path} is a directory: it must name a file, for example "
        f"{os.path.join(str(tmp_path), 'tokens.json')}."]
    (tmp_path / "f").write_text("")
    assert "cannot be created: %s is not a directory" % (tmp_path / "f") in options.option_problems(
        all_options(api_token_cache=str(tmp_path / "f" / "sub" / "tokens.json")))[0]


def test_module_rules_bound_their_own_numbers():
    rules = (options.option_rule("max_rounds", 1, 100, "the most rounds, for example 5", whole=True),
             options.seconds_rule("poll_interval", 600, "the seconds between polls, for example 1"))
    assert options.option_problems(all_options(max_rounds=0, poll_interval=-1.0), rules) == [
        "max_rounds must be 1 or more (got 0): set the most rounds, for example 5.",
        "poll_interval must be more than 0 (got -1): set the seconds between polls, for example 1."]
    assert options.option_problems(all_options(max_rounds=5, poll_interval=0.5), rules) == []


# -- the modules, run in process -----------------------------------------------------------------
def run_module(mod, args, capsys, check=False, diff=False):
    """Run ``mod.main()`` with ``args`` as AnsiballZ would; the result dict (``failed`` when it failed)."""
    full = dict(args, _ansible_check_mode=check, _ansible_diff=diff, _ansible_verbosity=3)
    with patch_module_args(full), pytest.raises(SystemExit):
        mod.main()
    out = capsys.readouterr().out
    assert_no_secret(out)
    return json.loads(out)


class FakeDb:
    """ClusterDb's interface with a small healthy-looking cluster (the API part is the real one)."""

    instances = []

    def __init__(self, params):
        self.conn = None
        FakeDb.instances.append(self)

    def connect(self):
        self.conn = object()
        return self

    def close(self):
        self.conn = None

    def message_counts(self):
        return {"delivered": 5, "sent": 3}

    def mark_incoming_read(self):
        raise AssertionError("must not be reached")

    def lease(self):
        return {"holder": "m1", "epoch": 1, "expired": False, "seconds_left": 20}

    def shard_map(self):
        return []

    def nodes(self):
        return []

    def application_settings(self):
        return {"heartbeat_interval": 5, "unhealthy_interval": 30}

    def observations(self):
        return []


DB_ARGS = {"db_engine": "mysql", "db_user": "wa", "db_password": DB_PW}
MODULES = {
    "app_settings": (app_settings, {"heartbeat_interval": 5}),
    "failover_check": (failover_check, DB_ARGS),
    "message_gc": (message_gc, DB_ARGS),
    "shard_table": (shard_table, {}),
}
# The modules with the database group (the opt-in cross-check): the others refuse every db_* option.
DB_MODULES = ("failover_check", "message_gc")


@pytest.mark.parametrize("name", sorted(MODULES))
@pytest.mark.parametrize("mode", ["normal", "check", "diff"])
@pytest.mark.parametrize("bad, words", [
    ({"api_timeout": -1}, "api_timeout must be more than 0 (got -1)"),
    ({"db_connect_timeout": -1}, "db_connect_timeout must be more than 0 (got -1)"),
    ({"api_retries": -3}, "api_retries must be 0 or more (got -3)"),
    ({"ca_path": "/nonexistent/ca.pem"}, "ca_path /nonexistent/ca.pem: file not found."),
    ({"api_token_cache": "/"}, "api_token_cache / is a directory"),
])
def test_every_module_refuses_bad_shared_options_before_contacting_anything(listener, capsys, monkeypatch, name,
                                                                            mode, bad, words):
    mod, extra = MODULES[name]
    srv = listener("garbage")
    monkeypatch.setattr(cdb.ClusterDb, "connect", lambda self: pytest.fail("the database was contacted"))
    args = dict(extra, api_url=f"http://127.0.0.1:{srv.port}", api_password=API_PW, api_key=API_KEY, **bad)
    if "db_engine" in args:
        args["db_port"] = srv.port
    res = run_module(mod, args, capsys, check=mode == "check", diff=mode == "diff")
    if name not in DB_MODULES and any(k.startswith("db_") for k in bad):
        assert res["failed"] and res["failure_kind"] == "invalid_option" and "takes no database option" in res["msg"]
    else:
        assert res["failed"] and res["failure_kind"] == "invalid_option" and words in res["msg"], res
    assert srv.connections == 0, "nothing was contacted"


@pytest.mark.parametrize("mod, args, words", [
    (app_settings, {"heartbeat_interval": 10**9}, "heartbeat_interval must be at most 3599 (got 1000000000)"),
    (app_settings, {"unhealthy_interval": 10**9}, "unhealthy_interval must be at most 3600 (got 1000000000)"),
    (message_gc, dict(DB_ARGS, max_rounds=0), "max_rounds must be 1 or more (got 0)"),
    (message_gc, dict(DB_ARGS, wait_timeout=-1), "wait_timeout must be more than 0 (got -1)"),
    (message_gc, dict(DB_ARGS, threshold=-1), "threshold must be 0 or more (got -1)"),
    (message_gc, dict(DB_ARGS, webhook_listen="nohost"), "webhook_listen must be HOST:PORT"),
    (message_gc, dict(DB_ARGS, webhook_listen="127.0.0.1:0"), "webhook_listen must be HOST:PORT"),
    (shard_table, dict(shards=8, min_spares=-10), "min_spares must be 0 or more (got -10)"),
    (shard_table, dict(wait_timeout=0), "wait_timeout must be more than 0 (got 0)"),
    (shard_table, dict(move_shard=-1, move_to="c2"), "move_shard must be 0 or more (got -1)"),
    (shard_table, dict(api_rate_limit_wait=-1), "api_rate_limit_wait must be 0 or more (got -1)"),
    (shard_table, dict(api_rate_limit_wait=601), "api_rate_limit_wait must be at most 600 (got 601)"),
    (failover_check, dict(DB_ARGS, heartbeat_threshold=-5), "heartbeat_threshold must be more than 0 (got -5)"),
    (failover_check, dict(DB_ARGS, min_spares=-1), "min_spares must be 0 or more (got -1)"),
    (failover_check, dict(DB_ARGS, api_rate_limit_wait=float("nan")), "api_rate_limit_wait must be a finite number"),
])
def test_module_options_out_of_range_are_refused(listener, capsys, mod, args, words):
    srv = listener("garbage")
    res = run_module(mod, dict(args, api_url=f"http://127.0.0.1:{srv.port}", api_password=API_PW), capsys)
    assert res["failed"] and res["failure_kind"] == "invalid_option" and words in res["msg"], res
    assert srv.connections == 0


@pytest.fixture
def fake_db(monkeypatch):
    FakeDb.instances = []
    for mod in (failover_check, message_gc):
        monkeypatch.setattr(mod, "ClusterDb", FakeDb)
    return FakeDb


@pytest.mark.parametrize("mod, args", [
    (app_settings, {"heartbeat_interval": 5}),
    (failover_check, DB_ARGS),
    (message_gc, DB_ARGS),
])
@pytest.mark.parametrize("kind", ["garbage", "close", "web"])
@pytest.mark.parametrize("mode", ["normal", "check", "diff"])
def test_modules_fail_clearly_when_api_url_is_not_the_api(listener, capsys, fake_db, mod, args, kind, mode):
    srv = listener(kind)
    url = f"http://127.0.0.1:{srv.port}"
    res = run_module(mod, dict(args, api_url=url, api_password=API_PW, api_retries=0), capsys,
                     check=mode == "check", diff=mode == "diff")
    assert res["failed"] and res["failure_kind"] == "bad_response", res
    assert res["msg"].startswith(f"api_url {url} {NOT_THE_API}"), res["msg"]
    assert "Traceback" not in json.dumps(res) and "exception" not in res


def srv_requests(srv):
    return getattr(srv, "requests", None) or getattr(srv, "connections", 0)


def test_api_key_never_shows_in_failover_check_output(listener, capsys, fake_db):
    srv = listener("web", body=lambda h: (f"<pre>{h.headers}</pre>").encode())
    res = run_module(failover_check, dict(DB_ARGS, api_url=f"http://127.0.0.1:{srv.port}", api_key=API_KEY),
                     capsys)
    assert res["failed"] and res["failure_kind"] == "bad_response"


# -- waits with deadlines ----------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 1000.0
        self.slept = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.slept.append(seconds)
        self.now += seconds


class BusyApi:
    base = "https://wa:9090"

    def __init__(self, answer):
        self.answer, self.calls = answer, 0

    def call(self, method, path, body=None, **kw):
        self.calls += 1
        return self.answer


# -- valid input still works, over a real socket ---------------------------------------------------
class MiniApi(http.server.BaseHTTPRequestHandler):
    """Just enough of the webapp for app_settings: login, GET and PATCH /v1/settings/application."""

    settings = {}
    patches = []

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length)) if length else {}

    def do_POST(self):
        self._body()
        if self.headers.get("Authorization") != "Basic " + base64.b64encode(f"admin:{API_PW}".encode()).decode():
            return self._send(401, {"errors": [{"code": 1005, "title": "Access denied"}]})
        self._send(200, {"users": [{"token": "tok-ok"}]})

    def do_GET(self):
        self._send(200, {"settings": {"application": dict(MiniApi.settings)}})

    def do_PATCH(self):
        change = self._body()
        MiniApi.patches.append(change)
        MiniApi.settings.update(change)
        self._send(200, {})

    def log_message(self, *args):
        pass


def test_valid_settings_still_apply_and_a_second_run_changes_nothing(capsys):
    MiniApi.settings, MiniApi.patches = {"heartbeat_interval": 5, "unhealthy_interval": 30}, []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), MiniApi)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        args = {"api_url": f"http://127.0.0.1:{server.server_address[1]}", "api_password": API_PW,
                "heartbeat_interval": 2, "unhealthy_interval": 3600}
        first = run_module(app_settings, args, capsys, diff=True)
        assert first["changed"] and first["settings"] == {"heartbeat_interval": 2, "unhealthy_interval": 3600}
        assert MiniApi.patches == [{"heartbeat_interval": 2, "unhealthy_interval": 3600}]
        second = run_module(app_settings, args, capsys)
        assert not second["changed"] and len(MiniApi.patches) == 1
        refused = run_module(app_settings, dict(args, unhealthy_interval=None, settings={"unhealthy_interval": 10**9}),
                             capsys)
        assert refused["failed"] and "unhealthy_interval must be at most 3600 seconds" in refused["msg"]
        assert len(MiniApi.patches) == 1, "nothing was sent"
    finally:
        server.shutdown()
        server.server_close()


def test_an_api_error_that_echoes_the_key_is_scrubbed(listener):
    srv = listener("web", status=403, ctype="application/json",
                   body=lambda h: json.dumps({"error": f"refused {h.headers.get('Authorization')}"}).encode())
    client = api.WabizApi(params(f"http://127.0.0.1:{srv.port}", api_password=None, api_key=API_KEY))
    with pytest.raises(api.ApiError) as e:
        client.call("GET", "/v1/health", apikey_ok=True)
    assert e.value.kind == "forbidden" and "refused Apikey ********" in e.value.msg
    assert_no_secret(e.value.msg)
    assert_no_secret(str(e.value))


# -- line breaks and control characters in the login and database options -------------------------
SECRET_OPTIONS = ("api_key", "api_password", "api_new_password", "api_token", "api_username", "db_password")
# Everything str.splitlines splits on, and other control characters (Unicode category Cc).
CONTROL = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029", "\x00", "\t",
           "\x1b", "\x7f", "\x9f"]


def all_forms(secret):
    """The secret as given and escaped as repr, JSON and the repr of its bytes would show it."""
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], repr(secret.encode())[2:-1]}
    try:
        forms.add(repr(secret.encode("latin-1"))[2:-1])
    except UnicodeError:
        pass
    return forms


@pytest.mark.parametrize("option", SECRET_OPTIONS)
@pytest.mark.parametrize("char", CONTROL, ids=[repr(c) for c in CONTROL])
@pytest.mark.parametrize("where", ["lead", "inside", "trail"])
def test_a_line_break_or_control_character_is_refused_by_name_never_shown(option, char, where):
    value = {"lead": char + API_KEY, "inside": API_KEY[:4] + char + API_KEY[4:], "trail": API_KEY + char}[where]
    problems = options.option_problems(all_options(**{option: value}))
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{option} holds a line break or another control character"), problems
    for form in all_forms(value) | {API_KEY, API_KEY[4:]}:
        assert form not in problems[0], problems[0]


@pytest.mark.parametrize("option", SECRET_OPTIONS)
@pytest.mark.parametrize("value", ["a b", "é-ünï", "'\"$`\\#%=:@/?&+", "\U0001f600", "*" * 8, "\u00a0x"])
def test_printable_characters_in_the_login_options_pass(option, value):
    assert options.option_problems(all_options(**{option: value})) == []


def test_every_control_option_is_named_once():
    bad = dict((o, "\n" + API_KEY) for o in SECRET_OPTIONS)
    problems = options.option_problems(all_options(**bad))
    assert [p.split(" ", 1)[0] for p in problems] == list(options.HEADER_SAFE_OPTIONS)
    assert sorted(options.HEADER_SAFE_OPTIONS) == sorted(SECRET_OPTIONS)
    assert not any(API_KEY in p for p in problems)


@pytest.mark.parametrize("name", sorted(MODULES))
@pytest.mark.parametrize("option", ["api_key", "api_password", "api_token", "db_password"])
def test_every_module_refuses_a_line_break_in_a_secret_before_contacting_anything(
        listener, capsys, monkeypatch, name, option):
    mod, extra = MODULES[name]
    srv = listener("garbage")
    monkeypatch.setattr(cdb.ClusterDb, "connect", lambda self: pytest.fail("the database was contacted"))
    args = dict(extra, api_url=f"http://127.0.0.1:{srv.port}", api_password=API_PW, api_key=API_KEY)
    args[option] = "\n" + (DB_PW if option == "db_password" else API_KEY)
    res = run_module(mod, args, capsys)  # run_module asserts no secret in the output, in any escaped form
    if option.startswith("db_") and name not in DB_MODULES:
        assert res["failed"] and "takes no database option: db_password given" in res["msg"], res
        assert srv.connections == 0
        return
    assert res["failed"] and res["failure_kind"] == "invalid_option", res
    assert res["msg"].startswith(f"{option} holds a line break or another control character"), res["msg"]
    assert srv.connections == 0, "nothing was contacted"


def test_failover_check_refuses_an_api_key_with_a_line_break(listener, capsys, fake_db):
    srv = listener("web", body=lambda h: (f"<pre>{h.headers}</pre>").encode())
    res = run_module(failover_check, dict(DB_ARGS, api_url=f"https://127.0.0.1:{srv.port}", api_key="\n" + API_KEY),
                     capsys)
    assert res["failed"] and res["failure_kind"] == "invalid_option" and "api_key holds a line break" in res["msg"]
    assert "Invalid header" not in res["msg"] and "\\n" not in res["msg"]
    assert srv.requests == 0


def test_failover_check_never_shows_an_escaped_api_key_even_past_the_validator(listener, capsys, fake_db,
                                                                               monkeypatch):
    from ansible_collections.wabiz.cluster.plugins.module_utils import _cluster_module

    monkeypatch.setattr(_cluster_module, "check_options", lambda module, rules=(): None)
    srv = listener("web", body=lambda h: (f"<pre>{h.headers}</pre>").encode())
    res = run_module(failover_check, dict(DB_ARGS, api_url=f"http://127.0.0.1:{srv.port}", api_key="\n" + API_KEY),
                     capsys)
    out = json.dumps(res)
    for form in all_forms("\n" + API_KEY) | {API_KEY}:
        assert form not in out, out


@pytest.mark.parametrize("option", ["api_key", "api_token", "api_password"])
@pytest.mark.parametrize("char", ["\n", "\r\n", "\x00", "\x85", "\u2028"], ids=repr)
def test_the_client_never_shows_a_secret_a_header_cannot_hold(listener, option, char):
    srv = listener("web", ctype="application/json", body=b"{}")
    value = char + API_KEY + "\u00e9'"
    kw = {"api_password": None, option: value}
    client = api.WabizApi(params(f"http://127.0.0.1:{srv.port}", **kw), sleep=lambda s: None)
    try:  # http.client refuses a line break in a header, not NUL or NEL (then the listener answers {})
        client.call("GET", "/v1/health", apikey_ok=True)
    except api.ApiError as exc:
        for form in all_forms(value) | {API_KEY}:
            assert form not in exc.msg and form not in str(exc), exc.msg
        if char in ("\n", "\r\n") and option != "api_password":
            assert exc.kind == "invalid_option" and "holds a line break" in exc.msg, exc.msg
    else:
        assert char not in ("\n", "\r\n") and option != "api_password"


def test_redact_masks_the_repr_json_and_bytes_forms_of_every_secret():
    secrets = {"api_password": "\n" + API_PW + "\u00e9", "api_new_password": NEW_PW + "'\"",
               "api_key": "\r\n" + API_KEY + "\x00", "api_token": "tok\t" + DB_PW}
    client = api.WabizApi(params("https://wa:9090", **secrets))
    for value in secrets.values():
        for form in all_forms(value):
            text = client.redact(f"before {form} after b'Apikey {form}' {{\"x\": \"{form}\"}}")
            assert "********" in text and form not in text, text
            assert_no_secret(text)
    # the parts between control characters are secrets too
    assert client.redact(f"line: {API_KEY} end") == "line: ******** end"
    assert client.redact("nothing secret here: api_key, admin") == "nothing secret here: api_key, admin"


def test_secret_forms_of_plain_values():
    from ansible_collections.wabiz.cluster.plugins.module_utils._api_errors import secret_forms

    assert secret_forms(None) == set() and secret_forms("") == set()
    assert secret_forms("plain") == {"plain"}
    assert {"\\n" + API_KEY, API_KEY} <= secret_forms("\n" + API_KEY)
    assert "it\\'s" in secret_forms("it's") and "it's" in secret_forms("it's")
