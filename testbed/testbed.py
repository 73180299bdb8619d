#!/usr/bin/env python3
"""A multi-host testbed on one machine: nested-Docker "machines" on a project network.

Each cluster host is a container with a fixed address on a project-owned network that runs its own
Docker engine (nested): ``wabiz/host:bookworm`` has the roles' packages preinstalled,
``wabiz/bare:bookworm`` and ``wabiz/bare:trixie`` have only python3, sshd and sudo. Database and
NFS hosts run the project's server images. Every machine is reached as a user's machines are: over
SSH, as the ordinary user ``ops`` with a key, becoming root with sudo (the testbed creates the user
at start, as cloud-init would). The testbed writes an Ansible inventory for them, copies images into
the hosts' engines, and tears everything down again. Everything it creates is named
``wabiz-tb-<testbed>-...`` and labelled ``wabiz.testbed=<testbed>``; it never touches anything else.

    testbed.py up NAME --host master1:masters --host coreapp1:coreapps/bare-trixie --db mariadb --nfs
    testbed.py load NAME IMAGE [IMAGE ...] [--hosts h1,h2]
    testbed.py inventory NAME
    testbed.py down NAME | --all
"""

from __future__ import annotations

import argparse
import hashlib
import ipaddress
import json
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import docker
from docker.errors import NotFound

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".build" / "testbed"
LABEL = "wabiz.testbed"
PREFIX = "wabiz-tb"
HOST_IMAGE = "wabiz/host:bookworm"
# The images a --host may name after a slash (NAME:GROUPS/KIND); the default is "ready".
HOST_IMAGES = {"ready": HOST_IMAGE, "bare": "wabiz/bare:bookworm", "bare-trixie": "wabiz/bare:trixie"}
SSH_USER = "ops"
SSH_KEY = STATE_DIR / "ssh" / "id_ed25519"
# Host keys change with every new testbed on the same addresses: not worth remembering.
SSH_ARGS = ("-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR "
            "-o ControlMaster=auto -o ControlPersist=120s")
DB_IMAGES = {"mariadb": "wabiz/mariadb:10.11", "postgres": "wabiz/postgres:15"}
NFS_IMAGE = "wabiz/nfs:ganesha"
DEFAULT_SUBNET = "172.28.10.0/24"

# Named layouts: the HA cluster of inventories/testbed (2 masters, 3 coreapps, 2 webapps on
# separate machines; the database and NFS hosts come from --db and --nfs). Two webapps let the
# API answer throughout a rolling upgrade.
LAYOUTS = {
    "ha": [
        "master1:wabiz_master,wabiz_nodes",
        "master2:wabiz_master,wabiz_nodes",
        "coreapp1:wabiz_coreapp,wabiz_nodes",
        "coreapp2:wabiz_coreapp,wabiz_nodes",
        "coreapp3:wabiz_coreapp,wabiz_nodes",
        "webapp1:wabiz_webapp,wabiz_nodes",
        "webapp2:wabiz_webapp,wabiz_nodes",
    ],
}

# What a nested-Docker host needs here (measured; --privileged fails on these machines).
HOST_CAPS = ["SYS_ADMIN", "NET_ADMIN", "SYS_PTRACE", "MKNOD", "NET_RAW", "SETFCAP"]
HOST_SECURITY = ["seccomp=unconfined", "apparmor=unconfined"]
# ganesha's VFS backend opens files by handle.
NFS_CAPS = ["DAC_READ_SEARCH", "SYS_ADMIN"]


def log(msg: str) -> None:
    print(f"[testbed] {msg}", flush=True)


@dataclass
class Machine:
    name: str  # short name, also the inventory hostname
    kind: str  # host | db | nfs
    address: str
    groups: list[str] = field(default_factory=list)
    image: str = HOST_IMAGE

    def container(self, testbed: str) -> str:
        return f"{PREFIX}-{testbed}-{self.name}"


def _client() -> docker.DockerClient:
    return docker.from_env(timeout=300)


def network_name(testbed: str) -> str:
    return f"{PREFIX}-{testbed}"


def state_file(testbed: str) -> Path:
    return STATE_DIR / testbed / "state.json"


