"""The fault campaign: rounds of faults from bench/nemesis.py on the HA testbed while the drill
client sends messages through both webapps, each round judged by bench/checker.py from the
client's record and the database's rows alone.

    python -m bench.faults --rounds 200 --seed 7      # make chaos: docs/bench/faults.json + .png
    python -m bench.faults --per-kind 1               # one round of each kind (in make test)
    python -m bench.faults --replay 7 --only kill_owner,double --rounds 10

A round: the client starts (every body carries the round's tag), 3 s of normal traffic, the
fault starts and holds for a time drawn from the seeded schedule, the fault heals, the bench
waits until the cluster is whole and every shard accepts a message, 2 s more traffic, then the
client stops and the checker reads the round's rows straight from the database server. A
failing round keeps the client's record, the rows and every node's container logs in its own
folder. The same seed gives the same schedule of kinds, targets and hold times.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import zlib
from pathlib import Path
from typing import Any

from . import checker
from .cluster import NODE_HOSTS, LoginFailed, Testbed, machine, playbook, sh
from .common import distribution, pyplot, results_dir, save_figure, say, write_json
from .nemesis import KINDS, Nemesis, Timers

WARMUP_S = 3.0
AFTER_S = 2.0
DB_NAME = "waent"  # the cluster database (no WA_DB_NAME_PREFIX on the testbed)
ROWS_SQL = ("SELECT id, shard_id, body, owner, epoch, UNIX_TIMESTAMP(created_at) FROM wa_messages "
            "WHERE body LIKE 'drill {tag} %'")


def schedule(seed: int, rounds: int, kinds: list[str]) -> list[str]:
    """The kinds of ``rounds`` rounds: every kind in turn, in an order shuffled by ``seed``, so a
    campaign of N x len(kinds) rounds covers each kind N times."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < rounds:
        batch = kinds[:]
        rng.shuffle(batch)
        out += batch
    return out[:rounds]


def stored_rows(tag: str) -> list[checker.StoredRow]:
    """The round's rows, read on the database machine with the server's own client (as root over
    its socket): nothing of the cluster's code is in the path."""
    proc = sh(["docker", "exec", machine("db"), "mariadb", "-N", "-B", "--raw", DB_NAME, "-e",
               ROWS_SQL.format(tag=tag)], timeout=120)
    return checker.parse_rows(proc.stdout.splitlines())


def wait_serving(bed: Testbed, shards: int, timeout: float) -> float:
    """Until one message to each shard is accepted (the bench's own, untagged: not the client's);
    the seconds it took."""
    t0 = time.time()
    apis = None
    # One recipient per shard, by the cluster's routing rule: crc32(recipient) % shards.
    recipient: dict[int, str] = {}
    for k in range(10_000):
        recipient.setdefault(zlib.crc32(f"1666{k:07d}".encode()) % shards, f"1666{k:07d}")
    pending = set(range(shards))
    while pending and time.time() - t0 < timeout:
        try:
            apis = apis or bed.apis()
        except LoginFailed:  # a webapp not answering the login yet
            time.sleep(0.5)
            continue
        for shard in sorted(pending):
            body = {"to": recipient[shard], "type": "text", "text": {"body": "chaos probe"}}
            status, _body, _ = apis.call("POST", "/v1/messages", body, timeout=3)
            if status in (200, 201):
                pending.discard(shard)
        if pending:
            time.sleep(0.3)
    return round(time.time() - t0, 2)


def keep_logs(folder: Path, since: float) -> None:
    """Every node container's log since ``since`` into ``folder`` (a failing round keeps them)."""
    folder.mkdir(parents=True, exist_ok=True)
    for host in NODE_HOSTS:
        names = sh(["docker", "exec", machine(host), "docker", "ps", "-a", "--format", "{{.Names}}"],
                   check=False).stdout.split()
        for name in names:
            log = sh(["docker", "exec", machine(host), "docker", "logs", "--since", str(int(since) - 5), name],
                     check=False)
            (folder / f"{host}-{name}.log").write_text(log.stdout + log.stderr)


