# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one REST client of the collection for the WhatsApp Business API client's webapp.

- Logs in with HTTP Basic auth (``POST /v1/users/login``) and reuses the Bearer token it gets:
  within one module run always, across runs when ``api_token_cache`` names a file (kept 0600).
  The first login of a fresh cluster must set a new password (``api_new_password``); a later
  run with the same options logs in with the new password (idempotent first login).
- ``Apikey`` authentication (``api_key``) for the endpoints that accept it (health, stats,
  metrics); ``api_token`` to use a token obtained elsewhere.
- TLS verification with ``validate_certs`` and a CA bundle (``ca_path``); timeouts; retries
  with back-off on connection errors and on the answers worth trying again: by error code (1011
  service not ready, 1017/1018 not the primary, whatever the HTTP status: 500 in the contract) or
  a 503 without a code.
- A rate limit (HTTP 429 or code 1015) is waited out: back-off (1, 2, 4, 8 s, or the
  ``Retry-After`` the answer names) within ``api_rate_limit_wait`` seconds per run, recorded in
  ``rate_limits`` so that the module says so (a warning and ``rate_limited`` in its result).
- The first login: the webapp answers 401 with code 1024 (or, older, 400 "password change
  required") until a ``new_password`` is sent.
- Every failure is an ApiError with a ``kind`` and one sentence that never holds a secret
  (``_api_errors``); the options are checked before by ``_cluster_options.check_options``.

HTTP goes through ``_api_transport`` (ansible's open_url only: the hosts may lack ``requests``);
the token file is ``_api_token_cache``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import json
import socket
import ssl
import time

from ansible.module_utils.six.moves import http_client
from ansible.module_utils.six.moves.urllib.error import HTTPError, URLError
from ansible_collections.wabiz.cluster.plugins.module_utils._api_errors import (
    CLOSED,
    ApiError,
    NonJsonBody,
    SSLValidationError,
    base_of,
    is_rate_limited,
    is_retryable,
    map_http_error,
    map_transport_error,
    not_the_api,
    secret_forms,
    short,
)
from ansible_collections.wabiz.cluster.plugins.module_utils._api_token_cache import TokenCache
from ansible_collections.wabiz.cluster.plugins.module_utils._api_transport import (
    content_type_of,
    http_json,
    open_url,
    parse_body,
    retry_after_seconds,
    tls_context,
)
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_options import MAX_RATE_LIMIT_WAIT, MAX_RETRIES

# http_json stays importable from here: tests/cluster_modules use _api.http_json.
__all__ = ["ApiError", "WabizApi", "http_json"]


class WabizApi(object):
    """A small client of one webapp. ``params`` are the options of api_argument_spec();
    ``opener`` (for tests) replaces open_url."""

    def __init__(self, params, opener=None, sleep=time.sleep, check_mode=False):
        self.base = params["api_url"].strip().rstrip("/")
        if not self.base.startswith(("http://", "https://")):
            self.base = "https://" + self.base
        self.username = params.get("api_username") or "admin"
        self.password = params.get("api_password")
        self.new_password = params.get("api_new_password")
        self.api_key = params.get("api_key")
        self.token = params.get("api_token")
        self.token_cache = params.get("api_token_cache")
        self.cache = TokenCache(self.token_cache, self.base, self.username)
        self.validate_certs = params.get("validate_certs", True)
        self.ca_path = params.get("ca_path")
        self.timeout = float(params.get("api_timeout") or 10)
        # check_options refuses values out of range; these bounds keep a caller that skipped it safe
        retries = params.get("api_retries")
        self.retries = min(MAX_RETRIES, max(0, int(2 if retries is None else retries)))
        wait = params.get("api_rate_limit_wait")
        self.rate_limit_wait = min(MAX_RATE_LIMIT_WAIT, max(0.0, float(30 if wait is None else wait)))
        self.rate_limits = []  # one {"call", "waited"} per 429 waited out (see rate_limit_note)
        self.open = opener or open_url
        if opener is None:
            tls_context(self.validate_certs, self.ca_path, for_run=True)
        self.sleep = sleep
        self.logins = 0  # how many times this run logged in (0 = a token was reused)
        self.token_source = "option" if self.token else None
        self.password_changed = False
        self.check_mode = check_mode  # the first login's password change is a change: not in check mode

    # -- transport ------------------------------------------------------------------------
    def url(self, path):
        return self.base + path

    def raw(self, method, path, body=None, headers=None, timeout=None, base=None):
        """(status, parsed JSON) of one request with retries; raises ApiError on transport failures
        (after the retries) and when the answer is not the API's (not HTTP, closed, a body that is not
        JSON), but returns HTTP error answers as they are. At most api_retries + 1 tries, each bounded
        by the timeout, with at most 2 s between them: every call has a deadline."""
        url = (base.rstrip("/") if base else self.base) + path
        data = json.dumps(body).encode("utf-8") if body is not None else None
        hdrs = {"Accept": "application/json"}
        if data is not None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        attempt = 0
        limited = 0  # 429 answers of this call
        while True:
            retry_after = None
            try:
                resp = self.open(url, data=data, headers=hdrs, method=method, timeout=timeout or self.timeout,
                                 validate_certs=self.validate_certs, ca_path=self.ca_path,
                                 follow_redirects="none", use_proxy=False, force_basic_auth=False)
                status, payload = getattr(resp, "status", None) or resp.getcode(), resp.read()
                content_type = content_type_of(resp)
            except HTTPError as exc:
                status = exc.code
                content_type = content_type_of(exc)
                retry_after = retry_after_seconds(exc)
                try:
                    payload = exc.read()
                except Exception:
                    payload = b""
            except (URLError, socket.error, socket.timeout, ssl.SSLError, SSLValidationError, ConnectionError,
                    http_client.HTTPException) as exc:
                err = self._scrubbed(map_transport_error(method, url, exc, self.ca_path))
                # garbage and a TLS refusal stay as they are; a closed connection may be a restart
                retry = err.kind not in ("tls", "bad_response") or isinstance(getattr(exc, "reason", exc), CLOSED)
                if retry and attempt < self.retries:
                    attempt += 1
                    self.sleep(min(2.0, 0.3 * 2 ** attempt))
                    continue
                raise err from None
            except (ValueError, UnicodeError) as exc:  # a URL or a header that the HTTP library cannot use
                if "header" in str(exc).lower():  # check_options refuses these first; never show the value
                    raise ApiError("invalid_option", "%s %s cannot be sent: api_username, api_password, api_new_password, "
                                   "api_key or api_token holds a line break or another control character; set "
                                   "it without them." % (method, base_of(url))) from None
                raise self._scrubbed(ApiError("unreachable", "cannot use api_url %s: %s. Use https://HOST:PORT." % (
                    base_of(url), exc))) from None
            parsed = parse_body(payload)
            if is_rate_limited(status, parsed):
                left = self.rate_limit_wait - self.rate_limited_seconds()
                if left > 0:
                    wait = min(left, retry_after if retry_after is not None else min(8.0, 2.0 ** limited))
                    limited += 1
                    self.rate_limits.append({"call": "%s %s" % (method, path), "waited": round(wait, 3)})
                    self.sleep(wait)
                    continue
            elif is_retryable(status, parsed) and attempt < self.retries:
                attempt += 1
                self.sleep(min(2.0, 0.3 * 2 ** attempt))
                continue
            if isinstance(parsed, str):
                text = self.redact("%s, not JSON: %r" % (content_type or "a body", short(parsed, 120)))
                if 200 <= status < 300:
                    raise not_the_api(url, "%s %s answered HTTP %s with %s" % (method, url, status, text)) from None
                # An error status keeps its meaning (a 404/405 of a webapp or proxy without that
                # endpoint, a proxy's 502 while a webapp restarts); the text says what came back.
                return status, NonJsonBody(text)
            return status, parsed

    def redact(self, text):
        """``text`` without any secret of this client (as given, escaped as repr() or JSON write it, as
        the repr of its bytes, in a Basic header, or as a token): see secret_forms."""
        secrets = set()
        for value in (self.password, self.new_password, self.api_key, self.token):
            secrets.update(secret_forms(value))
        for pw in (self.password, self.new_password):
            if pw:
                secrets.add(self._basic(pw).split(" ", 1)[1])
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, "********")
        return text

    def rate_limited_seconds(self):
        """Seconds this client has waited out rate limits (429 / 1015) so far."""
        return sum(r["waited"] for r in self.rate_limits)

    def rate_limit_note(self):
        """None, or the sentence saying that the API rate-limited this run and how long it waited."""
        if not self.rate_limits:
            return None
        calls = sorted(set(r["call"] for r in self.rate_limits))
        return ("the API answered 429 (too many requests, code 1015) %d time(s) (%s): backed off %.1f s in all "
                "(api_rate_limit_wait %s s) and carried on" % (len(self.rate_limits), ", ".join(calls),
                                                               self.rate_limited_seconds(), _num(self.rate_limit_wait)))

    # -- auth -----------------------------------------------------------------------------
    def cached_token(self):
        return self.cache.token()

    def _basic(self, password):
        cred = ("%s:%s" % (self.username, password)).encode("utf-8")
        return "Basic " + base64.b64encode(cred).decode("ascii")

    def login(self):
        """Log in with Basic auth and return the Bearer token. Handles the first login: when the API
        requires a new password, sends api_new_password; when api_password is refused but
        api_new_password is accepted, the password was changed by an earlier run."""
        if not self.password and not self.new_password:
            raise ApiError("auth", "this call needs a Bearer token: set api_password (or api_token).")
        # api_new_password first: once the first login has changed the password (every run after the first)
        # it is the one that works, and a refused login counts against the webapp's limit of failed logins
        # (30 an hour per client address, then 429 for everything): trying the initial password first would
        # spend one failed login per task.
        attempts = []
        if self.new_password:
            attempts.append((self.new_password, None))
        if self.password and self.password != self.new_password:
            attempts.append((self.password, None))
        last = None
        for password, body in attempts:
            status, payload = self.raw("POST", "/v1/users/login", body, {"Authorization": self._basic(password)})
            if status == 200:
                return self._got_token(payload)
            err = map_http_error("POST", self.url("/v1/users/login"), status, payload)
            if err.kind == "password_change_required":
                if not self.new_password or password == self.new_password:
                    raise err
                if self.check_mode:
                    raise ApiError("password_change_required", "the first login must change the password, which "
                                   "check mode does not do: run once without check mode (or use api_key where it "
                                   "is enough).", err.status, err.code)
                status, payload = self.raw("POST", "/v1/users/login", {"new_password": self.new_password},
                                           {"Authorization": self._basic(password)})
                if status == 200:
                    self.password_changed = True
                    return self._got_token(payload)
                err = map_http_error("POST", self.url("/v1/users/login"), status, payload)
                raise err
            if err.kind != "auth":
                raise err
            last = err
        raise ApiError("auth", "the API refused the login of user '%s': wrong password (tried api_password%s)."
                       % (self.username, " and api_new_password" if self.new_password else ""),
                       last.status if last else 401, last.code if last else None)

    def _got_token(self, payload):
        try:
            token = payload["users"][0]["token"]
            if not isinstance(token, str) or not token:
                raise TypeError(token)
        except (KeyError, IndexError, TypeError):
            raise not_the_api(self.base, "the answer to POST /v1/users/login holds no token: %s" % (
                self.redact(short(json.dumps(payload, default=str))),)) from None
        self.logins += 1
        self.token = token
        self.token_source = "login"
        # The API says the token lasts 7 days; keep a day of margin without parsing its date.
        self.cache.store(token, time.time() + 6 * 86400)
        return token

    def bearer(self):
        if self.token:
            return self.token
        cached = self.cached_token()
        if cached:
            self.token, self.token_source = cached, "cache"
            return cached
        try:
            return self.login()
        except ApiError as exc:
            raise self._scrubbed(exc) from None

    def scrub(self, exc):
        """``exc`` (an ApiError) without any secret of this client in its message."""
        return self._scrubbed(exc)

    def _scrubbed(self, exc):
        """``exc`` with every secret of this client taken out of its message (an answer may echo them)."""
        exc.msg = self.redact(exc.msg)
        exc.args = (exc.msg,)
        return exc

    # -- calls ----------------------------------------------------------------------------
    def call(self, method, path, body=None, apikey_ok=False, expect=(200, 201)):
        """JSON body of a successful call; ApiError otherwise (never holding a secret). Uses Apikey
        when allowed and set, else a Bearer token (logging in once more when a reused token was refused)."""
        try:
            return self._call(method, path, body, apikey_ok, expect)
        except ApiError as exc:
            raise self._scrubbed(exc) from None

    def _call(self, method, path, body, apikey_ok, expect):
        if apikey_ok and self.api_key:
            status, payload = self.raw(method, path, body, {"Authorization": "Apikey %s" % self.api_key})
        else:
            status, payload = self.raw(method, path, body, {"Authorization": "Bearer %s" % self.bearer()})
            if status == 401 and self.token_source in ("cache", "option") and \
                    (self.password or self.new_password):
                self.cache.drop()
                self.token = None
                status, payload = self.raw(method, path, body, {"Authorization": "Bearer %s" % self.login()})
        if status in expect:
            if not isinstance(payload, dict):
                err = not_the_api(self.base, "%s %s answered %s with a body that is not a JSON object: %s" % (
                    method, self.url(path), status, self.redact(short(json.dumps(payload, default=str)))))
                err.status = status
                raise err
            return payload
        err = map_http_error(method, self.url(path), status, payload)
        if err.kind == "rate_limited" and self.rate_limits:
            err.msg = err.msg.rstrip(".") + " (after backing off %.1f s in this run)." % self.rate_limited_seconds()
            err.args = (err.msg,)
        raise err


def _num(v):
    return ("%d" % v) if float(v).is_integer() else ("%g" % v)
