"""The HA testbed a benchmark runs on: bring it up, deploy with site.yml, talk to its API.

The machines are the nested-Docker testbed of ``testbed/testbed.py`` (layout ``ha``: 2 masters,
3 coreapps, 2 webapps, a MariaDB host and an NFS host on 172.28.10.0/24) with the inventory
``inventories/testbed``, the same the molecule scenarios use; a benchmark replaces any testbed
of that name and removes it at the end.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .common import ROOT, say

INVENTORY = ROOT / "inventories" / "testbed"
TESTBED = "testbed"
IMAGES = ["wabiz-standin/coreapp:v2.53.2", "wabiz-standin/web:v2.53.2"]
PROBE = ROOT / "playbooks" / "files" / "drill_probe.py"
WEBAPPS = {"webapp1": "172.28.10.16", "webapp2": "172.28.10.17"}
ADMIN_PASSWORD_SUFFIX = "-Aa1"  # inventories/testbed/group_vars/all.yml appends it to the generated password
NODE_HOSTS = ["master1", "master2", "coreapp1", "coreapp2", "coreapp3", "webapp1", "webapp2"]
DB_ADDRESS = "172.28.10.5"
ADDRESSES = {"master1": "172.28.10.11", "master2": "172.28.10.12", "coreapp1": "172.28.10.13",
             "coreapp2": "172.28.10.14", "coreapp3": "172.28.10.15", **WEBAPPS}
# Extra vars that replace the testbed inventory's shortened timers with the product defaults
# (heartbeat 5 s, unhealthy 30 s, DB heartbeat 60 s, dead after 120 s, fence 5 s); the health
# rate limit stays off, as the bench polls the API every second.
DEFAULT_TIMERS: dict[str, Any] = {"wabiz_node_environment": {"WA_STANDIN_HEALTH_RATE_LIMIT": 0},
                                  "wabiz_heartbeat_interval": 5, "wabiz_unhealthy_interval": 30}


def load_probe() -> Any:
    """playbooks/files/drill_probe.py (the drill's client) as a module."""
    spec = importlib.util.spec_from_file_location("drill_probe", PROBE)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def machine(host: str) -> str:
    """The container that is the testbed machine ``host``."""
    return f"wabiz-tb-{TESTBED}-{host}"


class LoginFailed(RuntimeError):
    """A webapp refused the admin login (its answer is the message)."""


@dataclass
class PlaybookRun:
    seconds: float
    changed: int
    ok: int
    failed: int
    output: str = field(repr=False)
    roles: dict[str, float] = field(default_factory=dict)  # seconds per role (ansible.posix.profile_roles)


# profile_roles' summary lines: "wabiz.cluster.node ------------------ 31.50s"
_ROLE_TIME = re.compile(r"^(\S+) -+ (\d+(?:\.\d+)?)s$", re.M)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", str(ROOT / ".build" / "link"))
    env["ANSIBLE_NOCOLOR"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}:{env.get('PATH', '')}"
    # Time per role, printed after the recap.
    env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_roles"
    return env


def mitogen_env() -> dict[str, str]:
    """The settings that run a playbook under mitogen's linear strategy (PyPI mitogen)."""
    import ansible_mitogen  # only the mitogen measurement needs it

    plugins = Path(ansible_mitogen.__file__).parent / "plugins" / "strategy"
    # mitogen opens its own SSH connections and checks host keys unless told not to; the testbed
    # inventory says so in ansible_ssh_common_args, which mitogen does not read for this.
    return {"ANSIBLE_STRATEGY_PLUGINS": str(plugins), "ANSIBLE_STRATEGY": "mitogen_linear",
            "ANSIBLE_HOST_KEY_CHECKING": "False"}


def sh(argv: list[str], check: bool = True, timeout: float = 900,
       env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, cwd=ROOT, env={**_env(), **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def playbook(name: str, extra: dict[str, Any] | None = None, check: bool = True,
             env: dict[str, str] | None = None) -> PlaybookRun:
    """Run playbooks/<name>.yml on the testbed; time it and add up the recap. ``env``: extra
    environment (e.g. mitogen_env())."""
    argv = ["ansible-playbook", "-i", str(INVENTORY), str(ROOT / "playbooks" / f"{name}.yml")]
    if extra:
        argv += ["-e", json.dumps(extra)]
    t0 = time.perf_counter()
    proc = sh(argv, check=check, timeout=1800, env=env)
    seconds = time.perf_counter() - t0
    totals = {"ok": 0, "changed": 0, "failed": 0, "unreachable": 0}
    for key, value in re.findall(r"\b(ok|changed|failed|unreachable)=(\d+)", proc.stdout.split("PLAY RECAP")[-1]):
        totals[key] += int(value)
    roles_recap = proc.stdout.split("ROLES RECAP")[-1] if "ROLES RECAP" in proc.stdout else ""
    roles = {name: float(t) for name, t in _ROLE_TIME.findall(roles_recap) if name != "total"}
    return PlaybookRun(round(seconds, 2), totals["changed"], totals["ok"], totals["failed"] + totals["unreachable"],
                       proc.stdout, roles)


class Testbed:
    """The bench's testbed: up, deploy, API access, machine kill/restore, down."""

    def __init__(self) -> None:
        self.probe = load_probe()
        self._password: str | None = None

    # -- lifecycle -----------------------------------------------------------------------
    def up(self) -> float:
        t0 = time.perf_counter()
        sh([sys.executable, "testbed/testbed.py", "down", TESTBED])
        say("testbed: creating 9 machines (ha layout, MariaDB, NFS)")
        sh([sys.executable, "testbed/testbed.py", "up", TESTBED, "--layout", "ha", "--db", "mariadb", "--nfs"])
        sh([sys.executable, "testbed/testbed.py", "load", TESTBED, *IMAGES])
        return round(time.perf_counter() - t0, 2)

    def down(self) -> None:
        sh([sys.executable, "testbed/testbed.py", "down", TESTBED], check=False)

    # -- API -------------------------------------------------------------------------------
    @property
    def password(self) -> str:
        if self._password is None:
            # As inventories/testbed/group_vars/all.yml builds wabiz_admin_password: the generated part
            # plus the suffix that gives it every character class the API's password rules want.
            self._password = (INVENTORY / ".secrets" / "admin_password").read_text().strip() + ADMIN_PASSWORD_SUFFIX
        return self._password

    def api_urls(self) -> list[str]:
        return [f"https://{addr}:9090" for addr in WEBAPPS.values()]

    def apis(self) -> Any:
        """A client of every webapp (the drill's: a request fails only when every webapp fails
        it). The drill's client logs in to each at once and ends with SystemExit when one
        refuses; here a refusal is said, asked again twice a second apart, then LoginFailed
        (an Exception, so that a round reports it instead of ending the campaign)."""
        last = ""
        for attempt in range(3):
            try:
                return self.probe.Apis([self.probe.Api(u, "admin", self.password, None, True, None, 5.0)
                                        for u in self.api_urls()])
            except SystemExit as exc:
                last = str(exc)
                say(f"login attempt {attempt + 1} of 3: {last}")
                time.sleep(1)
        raise LoginFailed(last)

    def probe_env(self) -> dict[str, str]:
        return {**_env(), "WABIZ_DRILL_PASSWORD": self.password}

    @contextlib.contextmanager
    def drill_client(self, record: Path, args: list[str], timeout: float) -> Iterator[Callable[[], dict[str, Any]]]:
        """The drill's client (``drill_probe.py run ARGS``) sending through every webapp while the
        block runs; the ``finish()`` it yields waits for the client and returns its record."""
        client = subprocess.Popen(
            [sys.executable, str(PROBE), "run", "--insecure", *args, "--out", str(record),
             *[f"--api={u}" for u in self.api_urls()]],
            env=self.probe_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def finish() -> dict[str, Any]:
            _out, err = client.communicate(timeout=timeout)
            if client.returncode != 0:
                raise RuntimeError(f"the drill client failed: {err[-2000:]}")
            return json.loads(record.read_text())

        try:
            yield finish
        finally:
            if client.poll() is None:
                client.kill()

    def support(self, apis: Any) -> dict[str, Any]:
        """Node id -> {role, shards, ...} from GET /v1/support."""
        status, body, _ = apis.call("GET", "/v1/support", timeout=3)
        return {n: i for n, i in (body.get("support") or {}).items() if isinstance(i, dict)} if status == 200 else {}

    def shard_count(self, apis: Any) -> int | None:
        status, body, _ = apis.call("GET", "/v1/account/shards", timeout=3)
        return (body.get("account") or {}).get("shards") if status == 200 else None

    def owners(self, apis: Any) -> dict[int, str]:
        """Shard id -> owning node id, from the webapp's support view."""
        out = {}
        for node, info in self.support(apis).items():
            for shard in info.get("shards") or []:
                out[int(shard)] = node
        return out

    def wait_healthy(self, coreapps: int = 3, timeout: float = 240) -> float:
        """Wait until every master and coreapp answers /v1/health and each shard has an owner;
        return the seconds waited."""
        t0 = time.perf_counter()
        deadline = time.time() + timeout
        last = ""
        apis = None
        while time.time() < deadline:
            try:
                apis = apis or self.apis()
                status, body, _ = apis.call("GET", "/v1/health", timeout=5)
                health = body.get("health") or {}
                up = [n for n, h in health.items() if not h.get("errors")]
                cores = [n for n in up if health[n].get("role") == "coreapp"]
                masters = [n for n in up if str(health[n].get("role")).endswith("_master")]
                owned = sum(len(i.get("shards") or []) for i in self.support(apis).values())
                shards = self.shard_count(apis)
                last = f"{len(up)} nodes up ({len(masters)} masters), {owned}/{shards} shards owned"
                primary = any(health[n].get("role") == "primary_master" for n in up)
                if status == 200 and primary and len(masters) >= 2 and len(cores) >= coreapps and owned and owned == shards:
                    return round(time.perf_counter() - t0, 2)
            except LoginFailed as exc:  # while webapps start
                last = str(exc)
                apis = None
            time.sleep(1)
        raise RuntimeError(f"the testbed cluster was not healthy after {timeout} s: {last}")

    # -- machines --------------------------------------------------------------------------
    def host_of(self, node_id: str) -> str:
        address = node_id.rsplit(":", 1)[0]
        return next(h for h, a in ADDRESSES.items() if a == address)

    def kill_machine(self, host: str) -> float:
        """SIGKILL the whole machine (the testbed container); return when it happened (epoch)."""
        t = time.time()
        sh(["docker", "kill", machine(host)])
        return t

    # A container on the machine reaches a peer through the machine's FORWARD path (DOCKER-USER),
    # a host-network process through OUTPUT / INPUT: a partition drops all four, both directions.
    _CUT_RULES = [("DOCKER-USER", "-d"), ("DOCKER-USER", "-s"), ("OUTPUT", "-d"), ("INPUT", "-s")]

    def cut(self, host: str, peers: list[str]) -> Callable[[], None]:
        """Drop every packet between machine ``host`` and each address in ``peers``; return the
        heal, which removes exactly those rules."""
        rules = [(chain, direction, peer) for peer in peers for chain, direction in self._CUT_RULES]

        def rule(op: str, chain: str, direction: str, peer: str) -> list[str]:
            return ["docker", "exec", machine(host), "iptables", op, chain, *(["1"] if op == "-I" else []),
                    direction, peer, "-m", "comment", "--comment", "wabiz-bench-cut", "-j", "DROP"]
        for r in rules:
            sh(rule("-I", *r))

        def heal() -> None:
            for r in rules:
                sh(rule("-D", *r), check=False)
        return heal

    def start_machine(self, host: str) -> None:
        sh(["docker", "start", machine(host)])

    def compose_projects(self) -> dict[str, dict[str, str]]:
        """Per node host, the compose project site.yml started: name, working dir, files."""
        def one(host: str) -> tuple[str, dict[str, str]]:
            out = sh(["docker", "exec", machine(host), "docker", "ps", "-a", "--format",
                      '{{.Label "com.docker.compose.project"}}|{{.Label "com.docker.compose.project.working_dir"}}|'
                      '{{.Label "com.docker.compose.project.config_files"}}']).stdout.split()
            name, workdir, files = out[0].split("|")
            return host, {"project": name, "workdir": workdir, "files": files}
        with ThreadPoolExecutor(len(NODE_HOSTS)) as pool:
            return dict(pool.map(one, NODE_HOSTS))

    def compose_all(self, projects: dict[str, dict[str, str]], *args: str) -> float:
        """``docker compose ARGS`` of each host's project on every host at once; the wall time."""
        def one(host: str) -> None:
            p = projects[host]
            cmd = ["docker", "exec", "-w", p["workdir"], "-e", f"EXTERNAL_HOSTNAME={ADDRESSES[host]}",
                   "-e", "WA_API_VERSION=2.53.2", machine(host), "docker", "compose", "-p", p["project"]]
            for f in p["files"].split(","):
                cmd += ["-f", f]
            sh(cmd + list(args))
        t0 = time.perf_counter()
        with ThreadPoolExecutor(len(projects)) as pool:
            list(pool.map(one, projects))
        return round(time.perf_counter() - t0, 2)
