# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ApiError of the REST client and how an answer or a transport failure becomes one.

Each ApiError has a ``kind`` (``unreachable``, ``tls``, ``timeout``, ``auth``,
``password_change_required``, ``forbidden``, ``not_found``, ``invalid``, ``unavailable``,
``not_primary``, ``node_unreachable``, ``rate_limited``, ``http``, ``bad_response``,
``token_cache``, ``invalid_option`` for a login option that cannot be sent in a header) and one
sentence that never holds a secret, in no form (see secret_forms). ``bad_response`` covers an
``api_url`` that answers but not as the WhatsApp Business API.

The kind comes from the error code of the answer first (the contract's table: 1005 access denied,
1006 not found, 1008/1009 invalid, 1011 service not ready, 1014 internal error (a node that cannot
be reached), 1015 too many requests, 1017/1018 not the primary master/coreapp, 1024 password
change required), and only then from the HTTP status (for answers without a code: a proxy's).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket
import ssl

from ansible.module_utils.six.moves import http_client
from ansible.module_utils.six.moves.urllib.parse import urlsplit

try:
    from ansible.module_utils.urls import SSLValidationError
except ImportError:  # pragma: no cover
    SSLValidationError = ssl.SSLError


class ApiError(Exception):
    def __init__(self, kind, msg, status=None, code=None, body=None):
        super(ApiError, self).__init__(msg)
        self.kind = kind
        self.msg = msg
        self.status = status
        self.code = code
        self.body = body

    def as_result(self):
        out = {"failure_kind": self.kind}
        if self.status is not None:
            out["status"] = self.status
        return out


class NonJsonBody(str):
    """The description of an error answer whose body is not JSON (its type and its start, redacted)."""


def _error_detail(body):
    """(code, 'title: details') of a WhatsApp-style error body, else (None, '')."""
    if isinstance(body, NonJsonBody):
        return None, "the answer was %s" % body
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            e = errors[0]
            text = str(e.get("title") or "")
            if e.get("details"):
                text = "%s: %s" % (text, e["details"]) if text else str(e["details"])
            return e.get("code"), text
        if body.get("error"):
            return None, str(body["error"])
    return None, ""


# The contract's error codes (api-contract.md, "Errors").
CODE_ACCESS_DENIED = 1005
CODE_NOT_FOUND = 1006
CODE_MISSING = 1008
CODE_INVALID = 1009
CODE_NOT_READY = 1011
CODE_INTERNAL = 1014
CODE_TOO_MANY = 1015
CODE_NOT_PRIMARY_MASTER = 1017
CODE_NOT_PRIMARY_COREAPP = 1018
CODE_PASSWORD_CHANGE = 1024

# Answers worth trying again (within api_retries): the service is starting or a master/coreapp is
# changing hands; a 503 without a code (a proxy while the webapp restarts).
RETRY_CODES = (CODE_NOT_READY, CODE_NOT_PRIMARY_MASTER, CODE_NOT_PRIMARY_COREAPP)


def error_code(body):
    """The code of the first error of a WhatsApp-style error body (an int), else None."""
    code = _error_detail(body)[0]
    try:
        return int(code) if code is not None and not isinstance(code, bool) else None
    except (TypeError, ValueError):
        return None


def is_rate_limited(status, body):
    """True for a 'too many requests' answer: HTTP 429 or code 1015."""
    return status == 429 or error_code(body) == CODE_TOO_MANY


def is_retryable(status, body):
    """True for an answer that may succeed when tried again soon (service not ready, not the
    primary yet, a plain 503); a rate limit is handled apart (is_rate_limited)."""
    if is_rate_limited(status, body):
        return False
    code = error_code(body)
    return code in RETRY_CODES or status == 503


def map_http_error(method, url, status, body):
    """The ApiError for an HTTP error answer, by error code first, then by HTTP status (pure:
    unit-tested over the contract's error shapes)."""
    code, detail = _error_detail(body)
    code = error_code(body)
    where = "%s %s" % (method, url)
    said = (" (%s)" % detail) if detail else ""
    if code == CODE_PASSWORD_CHANGE or (status in (400, 401) and "password change required" in detail.lower()):
        return ApiError("password_change_required",
                        "the API requires a new password at the first login: set api_new_password (8 to 64 "
                        "characters, with an upper-case and a lower-case letter, a digit and a punctuation "
                        "character)%s." % said, status, code, body)
    if is_rate_limited(status, body):
        return ApiError("rate_limited", "%s was refused: too many requests%s; the webapp limits how often it may "
                        "be called (for /v1/health 10 calls a minute): call less often, or raise "
                        "api_rate_limit_wait." % (where, said), status, code, body)
    if code == CODE_NOT_READY:
        return ApiError("unavailable", "%s: the service is not ready%s; try again when the cluster has a primary "
                        "master." % (where, said), status, code, body)
    if code in (CODE_NOT_PRIMARY_MASTER, CODE_NOT_PRIMARY_COREAPP):
        return ApiError("not_primary", "%s: the node that answered is not the primary %s%s (a switchover in "
                        "progress?); try again." % (where, "master" if code == CODE_NOT_PRIMARY_MASTER else "coreapp",
                                                    said), status, code, body)
    if code == CODE_INTERNAL:
        return ApiError("node_unreachable", "%s failed: a node of the cluster cannot be reached%s." % (where, said),
                        status, code, body)
    if status == 401:
        return ApiError("auth", "%s was refused: not authenticated%s. Check api_username and api_password "
                        "(or api_key / api_token)." % (where, said), status, code, body)
    if status == 403:
        return ApiError("forbidden", "%s was refused: this user may not do that%s." % (where, said), status, code,
                        body)
    if status == 404 or code == CODE_NOT_FOUND:
        return ApiError("not_found", "%s: no such resource%s." % (where, said), status, code, body)
    if status == 400 or code in (CODE_MISSING, CODE_INVALID):
        return ApiError("invalid", "%s was refused as invalid%s." % (where, said), status, code, body)
    if status == 503:
        return ApiError("unavailable", "%s: the service is not ready%s." % (where, said), status, code, body)
    return ApiError("http", "%s failed with HTTP %s%s." % (where, status, said), status, code, body)


# TLS errors that mean the other end does not speak TLS (a plain-HTTP port, another protocol, a
# listener that closes at once), not that its certificate failed verification.
_NOT_TLS_MARKERS = ("WRONG_VERSION_NUMBER", "wrong version number", "record layer failure", "HTTP_REQUEST",
                    "http request", "UNKNOWN_PROTOCOL", "unknown protocol", "PACKET_LENGTH_TOO_LONG",
                    "packet length too long", "UNEXPECTED_EOF", "EOF occurred in violation of protocol",
                    "unexpected eof")


# The listener took the connection and then dropped it: something answers there, not as the API.
CLOSED = (http_client.RemoteDisconnected, ConnectionResetError, ConnectionAbortedError, BrokenPipeError)


def base_of(url):
    """scheme://host:port of a URL (the api_url a message names)."""
    try:
        parts = urlsplit(url)
        return "%s://%s" % (parts.scheme, parts.netloc.rpartition("@")[2]) if parts.netloc else url
    except ValueError:
        return url


def not_the_api(url, what):
    """The ApiError for an api_url that answers, but not as the WhatsApp Business API."""
    return ApiError("bad_response", "api_url %s did not answer as the WhatsApp Business API (%s): check that api_url "
                    "names a webapp of the cluster, with the right host, port and scheme (https:// or http://)."
                    % (base_of(url), what))


def map_transport_error(method, url, exc, ca_path=None):
    """The ApiError for an exception raised before any HTTP answer."""
    reason = getattr(exc, "reason", exc)
    text = str(reason)
    if isinstance(reason, CLOSED):
        return not_the_api(url, "%s %s: the connection was closed without an HTTP answer (%s)" % (
            method, url, text or type(reason).__name__))
    if isinstance(reason, http_client.HTTPException):
        return not_the_api(url, "%s %s: the answer is not HTTP: %r" % (method, url, short(
            " ".join(text.split()) or type(reason).__name__, 80)))
    if isinstance(reason, ssl.SSLError) and not isinstance(reason, ssl.CertificateError) and \
            any(m in text for m in _NOT_TLS_MARKERS):
        return not_the_api(url, "%s %s: no TLS handshake (%s); an http:// webapp needs http:// in api_url"
                           % (method, url, text))
    if isinstance(reason, (ssl.SSLError, ssl.CertificateError)) or isinstance(exc, SSLValidationError) \
            or "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        hint = ("the CA in ca_path (%s) did not verify it" % ca_path) if ca_path else \
            "set ca_path to the CA that signed the webapp's certificate, or validate_certs=false for a test cluster"
        return ApiError("tls", "TLS verification of %s failed: %s; %s." % (url, text, hint))
    if isinstance(reason, socket.timeout) or isinstance(exc, socket.timeout) or "timed out" in text:
        return ApiError("timeout", "%s %s timed out: %s." % (method, url, text))
    return ApiError("unreachable", "cannot reach the API at %s: %s (is the webapp running, and are api_url's host "
                    "and port right?)." % (url, text))


def secret_forms(secret):
    """The ways ``secret`` can show in a message, to mask them all: as it is, escaped as repr() or
    JSON write it (``\\n`` for a line break: Ansible's no_log masking only knows the value as given),
    as the repr of its bytes (UTF-8 or Latin-1, as http.client encodes a header), and, when it holds
    a line break or another control character, each part of 4 or more characters between them."""
    if not isinstance(secret, str) or not secret:
        return set()
    forms = {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    for encoding in ("utf-8", "latin-1"):
        try:
            forms.add(repr(secret.encode(encoding))[2:-1])
        except UnicodeError:
            pass
    for form in list(forms):  # a repr quotes with ' or " and escapes that quote: both ways
        forms.update((form.replace("\\'", "'"), form.replace("'", "\\'"), form.replace('\\"', '"')))
    parts = "".join(c if c.isprintable() else "\n" for c in secret).split("\n")
    if len(parts) > 1:
        forms.update(p for p in parts if len(p) >= 4)
    forms.discard("")
    return forms


def short(value, limit=200):
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
