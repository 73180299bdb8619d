"""The REST client: error mapping over the API's answers, the login flow (first login, token
reuse and cache, re-login), Apikey, retries. Transport is a fake ``open_url``."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import ssl
import stat
from urllib.error import HTTPError, URLError

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _api as api

# Error bodies as the stand-in's webapp (2.53.2) answers them.
DENIED = {"errors": [{"code": 1005, "title": "Access denied", "details": "invalid username or password"}],
          "meta": {"api_status": "stable"}}
CHANGE = {"errors": [{"code": 1005, "title": "Access denied",
                      "details": "Password change required: log in with new_password"}], "meta": {"api_status": "stable"}}
INVALID = {"errors": [{"code": 1009, "title": "Parameter value is not valid",
                       "details": "shards must be one of 1, 2, 4, 8, 16, 32"}], "meta": {"api_status": "stable"}}
NOT_READY = {"errors": [{"code": 1011, "title": "Service not ready",
                         "details": "no primary master holds the lease"}], "meta": {"api_status": "stable"}}


@pytest.mark.parametrize("status, body, kind, words", [
    (401, DENIED, "auth", ["not authenticated", "invalid username or password", "api_password"]),
    (400, CHANGE, "password_change_required", ["api_new_password"]),
    (400, INVALID, "invalid", ["shards must be one of"]),
    (403, {}, "forbidden", ["may not"]),
    (404, {"errors": [{"code": 1006, "title": "Not Found"}]}, "not_found", ["no such resource"]),
    (503, NOT_READY, "unavailable", ["no primary master holds the lease"]),
    (500, {"error": "boom"}, "http", ["HTTP 500", "boom"]),
    (502, "<html>bad gateway</html>", "http", ["HTTP 502"]),
])
def test_map_http_error(status, body, kind, words):
    err = api.map_http_error("POST", "https://wa:9090/v1/x", status, body)
    assert err.kind == kind and err.status == status
    for w in words:
        assert w in err.msg


@pytest.mark.parametrize("exc, kind", [
    (URLError(ssl.SSLCertVerificationError(1, "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")), "tls"),
    (URLError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: IP address mismatch"), "tls"),
    (URLError(TimeoutError("timed out")), "timeout"),
    (URLError(ConnectionRefusedError(111, "Connection refused")), "unreachable"),
    (URLError(socket.gaierror(-2, "Name or service not known")), "unreachable"),
])
def test_map_transport_error(exc, kind):
    err = api.map_transport_error("GET", "https://wa:9090/v1/health", exc, ca_path=None)
    assert err.kind == kind
    if kind == "tls":
        assert "ca_path" in err.msg and "validate_certs=false" in err.msg
    if kind == "unreachable":
        assert "https://wa:9090/v1/health" in err.msg


class Resp:
    def __init__(self, status, body):
        self.status = status
        self._body = json.dumps(body).encode() if not isinstance(body, bytes) else body

    def read(self):
        return self._body


class FakeWebapp:
    """A scripted webapp: checks Basic/Bearer/Apikey like the stand-in and records the calls."""

    def __init__(self, password="secret", must_change=True, api_key="KEY", fail_first=None):
        self.password, self.must_change, self.api_key = password, must_change, api_key
        self.tokens = set()
        self.calls = []
        self.fail_first = list(fail_first or [])

    def __call__(self, url, data=None, headers=None, method=None, **kw):
        self.calls.append((method, url, headers.get("Authorization", ""), data))
        if self.fail_first:
            f = self.fail_first.pop(0)
            if isinstance(f, Exception):
                raise f
            raise HTTPError(url, f, "err", {}, io.BytesIO(json.dumps(NOT_READY).encode()))
        path = url.split("9090", 1)[1]
        auth = headers.get("Authorization", "")
        if path == "/v1/users/login":
            user, _sep, pw = base64.b64decode(auth.split(" ", 1)[1]).decode().partition(":")
            if pw != self.password:
                raise HTTPError(url, 401, "denied", {}, io.BytesIO(json.dumps(DENIED).encode()))
            body = json.loads(data) if data else {}
            if self.must_change and not body.get("new_password"):
                raise HTTPError(url, 400, "change", {}, io.BytesIO(json.dumps(CHANGE).encode()))
            if body.get("new_password"):
                self.password, self.must_change = body["new_password"], False
            token = f"tok{len(self.tokens)}"
            self.tokens.add(token)
            return Resp(200, {"users": [{"token": token, "expires_after": "2026-12-01 00:00:00+00:00"}]})
        if auth.startswith("Apikey ") and auth[7:] == self.api_key and path == "/v1/health":
            return Resp(200, {"health": {}})
        if auth.startswith("Bearer ") and auth[7:] in self.tokens:
            return Resp(200, {"settings": {"application": {"heartbeat_interval": 5}}})
        raise HTTPError(url, 401, "denied", {}, io.BytesIO(json.dumps(DENIED).encode()))


def params(**kw):
    p = dict(api_url="https://wa:9090", api_username="admin", api_password=None, api_new_password=None,
             api_key=None, api_token=None, api_token_cache=None, validate_certs=True, ca_path=None,
             api_timeout=5.0, api_retries=2)
    p.update(kw)
    return p


def logins(web):
    return [c for c in web.calls if c[1].endswith("/v1/users/login")]


def test_first_login_sets_the_new_password_and_token_is_reused():
    web = FakeWebapp()
    client = api.WabizApi(params(api_password="secret", api_new_password="Secret-123"), opener=web,
                          sleep=lambda s: None)
    client.call("GET", "/v1/settings/application")
    client.call("GET", "/v1/settings/application")
    assert web.password == "Secret-123" and client.password_changed
    # one refused plain login, one with new_password; then the token is reused
    assert len(logins(web)) == 2 and json.loads(logins(web)[1][3]) == {"new_password": "Secret-123"}
    assert client.logins == 1


def test_check_mode_never_changes_the_password():
    web = FakeWebapp()
    client = api.WabizApi(params(api_password="secret", api_new_password="Secret-123"), opener=web, check_mode=True)
    with pytest.raises(api.ApiError) as e:
        client.call("GET", "/v1/settings/application")
    assert e.value.kind == "password_change_required" and "check mode" in e.value.msg
    assert web.password == "secret" and not any(c[3] for c in logins(web)), "no new_password was sent"


def test_second_run_logs_in_with_the_new_password():
    web = FakeWebapp(password="Secret-123", must_change=False)
    client = api.WabizApi(params(api_password="secret", api_new_password="Secret-123"), opener=web)
    client.call("GET", "/v1/settings/application")
    assert not client.password_changed and client.logins == 1


def test_wrong_password_is_a_clear_auth_error_without_the_password():
    web = FakeWebapp(password="Secret-123", must_change=False)
    client = api.WabizApi(params(api_password="nope-nope"), opener=web)
    with pytest.raises(api.ApiError) as e:
        client.call("GET", "/v1/settings/application")
    assert e.value.kind == "auth" and "wrong password" in e.value.msg and "nope-nope" not in e.value.msg


def test_first_login_without_new_password_says_what_to_set():
    client = api.WabizApi(params(api_password="secret"), opener=FakeWebapp())
    with pytest.raises(api.ApiError) as e:
        client.login()
    assert e.value.kind == "password_change_required" and "api_new_password" in e.value.msg


def test_apikey_is_used_where_allowed_and_no_login_happens():
    web = FakeWebapp()
    client = api.WabizApi(params(api_key="KEY"), opener=web)
    assert client.call("GET", "/v1/health", apikey_ok=True) == {"health": {}}
    assert web.calls[0][2] == "Apikey KEY" and not logins(web)


def test_token_cache_is_private_and_reused_across_runs(tmp_path):
    cache = tmp_path / "sub" / "tokens.json"
    web = FakeWebapp(password="pw-123456", must_change=False)
    api.WabizApi(params(api_password="pw-123456", api_token_cache=str(cache)), opener=web).call(
        "GET", "/v1/settings/application")
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    second = api.WabizApi(params(api_password="pw-123456", api_token_cache=str(cache)), opener=web)
    second.call("GET", "/v1/settings/application")
    assert len(logins(web)) == 1 and second.token_source == "cache"
    # A token the API no longer knows (restored database...): one new login, then carry on.
    web.tokens.clear()
    third = api.WabizApi(params(api_password="pw-123456", api_token_cache=str(cache)), opener=web)
    assert third.call("GET", "/v1/settings/application")["settings"]
    assert len(logins(web)) == 2


def test_retries_503_and_connection_errors_but_not_tls():
    slept = []
    web = FakeWebapp(api_key="KEY", fail_first=[503, URLError(ConnectionRefusedError(111, "refused"))])
    client = api.WabizApi(params(api_key="KEY"), opener=web, sleep=slept.append)
    assert client.call("GET", "/v1/health", apikey_ok=True) == {"health": {}}
    assert len(web.calls) == 3 and len(slept) == 2
    web = FakeWebapp(fail_first=[URLError(ssl.SSLCertVerificationError(1, "certificate verify failed"))])
    client = api.WabizApi(params(api_key="KEY", ca_path="/etc/ca.pem"), opener=web, sleep=slept.append)
    with pytest.raises(api.ApiError) as e:
        client.call("GET", "/v1/health", apikey_ok=True)
    assert e.value.kind == "tls" and "/etc/ca.pem" in e.value.msg and len(web.calls) == 1


def test_unreachable_after_retries():
    web = FakeWebapp(fail_first=[URLError(ConnectionRefusedError(111, "Connection refused"))] * 3)
    client = api.WabizApi(params(api_key="KEY", api_retries=2), opener=web, sleep=lambda s: None)
    with pytest.raises(api.ApiError) as e:
        client.call("GET", "/v1/health", apikey_ok=True)
    assert e.value.kind == "unreachable" and len(web.calls) == 3


def test_url_without_scheme_gets_https():
    assert api.WabizApi(params(api_url="wa.example:9090/")).base == "https://wa.example:9090"


def test_probe_node_reports_failures_without_raising():
    def refused(url, **kw):
        raise URLError(ConnectionRefusedError(111, "Connection refused"))

    p = api.probe_node("10.0.0.1", 6253, 1.0, opener=refused)
    assert p["ok"] is False and "Connection refused" in p["error"]
    ok = api.probe_node("10.0.0.1", 6253, 1.0, opener=lambda url, **kw: Resp(
        200, {"node_id": "c1", "role": "coreapp", "gateway_status": "connected"}))
    assert ok["ok"] and ok["gateway_status"] == "connected" and ok["node_id"] == "c1"


def test_parallel_runs_calls_at_once_and_reports_exceptions():
    import time

    def slow():
        time.sleep(0.3)
        return "done"

    def boom():
        raise RuntimeError("x")

    started = time.monotonic()
    out = api.parallel({i: slow for i in range(8)} | {"bad": boom}, timeout=5)
    assert time.monotonic() - started < 1.0
    assert [out[i] for i in range(8)] == ["done"] * 8 and isinstance(out["bad"], RuntimeError)
