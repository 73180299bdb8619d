#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: shard_table
short_description: Read and change the shard map of a WhatsApp Business API client cluster
version_added: 0.1.0
description:
  - Reads the shard map from the cluster database (shard count, each shard's owner and epoch) and
    each owner's health (a probe of its healthcheck port, its database heartbeat age).
  - With O(shards), sets the shard count through the API (C(POST /v1/account/shards)), refusing with
    a clear reason when the cluster has fewer healthy coreapps than O(shards) + O(min_spares); then
    waits until every shard has an owner that serves.
  - With O(move_shard) and O(move_to), moves a shard to a named healthy spare coreapp (a planned
    switchover), waits until the new owner serves and reports how long the shard had no serving owner
    in RV(ownerless_seconds). Moving a shard to its current owner changes nothing.
  - "How a planned move is done (O(move_method)): through the API when the webapp offers
    C(POST /v1/account/shards/{shard}/owner); otherwise (the stand-in cluster today) with the very
    statement the primary master uses to promote a coreapp (C(promote_shard) of C(cluster_schema)),
    which only succeeds while the current lease is live and the shard's epoch is unchanged, and bumps
    the shard's epoch, so the old owner is fenced exactly as in a failover. That path needs a
    database user that may update the shard map."
author:
  - wabiz.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wabiz.cluster.api
  - wabiz.cluster.cluster_db
attributes:
  check_mode:
    support: full
    details: Reads the map and returns the plan (RV(plan)) without changing anything.
  diff_mode:
    support: full
    details: Shows the shard map (shard and owner) before and after.
  idempotent:
    description: Whether a second run with the same options changes nothing.
    support: full
  platform:
    platforms: posix
options:
  db_engine:
    required: true
  db_user:
    required: true
  shards:
    description:
      - The shard count to set. Unset leaves it as it is.
    type: int
    choices: [1, 2, 4, 8, 16, 32]
  move_shard:
    description:
      - The shard (0-based) to move to O(move_to); V(0) to one less than the shard count.
    type: int
  move_to:
    description:
      - Node name (C(HOSTNAME:CONTAINER_ID) or C(WA_NODE_ID)) of the coreapp that must own O(move_shard).
        It must be registered, answer on its healthcheck port, have a fresh heartbeat and own no other shard.
    type: str
  move_method:
    description:
      - V(api) uses C(POST /v1/account/shards/{shard}/owner); V(database) uses the guarded promotion statement;
        V(auto) tries the API and falls back to the database when the webapp has no such endpoint.
    type: str
    choices: [auto, api, database]
    default: auto
  min_spares:
    description:
      - Healthy coreapps that must remain without a shard for failover when setting O(shards).
      - V(0) or more (V(0) gives up failover for the new shards); a negative value is refused.
    type: int
    default: 1
  heartbeat_threshold:
    description:
      - A coreapp whose database heartbeat is older than this many seconds is not healthy; more than V(0) and at most
        V(86400).
    type: float
    default: 120
  probe_timeout:
    description:
      - Seconds each healthcheck probe may take; more than V(0) and at most V(600).
    type: float
    default: 3
  wait_timeout:
    description:
      - Seconds to wait for the new owners to serve after a change (the deadline of that wait); more than V(0) and at
        most V(86400).
    type: float
    default: 60
notes:
  - Setting the shard count needs an admin login (O(api_password) or O(api_token)); reading needs only the database.
seealso:
  - module: wabiz.cluster.failover_check
"""

EXAMPLES = r"""
- name: Read the shard map
  wabiz.cluster.shard_table:
    api_url: https://wa.example.internal:9090
    api_password: "{{ vault_wa_api_password }}"
    db_engine: mysql
    db_host: db.example.internal
    db_user: whatsapp
    db_password: "{{ vault_wa_db_password }}"
  register: shard_map

- name: Two shards (needs at least three coreapps)
  wabiz.cluster.shard_table:
    api_url: https://wa.example.internal:9090
    api_password: "{{ vault_wa_api_password }}"
    db_engine: mysql
    db_host: db.example.internal
    db_user: whatsapp
    db_password: "{{ vault_wa_db_password }}"
    shards: 2

- name: Planned switchover of shard 0 before patching its host
  wabiz.cluster.shard_table:
    api_url: https://wa.example.internal:9090
    api_password: "{{ vault_wa_api_password }}"
    db_engine: postgresql
    db_host: db.example.internal
    db_user: whatsapp
    db_password: "{{ vault_wa_db_password }}"
    move_shard: 0
    move_to: wa-core-3:2f9c1a7b04d1
  register: move

- name: Say how long shard 0 had no owner
  ansible.builtin.debug:
    msg: "shard 0 had no serving owner for {{ move.ownerless_seconds }} s"
"""

RETURN = r"""
shards:
  description: The active shard count after the run (in check mode, as it would be).
  returned: success
  type: int
  sample: 2
map:
  description: Every active shard with its owner, epoch and the owner's health.
  returned: success
  type: list
  elements: dict
  sample:
    - {shard: 0, owner: coreapp1, epoch: 3, owner_status: connected, owner_heartbeat_age: 0.4}
coreapps:
  description: Every registered coreapp with its health and the shards it owns.
  returned: success
  type: list
  elements: dict
  sample:
    - {node: coreapp3, healthy: true, status: disconnected, heartbeat_age: 0.7, shards: []}
plan:
  description: The changes to make (in check mode) or made, as sentences.
  returned: success
  type: list
  elements: str
  sample: ["move shard 0 from coreapp1 to coreapp3"]
table:
  description: The shard map as a table for people.
  returned: success
  type: str
table_lines:
  description: RV(table) as a list of lines.
  returned: success
  type: list
  elements: str
ownerless_seconds:
  description: For a move, seconds from the switch until the new owner served (an upper bound of the time the shard
    could not take messages).
  returned: when a shard was moved
  type: float
  sample: 1.62
move_method:
  description: How the shard was moved (V(api) or V(database)).
  returned: when a shard was moved
  type: str
  sample: database
failure_kind:
  description: Why the module failed (C(invalid_option), C(refused), C(unreachable), C(bad_response), C(auth),
    C(no_database), C(timeout)...).
  returned: failure
  type: str
  sample: refused
"""

import time

from ansible_collections.wabiz.cluster.plugins.module_utils._api import (
    ApiError,
    WabizApi,
    open_url,
    parallel,
    probe_node,
)
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_module import run_cluster_module
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_options import option_rule, seconds_rule
from ansible_collections.wabiz.cluster.plugins.module_utils._clusterdb import (
    ClusterDb,
    ClusterDbError,
    fmt_age,
    render_table,
)
from ansible_collections.wabiz.cluster.plugins.module_utils.cluster_schema import MAX_SHARDS, VALID_SHARD_COUNTS

RULES = (
    option_rule("min_spares", 0, None, "how many healthy coreapps must stay spare, for example 1", whole=True),
    option_rule("move_shard", 0, MAX_SHARDS - 1, "the 0-based number of the shard to move, for example 0", whole=True),
    seconds_rule("heartbeat_threshold", 86400, "the oldest acceptable heartbeat in seconds, for example 120"),
    seconds_rule("probe_timeout", 600, "the seconds each healthcheck probe may take, for example 3"),
    seconds_rule("wait_timeout", 86400, "the seconds to wait for the new owners to serve, for example 60"),
)


class Refused(Exception):
    """A change that must not be made, with the reason as one sentence."""


def read_state(db, timeout):
    """Shard map (active shards), coreapps with their health, and the lease, from the DB and probes."""
    shards = [s for s in db.shard_map() if s["active"]]
    nodes = db.nodes()
    lease = db.lease()
    coreapps = [n for n in nodes if n["kind"] == "coreapp"]
    probes = parallel(dict((n["node_id"], (lambda n=n: probe_node(n["host"], n["healthcheck_port"], timeout)))
                           for n in coreapps if n.get("healthcheck_port")), timeout * 2 + 2)
    return {"shards": shards, "coreapps": coreapps, "probes": probes, "lease": lease}


def summarize(state, threshold):
    """(map rows, coreapp rows); a coreapp is healthy when it answers as itself and its heartbeat is fresh."""
    owned = {}
    for s in state["shards"]:
        if s["owner"]:
            owned.setdefault(s["owner"], []).append(s["shard"])
    core_rows = []
    for n in state["coreapps"]:
        p = state["probes"].get(n["node_id"]) or {}
        answers = bool(p.get("ok")) and p.get("node_id") in (None, n["node_id"])
        fresh = n.get("heartbeat_age") is not None and n["heartbeat_age"] <= threshold
        core_rows.append({"node": n["node_id"], "host": n["host"], "healthy": answers and fresh,
                          "status": p.get("gateway_status") if answers else "unreachable",
                          "heartbeat_age": None if n.get("heartbeat_age") is None else round(n["heartbeat_age"], 3),
                          "shards": owned.get(n["node_id"], [])})
    by_node = dict((c["node"], c) for c in core_rows)
    map_rows = []
    for s in state["shards"]:
        c = by_node.get(s["owner"]) if s["owner"] else None
        map_rows.append({"shard": s["shard"], "owner": s["owner"], "epoch": s["epoch"],
                         "owner_status": (c["status"] if c else ("unregistered" if s["owner"] else None)),
                         "owner_heartbeat_age": c["heartbeat_age"] if c else None})
    return map_rows, core_rows


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
            raise Refused("cannot move shard %d to %s: no coreapp of that name is registered (registered: %s)" % (
                move_shard, move_to, ", ".join(sorted(c["node"] for c in core_rows)) or "none"))
        if not target["healthy"]:
            raise Refused("cannot move shard %d to %s: it is not healthy (status %s, heartbeat %s ago)" % (
                move_shard, move_to, target["status"], fmt_age(target["heartbeat_age"])))
        if target["shards"]:
            raise Refused("cannot move shard %d to %s: it already owns shard %s; choose a spare (%s)" % (
                move_shard, move_to, ", ".join(map(str, target["shards"])),
                ", ".join(c["node"] for c in core_rows if c["healthy"] and not c["shards"]) or "none"))
        if plan:
            raise Refused("change the shard count and move a shard in two tasks (the count change reassigns owners)")
        plan.append(("move", (move_shard, owner, move_to), "move shard %d from %s to %s" % (
            move_shard, owner or "no owner", move_to)))
    return plan


def table_lines(map_rows, core_rows):
    lines = render_table(["SHARD", "OWNER", "EPOCH", "OWNER STATUS", "OWNER HEARTBEAT"],
                         [[r["shard"], r["owner"], r["epoch"], r["owner_status"],
                           fmt_age(r["owner_heartbeat_age"]) if r["owner"] else None] for r in map_rows])
    spares = [c["node"] for c in core_rows if c["healthy"] and not c["shards"]]
    lines.append("spare coreapps: %s" % (", ".join(spares) or "none"))
    return lines


def map_text(map_rows):
    return "".join("shard %d: %s\n" % (r["shard"], r["owner"] or "-") for r in map_rows)


def wait_until(pred, timeout, interval=0.1):
    deadline = time.time() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.time() > deadline:
            return None
        time.sleep(interval)


ARGUMENT_SPEC = dict(
    shards=dict(type="int", choices=list(VALID_SHARD_COUNTS)),
    move_shard=dict(type="int"),
    move_to=dict(type="str"),
    move_method=dict(type="str", choices=["auto", "api", "database"], default="auto"),
    min_spares=dict(type="int", default=1),
    heartbeat_threshold=dict(type="float", default=120.0),
    probe_timeout=dict(type="float", default=3.0),
    wait_timeout=dict(type="float", default=60.0),
)


def run(module, db, _failure):
    p = module.params
    result = {"changed": False}
    db.connect()
    state = read_state(db, p["probe_timeout"])
    map_before, cores = summarize(state, p["heartbeat_threshold"])
    try:
        plan = compute_plan(map_before, cores, p["shards"], p["move_shard"], p["move_to"], p["min_spares"])
    except Refused as exc:
        module.fail_json(msg=str(exc), failure_kind="refused", map=map_before, coreapps=cores, shards=len(map_before))
    result["plan"] = [sentence for _k, _a, sentence in plan]
    if plan and not module.check_mode:
        api = WabizApi(p, check_mode=module.check_mode)
        for kind, args, _sentence in plan:
            if kind == "shards":
                set_shard_count(module, api, db, p, args)
            else:
                result.update(move(module, api, db, p, state, args))
        state = read_state(db, p["probe_timeout"])
    map_after, cores = summarize(state, p["heartbeat_threshold"])
    if module.check_mode:
        result["changed"] = bool(plan)
        shards = p["shards"] if p["shards"] is not None else len(map_before)
    else:
        before = [(r["shard"], r["owner"]) for r in map_before]
        after = [(r["shard"], r["owner"]) for r in map_after]
        result["changed"] = before != after
        shards = len(map_after)
    lines = table_lines(map_after, cores)
    result.update(shards=shards, map=map_after, coreapps=cores, table="\n".join(lines), table_lines=lines)
    if module._diff:
        result["diff"] = {"before": map_text(map_before), "after": map_text(map_after) if not module.check_mode
                          else "(check mode) " + "; ".join(result["plan"]) + "\n"}
    return result


def main():
    run_cluster_module(ARGUMENT_SPEC, RULES, run, db_class=ClusterDb, required_together=[("move_shard", "move_to")])


def _serving(db, p, want):
    """True when the active shards are exactly ``want`` and each owner answers as connected."""
    state = read_state(db, p["probe_timeout"])
    rows = summarize(state, p["heartbeat_threshold"])[0]
    return len(rows) == want and all(r["owner"] and r["owner_status"] == "connected" for r in rows)


def set_shard_count(module, api, db, p, shards):
    api.call("POST", "/v1/account/shards", {"shards": shards})
    if not wait_until(lambda: _serving(db, p, shards), p["wait_timeout"], interval=0.3):
        state = read_state(db, p["probe_timeout"])
        rows, cores = summarize(state, p["heartbeat_threshold"])
        module.fail_json(msg="the shard count is %d but not every shard has a serving owner after %ss" % (
            len(rows), p["wait_timeout"]), failure_kind="timeout", map=rows, coreapps=cores)


def move(module, api, db, p, state, args):
    shard, old_owner, target = args
    method = p["move_method"]
    row = next(s for s in state["shards"] if s["shard"] == shard)
    target_node = next(n for n in state["coreapps"] if n["node_id"] == target)
    used = None
    switched = None
    if method in ("auto", "api"):
        try:
            api.call("POST", "/v1/account/shards/%d/owner" % shard, {"owner": target})
            switched, used = time.time(), "api"
        except ApiError as exc:
            if method == "api" or exc.kind not in ("not_found", "http") or exc.status not in (404, 405):
                raise
    if used is None:
        lease = db.lease()
        if not lease["holder"] or lease["expired"]:
            module.fail_json(msg="cannot move shard %d: no primary master holds the lease (last holder %s)" % (
                shard, lease["holder"] or "none"), failure_kind="refused")
        try:
            done = db.promote_shard(shard, row["epoch"], target, lease["holder"], lease["epoch"])
        except ClusterDbError as exc:
            module.fail_json(msg="moving shard %d in the database failed (the user needs UPDATE on the shard map): %s"
                             % (shard, exc.msg), failure_kind=exc.kind)
        if done != 1:
            module.fail_json(msg="the database refused to move shard %d: the lease or the shard changed meanwhile "
                             "(a failover or another change); run the task again" % shard, failure_kind="conflict")
        switched, used = time.time(), "database"
        if target_node.get("control_port"):  # wake the new owner now rather than at its next tick
            http_refresh(target_node["host"], target_node["control_port"], p["probe_timeout"])

    def new_owner_serves():
        current = next((s for s in db.shard_map() if s["shard"] == shard), None)
        if not current or current["owner"] != target:
            return False
        probe = probe_node(target_node["host"], target_node["healthcheck_port"], p["probe_timeout"])
        return probe.get("ok") and probe.get("gateway_status") == "connected"

    if not wait_until(new_owner_serves, p["wait_timeout"]):
        module.fail_json(msg="shard %d was given to %s but it does not serve after %ss"
                         % (shard, target, p["wait_timeout"]),
                         failure_kind="timeout", move_method=used)
    return {"ownerless_seconds": round(time.time() - switched, 3), "move_method": used, "previous_owner": old_owner}


def http_refresh(host, port, timeout):
    try:
        open_url("http://%s:%s/control/refresh" % (host, port), data=b"{}", method="POST", timeout=timeout,
                 headers={"Content-Type": "application/json"}, use_proxy=False).read()
    except Exception:
        pass  # the coreapp notices at its next tick anyway


if __name__ == "__main__":
    main()