def one_round(bed: Testbed, nemesis: Nemesis, k: int, kind: str, workdir: Path, timers: Timers,
              recovery_bound: float) -> dict[str, Any]:
    """One round; a round that cannot finish (the cluster never whole again, a fault that
    cannot be started) is a finding too: its fault is healed, its logs kept, and it says why."""
    tag = f"c{k:03d}{nemesis.rng.getrandbits(24):06x}"
    record_path = workdir / f"round{k:03d}.record.json"
    stop = workdir / f"round{k:03d}.stop"
    stop.unlink(missing_ok=True)
    started = time.time()
    active = None
    try:
        with bed.drill_client(record_path, ["--duration", "600", "--stop-file", str(stop), "--tag", tag,
                                            "--no-read-back"], timeout=120) as finish:
            time.sleep(WARMUP_S)
            fault_at = time.time()
            active = nemesis.start(kind)
            time.sleep(active.hold_s)
            healed_at = time.time()
            healing, active = active, None
            Nemesis.heal(healing)
            whole_s = bed.wait_healthy(timeout=300)
            serving_s = wait_serving(bed, bed.shard_count(bed.apis()) or 1, recovery_bound)
            time.sleep(AFTER_S)
            stop.touch()
            record = finish()
    except Exception as exc:  # the campaign goes on; the round reports what stopped it
        if active is not None:
            Nemesis.heal(active)
        folder = workdir / f"round{k:03d}-failed"
        keep_logs(folder, started)
        (folder / "error.txt").write_text(str(exc))
        say(f"round {k} {kind} could not finish: {str(exc)[-500:]}")
        return {"round": k, "kind": kind, "tag": tag, "error": str(exc)[-2000:], "downtime_s": None,
                **dict.fromkeys(("requests", "failed", "lost", "duplicated", "unexpected", "dual_owner_intervals",
                                 "stuck_shards", "client_retry_duplicates"), 0),
                "false_failover": False, "problems": [f"the round could not finish: {str(exc).splitlines()[0][:300]}"]}
    healing_targets = healing.targets
    rows = stored_rows(tag)
    verdict = checker.check_round(record, rows, fault_at, healed_at, recovery_bound, KINDS[kind].failover_allowed)
    found = checker.problems(verdict)
    result = {"round": k, "kind": kind, "tag": tag, "targets": healing_targets, "hold_s": healing.hold_s,
              **({"detail": healing.detail} if healing.detail else {}), "fault_at": round(fault_at, 3),
              "healed_at": round(healed_at, 3), "whole_after_heal_s": whole_s, "serving_wait_s": serving_s,
              **{key: verdict[key] for key in ("requests", "acknowledged", "failed", "stored", "downtime_s",
                                               "downtime_by_shard_s", "recovery_after_heal_s", "failovers")},
              **{key: len(verdict[key]) for key in ("lost", "duplicated", "unexpected", "dual_owner_intervals",
                                                     "stuck_shards", "client_retry_duplicates")},
              "false_failover": verdict["false_failover"], "problems": found}
    if found:
        folder = workdir / f"round{k:03d}-failed"
        keep_logs(folder, started)
        (folder / "verdict.json").write_text(json.dumps(verdict, indent=2))
        (folder / "rows.tsv").write_text("\n".join("\t".join(map(str, r.__dict__.values())) for r in rows))
        record_path.replace(folder / record_path.name)
    else:
        record_path.unlink(missing_ok=True)
    stop.unlink(missing_ok=True)
    say(f"round {k} {kind} on {','.join(healing_targets)} for {healing.hold_s} s: downtime {verdict['downtime_s']} s, "
        f"{verdict['failed']}/{verdict['requests']} failed, {len(rows)} rows; "
        f"{'; '.join(found) if found else 'ok'}")
    return result


def summarize(results: list[dict[str, Any]], seed: int, timers: Timers, recovery_bound: float) -> dict[str, Any]:
    """faults.json: per fault kind the counts the checker found and the downtime distribution."""
    kinds: dict[str, Any] = {}
    for kind in sorted({r["kind"] for r in results}):
        rs = [r for r in results if r["kind"] == kind]
        downs = [r["downtime_s"] for r in rs if r["downtime_s"] is not None]
        d = distribution(downs, 3)
        # A round that could not finish has no downtime figure: it is counted and listed instead.
        kinds[kind] = {"what": KINDS[kind].what, "rounds": len(rs),
                       **{key: sum(r[key] for r in rs) for key in ("lost", "duplicated", "unexpected",
                                                                    "dual_owner_intervals", "stuck_shards")},
                       "false_failovers": sum(1 for r in rs if r["false_failover"]),
                       "client_retry_duplicates": sum(r["client_retry_duplicates"] for r in rs),
                       "downtime_p50": d.get("p50"), "downtime_p99": d.get("p99"), "downtime_max": d.get("max"),
                       "unrecovered_rounds": sum(1 for r in rs if r["downtime_s"] is None),
                       "unfinished_rounds": sum(1 for r in rs if "error" in r),
                       "requests": sum(r["requests"] for r in rs), "failed": sum(r["failed"] for r in rs)}
    problems = [f"round {r['round']} ({r['kind']}): {p}" for r in results for p in r["problems"]]
    return {"rounds": len(results), "seed": seed, "fault_kinds": kinds,
            "timers": {"heartbeat_interval_s": timers.heartbeat, "unhealthy_interval_s": timers.unhealthy,
                       "lease_renew_deadline_s": timers.lease_renew_deadline},
            "recovery_bound_s": recovery_bound, "problems": problems, "round_records": results}


