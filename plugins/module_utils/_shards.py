# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The shards of shard_table: the map as the public API shows it (``read_state``: the count from
``GET /v1/account/shards``, the owners from ``GET /v1/support``, each coreapp's gateway status from
``GET /v1/health``), the plan of a change (``compute_plan``, pure), the change itself
(``set_count``: ``POST /v1/account/shards`` with ``cc``, ``phone_number``, ``shards``, ``pin``,
``cert``, answered 201) and the wait until the API shows every shard owned by a connected coreapp.

A planned move (``move``) uses ``POST /v1/account/shards/{shard}/owner``, an extension of the
project's stand-in that the real product does not have: only with ``standin_extensions``.
Nothing here touches a database.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.wabiz.cluster.plugins.module_utils._api_errors import ApiError
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_api import (
    parse_health,
    parse_shard_count,
    parse_support,
    render_table,
)

# The contract's shards values. cluster_schema holds the stand-in's copy (its image ships that
# file alone); a unit test keeps the two equal.
VALID_SHARD_COUNTS = (1, 2, 4, 8, 16, 32)
MAX_SHARDS = max(VALID_SHARD_COUNTS)
USABLE = ("connected", "connecting", "disconnected")  # a coreapp in these states can take a shard
# /v1/health is rate-limited (10 calls a minute per webapp in the 2019 webapp): a wait reads it at most this often.
HEALTH_EVERY = 2.0


class Refused(Exception):
    """A change that must not be made, with the reason as one sentence."""


def read_state(api, with_health=True):
    """{"count", "support", "health"}: what the API shows now (health None when not read)."""
    count = parse_shard_count(api, api.call("GET", "/v1/account/shards"))
    support = parse_support(api, api.call("GET", "/v1/support"))
    health = parse_health(api, api.call("GET", "/v1/health", apikey_ok=True)) if with_health else None
    return {"count": count, "support": support, "health": health}


def summarize(state):
    """(map rows, coreapp rows) of a state. A coreapp is healthy when /v1/health lists it reachable in
    a usable gateway state; without health, when /v1/support lists it."""
    health = state.get("health")
    support = state["support"]
    names = sorted(n for n in set(support) | set(health or {})
                   if ((support.get(n) or {}).get("role") or ((health or {}).get(n) or {}).get("role")) == "coreapp")
    owners = {}
    core_rows = []
    for n in names:
        held = sorted((support.get(n) or {}).get("shards") or [])
        for s in held:
            owners.setdefault(s, []).append(n)
        h = (health or {}).get(n)
        if health is None:
            status, healthy = None, n in support
        elif h is None:
            status, healthy = "unlisted", False
        elif not h["reachable"]:
            status, healthy = "unreachable", False
        else:
            status, healthy = h["gateway_status"], h["gateway_status"] in USABLE
        core_rows.append({"node": n, "healthy": healthy, "status": status, "shards": held,
                          "socket_conn": (support.get(n) or {}).get("socket_conn")})
    by_node = dict((c["node"], c) for c in core_rows)
    map_rows = []
    for s in range(state["count"]):
        who = owners.get(s, [])
        owner = who[0] if len(who) == 1 else None
        map_rows.append({"shard": s, "owner": owner, "owners": who,
                         "owner_status": by_node[owner]["status"] if owner else None})
    return map_rows, core_rows


def all_served(state, want):
    """True when the API shows ``want`` shards, each held by exactly one coreapp that is connected."""
    if state["count"] != want or state.get("health") is None:
        return False
    rows = summarize(state)[0]
    return len(rows) == want and all(r["owner"] and r["owner_status"] == "connected" for r in rows)


def compute_plan(map_rows, core_rows, want_shards, move_shard, move_to, min_spares):
    """The changes to make as (kind, args, sentence) tuples; raises Refused. Pure, unit-tested."""
    current = len(map_rows)
    healthy = sorted(c["node"] for c in core_rows if c["healthy"])
    plan = []
    if min_spares is None or min_spares < 0:
        raise Refused("min_spares must be 0 or more (got %s): set how many healthy coreapps must stay spare, for "
                      "example 1" % min_spares)
    if want_shards is not None and want_shards not in VALID_SHARD_COUNTS:
        raise Refused("shards must be one of %s (got %s)" % (", ".join(map(str, VALID_SHARD_COUNTS)), want_shards))
    if want_shards is not None and want_shards != current:
        need = want_shards + min_spares
        if len(healthy) < need:
            raise Refused("refusing to set %d shards: the cluster has %d healthy coreapp(s) (%s) and %d shards need at "
                          "least %d (shards + %d spare for failover)" % (
                              want_shards, len(healthy), ", ".join(healthy) or "none", want_shards, need, min_spares))
        plan.append(("shards", want_shards, "set the shard count from %d to %d" % (current, want_shards)))
    if move_shard is not None:
        count = want_shards if want_shards is not None else current
        if move_shard < 0 or move_shard >= count:
            raise Refused("cannot move shard %d: the cluster has %d shard(s) (0 to %d)" % (move_shard, count, count - 1))
        row = next((r for r in map_rows if r["shard"] == move_shard), None)
        owner = row["owner"] if row else None
        if owner == move_to:
            return plan
        target = next((c for c in core_rows if c["node"] == move_to), None)
        if target is None:
            raise Refused("cannot move shard %d to %s: no coreapp of that name is listed by the API (listed: %s)" % (
                move_shard, move_to, ", ".join(sorted(c["node"] for c in core_rows)) or "none"))
        if not target["healthy"]:
            raise Refused("cannot move shard %d to %s: it is not healthy (gateway status %s)" % (
                move_shard, move_to, target["status"]))
        if target["shards"]:
            raise Refused("cannot move shard %d to %s: it already owns shard %s; choose a spare (%s)" % (
                move_shard, move_to, ", ".join(map(str, target["shards"])),
                ", ".join(c["node"] for c in core_rows if c["healthy"] and not c["shards"]) or "none"))
        if plan:
            raise Refused("change the shard count and move a shard in two tasks (the count change reassigns owners)")
        plan.append(("move", (move_shard, owner, move_to), "move shard %d from %s to %s" % (
            move_shard, owner or "no owner", move_to)))
    return plan


