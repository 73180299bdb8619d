# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ApiError of the REST client and how an answer or a transport failure becomes one.

Each ApiError has a ``kind`` (``unreachable``, ``tls``, ``timeout``, ``auth``,
``password_change_required``, ``forbidden``, ``not_found``, ``invalid``, ``unavailable``,
``http``, ``bad_response``, ``token_cache``, ``invalid_option`` for a login option that cannot be
sent in a header) and one sentence that never holds a secret, in no form (see secret_forms).
``bad_response`` covers an ``api_url`` that answers but not as the WhatsApp Business API.
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


def map_http_error(method, url, status, body):
    """The ApiError for an HTTP error answer (pure: unit-tested over the API's error shapes)."""
    code, detail = _error_detail(body)
    where = "%s %s" % (method, url)
    said = (" (%s)" % detail) if detail else ""
    if status == 401:
        return ApiError("auth", "%s was refused: not authenticated%s. Check api_username and api_password "
                        "(or api_key / api_token)." % (where, said), status, code, body)
    if status == 400 and "password change required" in detail.lower():
        return ApiError("password_change_required",
                        "the API requires a new password at the first login: set api_new_password (8 to 64 "
                        "characters)%s." % said, status, code, body)
    if status == 403:
        return ApiError("forbidden", "%s was refused: this user may not do that%s." % (where, said), status, code,
                        body)
    if status == 404:
        return ApiError("not_found", "%s: no such resource%s." % (where, said), status, code, body)
    if status == 400:
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
