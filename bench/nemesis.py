"""The fault campaign's nemesis: faults on the testbed's machines, each with a start and a heal.

Partitions are packet filter rules inside a machine (both directions dropped on one side, as a
cut cable looks to both ends); kills and pauses act on the whole machine (``docker kill`` of the testbed
container; ``docker pause`` of its containers and then of itself: every process of the host
stops at once, as with a power cut or a VM stall); the database stall is SIGSTOP / SIGCONT of the server process (PID 1
of the database machine), its restart a restart of that machine. Targets (the owner of a
shard, the primary master) are chosen from the cluster's API when a fault starts; the checker
never reads that view.

Each fault kind says how long it holds (a range drawn from the round's seeded random source)
and whether a shard may move because of it: a pause shorter than unhealthy_interval -
heartbeat_interval must not cause a failover.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .cluster import ADDRESSES, DB_ADDRESS, NODE_HOSTS, Testbed, machine, sh

NFS_ADDRESS = "172.28.10.6"
MASTERS = [h for h in NODE_HOSTS if h.startswith("master")]
COREAPPS = [h for h in NODE_HOSTS if h.startswith("coreapp")]
WEBAPPS = [h for h in NODE_HOSTS if h.startswith("webapp")]


@dataclass
class Timers:
    """The cluster's timers the fault kinds are sized from (seconds)."""

    heartbeat: float
    unhealthy: float
    lease_renew_deadline: float = 20.0  # the stand-in's default (WA_LEASE_TTL_SECONDS 30 x 2/3)


@dataclass
class Active:
    """A started fault: what it did, so the heal can undo exactly that."""

    kind: str
    targets: list[str]
    hold_s: float
    undo: list[Callable[[], None]] = field(default_factory=list, repr=False)
    detail: dict[str, Any] = field(default_factory=dict)


class Nemesis:
    """Faults on the testbed ``bed``; ``rng`` draws targets and hold times (seeded: replayable)."""

    def __init__(self, bed: Testbed, timers: Timers, rng: random.Random):
        self.bed = bed
        self.timers = timers
        self.rng = rng

    # -- building blocks ------------------------------------------------------------------
    def cut(self, host: str, peers: list[str], active: Active) -> None:
        """Drop every packet between machine ``host`` and each address in ``peers``."""
        active.undo.append(self.bed.cut(host, peers))

    def kill(self, host: str, active: Active) -> None:
        sh(["docker", "kill", machine(host)])
        active.undo.append(lambda: sh(["docker", "start", machine(host)]))

    def pause(self, host: str, active: Active) -> None:
        """Freeze the whole machine: its containers first (the machine's engine puts them in cgroups
        beside the machine's own, so freezing the machine alone would leave them running), then
        the machine itself (its engine, sshd)."""
        inner = sh(["docker", "exec", machine(host), "docker", "ps", "-q"]).stdout.split()
        if inner:
            sh(["docker", "exec", machine(host), "docker", "pause", *inner])
        sh(["docker", "pause", machine(host)])

        def undo() -> None:
            sh(["docker", "unpause", machine(host)])
            if inner:
                sh(["docker", "exec", machine(host), "docker", "unpause", *inner])
        active.undo.append(undo)

    def signal(self, host: str, sig: str, undo_sig: str, active: Active) -> None:
        """Send ``sig`` to the machine's PID 1 (the database server on the database machine)."""
        sh(["docker", "kill", "--signal", sig, machine(host)])
        active.undo.append(lambda: sh(["docker", "kill", "--signal", undo_sig, machine(host)]))

    def restart(self, host: str) -> None:
        sh(["docker", "restart", "-t", "10", machine(host)])

    def stop(self, host: str, active: Active) -> None:
        sh(["docker", "stop", "-t", "5", machine(host)])
        active.undo.append(lambda: sh(["docker", "start", machine(host)]))

    # -- targets ----------------------------------------------------------------------------
    def owner_host(self) -> str:
        """The machine of the coreapp that owns the lowest shard."""
        owners = self.bed.owners(self.bed.apis())
        if not owners:
            raise RuntimeError("no shard has an owner: nothing to aim the fault at")
        return self.bed.host_of(sorted(owners.items())[0][1])

    def primary_host(self) -> str:
        status, body, _ = self.bed.apis().call("GET", "/v1/health", timeout=5)
        health = body.get("health") or {} if status == 200 else {}
        primary = [n for n, h in health.items() if h.get("role") == "primary_master"]
        if not primary:
            raise RuntimeError(f"no primary master in GET /v1/health ({status}): nothing to aim the fault at")
        return self.bed.host_of(primary[0])

    def hold(self, lo: float, hi: float) -> float:
        return round(self.rng.uniform(lo, hi), 2)

    # -- the fault kinds ------------------------------------------------------------------
    def start(self, kind: str) -> Active:
        """Start one fault of ``kind`` (see KINDS) and return what the heal needs."""
        return KINDS[kind].start(self)

    @staticmethod
    def heal(active: Active) -> None:
        """Undo a started fault, last step first."""
        for undo in reversed(active.undo):
            undo()