def plan(hosts: list[str], db: str | None, nfs: bool, subnet: str) -> list[Machine]:
    """Lay out the machines: fixed addresses, db at .5, nfs at .6, hosts from .11 on."""
    net = ipaddress.ip_network(subnet)
    machines: list[Machine] = []
    seen: set[str] = set()
    if db:
        if db not in DB_IMAGES:
            raise SystemExit(f"unknown database '{db}': choose one of {', '.join(DB_IMAGES)}")
        machines.append(Machine("db", "db", str(net[5]), ["database", "wabiz_database"], DB_IMAGES[db]))
    if nfs:
        machines.append(Machine("nfs", "nfs", str(net[6]), ["nfs_server", "wabiz_nfs"], NFS_IMAGE))
    for i, spec in enumerate(hosts):
        spec, _, kind = spec.partition("/")
        name, _, groups = spec.partition(":")
        if not name or name in seen or name in ("db", "nfs"):
            raise SystemExit(f"bad or duplicate host name '{name}' in '{spec}'")
        if (kind or "ready") not in HOST_IMAGES:
            raise SystemExit(f"unknown machine kind '{kind}' for {name}: choose one of {', '.join(HOST_IMAGES)}")
        seen.add(name)
        machines.append(Machine(name, "host", str(net[11 + i]), [g for g in groups.split(",") if g],
                                HOST_IMAGES[kind or "ready"]))
    return machines


def _run_machine(client: docker.DockerClient, testbed: str, m: Machine) -> None:
    name = m.container(testbed)
    try:
        c = client.containers.get(name)
        if c.status != "running":
            c.start()
        return
    except NotFound:
        pass
    kwargs: dict = {
        "name": name,
        "hostname": m.name,
        "detach": True,
        "labels": {LABEL: testbed, "wabiz.testbed.kind": m.kind},
        "network": None,
    }
    if m.kind == "host":
        kwargs.update(
            cap_add=HOST_CAPS,
            security_opt=HOST_SECURITY,
            cgroupns="host",
            volumes={"/sys/fs/cgroup": {"bind": "/sys/fs/cgroup", "mode": "rw"}},
            tmpfs={"/run": "", "/tmp": ""},
        )
    elif m.kind == "nfs":
        kwargs.update(cap_add=NFS_CAPS, security_opt=HOST_SECURITY,
                      environment={"NFS_CLIENTS": "*", "WABIZ_SSHD": "1"})
    else:
        kwargs.update(environment={"WABIZ_SSHD": "1"})
    # Create unattached, then attach with the fixed address, then start.
    c = client.containers.create(m.image, **{k: v for k, v in kwargs.items() if k != "network"})
    client.networks.get(network_name(testbed)).connect(c, ipv4_address=m.address)
    c.start()


def ssh_key() -> Path:
    """The testbed's login key (made once per checkout); its public half goes into every machine."""
    if not SSH_KEY.exists():
        SSH_KEY.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "wabiz-testbed", "-f", str(SSH_KEY)],
                       check=True)
    return SSH_KEY


# What cloud-init does on a new machine: an ordinary user that logs in with the key and may sudo.
_LOGIN_USER = """set -e
id {user} >/dev/null 2>&1 || useradd -m -s /bin/bash {user}
install -d -m 0700 -o {user} -g {user} /home/{user}/.ssh
printf '%s\n' '{key}' >/home/{user}/.ssh/authorized_keys
chown {user}:{user} /home/{user}/.ssh/authorized_keys
chmod 0600 /home/{user}/.ssh/authorized_keys
echo '{user} ALL=(ALL) NOPASSWD:ALL' >/etc/sudoers.d/90-{user}
chmod 0440 /etc/sudoers.d/90-{user}
"""


def _add_login_user(client: docker.DockerClient, testbed: str, m: Machine) -> None:
    key = Path(str(ssh_key()) + ".pub").read_text().strip()
    c = client.containers.get(m.container(testbed))
    res = c.exec_run(["sh", "-c", _LOGIN_USER.format(user=SSH_USER, key=key)])
    if res.exit_code != 0:
        raise SystemExit(f"{c.name}: creating the login user failed: {res.output.decode(errors='replace')}")


def _ssh_answers(address: str) -> bool:
    """sshd has its banner out: the machine can be logged in to."""
    try:
        with socket.create_connection((address, 22), timeout=1) as sock:
            sock.settimeout(1)
            return sock.recv(4).startswith(b"SSH-")
    except OSError:
        return False


