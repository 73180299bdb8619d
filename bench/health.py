"""Health-check latency: how long ``wabiz.cluster.failover_check`` takes to judge a cluster.

Two figures per cluster, both on a cluster that every check finds healthy (a latency measured on
an unhealthy cluster is mostly probe timeouts, so the benchmark refuses it):

- **in-process**: the module's ``main()`` called in this interpreter, with its arguments patched
  in and its result captured: argument parsing, the DB reads, the parallel probes and
  ``/v1/health`` calls, the judgement and the table, without Ansible's controller;
- **end to end**: ``ansible localhost -m wabiz.cluster.failover_check -a ...`` as a user types
  it (controller start-up, AnsiballZ, the module), timed as a whole command (run by the cluster
  module tests' Runner, which only adds the json stdout callback to read the verdict).

``loopback()`` starts a stand-in cluster of ~50 processes on this machine (tests/standin/harness.py)
against the MariaDB test server; ``testbed()`` measures a cluster that is already running.

    python -m bench.health --quick            # 12 nodes, 30 samples (about a minute)
    python -m bench.health --nodes 50 --samples 200
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

from bench.cluster import sh
from bench.common import ROOT, cdf_points, distribution, pyplot, results_dir, save_figure, say, write_json
from tests.cluster_modules.conftest import PASSWORD, ModCluster, Runner, make_cert
from tests.standin.harness import FAST_TIMERS, Cluster, S, wait_for  # S: the schema names (cluster_schema)
from tests.support import dbservers

MODULE = "ansible_collections.wabiz.cluster.plugins.modules.failover_check"

# The harness' timers are tuned for fast failover tests (heartbeat 1 s, unhealthy 4 s). Fifty
# Python processes on two cores shared with other work miss such deadlines and fail over for no
# reason (a 12 s stall of the machine moved every shard in a trial with unhealthy 10 s), which is
# not what this benchmark measures. The stand-in's own defaults (docs/standin.md, Timers) are what
# a real cluster runs, and the check's work does not depend on them: use those.
DEFAULT_TIMERS = {
    "WA_DEFAULT_HEARTBEAT_INTERVAL": "5",
    "WA_DEFAULT_UNHEALTHY_INTERVAL": "30",
    "WA_DB_HEARTBEAT_SECONDS": "60",
    "WA_DB_DEAD_AFTER_SECONDS": "120",
    "WA_LEASE_TTL_SECONDS": "30",
    "WA_LEASE_RENEW_DEADLINE_SECONDS": "20",
    "WA_COREAPP_FENCE_SECONDS": "5",
    "WA_DB_TIMEOUT_SECONDS": "5",
    "WA_STANDIN_HEALTH_RATE_LIMIT": "0",  # the benchmark calls /v1/health hundreds of times a minute
}


class UnhealthyCluster(RuntimeError):
    """failover_check did not find the cluster healthy while it was being measured."""


# -- the module, in process and end to end -------------------------------------------------------

def _collections_root(tmp: Path) -> Path:
    """A folder holding ansible_collections/wabiz/cluster -> this checkout: ``.build/link`` when
    bootstrap made it, else a fresh one in ``tmp`` (a clean checkout has none)."""
    link = ROOT / ".build" / "link"
    with contextlib.suppress(OSError):
        if (link / "ansible_collections" / "wabiz" / "cluster").resolve() == ROOT:
            return link
    root = tmp / "collections"
    (root / "ansible_collections" / "wabiz").mkdir(parents=True, exist_ok=True)
    (root / "ansible_collections" / "wabiz" / "cluster").symlink_to(ROOT)
    return root


def _import_module(collections: Path) -> ModuleType:
    """failover_check imported as AnsiballZ runs it: ``ansible_collections...`` on sys.path."""
    if str(collections) not in sys.path:
        sys.path.insert(0, str(collections))
    return importlib.import_module(MODULE)


@contextlib.contextmanager
def _in_process(fc: ModuleType, args: dict[str, Any]) -> Iterator[Callable[[], tuple[float, dict[str, Any]]]]:
    """A callable that runs ``fc.main()`` once with ``args``: (seconds, the module's result).

    The arguments go in the way ansible-core's own unit-test helper passes them, and the result is
    taken at ``_record_module_result`` (the hook ansible.netcommon uses to run modules inside the
    worker), so exactly main()'s path is timed, minus printing the JSON."""
    from ansible.module_utils.basic import AnsibleModule
    from ansible.module_utils.testing import patch_module_args

    captured: dict[str, Any] = {}

    def record(_self: Any, result: dict[str, Any]) -> None:
        captured.clear()
        captured.update(result)

    def once() -> tuple[float, dict[str, Any]]:
        captured.clear()
        started = time.perf_counter()
        try:
            fc.main()
        except SystemExit:  # exit_json / fail_json end the module with sys.exit
            pass
        return time.perf_counter() - started, dict(captured)

    with patch_module_args(args), mock.patch.object(AnsibleModule, "_record_module_result", record):
        yield once


def _verdict(result: dict[str, Any]) -> str | None:
    """None when the check said healthy, else why not (findings, or the failure itself)."""
    if result.get("healthy") is True and not result.get("failed"):
        return None
    findings = result.get("findings") or []
    return "; ".join(findings) if findings else (result.get("msg") or f"no verdict in the result: {result}")


def _webapp_seconds(result: dict[str, Any]) -> float | None:
    """The slowest /v1/health answer of this check (the webapps ping every node before answering)."""
    secs = [w.get("seconds") for w in (result.get("webapps") or {}).values() if w.get("seconds") is not None]
    return max(secs) if secs else None


class _Sampler:
    """Runs one kind of check ``n`` times and keeps the latencies; any check that does not say
    healthy raises UnhealthyCluster at once."""

    def __init__(self, what: str, run: Callable[[], tuple[float, dict[str, Any]]], nodes_seen: int) -> None:
        self.what, self.run, self.nodes_seen = what, run, nodes_seen
        self.seconds: list[float] = []
        self.elapsed: list[float] = []
        self.webapp: list[float] = []

    def sample(self, n: int) -> None:
        while len(self.seconds) < n:
            took, result = self.run()
            why = _verdict(result)
            if why is not None:
                raise UnhealthyCluster(f"{self.what} check {len(self.seconds) + 1} of {n} found the cluster unhealthy, "
                                       f"so its latency is not a health-check latency: {why}")
            if len(result.get("nodes") or []) != self.nodes_seen:
                raise UnhealthyCluster(f"{self.what} check {len(self.seconds) + 1} saw {len(result.get('nodes') or [])} "
                                       f"nodes, not {self.nodes_seen}")
            self.seconds.append(took)
            self.elapsed.append(float(result["elapsed"]))
            if (w := _webapp_seconds(result)) is not None:
                self.webapp.append(w)
            if n >= 20 and len(self.seconds) % (n // 4) == 0:
                say(f"  {self.what} {len(self.seconds)}/{n}: p50 so far {distribution(self.seconds)['p50']:.3f}s")

    def report(self) -> dict[str, Any]:
        return {"seconds": distribution(self.seconds), "samples": [round(v, 5) for v in self.seconds],
                "module_elapsed": distribution(self.elapsed), "webapp_health_seconds": distribution(self.webapp)}


def _measure(fc: ModuleType, runner: Runner, args: dict[str, Any], samples: int, e2e_runs: int,
             settle: float, expected_nodes: int | None = None) -> dict[str, Any]:
    """Settle (checks until one says healthy), then ``samples`` in-process checks and ``e2e_runs``
    ``ansible`` runs, every one healthy (see _Sampler)."""
    load_before = os.getloadavg()  # the machine is shared: say how busy it was
    with _in_process(fc, args) as once:
        # Settling: a cluster just started (or just after a drill) may still be assigning shards;
        # the first run also pays imports and the first TLS handshake, which no later run does.
        deadline = time.monotonic() + settle
        settle_runs = 0
        while True:
            _took, result = once()
            settle_runs += 1
            why = _verdict(result)
            if why is None:
                break
            if time.monotonic() > deadline:
                raise UnhealthyCluster(f"failover_check did not find the cluster healthy within {settle:.0f}s "
                                       f"({settle_runs} checks); last: {why}")
            time.sleep(1)
        nodes_seen = len(result.get("nodes") or [])
        if expected_nodes is not None and nodes_seen != expected_nodes:
            raise UnhealthyCluster(f"failover_check sees {nodes_seen} nodes, {expected_nodes} were started")
        shards_seen = len(result.get("shards") or [])
        say(f"healthy after {settle_runs} settling check(s): {nodes_seen} nodes, {shards_seen} shard(s); "
            f"{samples} in-process checks")
        in_process = _Sampler("in-process", once, nodes_seen)
        in_process.sample(samples)

    def ansible_once() -> tuple[float, dict[str, Any]]:
        started = time.perf_counter()
        result = runner("failover_check", args, via="ansible")
        return time.perf_counter() - started, result

    say(f"{e2e_runs} end-to-end runs of `ansible localhost -m wabiz.cluster.failover_check`")
    e2e = _Sampler("end-to-end", ansible_once, nodes_seen)
    e2e.sample(e2e_runs)
    say(f"  end to end: p50 {distribution(e2e.seconds)['p50']:.2f}s")
    return {"nodes_seen": nodes_seen, "shards_seen": shards_seen,
            "healthy_checks": len(in_process.seconds) + len(e2e.seconds), "settle_checks": settle_runs,
            "load_average": {"cpus": os.cpu_count(), "before": [round(x, 2) for x in load_before],
                             "after": [round(x, 2) for x in os.getloadavg()]},
            "in_process": in_process.report(), "end_to_end": e2e.report()}


# -- loopback: a stand-in cluster of processes on this machine ---------------------------------------

def _layout(nodes: int) -> dict[str, int]:
    """2 masters, about one webapp per dozen nodes (at least 2, so that the webapps' views are
    cross-checked), the rest coreapps; shards: half the coreapps (the other half are spares)."""
    if nodes < 6:
        raise ValueError("a loopback cluster needs at least 6 nodes (2 masters, 2 coreapps, 2 webapps)")
    webapps = max(2, nodes // 12)
    coreapps = nodes - 2 - webapps
    shards = max(s for s in S.VALID_SHARD_COUNTS if s <= max(1, coreapps // 2))
    return {"masters": 2, "coreapps": coreapps, "webapps": webapps, "shards": shards, "total": nodes}


def _endpoint(engine: str) -> tuple[dbservers.Endpoint, Callable[[], None] | None]:
    """The test server of ``engine``, started if none answers; and how to stop it again when this
    run started it (a server that was running is shared with other work and left alone)."""
    if engine in ("mysql", "mariadb"):
        ep, start, stop = dbservers.MARIADB, dbservers.start_mariadb, dbservers.stop_mariadb
    elif engine in ("postgresql", "postgres", "pgsql"):
        ep, start, stop = dbservers.POSTGRES, dbservers.start_postgres, dbservers.stop_postgres
    else:
        raise ValueError(f"engine must be mysql or postgresql, not {engine!r}")
    was_running = dbservers._answers(ep.port)
    start()
    return ep, (None if was_running else stop)


def _start_cluster(c: Cluster, layout: dict[str, int], cert: Path) -> list[str]:
    """Start the nodes in waves and wait until each wave answers: 50 interpreters importing aiohttp
    at once would starve the masters of CPU past their lease deadline."""
    names = []
    for i in range(layout["masters"]):
        names.append(c.start_node("master", f"master{i + 1}").name)
    wait_for(c.primary_master, 90, interval=0.5, what="a primary master")
    wave = 6
    for first in range(0, layout["coreapps"], wave):
        batch = [c.start_node("coreapp", f"coreapp{i + 1}").name
                 for i in range(first, min(first + wave, layout["coreapps"]))]
        names += batch
        wait_for(lambda b=batch: all(c.ping(n, timeout=1) for n in b), 90, interval=0.5,
                 what=f"coreapps {batch[0]}..{batch[-1]} to answer")
    for i in range(layout["webapps"]):
        name = c.start_node("webapp", f"webapp{i + 1}", {"WA_WEB_CERT_DIR": str(cert.parent)}).name
        names.append(name)
        wait_for(lambda n=name: _answers(c, n), 90, interval=0.5, what=f"{name} to serve")
    return names


def _answers(c: Cluster, webapp: str) -> bool:
    try:
        return c.api("GET", "/v1/health", webapp=webapp, auth="Apikey test-api-key", timeout=5)[0] == 200
    except OSError:
        return False


def _set_shards(c: Cluster, shards: int) -> None:
    """Log in once (the first login sets the admin password the checks then use) and set the
    shard count through the API, retried while the primary settles (503)."""
    c.login("webapp1", PASSWORD)
    # The contract: the account's cc and phone_number with the count, 201 Created.
    body = {"cc": "1", "phone_number": "6505550100", "shards": shards}
    wait_for(lambda: c.api("POST", "/v1/account/shards", body, timeout=10)[0] == 201, 60,
             interval=1, what=f"the shard count to be set to {shards}")


def loopback(nodes: int = 50, samples: int = 200, engine: str = "mysql", auth: str = "password") -> dict[str, Any]:
    """Start a stand-in cluster of ``nodes`` processes on loopback, wait until it is healthy and
    measure failover_check (``samples`` in-process, max(5, samples // 20) end to end).

    ``auth``: ``password`` logs in on every run as testbed() does (one PBKDF2 login per check), or
    ``api_key``. Every process started is stopped and the cluster's database dropped, also on error."""
    if auth not in ("password", "api_key"):
        raise ValueError("auth must be password or api_key")
    started = time.monotonic()
    layout = _layout(nodes)
    ep, stop_server = _endpoint(engine)
    work = Path(tempfile.mkdtemp(prefix="wabiz-bench-health-"))
    # The harness' fast timers with the stand-in's defaults on top (only the delivery delay stays fast).
    c = Cluster(ep, work, timers={**FAST_TIMERS, **DEFAULT_TIMERS}, prefix=f"bench{uuid.uuid4().hex[:6]}_")
    ok = False
    try:
        cert = make_cert(work / "certs")
        say(f"loopback cluster on {ep.engine} {ep.host}:{ep.port}: {layout['masters']} masters, "
            f"{layout['coreapps']} coreapps, {layout['webapps']} webapps, {layout['shards']} shards")
        names = _start_cluster(c, layout, cert)
        _set_shards(c, layout["shards"])
        mc = ModCluster(c, cert)
        wait_for(lambda: mc.healthy_now() and len(c.owners()) == layout["shards"], 180, interval=1,
                 what=f"{layout['shards']} shards with connected owners")
        startup = time.monotonic() - started
        say(f"cluster up in {startup:.0f}s")

        # /v1/health lists the masters and coreapps (not the webapps)
        nodes = [n for n in names if not n.startswith("webapp")]
        args = mc.check_args(expected_nodes=nodes)
        if auth == "api_key":  # health only: the other reads need the admin login
            args = {"api_url": args["api_url"], "ca_path": args["ca_path"], "api_key": "test-api-key",
                    "api_timeout": args["api_timeout"], "expected_nodes": nodes}
        runner = Runner(_collections_root(work), _mkdir(work / "ansible"))
        fc = _import_module(runner.collections)
        res = _measure(fc, runner, args, samples, max(5, samples // 20), settle=120, expected_nodes=len(nodes))
        ok = True
        return {"cluster": "loopback", "label": f"loopback {len(names)} nodes", "engine": ep.engine,
                "layout": layout, "auth": auth, "tls": "verified (ca_path)", "timers": c.timers,
                "check_options": {"auth": auth, "expected_nodes": len(nodes)},
                **res, "startup_seconds": round(startup, 1), "run_seconds": round(time.monotonic() - started, 1)}
    finally:
        if not ok:  # keep what the nodes said: the work folder goes away with the cluster
            logs = results_dir() / "health-loopback-failure.log"
            with contextlib.suppress(Exception):
                logs.write_text(c.dump_logs())
                say(f"node logs (last lines) in {logs}")
        c.close()  # kills every node and drops the cluster's database
        shutil.rmtree(work, ignore_errors=True)
        if stop_server:
            stop_server()


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# -- the testbed: the check runs where the operator runs it -----------------------------------------

_PLAYBOOK = """\
- name: failover_check, {n} times
  hosts: wabiz_webapp[0]
  gather_facts: false
  roles:
    - role: wabiz.cluster.common
  module_defaults:
    group/wabiz.cluster.cluster: "{{{{ wabiz_cluster_connection }}}}"
  tasks:
    - name: Check
      wabiz.cluster.failover_check:
      loop: "{{{{ range({n}) | list }}}}"
      register: __checks
    - name: Keep the figures
      ansible.builtin.copy:
        content: "{{{{ __checks.results | map('dict2items') | map('selectattr', 'key', 'in', ['elapsed', 'healthy', 'nodes'])
                    | map('items2dict') | list | to_json }}}}"
        dest: "{out}"
        mode: "0644"
      delegate_to: localhost
"""


def testbed(inventory: Path, samples: int = 100, e2e_runs: int = 10) -> dict[str, Any]:
    """failover_check on the running testbed, from its first webapp host as health.yml runs it
    (the cluster database admits only cluster hosts): ``samples`` checks in one play, timed by
    the module itself (``elapsed``), and ``e2e_runs`` whole ``ansible-playbook`` runs of one check."""
    started = time.monotonic()

    def play(n: int, tmp: Path) -> tuple[float, list[dict[str, Any]]]:
        book, out = tmp / f"check{n}.yml", tmp / f"check{n}.json"
        book.write_text(_PLAYBOOK.format(n=n, out=out))
        t0 = time.perf_counter()
        sh(["ansible-playbook", "-i", str(inventory), str(book)])
        took = time.perf_counter() - t0
        checks = json.loads(out.read_text())
        bad = [c for c in checks if c.get("healthy") is not True]
        if bad:
            raise UnhealthyCluster(f"{len(bad)} of {n} checks on the testbed found it unhealthy")
        return took, checks

    with tempfile.TemporaryDirectory(prefix="wabiz-bench-health-") as tmp:
        say(f"failover_check on the testbed: {samples} checks in one play, then {e2e_runs} playbook runs")
        _took, checks = play(samples, Path(tmp))
        e2e = [play(1, Path(tmp))[0] for _ in range(e2e_runs)]
    in_module = [float(c["elapsed"]) for c in checks]
    nodes = len(checks[0].get("nodes") or [])
    say(f"  testbed: in module p50 {distribution(in_module)['p50']:.3f}s, playbook p50 {distribution(e2e)['p50']:.2f}s")
    return {"cluster": "testbed", "label": f"testbed {nodes} nodes", "nodes_seen": nodes,
            "healthy_checks": len(checks) + len(e2e),
            "in_process": {"seconds": distribution(in_module), "samples": [round(v, 5) for v in in_module],
                           "what": "the module's own elapsed, on the webapp host"},
            "end_to_end": {"seconds": distribution(e2e), "samples": [round(v, 4) for v in e2e],
                           "what": "ansible-playbook with one failover_check task, from the controller"},
            "load_average": {"cpus": os.cpu_count(), "after": [round(x, 2) for x in os.getloadavg()]},
            "run_seconds": round(time.monotonic() - started, 1)}


# -- figure ---------------------------------------------------------------------------------------

def plot(results: dict[str, dict[str, Any]], name: str = "health") -> Path:
    """One PNG: the CDF of the in-process latency per cluster (p50 and p99 marked) and, beside it,
    the end-to-end ``ansible`` runs."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    panels = (("in_process", "in process: failover_check main()"),
              ("end_to_end", "end to end: ansible localhost -m wabiz.cluster.failover_check"))
    for ax, (key, title) in zip(axes, panels, strict=True):
        for label, res in results.items():
            values = (res.get(key) or {}).get("samples") or []
            if not values:
                continue
            dist = distribution(values)
            x, y = cdf_points(values)
            (line,) = ax.step(x, y, where="post",
                              label=f"{label} (n={dist['n']}): p50 {dist['p50']:.3f}s, p99 {dist['p99']:.3f}s")
            ax.plot([dist["p50"]], [0.5], "o", color=line.get_color())
            ax.plot([dist["p99"]], [0.99], "^", color=line.get_color())
            for q, v in (("p50", dist["p50"]), ("p99", dist["p99"])):
                ax.axvline(v, color=line.get_color(), linestyle=":", linewidth=0.8)
                ax.annotate(q, (v, 0.5 if q == "p50" else 0.99), textcoords="offset points", xytext=(4, -10),
                            fontsize=8, color=line.get_color())
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("seconds per health check")
        ax.set_ylabel("fraction of checks")
        ax.set_xlim(left=0)  # from zero, so that clusters of different sizes compare by eye
        ax.set_ylim(0, 1.03)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle("wabiz.cluster.failover_check latency on a healthy cluster (CDF; o = p50, ^ = p99)", fontsize=11)
    return save_figure(fig, name)


# -- command line ---------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    """``python -m bench.health [--quick] [--nodes N] [--samples N] [--engine E]``: a loopback run,
    written to ``<results>/health.json`` and ``health.png``."""
    p = argparse.ArgumentParser(prog="python -m bench.health", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="12 nodes, 30 samples (unless given)")
    p.add_argument("--nodes", type=int, help="processes in the loopback cluster (default 50)")
    p.add_argument("--samples", type=int, help="in-process checks (default 200)")
    p.add_argument("--engine", default="mysql", choices=["mysql", "postgresql"])
    p.add_argument("--auth", default="password", choices=["password", "api_key"])
    a = p.parse_args(argv)
    nodes = a.nodes or (12 if a.quick else 50)
    samples = a.samples or (30 if a.quick else 200)
    try:
        res = loopback(nodes, samples, a.engine, auth=a.auth)
    except UnhealthyCluster as exc:
        say(f"FAILED: {exc}")
        return 1
    results = {res["label"]: res}
    write_json("health", {"results": results})
    plot(results)
    ip, e2e = res["in_process"]["seconds"], res["end_to_end"]["seconds"]
    say(f"{res['label']}: in-process p50 {ip['p50']:.3f}s p99 {ip['p99']:.3f}s (n={ip['n']}); "
        f"end to end p50 {e2e['p50']:.2f}s p99 {e2e['p99']:.2f}s (n={e2e['n']}); "
        f"run {res['run_seconds']:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
