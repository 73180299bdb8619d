"""Planned switchover: move the shard to a spare with playbooks/switchover.yml (the shard_table
module) while a client sends messages; API errors, the longest gap between acknowledged
messages, the longest wait for one acknowledgement (``max_request_s``; the goal is
<= 0.5 s: the old owner releases the shard, so the new one needs no fence wait), and the
ownerless time the module reports."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from .cluster import Testbed, playbook
from .common import distribution, pyplot, results_dir, save_figure, say


def _longest_gap(requests: list[dict[str, Any]], start: float, end: float) -> float:
    """Longest time without an acknowledged message inside [start, end]."""
    acks = sorted(r["t"] + r["dt"] for r in requests if r["ok"] and start <= r["t"] <= end)
    points = [start, *acks, end]
    return max(b - a for a, b in zip(points, points[1:], strict=False))


def one_round(bed: Testbed, k: int, workdir: Path) -> dict[str, Any]:
    apis = bed.apis()
    owners = bed.owners(apis)
    shard, node = sorted(owners.items())[0]
    spares = sorted(n for n, info in bed.support(apis).items()
                    if info.get("role") == "coreapp" and not info.get("shards"))
    if not spares:
        raise RuntimeError("no spare coreapp to move the shard to")
    target = spares[0]
    stop = workdir / f"round{k:02d}.stop"
    stop.unlink(missing_ok=True)
    with bed.drill_client(workdir / f"round{k:02d}.record.json", ["--duration", "300", "--stop-file", str(stop)],
                          timeout=240) as finish:
        time.sleep(3)
        started = time.time()
        move = playbook("switchover", {"shard": shard, "to": target})
        ended = time.time()
        time.sleep(3)
        stop.touch()
        record = finish()
    window = [r for r in record["requests"] if started <= r["t"] <= ended]
    ownerless = re.search(r"ownerless for ([0-9.]+) s", move.output)
    after = bed.owners(bed.apis()).get(shard)
    result = {
        "round": k, "shard": shard, "from": node, "to": target, "owner_after": after,
        "playbook_s": move.seconds, "module_ownerless_s": float(ownerless.group(1)) if ownerless else None,
        "requests_during": len(window), "failed_during": sum(1 for r in window if not r["ok"]),
        "longest_gap_s": round(_longest_gap(record["requests"], started, ended), 3),
        "max_request_s": round(max((r["dt"] for r in window), default=0.0), 3),
        "lost": len(record.get("lost") or []),
    }
    say(f"switchover {k}: {node} -> {target} in {move.seconds} s, ownerless {result['module_ownerless_s']} s, "
        f"{result['failed_during']}/{len(window)} failed, longest gap {result['longest_gap_s']} s")
    return result


def run(bed: Testbed, rounds: int) -> dict[str, Any]:
    workdir = results_dir() / "switchover"
    workdir.mkdir(exist_ok=True)
    results = [one_round(bed, k + 1, workdir) for k in range(rounds)]
    problems = [f"round {r['round']}: {what}" for r in results for what, bad in (
        (f"the shard ended on {r['owner_after']}, not {r['to']}", r["owner_after"] != r["to"]),
        (f"{r['lost']} acknowledged messages lost", r["lost"])) if bad]
    return {"rounds": results, "problems": problems,
            "failed_requests": sum(r["failed_during"] for r in results),
            "requests": sum(r["requests_during"] for r in results),
            "ownerless_s": distribution([r["module_ownerless_s"] or 0.0 for r in results], 3),
            "longest_gap_s": distribution([r["longest_gap_s"] for r in results], 3),
            "max_request_s": distribution([r["max_request_s"] for r in results], 3),
            "playbook_s": distribution([r["playbook_s"] for r in results], 2)}


def plot(res: dict[str, Any], name: str = "switchover") -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 3.8))
    rounds = [r["round"] for r in res["rounds"]]
    ax.bar([x - 0.2 for x in rounds], [r["module_ownerless_s"] or 0 for r in res["rounds"]], 0.4,
           label="ownerless (module)")
    ax.bar([x + 0.2 for x in rounds], [r["longest_gap_s"] for r in res["rounds"]], 0.4,
           label="longest gap between acks (client)")
    ax.set_xlabel("round")
    ax.set_ylabel("seconds")
    ax.set_title(f"planned switchover: {res['failed_requests']} of {res['requests']} requests failed during moves")
    ax.set_ylim(0, 1.4 * max([r["longest_gap_s"] for r in res["rounds"]] + [1.0]))
    ax.legend(loc="upper right", fontsize=8)
    return save_figure(fig, name)
