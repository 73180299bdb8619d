#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: failover_check
short_description: Check the health of a WhatsApp Business API client HA cluster through its API
version_added: 0.1.0
description:
  - Judges the cluster from what the public REST API shows, with the API URL and credentials alone;
    all calls run in parallel.
  - C(GET /v1/health) gives every registered node's role and gateway status (a node that cannot be
    reached is listed with an error, code 1014); C(GET /v1/account/shards) the shard count;
    C(GET /v1/support) the shards each coreapp holds; C(GET /v1/settings/application) the
    heartbeat and unhealthy intervals.
  - "The contract's semantics: in HA mode (1 shard) only the primary coreapp is connected and every
    other node, the primary master too, is disconnected; with X shards, X coreapps and the primary
    master are connected."
  - The cluster is healthy when exactly one master answers as primary and at least O(min_masters)
    masters answer, every shard has exactly one owner that is reachable and connected, no other node
    is connected than the contract allows, at least O(min_spares) reachable coreapps hold no shard,
    every node can be reached, every name in O(expected_nodes) is listed, the webapps in
    O(webapp_urls) answer and agree, and the versions shown agree.
  - With O(api_key) alone only C(/v1/health) can be read (the other calls need an admin login); the
    shard owners are then taken to be the connected coreapps, and RV(notes) says so.
  - "Stand-in clusters only: with O(db_cross_check=true) the stand-in's database (lease, shard map,
    heartbeats) is read too and compared with the API's view; a real cluster's database is the
    product's own and is never read."
  - Returns a structured report, a table for people and one plain sentence per fault in RV(findings).
  - Read-only. Usable ad hoc, for example
    C(ansible localhost -m wabiz.cluster.failover_check -a "api_url=https://127.0.0.1:9090
    api_password=PW validate_certs=false").
author:
  - wabiz.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wabiz.cluster.api
  - wabiz.cluster.cluster_db
attributes:
  check_mode:
    support: full
    details: The module only reads; check mode runs the same checks.
  diff_mode:
    support: none
  idempotent:
    description: Whether a second run with the same options changes nothing.
    support: full
    details: Never changes anything (C(changed) is always V(false)).
  platform:
    platforms: posix
options:
  fail_on_unhealthy:
    description:
      - Fail the task when the cluster is not healthy. With V(false) the task succeeds and RV(healthy) says.
    type: bool
    default: true
  min_masters:
    description:
      - How many masters must answer. HA needs two, one primary and one secondary to take over. V(0) or more.
    type: int
    default: 2
  min_spares:
    description:
      - How many reachable coreapps must hold no shard (spares for failover). V(0) or more.
    type: int
    default: 1
  expected_nodes:
    description:
      - Node names (C(HOST:CONTAINER_ID), as C(/v1/health) lists them) that must be registered, for example from
        the inventory. A node stopped cleanly is no longer listed, so only this list can tell that it is missing.
    type: list
    elements: str
    default: []
  webapp_urls:
    description:
      - Other webapps of the cluster (base URLs) to ask for C(/v1/health) too; the task reports those that do not
        answer and every node they see differently from O(api_url).
    type: list
    elements: str
    default: []
  heartbeat_threshold:
    description:
      - With O(db_cross_check=true) only (stand-in clusters) the oldest acceptable database heartbeat of a node, in
        seconds; more than V(0) and at most V(86400). Ignored without the cross-check.
    type: float
    default: 120
notes:
  - O(api_key) is enough for C(/v1/health); the full check needs an admin login (O(api_password) or O(api_token)).
  - Calls are retried after a C(1011) (service not ready) answer within O(api_retries), and a rate limit (HTTP 429,
    code 1015) is waited out within O(api_rate_limit_wait), which RV(rate_limited) and a warning report.
  - The options C(probe_timeout) and C(check_webapps) of earlier versions are gone (a node's healthcheck port is not
    part of the public API; name other webapps in O(webapp_urls)).
seealso:
  - module: wabiz.cluster.shard_table
"""

EXAMPLES = r"""
- name: Check the cluster, fail when it is unhealthy
  wabiz.cluster.failover_check:
    api_url: https://wa.example.internal:9090
    api_password: "{{ vault_wa_api_password }}"
    ca_path: /etc/wabiz/webapp-ca.pem
    webapp_urls: [https://wa2.example.internal:9090]
    expected_nodes: "{{ groups['wa_nodes'] | map('extract', hostvars, 'wa_node_id') | list }}"
  register: health

- name: Show the table
  ansible.builtin.debug:
    var: health.table_lines

- name: Wait until the cluster is healthy again after a drill
  wabiz.cluster.failover_check:
    api_url: https://127.0.0.1:9090
    api_password: "{{ vault_wa_api_password }}"
    validate_certs: false
    fail_on_unhealthy: false
  register: health
  until: health.healthy
  retries: 30
  delay: 6

- name: On the stand-in test cluster, compare the API with the stand-in's database too
  wabiz.cluster.failover_check:
    api_url: https://127.0.0.1:9090
    api_password: "{{ vault_wa_api_password }}"
    validate_certs: false
    db_cross_check: true
    db_engine: mysql
    db_user: whatsapp
    db_password: "{{ vault_wa_db_password }}"
    heartbeat_threshold: 3
"""

RETURN = r"""
healthy:
  description: Whether every check passed.
  returned: success or when the cluster is unhealthy
  type: bool
  sample: false
findings:
  description: One plain sentence per fault found; empty when healthy.
  returned: success or when the cluster is unhealthy
  type: list
  elements: str
  sample:
    - "shard 0's owner wa-core-1:2f9c1a7b04d1 cannot be reached: code 1014, Internal error: Please check if wacore is
      running: 10.0.0.11:6250"
nodes:
  description: Every node /v1/health lists (and any only /v1/support lists), with what the API says of it.
  returned: success or when the cluster is unhealthy
  type: list
  elements: dict
  sample:
    - {node: "wa-core-1:2f9c1a7b04d1", kind: coreapp, role: coreapp, status: connected, gateway_status: connected,
       reachable: true, shards: [0], socket_conn: UP, version: null, error: null, heartbeat_age: null}
shards:
  description: Every shard with its owner (from /v1/support) and the owner's gateway status.
  returned: success or when the cluster is unhealthy
  type: list
  elements: dict
  sample:
    - {shard: 0, owner: "wa-core-1:2f9c1a7b04d1", owners: ["wa-core-1:2f9c1a7b04d1"], owner_status: connected}
shard_count:
  description: The shard count (C(GET /v1/account/shards)), or the number of connected coreapps with O(api_key) alone.
  returned: success or when the cluster is unhealthy
  type: int
  sample: 1
mode:
  description: V(ha) (1 shard), V(multiconnect) (more), or V(null) when no shard is known.
  returned: success or when the cluster is unhealthy
  type: str
  sample: ha
primary_master:
  description: The one master that answers as primary, or V(null).
  returned: success or when the cluster is unhealthy
  type: str
  sample: "wa-master-1:8a1f2c3d4e5f"
spares:
  description: Reachable coreapps that hold no shard.
  returned: success or when the cluster is unhealthy
  type: list
  elements: str
  sample: ["wa-core-2:77aa0c1b2d3e"]
settings:
  description: The heartbeat and unhealthy intervals from C(GET /v1/settings/application).
  returned: success or when the cluster is unhealthy
  type: dict
  sample: {heartbeat_interval: 5, unhealthy_interval: 30}
owners_inferred:
  description: V(true) when the shard owners were taken to be the connected coreapps (no C(/v1/support) answer).
  returned: success or when the cluster is unhealthy
  type: bool
  sample: false
webapps:
  description: Per webapp URL asked, whether it answered C(/v1/health) and the error if not.
  returned: success or when the cluster is unhealthy
  type: dict
  sample: {"https://10.0.0.20:9090": {ok: true, error: null, seconds: 0.05}}
sources:
  description: The answers the judgement used.
  returned: success or when the cluster is unhealthy
  type: list
  elements: str
  sample: ["GET /v1/health", "GET /v1/account/shards", "GET /v1/settings/application", "GET /v1/support"]
notes:
  description: What the check could not look at, as sentences (for example with O(api_key) alone).
  returned: success or when the cluster is unhealthy
  type: list
  elements: str
rate_limited:
  description: When the API answered 429 (too many requests), how often and how long the module backed off.
  returned: when the API rate-limited the run
  type: dict
  sample: {answers: 1, waited_seconds: 1.0, calls: ["GET /v1/health"]}
table:
  description: The report as a table for people.
  returned: success or when the cluster is unhealthy
  type: str
table_lines:
  description: RV(table) as a list of lines (reads well in the default callback's output).
  returned: success or when the cluster is unhealthy
  type: list
  elements: str
elapsed:
  description: Seconds the whole check took.
  returned: success or when the cluster is unhealthy
  type: float
  sample: 0.62
failure_kind:
  description: When the check itself could not run, why (C(invalid_option), C(unreachable), C(bad_response), C(auth),
    C(rate_limited), C(login_refused), C(no_database)...).
  returned: failure
  type: str
  sample: unreachable
"""

import time

from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_module import BEARER_LOGINS, run_cluster_module
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_options import option_rule, seconds_rule
from ansible_collections.wabiz.cluster.plugins.module_utils._clusterdb import ClusterDb
from ansible_collections.wabiz.cluster.plugins.module_utils._health_judge import collect, judge, table_lines

RULES = (
    seconds_rule("heartbeat_threshold", 86400, "the oldest acceptable heartbeat in seconds, for example 120"),
    option_rule("min_masters", 0, None, "how many masters must answer, for example 2", whole=True),
    option_rule("min_spares", 0, None, "how many reachable coreapps must stay spare, for example 1", whole=True),
)

ARGUMENT_SPEC = dict(
    fail_on_unhealthy=dict(type="bool", default=True),
    min_masters=dict(type="int", default=2),
    min_spares=dict(type="int", default=1),
    expected_nodes=dict(type="list", elements="str", default=[]),
    webapp_urls=dict(type="list", elements="str", default=[]),
    heartbeat_threshold=dict(type="float", default=120.0),
)


def run(cluster):
    started = time.time()
    p = cluster.params
    bearer = any(p.get(k) for k in BEARER_LOGINS)
    data = collect(cluster.api, p, bearer, db=cluster.db)
    report = judge(data, p)
    report["notes"] = [] if bearer else [
        "with api_key alone only GET /v1/health was read (the shard count, /v1/support and the settings need an "
        "admin login: set api_password or api_token); the shard owners were taken to be the connected coreapps"]
    report["webapps"] = dict((url, {"ok": w.get("ok"), "error": w.get("error"), "seconds": w.get("seconds")})
                             for url, w in data["webapps"].items())
    report["sources"] = sorted(data["sources"])
    lines = table_lines(report)
    report.update(changed=False, table="\n".join(lines), table_lines=lines, elapsed=round(time.time() - started, 3))
    if not report["healthy"] and p["fail_on_unhealthy"]:
        cluster.fail("the cluster is not healthy: %s" % "; ".join(report["findings"]), **report)
    return report


def main():
    run_cluster_module(ARGUMENT_SPEC, RULES, run, db_class=ClusterDb,
                       required_one_of=[("api_key",) + BEARER_LOGINS])


if __name__ == "__main__":
    main()