def _wait_ready(client: docker.DockerClient, testbed: str, m: Machine, timeout: float = 90) -> None:
    c = client.containers.get(m.container(testbed))
    probe = {
        # A bare host has no engine until the roles install one.
        "host": ["sh", "-c", "! command -v dockerd >/dev/null || docker info --format '{{.ServerVersion}}'"],
        "db": ["sh", "-c", "mariadb-admin ping >/dev/null 2>&1 || pg_isready -q"],
        "nfs": ["grep", "-q", "NOT IN GRACE", "/var/log/ganesha/ganesha.log"],
    }[m.kind]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        c.reload()
        if c.status != "running":
            raise SystemExit(f"{c.name} stopped while starting; its log:\n{c.logs(tail=30).decode(errors='replace')}")
        if c.exec_run(probe).exit_code == 0 and _ssh_answers(m.address):
            _add_login_user(client, testbed, m)
            return
        time.sleep(0.5)
    raise SystemExit(f"{c.name} not ready after {timeout:.0f}s; its log:\n{c.logs(tail=30).decode(errors='replace')}")


def up(testbed: str, hosts: list[str], db: str | None, nfs: bool, subnet: str) -> list[Machine]:
    client = _client()
    machines = plan(hosts, db, nfs, subnet)
    missing = sorted({m.image for m in machines} - {t for i in client.images.list() for t in i.tags})
    if missing:
        raise SystemExit(f"image(s) missing: {', '.join(missing)}; build them with 'make images'")
    net = network_name(testbed)
    try:
        client.networks.get(net)
    except NotFound:
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet=subnet)])
        client.networks.create(net, driver="bridge", ipam=ipam, labels={LABEL: testbed})
    start = time.monotonic()
    ssh_key()
    for m in machines:
        _run_machine(client, testbed, m)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda m: _wait_ready(client, testbed, m), machines))
    sf = state_file(testbed)
    sf.parent.mkdir(parents=True, exist_ok=True)
    sf.write_text(json.dumps({"subnet": subnet, "machines": [m.__dict__ for m in machines]}, indent=2))
    write_inventory(testbed, machines)
    log(f"{testbed}: {len(machines)} machines up in {time.monotonic() - start:.1f}s "
        f"(inventory: {inventory_path(testbed)})")
    return machines


def load_state(testbed: str) -> list[Machine]:
    sf = state_file(testbed)
    if not sf.exists():
        raise SystemExit(f"testbed '{testbed}' is not up (no {sf})")
    return [Machine(**m) for m in json.loads(sf.read_text())["machines"]]


def inventory_path(testbed: str) -> Path:
    return STATE_DIR / testbed / "inventory.yml"


def write_inventory(testbed: str, machines: list[Machine]) -> Path:
    """An Ansible inventory (YAML) of the machines, as a user's: SSH, an ordinary user, sudo."""
    groups: dict[str, dict] = {}
    all_hosts: dict[str, dict] = {}
    for m in machines:
        # The address Ansible uses is also the one the other machines reach it at.
        all_hosts[m.name] = {"ansible_host": m.address, "wabiz_external_hostname": m.address}
        for g in m.groups:
            groups.setdefault(g, {"hosts": {}})["hosts"][m.name] = {}
    # The connection is a group's, not all's: the controller's implicit localhost keeps its own.
    groups["testbed_machines"] = {"hosts": {m.name: {} for m in machines}, "vars": ssh_vars()}
    inv = {"all": {"hosts": all_hosts, "children": groups, "vars": {
        "testbed_name": testbed,
        # failover_drill.yml's drill_scope=machine: a machine's power is its container.
        "drill_machine_kill": ["docker", "kill", f"{PREFIX}-{testbed}-{{{{ item }}}}"],
        "drill_machine_start": ["docker", "start", f"{PREFIX}-{testbed}-{{{{ item }}}}"],
    }}}
    path = inventory_path(testbed)
    path.parent.mkdir(parents=True, exist_ok=True)
    # JSON is valid YAML and needs no extra library here.
    path.write_text(json.dumps(inv, indent=2) + "\n")
    return path


def ssh_vars() -> dict:
    """How Ansible reaches every testbed machine."""
    return {
        "ansible_connection": "ssh",
        "ansible_user": SSH_USER,
        "ansible_become": True,
        "ansible_ssh_private_key_file": str(ssh_key()),
        "ansible_ssh_common_args": SSH_ARGS,
        "ansible_python_interpreter": "/usr/bin/python3",
        "ansible_pipelining": True,
    }


