# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health judgement of failover_check: what the public API shows, read in parallel
(``collect``), judged by the contract's semantics (``judge``, pure), as a table (``table_lines``).

The contract (api-contract.md, "Health, support"): ``GET /v1/health`` lists every registered node
with its role and gateway status, or with an errors entry (code 1014) when it cannot be reached.
In HA mode (1 shard) only the primary coreapp is ``connected``, every other node (the primary
master too) ``disconnected``; with X shards, X coreapps and the primary master are ``connected``.
``GET /v1/support`` says which shards each coreapp holds; ``GET /v1/account/shards`` the count;
``GET /v1/settings/application`` the heartbeat and unhealthy intervals.

The opt-in database cross-check (stand-in clusters only) adds the stand-in's lease, shard map and
heartbeats (``db``) and compares them with the API's view.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.wabiz.cluster.plugins.module_utils._api_errors import ApiError, map_http_error, not_the_api
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_api import (
    CODE_UNREACHABLE,
    error_text,
    kind_of,
    parse_health,
    parse_settings,
    parse_shard_count,
    parse_support,
    render_table,
)
from ansible_collections.wabiz.cluster.plugins.module_utils._parallel import parallel

# Failures of an admin read that mean the options are wrong: they stop the check (any other failure of
# those reads becomes a finding; a failure of api_url's /v1/health always stops it).
FATAL_KINDS = ("auth", "forbidden", "tls", "bad_response", "invalid_option", "token_cache",
               "password_change_required", "rate_limited")
READS = (("shard_count", "/v1/account/shards", parse_shard_count),
         ("support", "/v1/support", parse_support),
         ("settings", "/v1/settings/application", parse_settings))
WHAT = {"shard_count": "the shard count", "support": "the shards of each node", "settings": "the application settings"}