@dataclass(frozen=True)
class Kind:
    """A fault kind: what it does, and whether a shard may move because of it."""

    name: str
    what: str
    start: Callable[[Nemesis], Active]
    failover_allowed: bool = True


def _others(host: str) -> list[str]:
    return [a for h, a in ADDRESSES.items() if h != host] + [DB_ADDRESS, NFS_ADDRESS]


def _partition_owner_masters(n: Nemesis) -> Active:
    host = n.owner_host()
    a = Active("partition_owner_masters", [host], n.hold(4, 3 * n.timers.unhealthy / 2))
    n.cut(host, [ADDRESSES[m] for m in MASTERS], a)
    return a


def _partition_owner_database(n: Nemesis) -> Active:
    host = n.owner_host()
    a = Active("partition_owner_database", [host], n.hold(4, 3 * n.timers.unhealthy / 2))
    n.cut(host, [DB_ADDRESS], a)
    return a


def _partition_primary_database(n: Nemesis) -> Active:
    host = n.primary_host()
    a = Active("partition_primary_database", [host], n.hold(4, n.timers.lease_renew_deadline + 5))
    n.cut(host, [DB_ADDRESS], a)
    return a


def _partition_primary_all(n: Nemesis) -> Active:
    host = n.primary_host()
    a = Active("partition_primary_all", [host], n.hold(4, n.timers.lease_renew_deadline + 5))
    n.cut(host, _others(host), a)
    return a


def _partition_webapp_database(n: Nemesis) -> Active:
    host = n.rng.choice(WEBAPPS)
    a = Active("partition_webapp_database", [host], n.hold(4, 2 * n.timers.unhealthy))
    n.cut(host, [DB_ADDRESS], a)
    return a


def _partition_halves(n: Nemesis) -> Active:
    """One master, one webapp and one or two coreapps on each side; both reach the database."""
    cores = COREAPPS[:]
    n.rng.shuffle(cores)
    split = n.rng.choice([1, 2])
    side_a = [MASTERS[0], WEBAPPS[0], *cores[:split]]
    side_b = [MASTERS[1], WEBAPPS[1], *cores[split:]]
    if n.rng.random() < 0.5:
        side_a, side_b = side_b, side_a
    a = Active("partition_halves", side_a, n.hold(4, 2 * n.timers.unhealthy), detail={"other_side": side_b})
    for host in side_a:
        n.cut(host, [ADDRESSES[h] for h in side_b], a)
    return a


def _restart_database(n: Nemesis) -> Active:
    a = Active("restart_database", ["db"], 0.0)
    n.restart("db")
    return a


def _stall_database(short: bool) -> Callable[[Nemesis], Active]:
    def start(n: Nemesis) -> Active:
        deadline = n.timers.lease_renew_deadline
        hold = n.hold(2, min(6, deadline / 2)) if short else n.hold(deadline + 1, deadline + 6)
        a = Active(f"stall_database_{'short' if short else 'long'}", ["db"], hold,
                   detail={"lease_renew_deadline_s": deadline})
        n.signal("db", "SIGSTOP", "SIGCONT", a)
        return a
    return start


def _stop_nfs(n: Nemesis) -> Active:
    a = Active("stop_nfs", ["nfs"], n.hold(4, 12))
    n.stop("nfs", a)
    return a


