"""The cluster's lifecycle on separate machines, after molecule converged it (idempotence is
molecule's own step): check mode, each host's own service, db.env, logs, and last uninstall."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[4]
NAME = "testbed"  # inventories/testbed names its machines wabiz-tb-testbed-*
INVENTORY = ROOT / "inventories" / "testbed"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


class PlaybookRun:
    def __init__(self, res: subprocess.CompletedProcess):
        self.rc = res.returncode
        self.output = res.stdout + res.stderr
        self.recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
                      for m in RECAP.findall(self.output)}

    @property
    def changed(self) -> dict[str, int]:
        return {h: r["changed"] for h, r in self.recap.items() if r["changed"]}

    def assert_ok(self) -> PlaybookRun:
        assert self.rc == 0, self.output[-6000:]
        assert self.recap, "no PLAY RECAP in the output"
        assert not any(r["failed"] or r["unreachable"] for r in self.recap.values()), self.output[-6000:]
        return self


def playbook(name: str, *args: str, inventory: Path = INVENTORY, timeout: int = 900) -> PlaybookRun:
    env = {**os.environ, "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_DEPRECATION_WARNINGS": "false", "ANSIBLE_CALLBACK_RESULT_FORMAT": "yaml"}
    res = subprocess.run(["ansible-playbook", "-i", str(inventory), str(ROOT / "playbooks" / name), *args],
                         capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    return PlaybookRun(res)


def in_host(host: str, *cmd: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", f"wabiz-tb-{NAME}-{host}", *cmd], capture_output=True, text=True,
                          timeout=timeout)

NODES = ["master1", "master2", "coreapp1", "coreapp2", "coreapp3", "webapp1", "webapp2"]


def test_each_host_runs_only_its_own_service():
    expected = {"master1": "wabiz-master-master-1", "coreapp1": "wabiz-coreapp-wacore-1",
                "webapp1": "wabiz-webapp-waweb-1"}
    for host, name in expected.items():
        res = in_host(host, "docker", "ps", "--format", "{{.Names}}")
        assert res.stdout.split() == [name], (host, res.stdout)


def test_db_env_is_0600_with_the_seven_variables():
    res = in_host("coreapp2", "stat", "-c", "%a %U", "/opt/whatsapp/db.env")
    assert res.stdout.split() == ["600", "root"]
    keys = {line.split("=", 1)[0] for line in in_host("coreapp2", "cat", "/opt/whatsapp/db.env").stdout.splitlines()
            if "=" in line and not line.startswith("#")}
    assert {"WA_DB_ENGINE", "WA_DB_HOSTNAME", "WA_DB_PORT", "WA_DB_USERNAME", "WA_DB_PASSWORD",
            "WA_DB_CONNECTION_IDLE_TIMEOUT"} <= keys


def test_check_mode_on_the_converged_cluster_changes_nothing():
    run = playbook("site.yml", "--check").assert_ok()
    assert run.changed == {}, run.output[-4000:]


def test_collect_logs_brings_back_a_file_per_host(tmp_path):
    playbook("collect_logs.yml", "-e", f"collect_logs_dest={tmp_path}").assert_ok()
    for host in NODES:
        f = tmp_path / host / "debug_output.txt"
        assert f.is_file() and f.stat().st_size > 0, host


def test_switchover_moves_shard_0_to_coreapp3_and_a_second_run_changes_nothing():
    playbook("switchover.yml", "-e", "shard=0", "-e", "to=coreapp3").assert_ok()
    run = playbook("switchover.yml", "-e", "shard=0", "-e", "to=coreapp3").assert_ok()
    assert run.changed == {}, run.output[-3000:]
    # The shard map table (SHARD, OWNER, OWNER STATUS): shard 0 owned by coreapp3 (172.28.10.15), connected.
    assert re.search(r"\b0\s+172\.28\.10\.15:\S+\s+connected", run.output), run.output[-3000:]


def test_message_gc_runs_now_and_installs_a_daily_schedule():
    run = playbook("message_gc.yml").assert_ok()
    assert "messages " in run.output
    playbook("message_gc.yml", "-e", "message_gc_schedule=true").assert_ok()
    cron = in_host("webapp1", "crontab", "-l").stdout
    assert "/usr/local/sbin/wabiz-message-gc" in cron
    assert in_host("webapp1", "stat", "-c", "%a", "/etc/wabiz-message-gc.secret").stdout.strip() == "600"
    res = in_host("webapp1", "/usr/bin/python3", "/usr/local/sbin/wabiz-message-gc", timeout=120)
    # As the real client: every node answers "processing"; completion goes to the webhook.
    assert res.returncode == 0 and "message gc started on 1 node(s)" in res.stdout, res.stdout + res.stderr
    assert '"status": "processing"' in res.stdout


def test_uninstall_keeps_volumes_unless_asked():
    def volumes(host):
        return {v for v in in_host(host, "docker", "volume", "ls", "-q").stdout.split() if v.startswith("wabiz-")}

    before = volumes("coreapp1")
    assert "wabiz-coreapp_whatsappData" in before
    playbook("uninstall.yml").assert_ok()
    assert in_host("coreapp1", "docker", "ps", "-aq").stdout.strip() == ""
    assert volumes("coreapp1") == before
    playbook("uninstall.yml", "-e", "remove_volumes=true").assert_ok()
    assert volumes("coreapp1") == set()
