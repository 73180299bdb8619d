"""Testbed smoke test: three nested-Docker hosts, Ansible reaches all of them, a compose stack
started inside one host is reachable from another, and tear-down leaves nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "testbed"))
import testbed  # noqa: E402

NAME = "smoke"
VOLUMES: list[str] = []
SUBNET = "172.28.11.0/24"
pytestmark = pytest.mark.docker


def _sh(container: str, script: str) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", container, "sh", "-c", script],
                          capture_output=True, text=True, timeout=180)


@pytest.fixture(scope="module")
def bed(docker_client):
    testbed.down(NAME)
    machines = testbed.up(NAME, ["h1:group_a", "h2:group_b", "h3:group_b"], None, False, SUBNET)
    # The hosts' inner /var/lib/docker are anonymous volumes: remember them to check tear-down.
    VOLUMES.extend(mt["Name"] for m in machines
                   for mt in docker_client.api.inspect_container(m.container(NAME))["Mounts"]
                   if mt["Type"] == "volume")
    yield {m.name: m for m in machines}
    testbed.down(NAME)


def test_ansible_pings_every_host(bed):
    inv = testbed.inventory_path(NAME)
    res = subprocess.run(
        ["ansible", "all", "-i", str(inv), "-m", "ansible.builtin.ping", "--one-line"],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "ANSIBLE_DEPRECATION_WARNINGS": "false"},
    )
    assert res.returncode == 0, res.stdout + res.stderr
    for host in ("h1", "h2", "h3"):
        assert f'{host} | SUCCESS => {{"changed": false,"ping": "pong"}}' in res.stdout


def test_ansible_logs_in_as_an_ordinary_user_and_becomes_root_with_sudo(bed):
    inv = testbed.inventory_path(NAME)
    out = {}
    for become in (False, True):
        res = subprocess.run(["ansible", "h1", "-i", str(inv), "-m", "ansible.builtin.command", "-a", "id -un",
                              "--one-line", *(["--become"] if become else ["-e", "ansible_become=false"])],
                             capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, res.stdout + res.stderr
        out[become] = res.stdout.strip().rsplit(" ", 1)[-1]
    assert out == {False: "ops", True: "root"}


def test_inventory_groups_and_addresses(bed):
    inv = json.loads(testbed.inventory_path(NAME).read_text())
    assert set(inv["all"]["children"]["group_b"]["hosts"]) == {"h2", "h3"}
    assert inv["all"]["hosts"]["h1"]["ansible_host"] == "172.28.11.11"
    ssh = inv["all"]["children"]["testbed_machines"]
    assert ssh["vars"]["ansible_connection"] == "ssh" and ssh["vars"]["ansible_user"] == "ops"
    assert "h1" in ssh["hosts"]


@pytest.mark.parametrize("compose", ["docker compose", "docker-compose"], ids=["v2", "v1"])
def test_compose_stack_inside_one_host_reachable_from_another(bed, compose):
    testbed.load_images(NAME, ["wabiz/base:bookworm"], only=["h1"])
    h1 = bed["h1"].container(NAME)
    stack = textwrap.dedent("""\
        version: "3.7"
        services:
          web:
            image: wabiz/base:bookworm
            command: ["sh", "-c", "echo served-by-$$(hostname) > /srv/index.html && cd /srv && exec python3 -m http.server 8080"]
            ports: ["8080:8080"]
        """)
    res = _sh(h1, f"mkdir -p /opt/smoke && cat > /opt/smoke/compose.yml <<'EOF'\n{stack}EOF\n"
                  f"cd /opt/smoke && {compose} -p smoke up -d")
    assert res.returncode == 0, res.stderr
    try:
        # From another machine, through the published port on h1's testbed address.
        res = _sh(bed["h2"].container(NAME),
                  f"for i in $(seq 1 50); do curl -fsS http://{bed['h1'].address}:8080/ && exit 0; sleep 0.2; done; exit 1")
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("served-by-")
    finally:
        assert _sh(h1, f"cd /opt/smoke && {compose} -p smoke down").returncode == 0


def test_teardown_leaves_nothing(docker_client):
    testbed.down(NAME)
    left = docker_client.containers.list(all=True, filters={"label": f"{testbed.LABEL}={NAME}"})
    nets = docker_client.networks.list(filters={"label": f"{testbed.LABEL}={NAME}"})
    assert left == [] and nets == []
    assert not testbed.state_file(NAME).exists()
    assert VOLUMES, "the hosts had no volume to check"
    still = [v for v in VOLUMES if v in {x.name for x in docker_client.volumes.list()}]
    assert still == [], f"volumes left behind: {still}"
