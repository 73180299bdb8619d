# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""HTTP for the API client and the nodes' probes: ansible's open_url with one shared TLS context,
the JSON of a body, the headers that matter, and a plain-HTTP GET that never raises.

Private to the collection. Only ansible.module_utils.urls is used: the hosts may lack ``requests``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import math
import time

from ansible.module_utils.six.moves.urllib.error import HTTPError
from ansible.module_utils.urls import Request, make_context

# ansible's Request.open installs its opener process-wide and then opens through the global one,
# so with calls in parallel threads one call may go out through another's opener. Every call of
# a run therefore uses the same TLS context (made once from validate_certs and ca_path): then all
# the openers are alike and such a swap is harmless. Measured before: ~1% of parallel HTTPS calls
# failed certificate checks they should have passed (or skipped).
_CONTEXTS = {}
_RUN_CONTEXT = []


def tls_context(validate_certs=True, ca_path=None, for_run=False):
    """The SSL context for these settings, made once and then shared; ``for_run`` makes it the
    one plain-HTTP calls use too (the API client's, set when it is created)."""
    key = (bool(validate_certs), ca_path or "")
    if key not in _CONTEXTS:
        _CONTEXTS[key] = make_context(cafile=ca_path, validate_certs=bool(validate_certs))
    if for_run or not _RUN_CONTEXT:
        _RUN_CONTEXT[:] = [_CONTEXTS[key]]
    return _CONTEXTS[key]


def open_url(url, data=None, headers=None, method="GET", timeout=10, validate_certs=True, ca_path=None,
             follow_redirects="none", use_proxy=False, force_basic_auth=False):
    """ansible's open_url with the run's shared TLS context (see tls_context)."""
    if url.startswith("https:"):
        context = tls_context(validate_certs, ca_path)
    else:  # no TLS here, but the opener it installs must still be like the others
        context = _RUN_CONTEXT[0] if _RUN_CONTEXT else tls_context()
    return Request().open(method, url, data=data, headers=headers, timeout=timeout, use_proxy=use_proxy,
                          follow_redirects=follow_redirects, force_basic_auth=force_basic_auth, context=context)


def retry_after_seconds(resp):
    """Seconds of a ``Retry-After: N`` header (bounded to 0..60), else None."""
    try:
        headers = getattr(resp, "headers", None) or resp.info()
        value = float((headers.get("Retry-After") or "").strip())
    except Exception:
        return None
    return max(0.0, min(60.0, value)) if not math.isnan(value) else None


def parse_body(payload):
    """The JSON value of a body (``{}`` when empty), or the text when it is not JSON."""
    if isinstance(payload, bytes):
        payload = payload.decode("utf-8", "replace")
    if not payload or not payload.strip():
        return {}
    try:
        return json.loads(payload)
    except ValueError:
        return payload


def content_type_of(resp):
    try:
        headers = getattr(resp, "headers", None) or resp.info()
        return (headers.get("Content-Type") or "").split(";")[0].strip() or None
    except Exception:
        return None


def http_json(url, timeout, opener=None):
    """GET a plain-HTTP JSON endpoint (a node's healthcheck port): (status, body or None, error
    sentence or None, seconds taken). Never raises."""
    opener = opener or open_url
    started = time.time()
    try:
        resp = opener(url, method="GET", timeout=timeout, use_proxy=False, follow_redirects="none")
        status, body = getattr(resp, "status", None) or resp.getcode(), parse_body(resp.read())
        return status, body if isinstance(body, dict) else None, None, time.time() - started
    except HTTPError as exc:
        return exc.code, None, "HTTP %s" % exc.code, time.time() - started
    except Exception as exc:  # a probe reports any failure, it never raises
        reason = getattr(exc, "reason", exc)
        return None, None, str(reason) or type(exc).__name__, time.time() - started