def _images_tar(images: list[str]) -> Path:
    """docker save the images once; the file name carries their ids, so it is reused."""
    client = _client()
    ids = [client.images.get(i).id for i in images]
    digest = hashlib.sha256(("\n".join(images) + "\n".join(ids)).encode()).hexdigest()[:16]
    tar = STATE_DIR / "images" / f"{digest}.tar"
    if not tar.exists():
        tar.parent.mkdir(parents=True, exist_ok=True)
        for old in tar.parent.glob("*.tar"):
            old.unlink()
        log(f"saving {len(images)} image(s) to {tar.name}")
        subprocess.run(["docker", "save", "-o", str(tar) + ".part", *images], check=True)
        Path(str(tar) + ".part").rename(tar)
    return tar


def load_images(testbed: str, images: list[str], only: list[str] | None = None) -> None:
    """Get images into every host's own engine (skipping hosts that already have them)."""
    client = _client()
    targets = [m for m in load_state(testbed) if m.kind == "host" and (not only or m.name in only)]
    # A bare host gets its engine from the roles; images can be copied in after that.
    no_engine = [m.name for m in targets
                 if client.containers.get(m.container(testbed)).exec_run(["docker", "info"]).exit_code != 0]
    if no_engine:
        log(f"no Docker engine answering on {', '.join(no_engine)}: not loading images there")
        targets = [m for m in targets if m.name not in no_engine]

    def wanted(m: Machine) -> list[str]:
        c = client.containers.get(m.container(testbed))
        return [i for i in images
                if c.exec_run(["docker", "image", "inspect", "--format", "{{.Id}}", i]).output.decode().strip()
                != client.images.get(i).id]

    todo = {m.name: wanted(m) for m in targets}
    todo = {k: v for k, v in todo.items() if v}
    if not todo:
        log("images already present in every host")
        return
    tar = _images_tar(images)
    start = time.monotonic()

    def load(m: Machine) -> None:
        with open(tar, "rb") as fh:
            subprocess.run(["docker", "exec", "-i", m.container(testbed), "docker", "load", "-q"],
                           stdin=fh, check=True, capture_output=True)

    with ThreadPoolExecutor(max_workers=3) as pool:
        list(pool.map(load, [m for m in targets if m.name in todo]))
    log(f"loaded {', '.join(images)} into {len(todo)} host(s) in {time.monotonic() - start:.1f}s")


def down(testbed: str | None) -> int:
    """Remove the testbed's containers (with their anonymous volumes) and network."""
    client = _client()
    selector = f"{LABEL}={testbed}" if testbed else LABEL
    containers = client.containers.list(all=True, filters={"label": selector})
    for c in containers:
        c.remove(force=True, v=True)
    networks = client.networks.list(filters={"label": selector})
    for n in networks:
        n.remove()
    if testbed:
        sf = state_file(testbed)
        if sf.exists():
            sf.unlink()
    log(f"removed {len(containers)} container(s), {len(networks)} network(s)")
    return len(containers)


def main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    u = sub.add_parser("up", help="create (or start) a testbed")
    u.add_argument("name")
    u.add_argument("--host", action="append", default=[], metavar="NAME[:GROUP,...]")
    u.add_argument("--layout", choices=sorted(LAYOUTS), help="a named set of hosts (added to --host)")
    u.add_argument("--db", choices=sorted(DB_IMAGES))
    u.add_argument("--nfs", action="store_true")
    u.add_argument("--subnet", default=DEFAULT_SUBNET)
    lo = sub.add_parser("load", help="copy images into the hosts' engines")
    lo.add_argument("name")
    lo.add_argument("images", nargs="+")
    lo.add_argument("--hosts", help="comma-separated host names (default: every host)")
    i = sub.add_parser("inventory", help="print the inventory path")
    i.add_argument("name")
    d = sub.add_parser("down", help="remove a testbed, or every testbed with --all")
    d.add_argument("name", nargs="?")
    d.add_argument("--all", action="store_true")
    args = ap.parse_args(argv)
    if args.cmd == "up":
        up(args.name, LAYOUTS.get(args.layout, []) + args.host, args.db, args.nfs, args.subnet)
    elif args.cmd == "load":
        load_images(args.name, args.images, args.hosts.split(",") if args.hosts else None)
    elif args.cmd == "inventory":
        load_state(args.name)
        print(inventory_path(args.name))
    elif args.cmd == "down":
        if not args.name and not args.all:
            ap.error("name a testbed or pass --all")
        down(None if args.all else args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