def collect(api, params, bearer, db=None):
    """What the API shows: ``{"health", "shard_count", "support", "settings", "errors", "webapps",
    "sources", "db"}``. ``bearer``: a login for the admin reads is given (else health only, with the
    API key). The admin reads run in parallel; one that fails becomes an entry of ``errors`` (a
    finding), except the failures that mean the options are wrong (FATAL_KINDS), which raise."""
    if bearer:
        api.bearer()  # log in once, before the parallel calls share the token
    calls = {("health", api.base): (lambda: _health(api, api.base))}
    for url in params.get("webapp_urls") or []:
        url = (url or "").strip().rstrip("/")
        if url and "://" not in url:
            url = "https://" + url
        if url and url != api.base:
            calls[("health", url)] = (lambda u=url: _health(api, u))
    if bearer:
        for key, path, parser in READS:
            calls[(key, path)] = (lambda p=path, f=parser: f(api, api.call("GET", p)))
    results = parallel(calls, timeout=float(params.get("api_timeout") or 10) * 3 + 5 + api.rate_limit_wait)
    data = {"health": None, "shard_count": None, "support": None, "settings": None, "errors": {}, "webapps": {},
            "sources": ["GET /v1/health"], "db": None}
    mine = results.get(("health", api.base))
    if isinstance(mine, ApiError):
        raise mine
    if not isinstance(mine, dict):
        raise ApiError("timeout", "GET %s/v1/health did not answer in time." % api.base)
    data["health"] = mine["health"]
    for (key, where), res in sorted(results.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        if key == "health":
            data["webapps"][where] = res if isinstance(res, dict) else {
                "ok": False, "error": res.msg if isinstance(res, ApiError) else "no answer in time", "health": None}
            continue
        if isinstance(res, ApiError) and res.kind in FATAL_KINDS:
            raise res
        if isinstance(res, Exception) or res is None:
            data["errors"][key] = "could not read %s (GET %s): %s" % (
                WHAT[key], where, res.msg if isinstance(res, ApiError) else (str(res) or "no answer in time"))
            continue
        data[key] = res
        data["sources"].append("GET %s" % where)
    if db is not None:
        db.connect()
        data["db"] = {"lease": db.lease(), "shards": [s for s in db.shard_map() if s["active"]], "nodes": db.nodes()}
        data["sources"].append("database (db_cross_check)")
    return data


def _health(api, url):
    """{"ok", "health", "version", "seconds", "error"} of one webapp's /v1/health; raises ApiError
    on transport failures and error answers (the caller decides what is fatal)."""
    started = time.time()
    headers = {"Authorization": ("Apikey %s" % api.api_key) if api.api_key else "Bearer %s" % api.bearer()}
    status, body = api.raw("GET", "/v1/health", None, headers, base=url)
    if status != 200:
        raise api.scrub(map_http_error("GET", url + "/v1/health", status, body))
    if not isinstance(body, dict):
        raise not_the_api(url, "GET %s/v1/health answered without a health object" % url)
    health = parse_health(api, body) if url == api.base else _parse_other(api, body, url)
    return {"ok": True, "health": health, "version": (body.get("meta") or {}).get("version")
            if isinstance(body.get("meta"), dict) else None, "seconds": round(time.time() - started, 3), "error": None}


def _parse_other(api, body, url):
    try:
        return parse_health(api, body)
    except ApiError:
        raise not_the_api(url, "GET %s/v1/health answered without a health object" % url) from None


def _view(health):
    return dict((n, (h["role"], h["gateway_status"] if h["reachable"] else "error")) for n, h in health.items())


def judge(data, opts):
    """The health judgement, pure (unit-tested over answers shaped as the contract shows them).
    ``opts``: min_masters, min_spares, expected_nodes, heartbeat_threshold (database cross-check).
    Returns the report dict (healthy, findings, nodes, shards, primary_master, spares, mode...)."""
    findings = list(data.get("errors", {}).get(k) for k in ("shard_count", "support", "settings")
                    if data.get("errors", {}).get(k))
    health = data["health"]
    support = data.get("support")
    count = data.get("shard_count")
    names = sorted(set(health) | set(support or {}))

    def role(n):
        return (health.get(n) or {}).get("role") or (support or {}).get(n, {}).get("role")

    def reachable(n):
        return bool((health.get(n) or {}).get("reachable"))

    def gateway(n):
        return (health.get(n) or {}).get("gateway_status")

    def why(n):
        h = health.get(n)
        if h is None:
            return "not listed by /v1/health"
        err = h.get("error") or {}
        return ("cannot be reached: %s" if err.get("code") == CODE_UNREACHABLE else "does not answer: %s") % \
            error_text(err)

    coreapps = [n for n in names if role(n) == "coreapp"]
    masters = [n for n in names if kind_of(role(n)) == "master"]

    # -- owners: from /v1/support, or (without it) the connected coreapps
    owners = {}
    if support is not None:
        for n in coreapps:
            for s in support.get(n, {}).get("shards", []):
                owners.setdefault(s, []).append(n)
        inferred = False
    else:
        for i, n in enumerate(sorted(n for n in coreapps if reachable(n) and gateway(n) == "connected")):
            owners[i] = [n]
        inferred = True
    if count is None and not inferred:
        count = max(owners) + 1 if owners else None
    shard_ids = list(range(count)) if count else sorted(owners)
    owned = {}
    for s, who in owners.items():
        for n in who:
            owned.setdefault(n, []).append(s)
    mode = None if not shard_ids else ("ha" if len(shard_ids) == 1 else "multiconnect")

    # -- nodes that cannot be reached (an owner's is said once, with its shard)
    for n in names:
        if not reachable(n) and n not in owned:
            findings.append("%s %s %s" % (kind_of(role(n)) or "node", n, why(n)))
    for name in opts.get("expected_nodes") or []:
        if name not in health:
            findings.append("%s is expected but not listed by /v1/health (not registered: stopped cleanly, or never "
                            "started)" % name)

    # -- masters
    primaries = [n for n in masters if reachable(n) and role(n) == "primary_master"]
    live_masters = [n for n in masters if reachable(n)]
    if not primaries:
        findings.append("no primary master: no node answers /v1/health with the role primary_master")
    elif len(primaries) > 1:
        findings.append("%d masters answer as primary at once: %s" % (len(primaries), ", ".join(primaries)))
    need_masters = int(opts.get("min_masters", 2))
    if len(live_masters) < need_masters:
        findings.append("only %d master(s) answer (%s); HA needs %d so that one can take over"
                        % (len(live_masters), ", ".join(live_masters) or "none", need_masters))

    # -- shards and their owners
    shard_rows = []
    if inferred and not owners:
        findings.append("no coreapp is connected: no shard is served")
    for s in shard_ids:
        who = owners.get(s, [])
        owner = who[0] if len(who) == 1 else None
        status = None
        if owner:
            status = gateway(owner) if reachable(owner) else "unreachable"
        shard_rows.append({"shard": s, "owner": owner if who else None, "owners": who, "owner_status": status})
        if not who:
            findings.append("shard %d has no owner" % s)
        elif len(who) > 1:
            findings.append("shard %d is held by %d coreapps at once: %s" % (s, len(who), ", ".join(who)))
        elif not reachable(owner):
            findings.append("shard %d's owner %s %s" % (s, owner, why(owner)))
        elif status != "connected":
            findings.append("shard %d's owner %s is not connected (gateway status %s)" % (s, owner, status))
    if count:
        for s in sorted(set(owners) - set(shard_ids)):
            findings.append("shard %d is held by %s but the shard count is %d" % (s, ", ".join(owners[s]), count))
    for n, held in sorted(owned.items()):
        if len(held) > 1:
            findings.append("%s owns %d shards (%s); each shard needs its own coreapp"
                            % (n, len(held), ", ".join(map(str, sorted(held)))))

    # -- who may be connected (HA: the primary coreapp only; multiconnect: the owners and the primary master)
    for n in names:
        if not reachable(n) or gateway(n) != "connected" or n in owned:
            continue
        if role(n) == "primary_master" and mode == "multiconnect":
            continue
        if mode == "ha":
            findings.append("%s %s is connected, but in HA mode (1 shard) only the primary coreapp may be" % (
                role(n) or "node", n))
        elif mode == "multiconnect":
            findings.append("%s %s is connected but holds no shard" % (role(n) or "node", n))
    if mode == "multiconnect" and len(primaries) == 1 and gateway(primaries[0]) != "connected":
        findings.append("the primary master %s is %s; with %d shards it must be connected" % (
            primaries[0], gateway(primaries[0]), len(shard_ids)))

    # -- spares
    spares = sorted(n for n in coreapps if reachable(n) and n not in owned and gateway(n) != "connected")
    need_spares = int(opts.get("min_spares", 1))
    if len(spares) < need_spares:
        findings.append("fewer spare coreapps than min_spares: %d spare(s) (need %d) for %d shard(s) and %d reachable "
                        "coreapp(s); run shards + %d coreapps" % (
                            len(spares), need_spares, len(shard_ids), sum(1 for n in coreapps if reachable(n)),
                            need_spares))

    # -- settings
    settings = data.get("settings") or {}
    hb, uh = settings.get("heartbeat_interval"), settings.get("unhealthy_interval")
    if isinstance(hb, (int, float)) and isinstance(uh, (int, float)) and uh <= hb:
        findings.append("unhealthy_interval (%s s) is not greater than heartbeat_interval (%s s): a coreapp may be "
                        "declared dead before it could answer one heartbeat" % (uh, hb))

    # -- versions (where the answers show them)
    versions = {}
    for n in names:
        v = (support or {}).get(n, {}).get("version")
        if v:
            versions.setdefault(v, []).append(n)
    for url, w in sorted((data.get("webapps") or {}).items()):
        if w.get("ok") and w.get("version"):
            versions.setdefault(w["version"], []).append("webapp %s" % url)
    if len(versions) > 1:
        findings.append("nodes run different versions: %s" % "; ".join(
            "%s on %s" % (v, ", ".join(sorted(ids))) for v, ids in sorted(versions.items())))

    # -- other webapps: they answer and agree
    webapps = data.get("webapps") or {}
    mine = _view(health)
    for url, w in sorted(webapps.items()):
        if not w.get("ok"):
            findings.append("webapp %s does not answer /v1/health (%s)" % (url, w.get("error")))
            continue
        other = _view(w.get("health") or {})
        diff = sorted(k for k in set(mine) | set(other) if mine.get(k) != other.get(k))
        if diff:
            findings.append("webapps disagree: %s sees %s" % (url, "; ".join(
                "%s as %s (here %s)" % (k, "/".join(map(str, other.get(k, ("absent",)))),
                                        "/".join(map(str, mine.get(k, ("absent",))))) for k in diff)))

    # -- the opt-in database cross-check (stand-in clusters only)
    db = data.get("db")
    ages = {}
    if db is not None:
        findings += _cross_check(db, shard_rows, primaries, float(opts.get("heartbeat_threshold") or 120), ages)

    node_rows = []
    for n in names:
        h = health.get(n) or {}
        sup = (support or {}).get(n, {})
        node_rows.append({
            "node": n, "kind": kind_of(role(n)), "role": role(n), "gateway_status": gateway(n),
            "status": gateway(n) if reachable(n) else ("unreachable" if h else "unlisted"),
            "reachable": reachable(n), "shards": sorted(owned.get(n, [])), "socket_conn": sup.get("socket_conn"),
            "version": sup.get("version"), "error": error_text(h.get("error")) if h.get("error") else None,
            "heartbeat_age": ages.get(n)})
    return {
        "healthy": not findings, "findings": findings, "nodes": node_rows, "shards": shard_rows,
        "primary_master": primaries[0] if len(primaries) == 1 else None, "spares": spares, "mode": mode,
        "shard_count": len(shard_ids) if shard_ids else count, "owners_inferred": inferred,
        "settings": dict((k, settings.get(k)) for k in ("heartbeat_interval", "unhealthy_interval") if k in settings),
    }


def _cross_check(db, shard_rows, primaries, threshold, ages):
    """Findings of the stand-in's database against the API's view; fills ``ages`` {node: heartbeat age}."""
    out = []
    for n in db.get("nodes") or []:
        age = n.get("heartbeat_age")
        ages[n["node_id"]] = None if age is None else round(float(age), 3)
        if age is None or float(age) > threshold:
            out.append("%s %s's last database heartbeat is %s old (threshold %ss)" % (
                n.get("kind"), n["node_id"], _age(age), ("%d" % threshold) if threshold == int(threshold)
                else ("%g" % threshold)))
    api_owner = dict((r["shard"], r["owner"]) for r in shard_rows)
    for s in db.get("shards") or []:
        if s["shard"] in api_owner and s["owner"] != api_owner[s["shard"]]:
            out.append("shard %d: the database names %s as its owner, the API %s" % (
                s["shard"], s["owner"] or "no owner", api_owner[s["shard"]] or "no owner"))
    lease = db.get("lease") or {}
    if lease.get("expired") or not lease.get("holder"):
        out.append("the database's master lease is free or expired (last holder %s, epoch %s)" % (
            lease.get("holder") or "none", lease.get("epoch")))
    elif len(primaries) == 1 and lease.get("holder") != primaries[0]:
        out.append("the database's master lease names %s (epoch %s) but the API's primary master is %s" % (
            lease["holder"], lease.get("epoch"), primaries[0]))
    return out


def _age(seconds):
    if seconds is None:
        return "never"
    seconds = float(seconds)
    return "%.1fs" % seconds if seconds < 120 else "%dm%02ds" % (int(seconds) // 60, int(seconds) % 60)


def table_lines(report):
    lines = render_table(["NODE", "ROLE", "STATUS", "SHARDS", "SOCKET"],
                         [[r["node"], r["role"], r["status"], ",".join(map(str, r["shards"])) or None,
                           r["socket_conn"]] for r in report["nodes"]])
    lines.append("")
    lines += render_table(["SHARD", "OWNER", "OWNER STATUS"],
                          [[s["shard"], ",".join(s["owners"]) or None, s["owner_status"]] for s in report["shards"]])
    lines.append("")
    lines.append("mode: %s, spares: %s" % ({"ha": "HA (1 shard)", "multiconnect": "multiconnect (%s shards)" % (
        report.get("shard_count"))}.get(report["mode"], "unknown"), ", ".join(report["spares"]) or "none"))
    lines.append("healthy: %s" % ("yes" if report["healthy"] else "NO"))
    lines += ["- %s" % f for f in report["findings"]]
    return lines
