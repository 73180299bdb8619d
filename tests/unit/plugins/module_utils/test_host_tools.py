"""host_tools: real probes on this machine, apt-get replaced by an installer that creates files."""

from __future__ import annotations

import subprocess
import sys

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _host_tools as ht


class Failed(Exception):
    pass


def _run(argv, environ_update=None):
    p = subprocess.run(argv, capture_output=True, text=True, check=False)
    return p.returncode, p.stdout, p.stderr


class FakeModule:
    def __init__(self, tools, check_mode=False, **params):
        spec = ht.argument_spec()["tools"]["options"]
        full = [{k: t.get(k, v.get("default")) for k, v in spec.items()} for t in tools]
        self.params = dict(tools=full, install=True, cache_valid_time=3600, lock_timeout=120)
        self.params.update(params)
        self.check_mode, self._diff = check_mode, True

    def fail_json(self, **kw):
        raise Failed(kw)

    run_command = staticmethod(_run)


class FileInstaller:
    """'Installs' a package by creating the file named after it in a directory."""

    def __init__(self, directory, fail=None, apt=True):
        self.dir, self.fail, self.apt, self.calls = directory, fail, apt, []

    def available(self):
        return self.apt

    def install(self, packages):
        self.calls.append(list(packages))
        if self.fail:
            return self.fail
        for p in packages:
            (self.dir / p).write_text("")
        return None


def run(tmp_path, tools, **kw):
    installer = kw.pop("installer", None) or FileInstaller(tmp_path)
    module = FakeModule(tools, **kw)
    return ht.run_host_tools(module, ht.Prober(_run), installer), installer


def test_present_tools_install_nothing(tmp_path):
    result, installer = run(tmp_path, [
        {"package": ["coreutils"], "command": ["no-such-command-wabiz", "ls"]},
        {"package": ["python3"], "python": ["json"]},
        {"package": ["base-files"], "path": ["/etc"]},
        {"package": ["x"], "run": [[sys.executable, "-c", "pass"]]},
    ])
    assert result["changed"] is False and result["installed"] == [] and installer.calls == []
    assert [t["found"] for t in result["tools"]] == ["command ls", "python json", "path /etc",
                                                     f"run {sys.executable} -c pass"]


def test_only_the_absent_tools_packages_are_installed_in_one_run(tmp_path):
    result, installer = run(tmp_path, [
        {"package": ["pkg-a"], "path": [str(tmp_path / "pkg-a")]},
        {"package": ["ls-pkg"], "command": ["ls"]},
        {"package": ["pkg-b", "pkg-a"], "path": [str(tmp_path / "pkg-b")]},
    ])
    assert installer.calls == [["pkg-a", "pkg-b"]]
    assert result["changed"] is True and result["installed"] == ["pkg-a", "pkg-b"]
    assert [t["installed"] for t in result["tools"]] == [True, False, True]
    assert result["diff"] == {"before": "", "after": "pkg-a\npkg-b\n"}
    again, installer2 = run(tmp_path, [{"package": ["pkg-a"], "path": [str(tmp_path / "pkg-a")]}])
    assert again["changed"] is False and installer2.calls == []


def test_a_deferred_tool_brought_by_an_earlier_package_is_not_installed(tmp_path):
    tools = [{"package": ["engine"], "path": [str(tmp_path / "engine")]},
             {"package": ["cli"], "path": [str(tmp_path / "engine")], "deferred": True}]
    result, installer = run(tmp_path, tools)
    assert installer.calls == [["engine"]] and result["installed"] == ["engine"]
    assert result["tools"][1]["found"] == f"path {tmp_path / 'engine'}"


def test_check_mode_installs_nothing_and_leaves_deferred_tools_undecided(tmp_path):
    tools = [{"package": ["engine"], "path": [str(tmp_path / "engine")]},
             {"package": ["cli"], "path": [str(tmp_path / "cli")], "deferred": True}]
    result, installer = run(tmp_path, tools, check_mode=True)
    assert installer.calls == [] and not (tmp_path / "engine").exists()
    assert result["changed"] is True and result["installed"] == ["engine"] and result["undecided"] == ["cli"]


def test_install_false_reports_missing_and_changes_nothing(tmp_path):
    result, installer = run(tmp_path, [{"package": ["cron"], "command": ["no-such-crontab-wabiz"]}], install=False)
    assert installer.calls == [] and result["changed"] is False and result["missing"] == ["cron"]


def test_a_host_without_apt_get_fails_naming_the_tool_and_package(tmp_path):
    with pytest.raises(Failed) as e:
        run(tmp_path, [{"package": ["cron"], "command": ["no-such-crontab-wabiz"]}],
            installer=FileInstaller(tmp_path, apt=False))
    msg = e.value.args[0]["msg"]
    assert "command no-such-crontab-wabiz" in msg and "no apt-get" in msg and "cron" in msg


def test_a_failed_apt_run_fails_with_its_error(tmp_path):
    with pytest.raises(Failed) as e:
        run(tmp_path, [{"package": ["nope"], "command": ["no-such-wabiz"]}],
            installer=FileInstaller(tmp_path, fail="E: Unable to locate package nope"))
    assert "could not install nope" in e.value.args[0]["msg"] and "Unable to locate" in e.value.args[0]["msg"]


def test_a_tool_still_absent_after_its_install_fails(tmp_path):
    with pytest.raises(Failed) as e:
        run(tmp_path, [{"package": ["docker-cli"], "command": ["no-such-docker-wabiz"]}])
    assert "installed docker-cli, but command no-such-docker-wabiz is still not found" in e.value.args[0]["msg"]


def test_without_probes_dpkg_decides(tmp_path):
    if ht.shutil.which("dpkg-query") is None:
        pytest.skip("no dpkg-query on this machine (not Debian)")
    result, installer = run(tmp_path, [{"package": ["dpkg"]}])
    assert result["tools"][0]["found"] == "dpkg dpkg" and installer.calls == []
    installer = FileInstaller(tmp_path)
    with pytest.raises(Failed) as e:  # the file installer cannot make dpkg know the package
        run(tmp_path, [{"package": ["dpkg"]}, {"package": ["no-such-package-wabiz"]}], installer=installer)
    assert installer.calls == [["no-such-package-wabiz"]]
    assert "package no-such-package-wabiz is still not found" in e.value.args[0]["msg"]


def test_a_run_probe_whose_command_is_missing_counts_as_absent():
    prober = ht.Prober(_run)
    assert prober.run(["no-such-command-wabiz", "version"]) is False
    assert prober.run([]) is False
    assert prober.run([sys.executable, "-c", "raise SystemExit(3)"]) is False
