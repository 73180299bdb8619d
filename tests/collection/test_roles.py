"""Every role documents exactly the variables it defaults, and the testbed inventory matches the
machines testbed.py creates."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Every role, the defaults-only `common` included: its spec documents the cluster-wide wabiz_* variables.
ROLES = sorted(p.name for p in (ROOT / "roles").iterdir() if (p / "meta" / "main.yml").exists())


def test_there_are_roles():
    assert {"master", "coreapp", "webapp", "dev_cluster", "preflight"} <= set(ROLES)


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_matches_defaults(role):
    spec_file = ROOT / "roles" / role / "meta" / "argument_specs.yml"
    assert spec_file.is_file(), f"{role} has no meta/argument_specs.yml"
    options = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"].get("options") or {}
    defaults_file = ROOT / "roles" / role / "defaults" / "main.yml"
    defaults = (yaml.safe_load(defaults_file.read_text()) or {}) if defaults_file.exists() else {}
    missing = sorted(set(defaults) - set(options))
    assert not missing, f"{role}: defaults not documented in argument_specs: {missing}"
    stale = sorted(k for k, o in options.items() if "default" in o and k not in defaults)
    assert not stale, f"{role}: argument_specs gives defaults for variables defaults/main.yml lacks: {stale}"
    for key, value in defaults.items():
        if "default" in options[key] and not (isinstance(value, str) and "{{" in value):
            assert options[key]["default"] == value, f"{role}: {key} default differs: spec {options[key]['default']!r}"


@pytest.mark.parametrize("role", ROLES)
def test_role_has_a_readme(role):
    readme = ROOT / "roles" / role / "README.md"
    assert readme.is_file() and len(readme.read_text()) > 200, f"{role} needs a README"


def test_testbed_inventory_matches_the_testbed_layout():
    sys.path.insert(0, str(ROOT / "testbed"))
    import testbed

    inv = yaml.safe_load((ROOT / "inventories" / "testbed" / "hosts.yml").read_text())["all"]
    machines = testbed.plan(testbed.LAYOUTS["ha"], "mariadb", True, testbed.DEFAULT_SUBNET)
    assert {m.name: m.address for m in machines} == {h: v["ansible_host"] for h, v in inv["hosts"].items()}
    assert all(v["wabiz_external_hostname"] == v["ansible_host"] for v in inv["hosts"].values())
    # Reached as testbed.py's own inventory reaches them (the key's path is the static file's own).
    ssh = inv["children"]["testbed_machines"]
    assert set(ssh["hosts"]) == {m.name for m in machines}
    want = {k: v for k, v in testbed.ssh_vars().items() if k != "ansible_ssh_private_key_file"}
    assert {k: v for k, v in ssh["vars"].items() if k != "ansible_ssh_private_key_file"} == want
    assert ssh["vars"]["ansible_ssh_private_key_file"].endswith("/.build/testbed/ssh/id_ed25519")
    for m in machines:
        for group in (g for g in m.groups if g.startswith("wabiz_")):
            assert m.name in inv["children"][group]["hosts"], (m.name, group)
