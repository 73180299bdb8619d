"""The collection builds into a tarball that installs offline and whose plugins ansible-doc lists."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def _run(*cmd: str, env: dict | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=cwd)
    assert res.returncode == 0, f"{' '.join(cmd)} failed:\n{res.stdout}\n{res.stderr}"
    return res


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run("ansible-galaxy", "collection", "build", str(ROOT), "--output-path", str(out), "--force")
    (tar,) = out.glob("wabiz-cluster-*.tar.gz")
    return tar


def test_tarball_holds_the_collection_and_no_build_output(tarball):
    with tarfile.open(tarball) as tf:
        names = tf.getnames()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    assert "meta/runtime.yml" in names and "README.md" in names
    assert not [n for n in names if "/.secrets" in n], "generated secrets leaked into the tarball"
    for excluded in (".venv/", ".build/", "tests/", "standin/", "images/", "testbed/", ".git/", "docs/bench/"):
        assert not [n for n in names if n.startswith(excluded)], f"{excluded} leaked into the tarball"


def test_installs_offline_into_an_empty_path_and_lists_its_modules(tarball, tmp_path):
    dest = tmp_path / "collections"
    # Away from the working tree's ansible.cfg, which makes the tree itself the collection: only
    # the fresh install (and the dependencies the ansible package bundles) is visible.
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env["ANSIBLE_COLLECTIONS_PATH"] = str(dest)
    _run("ansible-galaxy", "collection", "install", "--offline", "-p", str(dest), str(tarball), env=env, cwd=tmp_path)
    installed = dest / "ansible_collections" / "wabiz" / "cluster"
    assert (installed / "MANIFEST.json").is_file()
    res = _run("ansible-doc", "-t", "module", "-l", "wabiz.cluster", "--json", env=env, cwd=tmp_path)
    listed = {name.split(".")[-1] for name in json.loads(res.stdout)}
    shipped = {p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__"}
    assert listed == shipped


def test_tarball_carries_what_adopters_and_ansible_builder_read(tarball):
    """Licence, dependency lists and the execution-environment metadata ship; benchmark data does not."""
    with tarfile.open(tarball) as tf:
        names = set(tf.getnames())
        ee = yaml.safe_load(tf.extractfile("meta/execution-environment.yml"))
        manifest = json.load(tf.extractfile("MANIFEST.json"))
        sizes = {m.name: m.size for m in tf.getmembers() if m.isfile()}
    for name in ("LICENSE", "requirements.yml", "bindep.txt", "meta/ee-requirements.txt"):
        assert name in names, f"{name} is missing from the tarball"
    # ansible-builder resolves these relative to the collection root: they must be inside it.
    for kind in ("python", "system"):
        assert ee["dependencies"][kind] in names, f"execution-environment {kind} file not shipped"
    assert "GNU GENERAL PUBLIC LICENSE" in (ROOT / "LICENSE").read_text()
    # The benchmark evidence stays in the repository: the tarball is the collection alone.
    assert not [n for n in names if n.endswith((".png", ".json")) and n.startswith("docs/")]
    assert sum(sizes.values()) < 1_000_000, f"tarball content is {sum(sizes.values())} bytes"
    deps = manifest["collection_info"]["dependencies"]
    assert deps["community.postgresql"].startswith(">=3.13")  # postgresql_alter_system


def test_requirements_yml_matches_galaxy_dependencies():
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())["dependencies"]
    listed = {c["name"]: c["version"] for c in yaml.safe_load((ROOT / "requirements.yml").read_text())["collections"]}
    assert listed == galaxy


@pytest.mark.parametrize("source", ["README.md", "ansible.cfg"])
def test_the_recommended_ansible_cfg_is_read_by_ansible(source, tmp_path):
    """The README's ansible.cfg block (and the tree's own) as ansible-config reads them: an inline
    ``#`` comment would make forks unreadable, as it did in the README before."""
    text = (ROOT / source).read_text()
    if source == "README.md":
        text = text.split("```ini\n", 1)[1].split("```", 1)[0]
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text(text)
    env = {**os.environ, "ANSIBLE_CONFIG": str(cfg)}
    out = _run("ansible-config", "dump", "--only-changed", "--format", "json", env=env, cwd=tmp_path).stdout
    changed = {item["name"]: item["value"] for item in json.loads(out) if isinstance(item, dict) and "name" in item}
    assert changed.get("DEFAULT_FORKS") == 20, changed
    assert changed.get("INTERPRETER_PYTHON") == "auto_silent", changed
