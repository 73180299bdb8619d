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
from ansible_collections.wabiz.cluster.plugins.module_utils._parallel import parallel

# Error bodies shaped as the contract shows them (api-contract.md, "Errors").
META = {"api_status": "stable", "version": "2.53.2"}
DENIED = {"errors": [{"code": 1005, "title": "Access denied", "details": "invalid username or password"}],
          "meta": META}
CHANGE = {"errors": [{"code": 1024, "title": "Password change required", "details": "log in with new_password"}],
          "meta": META}
LEGACY_CHANGE = {"errors": [{"code": 1005, "title": "Access denied",
                             "details": "Password change required: log in with new_password"}], "meta": META}
INVALID = {"errors": [{"code": 1009, "title": "Parameter value is not valid",
                       "details": "shards must be one of 1, 2, 4, 8, 16, 32"}], "meta": META}
MISSING = {"errors": [{"code": 1008, "title": "Required parameter is missing", "details": "cc"}], "meta": META}
NOT_READY = {"errors": [{"code": 1011, "title": "Service not ready", "details": "no primary master"}], "meta": META}
UNREACHABLE = {"errors": [{"code": 1014, "title": "Internal error",
                           "details": "Please check if wacore is running: 10.0.0.11:6250"}], "meta": META}
TOO_MANY = {"errors": [{"code": 1015, "title": "Too many requests", "details": "rate limit"}], "meta": META}
NOT_PRIMARY = {"errors": [{"code": 1017, "title": "Not a primary master"}], "meta": META}


