"""What a deployed cluster must look like, checked on each machine with testinfra."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import testinfra
import yaml

ROOT = Path(__file__).resolve().parents[4]
INVENTORY = yaml.safe_load((ROOT / "inventories" / "testbed" / "hosts.yml").read_text())["all"]
GROUPS = {g: sorted(v["hosts"]) for g, v in INVENTORY["children"].items()}
VERSION = os.environ.get("WABIZ_EXPECT_VERSION", "2.53.2")
PROJECT = {"wabiz_master": "wabiz-master", "wabiz_coreapp": "wabiz-coreapp", "wabiz_webapp": "wabiz-webapp"}


def machine(name: str):
    # testinfra's docker backend: docker exec into the testbed machine (fast, no Ansible round trip).
    return testinfra.get_host(f"docker://wabiz-tb-testbed-{name}")


def address(name: str) -> str:
    return INVENTORY["hosts"][name]["wabiz_external_hostname"]


NODES = [(g, h) for g in PROJECT for h in GROUPS.get(g, [])]


@pytest.mark.parametrize("group,name", NODES)
def test_only_its_own_service_runs_with_the_expected_version(group, name):
    out = machine(name).check_output("docker ps --format '{{.Label \"com.docker.compose.project\"}} {{.Image}}'")
    rows = [line.split() for line in out.splitlines()]
    assert rows, f"{name} runs no container"
    assert {r[0] for r in rows} == {PROJECT[group]}
    assert {r[1].rsplit(":v", 1)[1] for r in rows} == {VERSION}


@pytest.mark.parametrize("group,name", NODES)
def test_published_ports(group, name):
    out = machine(name).check_output("docker ps --format '{{.Ports}}'")
    want = "0.0.0.0:9090->443/tcp" if group == "wabiz_webapp" else "0.0.0.0:6250-6253->6250-6253/tcp"
    assert want in out


@pytest.mark.parametrize("group,name", NODES)
def test_db_env_is_private_and_complete(group, name):
    f = machine(name).file("/opt/whatsapp/db.env")
    assert f.exists and f.mode == 0o600 and f.user == "root"
    keys = {line.split("=", 1)[0] for line in f.content_string.splitlines() if "=" in line}
    assert {"WA_DB_ENGINE", "WA_DB_HOSTNAME", "WA_DB_PORT", "WA_DB_USERNAME", "WA_DB_PASSWORD"} <= keys
    engine = os.environ.get("WABIZ_EXPECT_ENGINE", "MYSQL")
    assert f"WA_DB_ENGINE={engine}" in f.content_string


@pytest.mark.parametrize("group,name", NODES)
def test_cleanup_cron_runs_daily(group, name):
    cron = machine(name).check_output("crontab -l")
    line = next(x for x in cron.splitlines() if "log-cleanup" in x and not x.startswith("#"))
    minute, hour, dom, month, dow = line.split()[:5]
    assert (dom, month, dow) == ("*", "*", "*") and minute.isdigit() and hour.isdigit()


def _nfs(host, cmd: str):
    # libnfs clients on identical machines may present the same NFSv4 client id; the server then
    # answers NFS4ERR_CLID_INUSE until the other lease ends: try again a few times.
    return host.run(f"for i in 1 2 3 4 5 6; do out=$({cmd} 2>&1) && {{ echo \"$out\"; exit 0; }}; "
                    f"echo \"$out\" | grep -q CLID_INUSE || {{ echo \"$out\" >&2; exit 1; }}; sleep 3; done; exit 1")


def test_media_share_is_shared_read_write_over_nfs():
    nfs = address(GROUPS["wabiz_nfs"][0])
    url = f"nfs://{nfs}/media/probe-verify?version=4"
    writer = machine(GROUPS["wabiz_coreapp"][0])
    res = _nfs(writer, f"echo written-by-{GROUPS['wabiz_coreapp'][0]} > /tmp/probe-verify && nfs-cp /tmp/probe-verify '{url}'")
    assert res.rc == 0, res.stderr
    # (libnfs-utils has no rm: the probe stays on the testbed's share, which destroy removes.)
    for _group, name in NODES:
        res = _nfs(machine(name), f"nfs-cat '{url}'")
        assert res.rc == 0 and f"written-by-{GROUPS['wabiz_coreapp'][0]}" in res.stdout, (name, res.stderr)


def test_health_one_primary_master_and_a_connected_owner_per_shard():
    web = machine(GROUPS["wabiz_webapp"][0])
    key = (ROOT / "inventories" / "testbed" / ".secrets" / "api_key").read_text().split()[0]
    out = web.check_output(f"curl -sk -H 'Authorization: Apikey {key}' https://127.0.0.1:9090/v1/health")
    health = json.loads(out)["health"]
    roles = [n["role"] for n in health.values()]
    assert roles.count("primary_master") == 1
    shards = int(os.environ.get("WABIZ_EXPECT_SHARDS", "1"))
    connected = [n for n in health.values() if n["role"] == "coreapp" and n.get("gateway_status") == "connected"]
    assert len(connected) == shards
