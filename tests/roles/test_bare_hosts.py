"""Bare Debian hosts (bookworm and trixie: python3, sshd and sudo only, reached over SSH as an
ordinary user): the roles install what the collection uses there, and a second run installs
nothing."""

from __future__ import annotations

import pytest

from .conftest import BUILD, HERE, bed_session, tail

NAME = "roles-bare"
SUBNET = "172.28.16.0/24"
INVENTORY = HERE / "inventory" / "bare.yml"
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
    with bed_session(NAME, collections_path, ["b1:bare/bare", "b2:bare/bare-trixie"], None, False, SUBNET, {},
                     inventory=INVENTORY) as b:
        yield b


@pytest.fixture(scope="module")
def runs(bed):
    before = {h: [bed.sh(h, cmd).returncode for cmd, _ in PRESENT[h]] for h in PRESENT}
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