def count_body(params, shards):
    """The body of POST /v1/account/shards (the contract: cc, phone_number and shards required; pin, cert)."""
    body = {"cc": str(params["cc"]), "phone_number": str(params["phone_number"]), "shards": shards}
    for key in ("pin", "cert"):
        if params.get(key):
            body[key] = params[key]
    return body


def wait_until(pred, timeout, interval=0.3, sleep=time.sleep, clock=time.time):
    """pred()'s first true value within ``timeout`` seconds, else None."""
    deadline = clock() + float(timeout)
    while True:
        value = pred()
        if value:
            return value
        left = deadline - clock()
        if not left > 0:
            return None
        sleep(min(interval, left))


class Waiter(object):
    """Reads the state until a condition holds: /v1/support each time, /v1/health only when support
    already looks right and at most every HEALTH_EVERY seconds (the health endpoint is rate-limited)."""

    def __init__(self, api, clock=time.time):
        self.api, self.clock = api, clock
        self.health_at = None
        self.state = None

    def read(self, ready_without_health):
        state = read_state(self.api, with_health=False)
        if ready_without_health(state) and (self.health_at is None or self.clock() - self.health_at >= HEALTH_EVERY):
            self.health_at = self.clock()
            state["health"] = parse_health(self.api, self.api.call("GET", "/v1/health", apikey_ok=True))
        self.state = state
        return state


def set_count(api, params, shards, timeout, sleep=time.sleep):
    """POST the new count, then wait until every shard is served; the final state, or raises ApiError
    (``timeout``) naming what is missing."""
    api.call("POST", "/v1/account/shards", count_body(params, shards), expect=(201, 200))
    waiter = Waiter(api)

    def owned(state):
        return state["count"] == shards and all(len(r["owners"]) == 1 for r in summarize(state)[0])

    if not wait_until(lambda: all_served(waiter.read(owned), shards), timeout, sleep=sleep):
        rows = summarize(waiter.state)[0] if waiter.state else []
        raise ApiError("timeout", "the shard count was set to %d but after %ss the API shows %s: %s" % (
            shards, timeout, "%d shard(s)" % waiter.state["count"] if waiter.state else "nothing",
            "; ".join(_row_text(r) for r in rows) or "no shard"))
    return waiter.state


def _row_text(row):
    if not row["owner"]:
        return "shard %d without one owner (%s)" % (row["shard"], ", ".join(row["owners"]) or "none")
    return "shard %d held by %s (%s)" % (row["shard"], row["owner"], row["owner_status"] or "status not read yet")


def move(api, shard, target, timeout, sleep=time.sleep, clock=time.time):
    """The stand-in's planned move: POST /v1/account/shards/{shard}/owner, then wait until the API
    shows ``target`` holding the shard, connected. {"ownerless_seconds", "state"}; raises ApiError."""
    try:
        api.call("POST", "/v1/account/shards/%d/owner" % shard, {"owner": target})
    except ApiError as exc:
        if exc.kind in ("not_found", "http") and exc.status in (404, 405):
            raise ApiError("unsupported", "this webapp has no planned-move endpoint (POST /v1/account/shards/%d/owner "
                           "answered %s): it is an extension of the stand-in, not part of the public API; on a real "
                           "cluster stop the owner's coreapp and let the primary master promote a spare" % (
                               shard, exc.status), exc.status, exc.code) from None
        raise
    switched = clock()
    waiter = Waiter(api, clock)

    def held(state):
        return target in [c["node"] for c in summarize(state)[1] if shard in c["shards"]]

    def serves():
        state = waiter.read(held)
        if state.get("health") is None or not held(state):
            return False
        h = state["health"].get(target) or {}
        return h.get("reachable") and h.get("gateway_status") == "connected"

    if not wait_until(serves, timeout, sleep=sleep, clock=clock):
        raise ApiError("timeout", "shard %d was given to %s but the API does not show it connected after %ss"
                       % (shard, target, timeout))
    return {"ownerless_seconds": round(clock() - switched, 3), "state": waiter.state}


def table_lines(map_rows, core_rows):
    lines = render_table(["SHARD", "OWNER", "OWNER STATUS"],
                         [[r["shard"], ",".join(r["owners"]) or None, r["owner_status"]] for r in map_rows])
    spares = [c["node"] for c in core_rows if c["healthy"] and not c["shards"]]
    lines.append("spare coreapps: %s" % (", ".join(spares) or "none"))
    return lines


def map_text(map_rows):
    return "".join("shard %d: %s\n" % (r["shard"], ",".join(r["owners"]) or "-") for r in map_rows)
