#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: failover_check
short_description: Check the health of a WhatsApp Business API client HA cluster from three viewpoints
version_added: 0.1.0
description:
  - Looks at the cluster three ways at once and cross-checks them
    - the REST API (C(GET /v1/health) of O(api_url) and of every webapp registered in the database);
    - the cluster database (master lease holder and epoch, shard owners and epochs, every node's
      heartbeat age, the masters' heartbeat observations, the application settings);
    - a direct probe of every master's and coreapp's healthcheck port.
  - All probes and API calls run in parallel, each bounded by O(probe_timeout), so a nine-node
    cluster answers in about a second.
  - The cluster is healthy when exactly one master is primary (and holds the lease), every active
    shard has exactly one owner that answers and is connected, no node's heartbeat is older than
    the threshold, at least O(min_spares) healthy coreapps own no shard, all webapps agree with each
    other and with the probes, and all nodes run the same version.
  - Returns a structured report, a table for people and one plain sentence per fault in RV(findings).
  - Read-only. Usable ad hoc, for example
    C(ansible localhost -m wabiz.cluster.failover_check -a "api_url=https://127.0.0.1:9090 api_key=KEY
    db_engine=mysql db_user=wa db_password=PW validate_certs=false").
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
  db_engine:
    required: true
  db_user:
    required: true
  heartbeat_threshold:
    description:
      - Oldest acceptable database heartbeat of a node, in seconds; more than V(0) and at most V(86400).
      - Defaults to V(120), the nodes' default C(WA_DB_DEAD_AFTER_SECONDS) (they write one every 60 s).
    type: float
    default: 120
  probe_timeout:
    description:
      - Seconds each healthcheck probe may take; more than V(0) and at most V(600). Each C(/v1/health) call may take
        two seconds more (the webapp probes the nodes itself before it answers).
    type: float
    default: 3
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
      - How many healthy coreapps must own no shard (spares for failover). V(0) or more.
    type: int
    default: 1
  expected_nodes:
    description:
      - Node names (C(HOSTNAME:CONTAINER_ID) or C(WA_NODE_ID)) that must be registered, for example from
        the inventory. A node stopped cleanly removes itself from the database, so only this list can tell
        that it is missing.
    type: list
    elements: str
    default: []
  check_webapps:
    description:
      - Also ask every webapp registered in the database for C(/v1/health) and compare the answers.
        With V(false) only O(api_url) is asked.
    type: bool
    default: true
notes:
  - Only C(/v1/health) is called on the API; O(api_key) is enough (or a password, or a token).
  - Calls are not retried (O(api_retries) is ignored) so that the check reports what it sees, at once.
seealso:
  - module: wabiz.cluster.shard_table
"""

EXAMPLES = r"""
- name: Check the cluster, fail when it is unhealthy
  wabiz.cluster.failover_check:
    api_url: https://wa.example.internal:9090
    api_key: "{{ vault_wa_api_key }}"
    ca_path: /etc/wabiz/webapp-ca.pem
    db_engine: mysql
    db_host: db.example.internal
    db_user: whatsapp
    db_password: "{{ vault_wa_db_password }}"
    db_name_prefix: wa_prod_
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
    db_engine: postgresql
    db_user: whatsapp
    db_password: "{{ vault_wa_db_password }}"
    fail_on_unhealthy: false
  register: health
  until: health.healthy
  retries: 30
  delay: 2
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
    - "shard 0's owner coreapp1 does not answer on its healthcheck port 10.0.0.11:6253 (connection refused);
      its last database heartbeat was 4.2s ago"
nodes:
  description: Every node registered in the database (and every expected node that is not), as seen from all viewpoints.
  returned: success or when the cluster is unhealthy
  type: list
  elements: dict
  sample:
    - {node: master1, kind: master, host: 10.0.0.10, role: primary_master, status: connected, version: 2.53.2,
       heartbeat_age: 0.4, answers: true, healthcheck: "10.0.0.10:6253", api_status: connected}
shards:
  description: Every active shard with its owner, epoch and the owner's state.
  returned: success or when the cluster is unhealthy
  type: list
  elements: dict
  sample:
    - {shard: 0, owner: coreapp1, epoch: 3, owner_status: connected, owner_heartbeat_age: 0.3}
lease:
  description: The master lease from the database.
  returned: success or when the cluster is unhealthy
  type: dict
  sample: {holder: master1, epoch: 4, expired: false, seconds_left: 27.1}
primary_master:
  description: The one master that answers as primary, or V(null).
  returned: success or when the cluster is unhealthy
  type: str
  sample: master1
spares:
  description: Healthy coreapps that own no shard.
  returned: success or when the cluster is unhealthy
  type: list
  elements: str
  sample: [coreapp2]
settings:
  description: The cluster's application settings from the database.
  returned: success or when the cluster is unhealthy
  type: dict
  sample: {heartbeat_interval: 5, unhealthy_interval: 30}
webapps:
  description: Per webapp URL, whether it answered C(/v1/health) and the error if not.
  returned: success or when the cluster is unhealthy
  type: dict
  sample: {"https://10.0.0.20:9090": {ok: true, error: null, seconds: 0.05}}
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
    C(login_refused), C(no_database)...).
  returned: failure
  type: str
  sample: unreachable
"""

import time

from ansible_collections.wabiz.cluster.plugins.module_utils._api import (
    ApiError,
    WabizApi,
    map_http_error,
    not_the_api,
    parallel,
    probe_node,
)
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_module import run_cluster_module
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_options import option_rule, seconds_rule
from ansible_collections.wabiz.cluster.plugins.module_utils._clusterdb import ClusterDb, fmt_age, render_table

PROBED_KINDS = ("master", "coreapp")
# Errors of the webapp the user named (api_url) that stop the check rather than become a finding.
FATAL_API_ERRORS = ("auth", "forbidden", "tls", "unreachable", "bad_response")
RULES = (
    seconds_rule("heartbeat_threshold", 86400, "the oldest acceptable heartbeat in seconds, for example 120"),
    seconds_rule("probe_timeout", 600, "the seconds each healthcheck probe may take, for example 3"),
    option_rule("min_masters", 0, None, "how many masters must answer, for example 2", whole=True),
    option_rule("min_spares", 0, None, "how many healthy coreapps must stay spare, for example 1", whole=True),
)


def _where(node):
    return "%s:%s" % (node.get("host"), node.get("healthcheck_port"))


def _normalize_health(health):
    """{node_id: (role, gateway_status or 'error')} of a /v1/health answer."""
    out = {}
    for node_id, h in (health or {}).items():
        if isinstance(h, dict):
            out[node_id] = (h.get("role"), h.get("gateway_status") or ("error" if h.get("errors") else None))
    return out


def judge(data, opts):
    """The health judgement, pure (unit-tested). ``data`` holds what was collected: lease, shards
    (active rows of the shard map), nodes (DB rows), settings, observations, probes
    ({node_id: probe}), webapps ({url: {"ok", "health", "error", "version"}}). ``opts``:
    heartbeat_threshold, min_masters, min_spares, expected_nodes. Returns the report dict."""
    findings = []
    lease = data["lease"]
    nodes = data["nodes"]
    by_id = dict((n["node_id"], n) for n in nodes)
    probes = data["probes"]
    settings = data.get("settings") or {}
    threshold = float(opts["heartbeat_threshold"])
    unhealthy = settings.get("unhealthy_interval")

    def answers(node_id):
        p = probes.get(node_id)
        return bool(p and p.get("ok") and (p.get("node_id") in (None, node_id)))

    # -- expected nodes
    for name in opts.get("expected_nodes") or []:
        if name not in by_id:
            findings.append("%s is expected but not registered in the database (stopped cleanly, or never started)"
                            % name)

    # -- probes and heartbeats of every registered node
    for n in nodes:
        nid, kind = n["node_id"], n["kind"]
        age = n.get("heartbeat_age")
        if kind in PROBED_KINDS:
            p = probes.get(nid)
            owned = [s["shard"] for s in data["shards"] if s["owner"] == nid]
            if not answers(nid) and not owned:  # an owner's silence is said once, with its shard, below
                if p and p.get("ok"):
                    why = "another node (%s) answers there" % p.get("node_id")
                else:
                    why = (p or {}).get("error") or "no answer within %ss" % opts.get("probe_timeout", "?")
                findings.append("%s %s does not answer on its healthcheck port %s (%s); its last database "
                                "heartbeat was %s ago" % (kind, nid, _where(n), why, fmt_age(age)))
        if age is None or age > threshold:
            findings.append("%s %s's last database heartbeat is %s old (threshold %ss)"
                            % (kind, nid, fmt_age(age), _num_text(threshold)))

    # -- the masters' heartbeat observations of the coreapps (heartbeat mode)
    if unhealthy:
        live_masters = set(n["node_id"] for n in nodes if n["kind"] == "master" and answers(n["node_id"]))
        best = {}
        for o in data.get("observations") or []:
            if o["master"] in live_masters and o.get("ok_age") is not None:
                best[o["node_id"]] = min(best.get(o["node_id"], o["ok_age"]), o["ok_age"])
        for n in nodes:
            if n["kind"] == "coreapp" and n["node_id"] in best and best[n["node_id"]] > float(unhealthy):
                findings.append("no master has had a heartbeat answer from coreapp %s for %s (unhealthy_interval "
                                "%ss)" % (n["node_id"], fmt_age(best[n["node_id"]]), unhealthy))

    # -- masters
    masters = [n for n in nodes if n["kind"] == "master"]
    primaries = [n["node_id"] for n in masters if answers(n["node_id"]) and
                 probes[n["node_id"]].get("role") == "primary_master"]
    answering_masters = [n["node_id"] for n in masters if answers(n["node_id"])]
    if not primaries:
        if lease.get("holder") and not lease.get("expired"):
            findings.append("no master answers as primary, though the lease names %s (epoch %s)"
                            % (lease["holder"], lease["epoch"]))
        else:
            findings.append("no primary master: the master lease is free or expired (last holder %s, epoch %s)"
                            % (lease.get("holder") or "none", lease.get("epoch")))
    elif len(primaries) > 1:
        findings.append("%d masters answer as primary at once: %s" % (len(primaries), ", ".join(sorted(primaries))))
    elif lease.get("expired") or lease.get("holder") != primaries[0]:
        findings.append("%s answers as primary but the lease %s" % (
            primaries[0], "has expired" if lease.get("expired") else "names %s (epoch %s)"
            % (lease.get("holder"), lease.get("epoch"))))
    if len(answering_masters) < int(opts.get("min_masters", 2)):
        findings.append("only %d master(s) answer (%s); HA needs %d so that one can take over"
                        % (len(answering_masters), ", ".join(answering_masters) or "none", int(opts["min_masters"])))

    # -- shards
    owners = {}
    shard_rows = []
    for s in data["shards"]:
        owner = s["owner"]
        n = by_id.get(owner) if owner else None
        p = probes.get(owner) if owner else None
        status = (p or {}).get("gateway_status") if owner and answers(owner) else (
            ("unreachable" if n else "unregistered") if owner else None)
        shard_rows.append({"shard": s["shard"], "owner": owner, "epoch": s["epoch"], "owner_status": status,
                           "owner_heartbeat_age": n.get("heartbeat_age") if n else None})
        if owner is None:
            findings.append("shard %d has no owner" % s["shard"])
            continue
        owners.setdefault(owner, []).append(s["shard"])
        if n is None:
            findings.append("shard %d's owner %s is not registered in the database (stopped, or removed)"
                            % (s["shard"], owner))
        elif not answers(owner):
            why = (p or {}).get("error") or "no answer"
            findings.append("shard %d's owner %s does not answer on its healthcheck port %s (%s); its last database "
                            "heartbeat was %s ago" % (s["shard"], owner, _where(n), why, fmt_age(n.get("heartbeat_age"))))
        elif status != "connected":
            findings.append("shard %d's owner %s is not serving: its gateway status is %s" % (s["shard"], owner, status))
    for owner, shard_ids in sorted(owners.items()):
        if len(shard_ids) > 1:
            findings.append("%s owns %d shards (%s); each shard needs its own coreapp"
                            % (owner, len(shard_ids), ", ".join(map(str, shard_ids))))
    for n in nodes:
        if n["kind"] == "coreapp" and n["node_id"] not in owners and answers(n["node_id"]) and \
                probes[n["node_id"]].get("gateway_status") == "connected":
            findings.append("coreapp %s answers as connected but owns no shard in the database" % n["node_id"])

    # -- spares
    spares = sorted(n["node_id"] for n in nodes if n["kind"] == "coreapp" and n["node_id"] not in owners and
                    answers(n["node_id"]) and n.get("heartbeat_age") is not None and n["heartbeat_age"] <= threshold)
    if len(spares) < int(opts.get("min_spares", 1)):
        healthy_coreapps = sum(1 for n in nodes if n["kind"] == "coreapp" and answers(n["node_id"]))
        findings.append("no spare coreapp for failover: %d shard(s), %d coreapp(s) answer, %d spare(s) (need %d); "
                        "run shards + %d coreapps" % (len(data["shards"]), healthy_coreapps, len(spares),
                                                      int(opts.get("min_spares", 1)), int(opts.get("min_spares", 1))))

    # -- webapps: each answers, they agree, and they agree with the probes
    views = {}
    for url, w in sorted(data.get("webapps", {}).items()):
        if not w.get("ok"):
            findings.append("webapp %s does not answer /v1/health (%s)" % (url, w.get("error")))
            continue
        views[url] = _normalize_health(w.get("health"))
    if len(views) > 1:
        distinct = set(tuple(sorted(v.items())) for v in views.values())
        if len(distinct) > 1:
            urls = sorted(views)
            first = views[urls[0]]
            for url in urls[1:]:
                diff = sorted(k for k in set(first) | set(views[url]) if first.get(k) != views[url].get(k))
                if diff:
                    findings.append("webapps disagree: %s and %s see %s differently (%s)" % (
                        urls[0], url, ", ".join(diff), "; ".join(
                            "%s: %s vs %s" % (k, "/".join(map(str, first.get(k, ("absent",)))),
                                              "/".join(map(str, views[url].get(k, ("absent",))))) for k in diff)))
    api_view = views.get(data.get("api_url")) or (next(iter(views.values())) if views else None)
    if api_view is not None:
        for nid, (role, gw) in sorted(api_view.items()):
            if nid in by_id and answers(nid):
                p = probes[nid]
                if (p.get("role"), p.get("gateway_status")) != (role, gw):
                    findings.append("the API reports %s as %s/%s but its healthcheck port says %s/%s"
                                    % (nid, role, gw, p.get("role"), p.get("gateway_status")))

    # -- versions
    versions = {}
    for n in nodes:
        versions.setdefault(n.get("version"), []).append(n["node_id"])
    if len(versions) > 1:
        findings.append("nodes run different versions: %s" % "; ".join(
            "%s on %s" % (v, ", ".join(sorted(ids))) for v, ids in sorted(versions.items(), key=lambda x: str(x[0]))))

    # -- the per-node report
    api_status = dict((nid, gw) for nid, (_r, gw) in (api_view or {}).items())
    node_rows = []
    for n in nodes:
        nid = n["node_id"]
        p = probes.get(nid) or {}
        probed = n["kind"] in PROBED_KINDS
        node_rows.append({
            "node": nid, "kind": n["kind"], "host": n.get("host"),
            "role": (p.get("role") if probed and answers(nid) else n.get("role")),
            "status": (p.get("gateway_status") if answers(nid) else "unreachable") if probed else
            _webapp_status(n, data.get("webapps") or {}),
            "version": n.get("version"), "heartbeat_age": _round(n.get("heartbeat_age")),
            "answers": answers(nid) if probed else None,
            "healthcheck": _where(n) if probed else None, "api_status": api_status.get(nid),
        })
    for name in opts.get("expected_nodes") or []:
        if name not in by_id:
            node_rows.append({"node": name, "kind": None, "host": None, "role": None, "status": "missing",
                              "version": None, "heartbeat_age": None, "answers": False, "healthcheck": None,
                              "api_status": None})
    for row in shard_rows:
        row["owner_heartbeat_age"] = _round(row["owner_heartbeat_age"])
    return {
        "healthy": not findings, "findings": findings, "nodes": node_rows, "shards": shard_rows,
        "primary_master": primaries[0] if len(primaries) == 1 else None, "spares": spares,
        "lease": lease, "settings": settings,
    }


def _webapp_status(n, webapps):
    """'serving' or 'unreachable' for a registered webapp that was asked, else None."""
    if n["kind"] != "webapp":
        return None
    w = webapps.get("https://%s:%s" % (n.get("host"), n.get("messaging_port")))
    if w is None:
        return None
    return "serving" if w.get("ok") else "unreachable"


def _round(v):
    return None if v is None else round(float(v), 3)


def _num_text(v):
    return ("%d" % v) if float(v) == int(v) else ("%g" % v)


def table_lines(report):
    lines = render_table(
        ["NODE", "KIND", "ROLE", "STATUS", "VERSION", "HEARTBEAT", "HEALTHCHECK"],
        [[r["node"], r["kind"], r["role"], r["status"], r["version"],
          fmt_age(r["heartbeat_age"]) if r["kind"] else None, r["healthcheck"]] for r in report["nodes"]])
    lines.append("")
    lines += render_table(["SHARD", "OWNER", "EPOCH", "OWNER STATUS", "OWNER HEARTBEAT"],
                          [[s["shard"], s["owner"], s["epoch"], s["owner_status"],
                            fmt_age(s["owner_heartbeat_age"]) if s["owner"] else None] for s in report["shards"]])
    lines.append("")
    lease = report["lease"]
    expired = ", expired" if lease.get("expired") else ""
    lines.append("lease: %s (epoch %s%s)" % (lease.get("holder") or "none", lease.get("epoch"), expired))
    lines.append("healthy: %s" % ("yes" if report["healthy"] else "NO"))
    lines += ["- %s" % f for f in report["findings"]]
    return lines


def collect(params, api=None, db=None):
    """Gather the three viewpoints; DB first (it names the nodes), then probes and API calls in parallel."""
    timeout = float(params["probe_timeout"])
    db = db or ClusterDb(params)
    if db.conn is None:
        db.connect()
    try:
        data = {"lease": db.lease(), "shards": [s for s in db.shard_map() if s["active"]], "nodes": db.nodes(),
                "settings": db.application_settings(), "observations": db.observations()}
    finally:
        db.close()
    api = api or WabizApi(dict(params, api_timeout=timeout, api_retries=0))
    if not api.api_key:
        api.bearer()  # log in once, before the parallel calls share the token
    data["api_url"] = api.base
    urls = [api.base]
    if params.get("check_webapps", True):
        for n in data["nodes"]:
            if n["kind"] == "webapp" and n.get("messaging_port"):
                url = "https://%s:%s" % (n["host"], n["messaging_port"])
                if url not in urls:
                    urls.append(url)
    calls = {}
    for n in data["nodes"]:
        if n["kind"] in PROBED_KINDS and n.get("healthcheck_port"):
            calls[("probe", n["node_id"])] = (lambda h=n["host"], p=n["healthcheck_port"]: probe_node(h, p, timeout))

    # A webapp answers /v1/health after pinging every node itself: give it the probe time and a margin,
    # so that a paused node is reported as such, not as a webapp that does not answer.
    api_timeout = timeout + 2

    def health(url):
        started = time.time()
        try:
            status, body = api.raw("GET", "/v1/health", None, {"Authorization": (
                "Apikey %s" % api.api_key) if api.api_key else "Bearer %s" % api.token}, timeout=api_timeout,
                base=url)
        except ApiError as exc:
            return {"ok": False, "error": exc.msg, "kind": exc.kind, "seconds": round(time.time() - started, 3)}
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("health"), dict):
            err = not_the_api(url, "GET %s/v1/health answered without a health object" % url) if status == 200 \
                else map_http_error("GET", url + "/v1/health", status, body)
            return {"ok": False, "error": api.redact(err.msg), "kind": err.kind,
                    "seconds": round(time.time() - started, 3), "status": status}
        return {"ok": True, "health": body["health"], "version": (body.get("meta") or {}).get("version"),
                "error": None, "seconds": round(time.time() - started, 3)}

    for url in urls:
        calls[("webapp", url)] = (lambda u=url: health(u))
    results = parallel(calls, timeout=api_timeout + 2)
    data["probes"] = {}
    data["webapps"] = {}
    for (kind, key), res in results.items():
        if kind == "probe":
            data["probes"][key] = res if isinstance(res, dict) else {
                "ok": False, "error": str(res) if res is not None else "no answer within %ss" % timeout}
        else:
            data["webapps"][key] = res if isinstance(res, dict) else {
                "ok": False, "error": str(res) if res is not None else "no answer within %ss" % timeout}
    # The webapp the user named must let us in: a wrong key, password or CA is an error, not a finding.
    mine = data["webapps"].get(api.base) or {}
    if not mine.get("ok") and mine.get("kind") in FATAL_API_ERRORS:
        raise ApiError(mine["kind"], mine["error"], mine.get("status"))
    return data


ARGUMENT_SPEC = dict(
    heartbeat_threshold=dict(type="float", default=120.0),
    probe_timeout=dict(type="float", default=3.0),
    fail_on_unhealthy=dict(type="bool", default=True),
    min_masters=dict(type="int", default=2),
    min_spares=dict(type="int", default=1),
    expected_nodes=dict(type="list", elements="str", default=[]),
    check_webapps=dict(type="bool", default=True),
)


def run(module, db, _failure):
    started = time.time()
    data = collect(module.params, api=WabizApi(dict(module.params, api_retries=0), check_mode=module.check_mode),
                   db=db)
    report = judge(data, module.params)
    report["webapps"] = dict((url, {"ok": w.get("ok"), "error": w.get("error"), "seconds": w.get("seconds")})
                             for url, w in data["webapps"].items())
    lines = table_lines(report)
    report.update(changed=False, table="\n".join(lines), table_lines=lines, elapsed=round(time.time() - started, 3))
    if not report["healthy"] and module.params["fail_on_unhealthy"]:
        module.fail_json(msg="the cluster is not healthy: %s" % "; ".join(report["findings"]), **report)
    return report


def main():
    run_cluster_module(ARGUMENT_SPEC, RULES, run, db_class=ClusterDb,
                       required_one_of=[("api_key", "api_password", "api_new_password", "api_token")])


if __name__ == "__main__":
    main()