def _kill(target: Callable[[Nemesis], str], name: str) -> Callable[[Nemesis], Active]:
    def start(n: Nemesis) -> Active:
        host = target(n)
        a = Active(name, [host], n.hold(2, n.timers.unhealthy + 4))
        n.kill(host, a)
        return a
    return start


def _pause(target: Callable[[Nemesis], str], name: str, lo: Callable[[Timers], float],
           hi: Callable[[Timers], float]) -> Callable[[Nemesis], Active]:
    def start(n: Nemesis) -> Active:
        host = target(n)
        a = Active(name, [host], n.hold(lo(n.timers), hi(n.timers)))
        n.pause(host, a)
        return a
    return start


def _random_webapp(n: Nemesis) -> str:
    return n.rng.choice(WEBAPPS)


# Two faults at once: one that hits the owner's side, one elsewhere, so they never aim at the
# same machine; the round holds for the longer of the two.
_OWNER_SIDE = ["kill_owner", "pause_owner_long", "partition_owner_database", "partition_owner_masters"]
_ELSEWHERE = ["kill_primary_master", "pause_primary_master", "partition_primary_database", "kill_webapp",
              "pause_webapp", "partition_webapp_database", "stop_nfs", "stall_database_short"]


def _double(n: Nemesis) -> Active:
    first, second = KINDS[n.rng.choice(_OWNER_SIDE)], KINDS[n.rng.choice(_ELSEWHERE)]
    one = first.start(n)
    try:
        two = second.start(n)
    except Exception:
        Nemesis.heal(one)
        raise
    return Active("double", one.targets + two.targets, max(one.hold_s, two.hold_s), one.undo + two.undo,
                  detail={"faults": [one.kind, two.kind], "holds_s": [one.hold_s, two.hold_s]})


KINDS: dict[str, Kind] = {k.name: k for k in [
    Kind("partition_owner_masters", "the shard owner cannot reach the masters (it still reaches the database)",
         _partition_owner_masters),
    Kind("partition_owner_database", "the shard owner cannot reach the database", _partition_owner_database),
    Kind("partition_primary_database", "the primary master cannot reach the database", _partition_primary_database),
    Kind("partition_primary_all", "the primary master reaches no other machine", _partition_primary_all),
    Kind("partition_webapp_database", "a webapp cannot reach the database", _partition_webapp_database),
    Kind("partition_halves", "one half of the nodes cannot reach the other half (both reach the database)",
         _partition_halves),
    Kind("restart_database", "the database server restarts", _restart_database),
    Kind("stall_database_short", "the database server is stopped (SIGSTOP) for less than the lease renew deadline",
         _stall_database(True)),
    Kind("stall_database_long", "the database server is stopped (SIGSTOP) for longer than the lease renew deadline",
         _stall_database(False)),
    Kind("stop_nfs", "the NFS server stops", _stop_nfs),
    Kind("kill_owner", "the shard owner's machine is killed", _kill(lambda n: n.owner_host(), "kill_owner")),
    Kind("kill_primary_master", "the primary master's machine is killed", _kill(lambda n: n.primary_host(), "kill_primary_master")),
    Kind("kill_webapp", "a webapp's machine is killed", _kill(_random_webapp, "kill_webapp")),
    Kind("pause_owner_short", "the shard owner's machine stalls for less than unhealthy - heartbeat",
         _pause(lambda n: n.owner_host(), "pause_owner_short", lambda t: 1.0, lambda t: t.unhealthy - t.heartbeat - 1.0),
         failover_allowed=False),
    Kind("pause_owner_long", "the shard owner's machine stalls for longer than unhealthy_interval",
         _pause(lambda n: n.owner_host(), "pause_owner_long", lambda t: t.unhealthy + 2, lambda t: t.unhealthy + 8)),
    Kind("pause_primary_master", "the primary master's machine stalls",
         _pause(lambda n: n.primary_host(), "pause_primary_master", lambda t: 2.0, lambda t: t.lease_renew_deadline + 5)),
    Kind("pause_webapp", "a webapp's machine stalls", _pause(_random_webapp, "pause_webapp", lambda t: 2.0,
                                                            lambda t: 2 * t.unhealthy)),
    Kind("double", "two faults at once: one on the owner's side, one elsewhere", _double),
]}
