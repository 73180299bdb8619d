"""Bare Debian hosts (bookworm and trixie: python3, sshd and sudo only, reached over SSH as an
ordinary user): a dry run of site.yml with the production example changes nothing there, the
roles install what the collection uses, and a second run installs nothing."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml

from .conftest import BUILD, HERE, ROOT, bed_session, tail, testbed

NAME = "roles-bare"
SUBNET = "172.28.16.0/24"
INVENTORY = HERE / "inventory" / "bare.yml"
EXTRA = [f"e{i}" for i in range(1, 8)]
pytestmark = [pytest.mark.docker, pytest.mark.slow]

# What each host must have afterwards: (command, what it proves).
PRESENT = {
    "b1": [("test -n \"$(docker info --format '{{.ServerVersion}}')\"", "engine answers"),
           ("docker compose version || docker-compose version", "a compose command"),
           ("python3 -c 'import docker, pymysql'", "Docker SDK and PyMySQL"),
           ("command -v mount.nfs", "kernel NFS client tools"),
           ("command -v crontab", "cron"),
           ("iptables -w -S DOCKER-USER | grep -q WABIZ-CLUSTER", "firewall rules")],
    "b2": [("test -n \"$(docker info --format '{{.ServerVersion}}')\"", "engine answers"),
           ("docker compose version || docker-compose version", "a compose command"),
           ("python3 -c 'import docker, psycopg2'", "Docker SDK and psycopg2"),
           ("command -v nfs-ls", "libnfs tools (userspace opt-in)"),
           ("command -v crontab", "cron"),
           ("iptables -w -S DOCKER-USER | grep -q WABIZ-CLUSTER", "firewall rules")],
}


@pytest.fixture(scope="module")
def bed(docker_client, collections_path):
    # e1..e7 (no group, bookworm): with b1 and b2, one bare machine per host of the production
    # example, for its dry run.
    spare = [f"{name}:/bare" for name in EXTRA]
    with bed_session(NAME, collections_path, ["b1:bare/bare", "b2:bare/bare-trixie", *spare], None, False, SUBNET,
                     {}, inventory=INVENTORY) as b:
        yield b


def _hosts(group: dict):
    """(name, hostvars) of every host of an inventory group and its children."""
    yield from (group.get("hosts") or {}).items()
    for child in (group.get("children") or {}).values():
        yield from _hosts(child or {})


def present(bed) -> dict[str, list[int]]:
    return {h: [bed.sh(h, cmd).returncode for cmd, _ in PRESENT[h]] for h in PRESENT}


@pytest.fixture(scope="module")
def dry_run(bed, tmp_path_factory):
    """``site.yml --check`` with inventories/production.example as a user copies it, its nine hosts
    each on a bare machine of its own, reached the bed's way."""
    inv = tmp_path_factory.mktemp("production") / "inventory"
    shutil.copytree(ROOT / "inventories" / "production.example", inv)
    hosts = yaml.safe_load((inv / "hosts.yml").read_text())
    addresses = {h: v["ansible_host"] for h, v in json.loads(testbed.inventory_path(bed.name).read_text())
                 ["all"]["hosts"].items()}
    machine_of = {}
    for machine, (host, hostvars) in zip(["b1", "b2", *EXTRA], _hosts(hosts["all"]), strict=True):
        machine_of[host] = machine
        hostvars["ansible_host"] = addresses[machine]
    # These machines have no kernel NFS client: the userspace opt-in, as the testbed inventory sets it.
    hosts["all"]["vars"] = {**hosts["all"]["vars"], **testbed.ssh_vars(), "wabiz_media_nfs_kernel_mount": False}
    (inv / "hosts.yml").write_text(yaml.safe_dump(hosts, sort_keys=False))
    before = present(bed)
    run = bed.play("wabiz.cluster.site", "--check", label="check-production-example", inventory=inv)
    (BUILD / f"{NAME}-check.log").write_text(run.output)
    return {"run": run, "before": before, "after": present(bed), "machines": machine_of}


@pytest.fixture(scope="module")
def runs(bed, dry_run):
    before = present(bed)
    first = bed.play("bare_hosts.yml", label="cold")
    second = bed.play("bare_hosts.yml", label="again")
    for label, run in (("cold", first), ("again", second)):
        (BUILD / f"{NAME}-{label}.log").write_text(run.output)
    return {"before": before, "cold": first, "again": second}


def test_the_hosts_start_bare(bed):
    for host, release in (("b1", "bookworm"), ("b2", "trixie")):
        assert bed.sh(host, ". /etc/os-release; echo $VERSION_CODENAME").stdout.strip() == release
        for binary in ("dockerd", "crontab", "iptables"):
            assert bed.sh(host, f"command -v {binary}").returncode != 0, f"{host} has {binary} already"


def test_a_dry_run_of_the_production_example_passes_and_changes_nothing(bed, dry_run):
    run = dry_run["run"]
    assert run.ok(), tail(run.output, 120)
    assert len(dry_run["machines"]) == 9 and set(dry_run["machines"]) <= set(run.recap), run.recap
    assert dry_run["after"] == dry_run["before"], (dry_run["before"], dry_run["after"])
    assert all(rc != 0 for rcs in dry_run["after"].values() for rc in rcs), dry_run["after"]
    out = " ".join(run.output.split())
    assert "the database login was not checked in check mode" in out, tail(run.output)


def test_first_run_installs_what_the_modules_and_roles_use(bed, runs):
    assert runs["cold"].ok(), tail(runs["cold"].output)
    assert all(rc != 0 for rcs in runs["before"].values() for rc in rcs), runs["before"]
    for host, checks in PRESENT.items():
        for cmd, what in checks:
            res = bed.sh(host, cmd)
            assert res.returncode == 0, f"{host}: {what} missing after the run ({cmd}): {res.stdout}{res.stderr}"


def test_second_run_installs_nothing(runs):
    assert runs["again"].ok(), tail(runs["again"].output)
    assert runs["again"].changed() == {"b1": 0, "b2": 0}, tail(runs["again"].output)


def test_an_engine_left_without_its_command_gets_the_command(bed, runs):
    # Debian 13: docker.io installed earlier without recommends, so no docker command.
    gone = bed.sh("b2", "dpkg -r --force-depends docker-cli >/dev/null 2>&1; command -v docker")
    assert gone.returncode != 0, gone.stdout
    again = bed.play("bare_hosts.yml", label="cli-restored")
    assert again.ok(), tail(again.output)
    assert bed.sh("b2", "command -v docker").returncode == 0, tail(again.output)
    assert again.changed()["b2"] > 0 and again.changed()["b1"] == 0, again.changed()
