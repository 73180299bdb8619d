"""The collection builds into a tarball that installs offline and whose plugins ansible-doc lists."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path

import pytest

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
    for excluded in (".venv/", ".build/", "tests/", "standin/", "images/", "testbed/", ".git/"):
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
    listed = {name.split(".")[-1] for name in __import__("json").loads(res.stdout)}
    shipped = {p.stem for p in (ROOT / "plugins" / "modules").glob("*.py") if p.stem != "__init__"}
    assert listed == shipped
