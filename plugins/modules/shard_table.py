#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: shard_table
short_description: Read and change the shard count of a WhatsApp Business API client cluster
version_added: 0.1.0
description:
  - Reads the shards as the public REST API shows them, with the API URL and credentials alone; the
    count from C(GET /v1/account/shards), the shards each coreapp holds from C(GET /v1/support),
    each coreapp's gateway status from C(GET /v1/health).
  - With O(shards), sets the shard count with C(POST /v1/account/shards) (the contract requires
    O(cc), O(phone_number) and the count; O(pin) and O(cert) are sent when given; the answer is
    C(201 Created)), refusing with a clear reason when the cluster has fewer healthy coreapps than
    O(shards) + O(min_spares); then waits until the API shows the count with every shard held by
    one connected coreapp.
  - "Stand-in clusters only: with O(standin_extensions=true), O(move_shard) and O(move_to) move a
    shard to a named healthy spare coreapp (a planned switchover) through the stand-in's extension
    C(POST /v1/account/shards/{shard}/owner), which the real product does not have; the module then
    waits until the new owner is connected and reports how long the shard had no connected owner in
    RV(ownerless_seconds). Moving a shard to its current owner changes nothing. On a real cluster a
    switchover is a stop of the owner's coreapp: the primary master promotes a spare."
  - Never reads or writes a database.
author:
  - wabiz.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wabiz.cluster.api
attributes:
  check_mode:
    support: full
    details: Reads the shards and returns the plan (RV(plan)) without changing anything.
  diff_mode:
    support: full
    details: Shows the shard owners before and after.
  idempotent:
    description: Whether a second run with the same options changes nothing.
    support: full
  platform:
    platforms: posix
options:
  shards:
    description:
      - The shard count to set. Unset leaves it as it is.
    type: int
    choices: [1, 2, 4, 8, 16, 32]
  cc:
    description:
      - The country calling code of the business phone number, for example V(1). Required to change the shard count.
    type: str
  phone_number:
    description:
      - The business phone number without the country code. Required to change the shard count.
    type: str
  pin:
    description:
      - The two-step verification PIN of the number, when it has one. Never shown.
    type: str
  cert:
    description:
      - The base64 certificate of the number from WhatsApp Manager (needed since v2.45). Never shown.
    type: str
  min_spares:
    description:
      - Healthy coreapps that must remain without a shard for failover when setting O(shards).
      - V(0) or more (V(0) gives up failover for the new shards); a negative value is refused.
    type: int
    default: 1
  wait_timeout:
    description:
      - Seconds to wait for the owners to be connected after a change (the deadline of that wait); more than V(0) and
        at most V(86400).
    type: float
    default: 60
  standin_extensions:
    description:
      - Stand-in clusters only. Allow the planned move (O(move_shard), O(move_to)) through the stand-in's extension
        C(POST /v1/account/shards/{shard}/owner). Without it a planned move is refused (C(failure_kind=unsupported)).
    type: bool
    default: false
  move_shard:
    description:
      - With O(standin_extensions=true), the shard (0-based) to move to O(move_to); V(0) to one less than the count.
    type: int
  move_to:
    description:
      - With O(standin_extensions=true), the node name (C(HOST:CONTAINER_ID), as C(/v1/support) lists it) of the
        coreapp that must hold O(move_shard). It must be reachable and hold no other shard.
    type: str
notes:
  - Needs an admin login (O(api_password) or O(api_token)); O(api_key) is not enough for C(/v1/support) and the shard
    calls.
  - The wait reads C(/v1/support) every 0.3 s and C(/v1/health) at most every 2 s (it is rate-limited); a rate limit
    (HTTP 429) is waited out within O(api_rate_limit_wait) and reported in RV(rate_limited).
  - The options C(heartbeat_threshold), C(probe_timeout), C(move_method) and the C(db_*) options of earlier versions
    are gone (the module works with the API alone).
seealso:
  - module: wabiz.cluster.failover_check
"""

EXAMPLES = r"""
- name: Read the shards
  wabiz.cluster.shard_table:
    api_url: https://wa.example.internal:9090
    api_password: "{{ vault_wa_api_password }}"
  register: shard_map

- name: Two shards (needs at least three coreapps)
  wabiz.cluster.shard_table:
    api_url: https://wa.example.internal:9090
    api_password: "{{ vault_wa_api_password }}"
    shards: 2
    cc: "1"
    phone_number: "6315551234"
    cert: "{{ vault_wa_cert }}"

- name: Planned switchover of shard 0 on the stand-in test cluster
  wabiz.cluster.shard_table:
    api_url: https://127.0.0.1:9090
    api_password: "{{ vault_wa_api_password }}"
    validate_certs: false
    standin_extensions: true
    move_shard: 0
    move_to: "coreapp3:5b0e1c2d3f4a"
  register: move

- name: Say how long shard 0 had no connected owner
  ansible.builtin.debug:
    msg: "shard 0 had no connected owner for {{ move.ownerless_seconds }} s"
"""

RETURN = r"""
shards:
  description: The shard count after the run (in check mode, as it would be).
  returned: success
  type: int
  sample: 2
map:
  description: Every shard with its owner and the owner's gateway status.
  returned: success
  type: list
  elements: dict
  sample:
    - {shard: 0, owner: "coreapp1:9f8e7d6c5b4a", owners: ["coreapp1:9f8e7d6c5b4a"], owner_status: connected}
