"""Failover downtime: rounds of SIGKILL of the shard owner's machine on the testbed, and rounds
that cut the owner off from the database only (its machine drops the packets to and from it).

Each round a client sends messages through both webapps without pause (the drill's client,
playbooks/files/drill_probe.py) while the benchmark kills the whole machine of the coreapp that
owns the shard. Downtime is what the client saw, per shard (the shard of each request's
recipient, with the shard count from ``GET /v1/account/shards``): from the first failed request
of a shard after the kill to the end of that shard's first successful one after it; a round's
``downtime_s`` is the worst shard's, so the other shards' successes do not hide the killed
owner's shard. The killed machine is started again and the cluster must be whole before the
next round.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .cluster import DB_ADDRESS, Testbed
from .common import cdf_points, distribution, pyplot, results_dir, save_figure, say

WARMUP_S = 3.0
STOP_AFTER_RECOVERY_S = 4.0


def one_round(bed: Testbed, k: int, workdir: Path, bound: float, fault: str = "kill") -> dict[str, Any]:
    """Kill the owner's machine once (``fault="kill"``), or cut it off from the database
    (``"db_cut"``, healed after the round); the drill's figures for this round."""
    owners = bed.owners(bed.apis())
    if not owners:
        raise RuntimeError("no shard has an owner before the round")
    shard, node = sorted(owners.items())[0]
    shards = bed.shard_count(bed.apis())
    host = bed.host_of(node)
    cap = 2 * bound + 40
    with bed.drill_client(workdir / f"round{k:02d}.record.json",
                          ["--duration", str(cap), "--stop-after-recovery", str(STOP_AFTER_RECOVERY_S)],
                          timeout=cap + 180) as finish:
        time.sleep(WARMUP_S)
        heal = None
        if fault == "kill":
            fault_at = bed.kill_machine(host)
        else:
            fault_at = time.time()
            heal = bed.cut(host, [DB_ADDRESS])
        try:
            record = finish()
        finally:
            if heal:
                heal()
    report = bed.probe.analyze_record(record, fault_at, bound)
    if fault == "kill":
        bed.start_machine(host)
    back = bed.wait_healthy()
    result = {
        "round": k, "fault": fault, "killed": host, "shard": shard, "shards": shards, "previous_owner": node,
        "new_owner": (report["owner_changes"].get(str(shard)) or {}).get("owner"),
        "downtime_s": report["downtime_s"], "recovered": report["recovered"], "requests": report["requests"],
        "downtime_by_shard_s": report.get("downtime_by_shard_s", {}), "worst_shard": report.get("worst_shard"),
        "failed": report["failed"], "lost": len(report["lost"]), "double_owner_moments": len(report["double_owner_moments"]),
        "owner_seen_moved_after_s": (report["owner_changes"].get(str(shard)) or {}).get("after_fault"),
        "max_poll_gap_s": report["max_poll_gap_s"], "restore_s": back,
    }
    say(f"round {k}: {'killed' if fault == 'kill' else 'cut from the database:'} {host} (owner of shard {shard} of {shards}), downtime {result['downtime_s']} s "
        f"(per shard {result['downtime_by_shard_s']}), {result['requests']} requests, "
        f"{result['failed']} failed, {result['lost']} lost; whole again after {back} s")
    return result


def run(bed: Testbed, rounds: int, label: str, fence: float, fault: str = "kill") -> dict[str, Any]:
    """``rounds`` kills with the timers the cluster runs now; downtime distribution and checks.
    ``fence``: the coreapps' WA_COREAPP_FENCE_SECONDS (a new owner waits it out first)."""
    apis = bed.apis()
    _status, body, _ = apis.call("GET", "/v1/settings/application")
    app = (body.get("settings") or {}).get("application", {})
    hb, unhealthy = float(app["heartbeat_interval"]), float(app["unhealthy_interval"])
    workdir = results_dir() / f"failover-{label}"
    workdir.mkdir(exist_ok=True)
    say(f"failover ({label}): {rounds} rounds, heartbeat {hb} s, unhealthy {unhealthy} s")
    bound = unhealthy + hb
    goal = unhealthy + 1  # what the failover issue asks: unhealthy_interval + 1 s, p99
    results = [one_round(bed, k + 1, workdir, bound, fault) for k in range(rounds)]
    downs = [r["downtime_s"] for r in results if r["downtime_s"] is not None]
    problems = [f"round {r['round']}: {what}" for r in results for what, bad in (
        ("no recovery", not r["recovered"]), (f"{r['lost']} acknowledged messages lost", r["lost"]),
        (f"{r['double_owner_moments']} moments with two owners", r["double_owner_moments"]),
        ("no spare took over", r["new_owner"] is None and r["downtime_s"])) if bad]
    return {"label": label, "fault": fault, "heartbeat_interval_s": hb, "unhealthy_interval_s": unhealthy,
            "bound_s": bound, "goal_s": goal, "within_goal": sum(1 for d in downs if d <= goal),
            "rounds": results, "downtime_s": distribution(downs, 3),
            "within_bound": sum(1 for d in downs if d <= bound), "fence_s": fence,
            "within_bound_plus_fence": sum(1 for d in downs if d <= bound + fence), "requests": sum(r["requests"] for r in results),
            "failed": sum(r["failed"] for r in results), "lost": sum(r["lost"] for r in results),
            "problems": problems}


def plot(results: list[dict[str, Any]], name: str = "failover") -> Path:
    """CDF of the downtime per timer set, each with its bound; and the rounds in order."""
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [3, 2]})
    for i, res in enumerate(results):
        downs = [r["downtime_s"] for r in res["rounds"] if r["downtime_s"] is not None]
        if not downs:
            continue
        color = plt.cm.tab10(i)
        x, y = cdf_points(downs)
        d = res["downtime_s"]
        ax1.step(x, y, where="post", color=color, label=f"{res['label']}: p50 {d['p50']} s, p99 {d['p99']} s (n={d['n']})")
        ax1.axvline(res["bound_s"], color=color, linestyle="--", linewidth=1)
        goal = res.get("goal_s", res["bound_s"])
        ax1.axvline(goal, color=color, linestyle=":", linewidth=1)
        ax1.text(res["bound_s"], 0.30 + 0.12 * i, f" unhealthy+heartbeat {res['bound_s']:g} s\n (dotted, unhealthy+1: {goal:g} s)",
                 color=color, fontsize=8)
        ax2.plot([r["round"] for r in res["rounds"]], [r["downtime_s"] for r in res["rounds"]], "o-", color=color,
                 label=res["label"])
        ax2.axhline(res["bound_s"], color=color, linestyle="--", linewidth=1)
    ax1.set_xlabel("client-seen downtime (s)")
    ax1.set_ylabel("fraction of rounds")
    ax1.set_ylim(0, 1.02)
    ax1.legend(loc="lower right", fontsize=8)
    ax1.set_title("failover downtime: SIGKILL of the owner's machine; owner cut off from the DB")
    ax2.set_xlabel("round")
    ax2.set_ylabel("downtime (s)")
    ax2.set_title("rounds in order (dashed: unhealthy + heartbeat)")
    return save_figure(fig, name)
