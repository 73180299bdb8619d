"""The HA testbed of inventories/testbed, brought up once for the deployment tests."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "testbed"))
import testbed  # noqa: E402

NAME = "testbed"  # inventories/testbed names its machines wabiz-tb-testbed-*
INVENTORY = ROOT / "inventories" / "testbed"
STANDIN_IMAGES = [f"wabiz-standin/{kind}:v{v}" for v in ("2.53.1", "2.53.2") for kind in ("coreapp", "web")]
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


@pytest.fixture(scope="session")
def ha_testbed(docker_client):
    testbed.down(NAME)
    testbed.up(NAME, testbed.LAYOUTS["ha"], "mariadb", True, testbed.DEFAULT_SUBNET)
    testbed.load_images(NAME, STANDIN_IMAGES)
    yield testbed.load_state(NAME)
    if os.environ.get("WABIZ_KEEP_TESTBED") != "1":
        testbed.down(NAME)


def in_host(host: str, *cmd: str, timeout: int = 60) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", "exec", f"wabiz-tb-{NAME}-{host}", *cmd], capture_output=True, text=True,
                          timeout=timeout)
