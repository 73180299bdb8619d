# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The readers of the public REST contract's answers that the cluster modules share: one place
that knows each answer's shape (docs/cluster-modules.md, "The contract the modules speak").

- ``GET /v1/health``: ``{"health": {"HOST:CID": {"gateway_status", "role"} or {"errors": [...]}}}``
  (a node that cannot be reached is listed with an error, code 1014).
- ``GET /v1/support``: ``{"support": {"HOST:CID": {"role", "shards", "socket_conn", ...}}}``.
- ``GET /v1/account/shards``: ``{"account": {"shards": N}}``.
- ``GET /v1/settings/application``: ``{"settings": {"application": {...}}}``.
- ``GET /v1/stats/db``: ``{"stats": {"db": {"HOST:CID": {METRIC: {"type", "help", "data"}}}}}``.

Each reader takes the parsed body and returns plain dicts; an answer of another shape is a
``bad_response`` ApiError naming the call.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re

from ansible_collections.wabiz.cluster.plugins.module_utils._api_errors import ApiError, base_of

MASTER_ROLES = ("primary_master", "secondary_master")
GATEWAY_STATES = ("connected", "connecting", "disconnected", "uninitialized", "unregistered")
CODE_UNREACHABLE = 1014


def shape_error(api, call, what):
    return ApiError("bad_response", "api_url %s did not answer as the WhatsApp Business API (%s answered %s): check "
                    "that api_url names a webapp of the cluster." % (base_of(getattr(api, "base", "?")), call, what))


def _object(api, body, call, *keys):
    value = body
    for key in keys:
        value = value.get(key) if isinstance(value, dict) else None
    if not isinstance(value, dict):
        raise shape_error(api, call, "without %s" % ".".join(keys))
    return value


def parse_health(api, body):
    """{node: {"role", "gateway_status", "reachable", "error"}} of a /v1/health answer. ``error`` is
    ``{"code", "title", "details"}`` of a node listed with an errors entry (``reachable`` False)."""
    out = {}
    for node, entry in sorted(_object(api, body, "GET /v1/health", "health").items()):
        if not isinstance(entry, dict):
            raise shape_error(api, "GET /v1/health", "a node entry that is not an object (%s)" % node)
        errors = entry.get("errors")
        error = None
        if isinstance(errors, list) and errors:
            first = errors[0] if isinstance(errors[0], dict) else {}
            error = {"code": first.get("code"), "title": first.get("title"), "details": first.get("details")}
        out[str(node)] = {"role": entry.get("role"), "gateway_status": None if error else entry.get("gateway_status"),
                          "reachable": error is None, "error": error}
    return out


def parse_support(api, body):
    """{node: {"role", "shards", "socket_conn", "multi_connect", "version"}} of a /v1/support answer
    (the nodes' entries; other keys of ``support`` are ignored)."""
    out = {}
    for node, entry in sorted(_object(api, body, "GET /v1/support", "support").items()):
        if not isinstance(entry, dict) or "role" not in entry:
            continue
        shards = entry.get("shards")
        if not isinstance(shards, list):
            shards = []
        debug = entry.get("debug_info") if isinstance(entry.get("debug_info"), dict) else {}
        out[str(node)] = {"role": entry.get("role"),
                          "shards": sorted(int(s) for s in shards if _whole(s)),
                          "socket_conn": entry.get("socket_conn"), "multi_connect": entry.get("multi_connect"),
                          "version": entry.get("version") or debug.get("version")}
    return out


def _whole(v):
    return isinstance(v, int) and not isinstance(v, bool) or isinstance(v, str) and v.isdigit()


def parse_shard_count(api, body):
    """N of ``{"account": {"shards": N}}`` (also the list form ``{"account": [{"shards": N}]}``)."""
    account = body.get("account") if isinstance(body, dict) else None
    if isinstance(account, list) and account and isinstance(account[0], dict):
        account = account[0]
    count = account.get("shards") if isinstance(account, dict) else None
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise shape_error(api, "GET /v1/account/shards", "without account.shards")
    return count


def parse_settings(api, body):
    return _object(api, body, "GET /v1/settings/application", "settings", "application")


# A message count in the DB stats: a metric named like messages, message_count, wa_messages_total...
_MESSAGE_METRIC = re.compile(r"^(wa_)?(db_)?messages?(_(count|counts|rows|total|in_db|stored))?$")


def parse_message_counts(body):
    """(total, {status: count} or {}) of a GET /v1/stats/db answer that holds a message count
    metric, else (None, {}): the count is unknown (the contract names no such metric; a webapp
    that publishes one is used). Never raises on another shape."""
    stats = body.get("stats") if isinstance(body, dict) else None
    db = stats.get("db") if isinstance(stats, dict) else None
    if not isinstance(db, dict):
        return None, {}
    for node in sorted(db):
        metrics = db[node]
        if not isinstance(metrics, dict):
            continue
        for name in sorted(metrics):
            if not _MESSAGE_METRIC.match(str(name).lower()):
                continue
            total, by_status = _metric_value(metrics[name])
            if total is not None:
                return total, by_status
    return None, {}


def _metric_value(metric):
    data = metric.get("data") if isinstance(metric, dict) else metric
    if _number(data):
        return int(data), {}
    if isinstance(data, dict) and data and all(_number(v) for v in data.values()):
        return int(sum(data.values())), dict((str(k), int(v)) for k, v in data.items())
    if isinstance(data, list):  # [{"labels", "value"}], empty for an empty table
        total, by_status = 0, {}
        for point in data:
            value = point.get("value") if isinstance(point, dict) else point
            if not _number(value):
                return None, {}
            total += int(value)
            labels = point.get("labels") if isinstance(point, dict) else None
            status = (labels or {}).get("status") if isinstance(labels, dict) else None
            if status is not None:
                by_status[str(status)] = by_status.get(str(status), 0) + int(value)
        return total, by_status
    return None, {}


def _number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool) and not math.isnan(v) and v >= 0


def read(api, call, apikey_ok=False):
    """The JSON body of ``GET path`` (``call`` is the path)."""
    return api.call("GET", call, apikey_ok=apikey_ok)


def render_table(headers, rows):
    """A plain-text table (list of lines) with columns padded to their widest cell."""
    cells = [[("-" if v is None else str(v)) for v in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, v in enumerate(row):
            widths[i] = max(widths[i], len(v))
    lines = ["  ".join(h.ljust(widths[i]) for i, h in enumerate(headers)).rstrip()]
    for row in cells:
        lines.append("  ".join(v.ljust(widths[i]) for i, v in enumerate(row)).rstrip())
    return lines


def kind_of(role):
    """master, coreapp or None, by a node's role."""
    if role in MASTER_ROLES:
        return "master"
    return "coreapp" if role == "coreapp" else None


def error_text(error):
    """'code 1014, Internal error: details' of a health errors entry."""
    if not error:
        return "no status"
    parts = [str(p) for p in (error.get("title"), error.get("details")) if p]
    code = error.get("code")
    return ("code %s, " % code if code is not None else "") + (": ".join(parts) or "no detail")