@pytest.mark.parametrize("status, body, kind, words", [
    (401, DENIED, "auth", ["not authenticated", "invalid username or password", "api_password"]),
    (401, CHANGE, "password_change_required", ["api_new_password", "Password change required"]),
    (400, LEGACY_CHANGE, "password_change_required", ["api_new_password"]),
    (400, INVALID, "invalid", ["shards must be one of"]),
    (400, MISSING, "invalid", ["Required parameter is missing: cc"]),
    (403, {"errors": [{"code": 1005, "title": "Access denied"}]}, "forbidden", ["may not"]),
    (404, {"errors": [{"code": 1006, "title": "Resource not found", "details": "URL path not found"}]}, "not_found",
     ["no such resource", "URL path not found"]),
    (500, NOT_READY, "unavailable", ["the service is not ready", "no primary master"]),
    (503, NOT_READY, "unavailable", ["no primary master"]),
    (500, UNREACHABLE, "node_unreachable", ["cannot be reached", "10.0.0.11:6250"]),
    (429, TOO_MANY, "rate_limited", ["too many requests", "api_rate_limit_wait"]),
    (500, NOT_PRIMARY, "not_primary", ["not the primary master"]),
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

    def __init__(self, password="secret", must_change=True, api_key="KEY", fail_first=None, legacy=False):
        self.password, self.must_change, self.api_key, self.legacy = password, must_change, api_key, legacy
        self.tokens = set()
        self.calls = []
        self.fail_first = list(fail_first or [])

    def __call__(self, url, data=None, headers=None, method=None, **kw):
        self.calls.append((method, url, headers.get("Authorization", ""), data))
        if self.fail_first:
            f = self.fail_first.pop(0)
            if isinstance(f, Exception):
                raise f
            status, body, hdrs = f if isinstance(f, tuple) else (f, NOT_READY, {})
            raise HTTPError(url, status, "err", hdrs, io.BytesIO(json.dumps(body).encode()))
        path = url.split("9090", 1)[1]
        auth = headers.get("Authorization", "")
        if path == "/v1/users/login":
            user, _sep, pw = base64.b64decode(auth.split(" ", 1)[1]).decode().partition(":")
            if pw != self.password:
                raise HTTPError(url, 401, "denied", {}, io.BytesIO(json.dumps(DENIED).encode()))
            body = json.loads(data) if data else {}
            if self.must_change and not body.get("new_password"):
                if self.legacy:  # the stand-in's answer before the contract: 400 / 1005
                    raise HTTPError(url, 400, "change", {}, io.BytesIO(json.dumps(LEGACY_CHANGE).encode()))
                raise HTTPError(url, 401, "change", {}, io.BytesIO(json.dumps(CHANGE).encode()))
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


@pytest.mark.parametrize("legacy", [False, True], ids=["401-1024", "400-legacy"])
def test_first_login_sets_the_new_password_and_token_is_reused(legacy):
    web = FakeWebapp(legacy=legacy)
    client = api.WabizApi(params(api_password="secret", api_new_password="Secret-123"), opener=web,
                          sleep=lambda s: None)
    client.call("GET", "/v1/settings/application")
    client.call("GET", "/v1/settings/application")
    assert web.password == "Secret-123" and client.password_changed
    # api_new_password refused (not set yet), the initial one answered "change required", then the change;
    # then the token is reused
    assert len(logins(web)) == 3 and json.loads(logins(web)[2][3]) == {"new_password": "Secret-123"}
    assert client.logins == 1


def test_check_mode_never_changes_the_password():
    web = FakeWebapp()
    client = api.WabizApi(params(api_password="secret", api_new_password="Secret-123"), opener=web, check_mode=True)
    with pytest.raises(api.ApiError) as e:
        client.call("GET", "/v1/settings/application")
    assert e.value.kind == "password_change_required" and "check mode" in e.value.msg
    assert web.password == "secret" and not any(c[3] for c in logins(web)), "no new_password was sent"


def test_second_run_logs_in_with_the_new_password_without_a_failed_login():
    """The webapp allows 30 failed logins an hour per client address (then 429 for everything): a run after
    the first tries api_new_password first and never spends one."""
    web = FakeWebapp(password="Secret-123", must_change=False)
    client = api.WabizApi(params(api_password="secret", api_new_password="Secret-123"), opener=web)
    client.call("GET", "/v1/settings/application")
    assert not client.password_changed and client.logins == 1
    assert len(logins(web)) == 1, "no refused login"


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


@pytest.mark.parametrize("status", [500, 503])
@pytest.mark.parametrize("body", [NOT_READY, NOT_PRIMARY], ids=["1011", "1017"])
def test_service_not_ready_is_retried_by_its_code_whatever_the_status(status, body):
    slept = []
    web = FakeWebapp(fail_first=[(status, body, {})] * 2)
    client = api.WabizApi(params(api_key="KEY"), opener=web, sleep=slept.append)
    assert client.call("GET", "/v1/health", apikey_ok=True) == {"health": {}}
    assert len(web.calls) == 3 and len(slept) == 2 and not client.rate_limits


def test_an_unreachable_node_500_1014_is_not_retried():
    web = FakeWebapp(fail_first=[(500, UNREACHABLE, {})])
    client = api.WabizApi(params(api_key="KEY"), opener=web, sleep=lambda s: None)
    with pytest.raises(api.ApiError) as e:
        client.call("GET", "/v1/health", apikey_ok=True)
    assert e.value.kind == "node_unreachable" and e.value.code == 1014 and len(web.calls) == 1


def test_a_rate_limit_is_waited_out_with_back_off_and_said():
    slept = []
    web = FakeWebapp(fail_first=[(429, TOO_MANY, {}), (429, TOO_MANY, {}), (429, TOO_MANY, {"Retry-After": "3"})])
    client = api.WabizApi(params(api_key="KEY", api_retries=0), opener=web, sleep=slept.append)
    assert client.call("GET", "/v1/health", apikey_ok=True) == {"health": {}}
    assert slept == [1.0, 2.0, 3.0], "1 s, 2 s, then the Retry-After the answer names"
    assert client.rate_limited_seconds() == 6.0 and len(client.rate_limits) == 3
    note = client.rate_limit_note()
    assert "429" in note and "3 time(s)" in note and "GET /v1/health" in note and "6.0 s" in note


def test_a_rate_limit_is_retried_on_code_1015_whatever_the_status():
    slept = []
    web = FakeWebapp(fail_first=[(503, TOO_MANY, {})])
    client = api.WabizApi(params(api_key="KEY", api_retries=0), opener=web, sleep=slept.append)
    assert client.call("GET", "/v1/health", apikey_ok=True) == {"health": {}}
    assert slept == [1.0]


def test_the_rate_limit_wait_is_bounded():
    slept = []
    web = FakeWebapp(fail_first=[(429, TOO_MANY, {})] * 50)
    client = api.WabizApi(params(api_key="KEY", api_rate_limit_wait=10), opener=web, sleep=slept.append)
    with pytest.raises(api.ApiError) as e:
        client.call("GET", "/v1/health", apikey_ok=True)
    assert e.value.kind == "rate_limited" and e.value.status == 429
    assert sum(slept) == 10.0 and slept == [1.0, 2.0, 4.0, 3.0], "the budget ends the waiting"
    assert "after backing off 10.0 s" in e.value.msg
    client = api.WabizApi(params(api_key="KEY", api_rate_limit_wait=0), opener=FakeWebapp(
        fail_first=[(429, TOO_MANY, {})]), sleep=slept.append)
    with pytest.raises(api.ApiError) as e:
        client.call("GET", "/v1/health", apikey_ok=True)
    assert e.value.kind == "rate_limited"


def test_parallel_runs_calls_at_once_and_reports_exceptions():
    import time

    def slow():
        time.sleep(0.3)
        return "done"

    def boom():
        raise RuntimeError("x")

    started = time.monotonic()
    out = parallel({i: slow for i in range(8)} | {"bad": boom}, timeout=5)
    assert time.monotonic() - started < 1.0
    assert [out[i] for i in range(8)] == ["done"] * 8 and isinstance(out["bad"], RuntimeError)
