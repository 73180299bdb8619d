"""Run the benchmarks and write JSON and PNG files into the results folder.

    python -m bench                 # everything, 20 failover rounds per timer set (make bench)
    python -m bench --quick         # one round of each, small sizes (make bench-quick, in make test)
    python -m bench --only deploy,failover --rounds 5

Parts: deploy, health, switchover, failover (testbed timers: heartbeat 2 s, unhealthy 10 s),
failover-default (product defaults: heartbeat 5 s, unhealthy 30 s), health-loopback (50
stand-in nodes on loopback), gc (10 million messages on MariaDB and on PostgreSQL), faults (the
fault campaign, one round of each kind: --quick only; the full campaign is ``python -m
bench.faults``, make chaos). The testbed parts share one testbed, which is removed at the end
unless --keep.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from . import deploy, failover, switchover
from .cluster import DEFAULT_TIMERS, INVENTORY, Testbed, playbook
from .common import results_dir, say, write_json

TESTBED_PARTS = ["deploy", "health", "switchover", "failover", "failover-db", "failover-default", "faults"]
LOCAL_PARTS = ["health-loopback", "gc"]
ALL_PARTS = TESTBED_PARTS + LOCAL_PARTS
FULL_PARTS = [p for p in ALL_PARTS if p != "faults"]  # the full campaign has its own run (make chaos)
# failover-db's cut is the campaign's partition_owner_database (one Testbed.cut): quick runs it there.
QUICK_PARTS = ["deploy", "health", "switchover", "failover", "faults", "health-loopback", "gc"]


def run_testbed(parts: list[str], args: argparse.Namespace, summary: dict[str, Any]) -> None:
    bed = Testbed()
    try:
        summary["testbed_up_s"] = bed.up()
        # deploy always runs first: it is what brings the cluster up on the fresh machines.
        res = deploy.run(bed, quick=args.quick)
        write_json("deploy", res)
        deploy.plot(res)
        summary["deploy"] = res
        def part(name: str, fn: Any) -> None:
            """One part; a failure is recorded and the next part still runs on the testbed."""
            if name not in parts:
                return
            try:
                fn()
            except Exception as exc:  # any failure of a part is a finding to report
                say(f"{name} FAILED: {exc}")
                summary.setdefault("failed_parts", {})[name] = str(exc)[-2000:]

        def health_part() -> None:
            from . import health

            summary["health_testbed"] = health.testbed(INVENTORY, samples=args.health_samples,
                                                       e2e_runs=3 if args.quick else 10)

        def switchover_part() -> None:
            res = switchover.run(bed, args.switchover_rounds)
            write_json("switchover", res)
            switchover.plot(res)
            summary["switchover"] = res

        fo: list[dict[str, Any]] = []

        def failover_part() -> None:
            fo.append(failover.run(bed, args.rounds, "tuned (heartbeat 2 s, unhealthy 10 s)", fence=3))

        def failover_db_part() -> None:
            fo.append(failover.run(bed, args.rounds, "tuned, owner cut off from the database", fence=3,
                                   fault="db_cut"))

        def failover_default_part() -> None:
            say("failover-default: re-deploying with the product's default timers")
            redeploy = playbook("site", DEFAULT_TIMERS)
            bed.wait_healthy()
            res = failover.run(bed, args.rounds, "default (heartbeat 5 s, unhealthy 30 s)", fence=5)
            res["redeploy_s"] = redeploy.seconds
            fo.append(res)

        def faults_part() -> None:
            from . import faults
            from .nemesis import KINDS

            res = faults.run(bed, len(KINDS), args.seed, list(KINDS), name="faults")
            summary["faults"] = {k: v for k, v in res.items() if k != "round_records"}

        part("health", health_part)
        part("switchover", switchover_part)
        part("failover", failover_part)
        part("failover-db", failover_db_part)
        part("failover-default", failover_default_part)
        part("faults", faults_part)
        if fo:
            write_json("failover", {"timer_sets": fo})
            failover.plot(fo)
            summary["failover"] = fo
    finally:
        if args.keep:
            say("testbed kept (--keep): python testbed/testbed.py down testbed removes it")
        else:
            bed.down()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one round of each, small sizes (a check that it works)")
    ap.add_argument("--only", help=f"comma-separated parts: {', '.join(ALL_PARTS)}")
    ap.add_argument("--rounds", type=int, help="failover rounds per timer set (default 20; quick 1)")
    ap.add_argument("--keep", action="store_true", help="leave the testbed running")
    ap.add_argument("--seed", type=int, default=int(time.time()) % 100_000,
                    help="the fault schedule's seed (default: from the clock; in summary.json)")
    args = ap.parse_args(argv)
    parts = args.only.split(",") if args.only else (QUICK_PARTS if args.quick else FULL_PARTS)
    unknown = sorted(set(parts) - set(ALL_PARTS))
    if unknown:
        ap.error(f"unknown part(s) {', '.join(unknown)}; choose from {', '.join(ALL_PARTS)}")
    args.rounds = args.rounds or (1 if args.quick else 20)
    args.switchover_rounds = 1 if args.quick else 10
    args.health_samples = 20 if args.quick else 200
    started = time.time()
    summary: dict[str, Any] = {"quick": args.quick, "parts": parts, "rounds": args.rounds, "seed": args.seed}
    say(f"results go to {results_dir()}; parts: {', '.join(parts)}")
    if set(parts) & set(TESTBED_PARTS):
        run_testbed(parts, args, summary)
    if "health-loopback" in parts:
        from . import health

        res = health.loopback(nodes=12 if args.quick else 50, samples=args.health_samples)
        summary["health_loopback"] = res
    if "health" in parts or "health-loopback" in parts:
        from . import health

        found = {summary[k]["label"]: summary[k] for k in ("health_testbed", "health_loopback") if k in summary}
        write_json("health", {"results": found})
        health.plot(found)
    if "gc" in parts:
        from . import gc

        res = {engine: gc.run(engine, rows=gc.QUICK_ROWS if args.quick else gc.FULL_ROWS,
                              idle_seconds=gc.QUICK_IDLE_SECONDS if args.quick else gc.IDLE_SECONDS)
               for engine in ("mysql", "postgresql")}
        write_json("gc", res)
        gc.plot(res)
        summary["gc"] = res
    summary["seconds"] = round(time.time() - started, 1)
    problems = [p for key in ("deploy", "switchover") for p in (summary.get(key) or {}).get("problems", [])]
    problems += [p for res in summary.get("failover", []) for p in res["problems"]]
    problems += (summary.get("faults") or {}).get("problems", [])
    problems += [f"{name} failed: {why.splitlines()[-1] if why else ''}" for name, why in summary.get("failed_parts", {}).items()]
    summary["problems"] = problems
    write_json("summary", summary)
    print(json.dumps({"seconds": summary["seconds"], "problems": problems}, indent=2))
    if problems:
        say("the benchmark found problems: " + "; ".join(problems))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