def plot(res: dict[str, Any], name: str = "faults") -> Path:
    """Downtime per fault kind: one dot per round, the p50 and p99 marked."""
    plt = pyplot()
    kinds = list(res["fault_kinds"])
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(kinds) + 1.6))
    for i, kind in enumerate(kinds):
        downs = [r["downtime_s"] for r in res["round_records"] if r["kind"] == kind and r["downtime_s"] is not None]
        bad = any(r["problems"] for r in res["round_records"] if r["kind"] == kind)
        ax.scatter(downs, [i] * len(downs), s=14, alpha=0.6, color="tab:red" if bad else "tab:blue")
        k = res["fault_kinds"][kind]
        if k["downtime_p99"] is not None:
            ax.plot([k["downtime_p50"]], [i], "k|", markersize=14)
            ax.plot([k["downtime_p99"]], [i], "r|", markersize=14)
    ax.set_yticks(range(len(kinds)))
    ax.set_yticklabels([f"{k} ({res['fault_kinds'][k]['rounds']})" for k in kinds], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(res["timers"]["unhealthy_interval_s"] + 1, color="gray", linestyle=":", linewidth=1)
    ax.set_xlabel("client-seen downtime of the worst shard (s); black | p50, red | p99; dotted: unhealthy + 1 s")
    bad_rounds = sum(1 for r in res["round_records"] if r["problems"])
    ax.set_title(f"fault campaign: {res['rounds']} rounds, seed {res['seed']}, {bad_rounds} rounds with findings")
    return save_figure(fig, name)


def run(bed: Testbed, rounds: int, seed: int, kinds: list[str], name: str = "faults") -> dict[str, Any]:
    """``rounds`` rounds over ``kinds`` on the running, healthy testbed; writes NAME.json/png."""
    apis = bed.apis()
    _status, body, _ = apis.call("GET", "/v1/settings/application")
    app = (body.get("settings") or {}).get("application", {})
    timers = Timers(float(app["heartbeat_interval"]), float(app["unhealthy_interval"]))
    # After a heal every shard must serve again within: a failover (unhealthy + heartbeat), the
    # new owner's fence wait (at most unhealthy) and the nodes' reconnect to a database that
    # was away (one DB heartbeat); with the testbed's timers 2 x 10 + 2 + 5 = 27 s.
    recovery_bound = 2 * timers.unhealthy + timers.heartbeat + 5
    workdir = results_dir() / name
    workdir.mkdir(exist_ok=True)
    rng = random.Random(seed)
    nemesis = Nemesis(bed, timers, rng)
    plan = schedule(seed, rounds, kinds)
    say(f"fault campaign: {rounds} rounds over {len(set(plan))} kinds, seed {seed}, heartbeat {timers.heartbeat} s, "
        f"unhealthy {timers.unhealthy} s, recovery bound {recovery_bound} s")
    results: list[dict[str, Any]] = []
    t0 = time.time()
    try:
        for k, kind in enumerate(plan, 1):
            results.append(one_round(bed, nemesis, k, kind, workdir, timers, recovery_bound))
            if "error" in results[-1]:
                bed.wait_healthy(timeout=300)  # the next round starts on a whole cluster, or the campaign stops
            left = (time.time() - t0) / k * (rounds - k)
            if k % 5 == 0 and k < rounds:
                say(f"{k}/{rounds} rounds done, about {left / 60:.0f} min left")
    finally:
        # Also when the campaign stops early: the rounds run so far are written.
        res = summarize(results, seed, timers, recovery_bound)
        res["planned_rounds"] = rounds
        write_json(name, res)
        if results:
            plot(res, name)
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.faults", description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, help="rounds in all (default 200)")
    ap.add_argument("--per-kind", type=int, help="rounds of each kind instead of --rounds")
    ap.add_argument("--seed", type=int, help="the schedule's seed (default: from the clock; printed)")
    ap.add_argument("--only", help=f"comma-separated kinds: {', '.join(KINDS)}")
    ap.add_argument("--keep", action="store_true", help="leave the testbed running")
    ap.add_argument("--reuse", action="store_true", help="use the running testbed as it is (no up, no deploy)")
    args = ap.parse_args(argv)
    kinds = args.only.split(",") if args.only else list(KINDS)
    unknown = sorted(set(kinds) - set(KINDS))
    if unknown:
        ap.error(f"unknown kind(s) {', '.join(unknown)}; choose from {', '.join(KINDS)}")
    rounds = args.per_kind * len(kinds) if args.per_kind else (args.rounds or 200)
    seed = args.seed if args.seed is not None else int(time.time()) % 100_000
    bed = Testbed()
    try:
        if not args.reuse:
            bed.up()
            say("deploy: site.yml on the fresh machines")
            playbook("site")
        bed.wait_healthy()
        res = run(bed, rounds, seed, kinds)
    finally:
        if not (args.keep or args.reuse):
            bed.down()
    print(json.dumps({"rounds": res["rounds"], "seed": seed, "problems": res["problems"]}, indent=2))
    return 1 if res["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
