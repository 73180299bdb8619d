"""Shared pieces of the infrastructure role tests: the staged collection, a testbed per module,
running playbooks against it, and commands inside its machines."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PLAYBOOKS = HERE / "playbooks"
GROUPS_INVENTORY = HERE / "inventory" / "groups.yml"
BUILD = ROOT / ".build" / "roles-tests"
VENV_SITE = ROOT / ".venv" / "lib" / "python3.11" / "site-packages"
sys.path.insert(0, str(ROOT / "testbed"))
import testbed  # noqa: E402

RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@dataclass
class Run:
    rc: int
    output: str
    seconds: float
    recap: dict[str, dict[str, int]]

    def changed(self) -> dict[str, int]:
        return {h: r["changed"] for h, r in self.recap.items()}

    def ok(self) -> bool:
        return self.rc == 0 and all(r["failed"] == 0 and r["unreachable"] == 0 for r in self.recap.values())


@pytest.fixture(scope="session")
def collections_path() -> str:
    """The collection as users get it (built tarball, unpacked), beside the venv's collections."""
    env = {**os.environ, "WABIZ_BUILD_DIR": str(BUILD)}
    res = subprocess.run([str(ROOT / "scripts" / "stage-collection.sh")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    return f"{BUILD / 'collections'}:{VENV_SITE}"


class Bed:
    """One testbed of these tests and the way to run playbooks and commands on it."""

    def __init__(self, name: str, collections: str, extra_vars: dict[str, str],
                 inventory: Path = GROUPS_INVENTORY):
        self.name = name
        self.inventory = inventory
        self.collections = collections
        self.extra_vars = extra_vars
        self.times: dict[str, float] = {}

    def container(self, host: str) -> str:
        return f"{testbed.PREFIX}-{self.name}-{host}"

    def sh(self, host: str, script: str, timeout: int = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["docker", "exec", self.container(host), "sh", "-c", script],
                              capture_output=True, text=True, timeout=timeout)

    def play(self, playbook: str, *args: str, label: str | None = None, inventory: Path | None = None) -> Run:
        """Run a playbook of tests/roles/playbooks (or a collection's, by its FQCN) on the bed;
        ``inventory``: instead of the bed's own inventories."""
        inventories = [inventory] if inventory else [testbed.inventory_path(self.name), self.inventory]
        cmd = ["ansible-playbook", *[a for i in inventories for a in ("-i", str(i))],
               playbook if playbook.startswith("wabiz.") else str(PLAYBOOKS / playbook)]
        for k, v in self.extra_vars.items():
            cmd += ["-e", f"{k}={v}"]
        cmd += list(args)
        env = {**os.environ, "ANSIBLE_COLLECTIONS_PATH": self.collections, "ANSIBLE_DEPRECATION_WARNINGS": "false",
               "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "false",
               "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"}
        start = time.monotonic()
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        seconds = time.monotonic() - start
        if label:
            self.times[label] = round(seconds, 1)
        out = res.stdout + res.stderr
        recap = {m[0]: {"ok": int(m[1]), "changed": int(m[2]), "unreachable": int(m[3]), "failed": int(m[4])}
                 for m in RECAP.findall(out)}
        return Run(res.returncode, out, seconds, recap)


@contextmanager
def bed_session(name: str, collections: str, hosts: list[str], db: str | None, nfs: bool, subnet: str,
                extra_vars: dict[str, str], inventory: Path = GROUPS_INVENTORY) -> Iterator[Bed]:
    """A fresh testbed for one test module (first taking down whatever an interrupted run left);
    afterwards its playbook timings are written to BUILD and printed, and it is taken down."""
    testbed.down(name)
    testbed.up(name, hosts, db, nfs, subnet)
    b = Bed(name, collections, extra_vars, inventory=inventory)
    yield b
    (BUILD / f"times-{name}.json").write_text(json.dumps(b.times, indent=2) + "\n")
    print(f"\n[{name}] playbook seconds: {b.times}")
    testbed.down(name)


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])