coreapps:
  description: Every coreapp the API lists, with its gateway status, whether it is healthy and the shards it holds.
  returned: success
  type: list
  elements: dict
  sample:
    - {node: "coreapp3:5b0e1c2d3f4a", healthy: true, status: disconnected, socket_conn: UP, shards: []}
plan:
  description: The changes to make (in check mode) or made, as sentences.
  returned: success
  type: list
  elements: str
  sample: ["set the shard count from 1 to 2"]
table:
  description: The shards as a table for people.
  returned: success
  type: str
table_lines:
  description: RV(table) as a list of lines.
  returned: success
  type: list
  elements: str
ownerless_seconds:
  description: For a planned move, seconds from the switch until the API showed the new owner connected (an upper
    bound of the time the shard could not take messages).
  returned: when a shard was moved
  type: float
  sample: 1.62
previous_owner:
  description: For a planned move, the shard's owner before.
  returned: when a shard was moved
  type: str
rate_limited:
  description: When the API answered 429 (too many requests), how often and how long the module backed off.
  returned: when the API rate-limited the run
  type: dict
failure_kind:
  description: Why the module failed (C(invalid_option), C(refused), C(unsupported), C(unreachable), C(bad_response),
    C(auth), C(rate_limited), C(timeout)...).
  returned: failure
  type: str
  sample: refused
"""

from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_module import BEARER_LOGINS, run_cluster_module
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_options import option_rule, seconds_rule
from ansible_collections.wabiz.cluster.plugins.module_utils._shards import (
    MAX_SHARDS,
    VALID_SHARD_COUNTS,
    Refused,
    compute_plan,
    map_text,
    move,
    read_state,
    set_count,
    summarize,
    table_lines,
)

RULES = (
    option_rule("min_spares", 0, None, "how many healthy coreapps must stay spare, for example 1", whole=True),
    option_rule("move_shard", 0, MAX_SHARDS - 1, "the 0-based number of the shard to move, for example 0", whole=True),
    seconds_rule("wait_timeout", 86400, "the seconds to wait for the new owners to be connected, for example 60"),
)

ARGUMENT_SPEC = dict(
    shards=dict(type="int", choices=list(VALID_SHARD_COUNTS)),
    cc=dict(type="str"),
    phone_number=dict(type="str"),
    pin=dict(type="str", no_log=True),
    cert=dict(type="str", no_log=True),
    min_spares=dict(type="int", default=1),
    wait_timeout=dict(type="float", default=60.0),
    standin_extensions=dict(type="bool", default=False),
    move_shard=dict(type="int"),
    move_to=dict(type="str"),
)


def run(cluster):
    p = cluster.params
    api = cluster.api
    if p["move_shard"] is not None and not p["standin_extensions"]:
        cluster.fail("a planned move (move_shard, move_to) is not part of the public API: it uses the stand-in's "
                     "extension POST /v1/account/shards/{shard}/owner. Set standin_extensions=true on a stand-in "
                     "cluster; on a real cluster stop the owner's coreapp and let the primary master promote a spare.",
                     failure_kind="unsupported")
    state = read_state(api)
    map_before, cores = summarize(state)
    try:
        plan = compute_plan(map_before, cores, p["shards"], p["move_shard"], p["move_to"], p["min_spares"])
    except Refused as exc:
        cluster.fail(str(exc), failure_kind="refused", map=map_before, coreapps=cores, shards=len(map_before))
    missing = [k for k in ("cc", "phone_number") if not (p.get(k) or "").strip()]
    if any(kind == "shards" for kind, _args, _s in plan) and missing:
        cluster.fail("changing the shard count needs %s: POST /v1/account/shards requires cc, phone_number and shards "
                     "(the business number, without the country code in phone_number)." % " and ".join(missing),
                     failure_kind="invalid_option", map=map_before, coreapps=cores, shards=len(map_before))
    result = {"changed": False, "plan": [sentence for _k, _a, sentence in plan]}
    cluster.failure.update(plan=result["plan"], map=map_before)
    if plan and not cluster.check_mode:
        for kind, args, _sentence in plan:
            if kind == "shards":
                state = set_count(api, p, args, p["wait_timeout"])
            else:
                moved = move(api, args[0], args[2], p["wait_timeout"])
                state = moved["state"]
                result.update(ownerless_seconds=moved["ownerless_seconds"], previous_owner=args[1])
        if state.get("health") is None:
            state = read_state(api)
    map_after, cores = summarize(state)
    if cluster.check_mode:
        result["changed"] = bool(plan)
        shards = p["shards"] if p["shards"] is not None else len(map_before)
    else:
        result["changed"] = [(r["shard"], r["owners"]) for r in map_before] != \
            [(r["shard"], r["owners"]) for r in map_after]
        shards = len(map_after)
    lines = table_lines(map_after, cores)
    result.update(shards=shards, map=map_after, coreapps=cores, table="\n".join(lines), table_lines=lines)
    if cluster.module._diff:
        result["diff"] = {"before": map_text(map_before), "after": map_text(map_after) if not cluster.check_mode
                          else "(check mode) " + "; ".join(result["plan"]) + "\n"}
    return result


def main():
    run_cluster_module(ARGUMENT_SPEC, RULES, run, required_together=[("move_shard", "move_to")],
                       required_one_of=[BEARER_LOGINS])


if __name__ == "__main__":
    main()
