"""The userspace check of an export with libnfs: each step against a fake server, the grace period, and the
deadlines against a server that accepts connections and never answers."""

from __future__ import annotations

import os
import shutil

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs_errors as nfs_errors
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs_fstab as nfs_fstab
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs_probe as nfs_probe
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs_userspace as nfs_userspace
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils import nfs_samples
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils.nfs_samples import needs_nfs_ls

silent_server = nfs_samples.silent_server  # a fixture: pytest finds it in this module


# --- userspace check ---------------------------------------------------------------------------

@pytest.mark.parametrize("opts, version", [(nfs_fstab.DEFAULT_OPTS, 4), ("nfsvers=3,hard", 3), ("vers=4.2", 4), ("hard", 4)])
def test_libnfs_version(opts, version):
    assert nfs_userspace.libnfs_version(nfs_fstab.parse_opts(opts)) == version


def test_nfs_url():
    assert nfs_userspace.nfs_url("10.0.0.5", "/media", 4, 1000, 1000) == "nfs://10.0.0.5/media?version=4&uid=1000&gid=1000"
    assert nfs_userspace.nfs_url("fd00::5", "/media/", 3, 0, 0, "x") == "nfs://[fd00::5]/media/x?version=3&uid=0&gid=0"


class FakeServer:
    """nfs-ls/nfs-cp/nfs-cat and libnfs unlink against a dict, with failures to inject."""

    def __init__(self, fail=None):
        self.files = {"existing.jpg": "x"}
        self.fail = fail or {}
        self.listen = None

    def which(self, name):
        return "/usr/bin/" + name

    def run(self, argv):
        tool = os.path.basename(argv[0])
        if tool in self.fail:
            return 1, "", self.fail[tool]
        if tool == "nfs-ls":
            return 0, "".join(f"-rw-rw----  1 0 0  1 {n}\n" for n in sorted(self.files)), ""
        name = argv[-1].split("?")[0].rsplit("/", 1)[1]
        if tool == "nfs-cp":
            with open(argv[1]) as f:
                self.files[name] = f.read()
            return 0, "copied\n", ""
        if tool == "nfs-cat":
            return 0, self.files[name], ""
        raise AssertionError(argv)

    def libnfs(self):
        server = self

        class Lib:
            def unlink(self, host, export, name, version, uid, gid, timeout_ms, port=2049):
                if "unlink" in server.fail:
                    raise nfs_errors.NfsError("unlink {}: {}".format(name, server.fail["unlink"]))
                del server.files[name]

        return Lib()


@pytest.fixture()
def listening_port():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(5)
    yield s.getsockname()[1]
    s.close()


def check(server, port, write=True):
    return nfs_userspace.userspace_check(server.run, server.which, "127.0.0.1", "/media", 4, 1000, 1000, port=port,
                                         timeout=2, write=write, libnfs_factory=server.libnfs)


def test_userspace_check_all_steps_leave_no_probe_behind(listening_port):
    server = FakeServer()
    result = check(server, listening_port)
    assert result["ok"] is True
    assert [s["step"] for s in result["steps"]] == ["reach", "list", "write", "read", "delete"]
    assert all(s["ok"] for s in result["steps"])
    assert result["steps"][1]["detail"] == "1 entries"
    assert sorted(server.files) == ["existing.jpg"]
    assert result["protocol"] == "NFSv4.0 over TCP (libnfs)"


def test_userspace_check_in_check_mode_only_reads(listening_port):
    server = FakeServer()
    result = check(server, listening_port, write=False)
    assert result["ok"] is True
    assert [s["step"] for s in result["steps"]] == ["reach", "list"]


@pytest.mark.parametrize(
    "fail, step, detail",
    [
        ({"nfs-ls": "Failed to mount nfs share : mount_cb: NFS4: (path /media) failed with NFS4ERR_NOENT(-2)"},
         "list", "NFS4ERR_NOENT"),
        ({"nfs-cp": "Failed to open nfs://127.0.0.1/media/x"}, "write", "Failed to open"),
        ({"unlink": 'unlink call failed with "NFS4: (path /) failed with NFS4ERR_ACCESS(-13)"'}, "delete", "NFS4ERR_ACCESS"),
    ],
)
def test_userspace_check_stops_at_the_failing_step(listening_port, fail, step, detail):
    result = check(FakeServer(fail), listening_port)
    assert result["ok"] is False
    bad = nfs_userspace.failed_step(result)
    assert bad["step"] == step and detail in bad["detail"]
    assert result["steps"][-1] is bad


def test_userspace_check_waits_out_the_servers_grace_period(listening_port):
    server = FakeServer()
    grace = {"left": 3}
    real_run = server.run

    def run(argv):
        if os.path.basename(argv[0]) == "nfs-cp" and grace["left"]:
            grace["left"] -= 1
            return 1, "", 'creat call failed with "NFS4: (path /) failed with NFS4ERR_GRACE(-5)"'
        return real_run(argv)

    slept = []
    now = [0.0]

    def sleep(s):
        slept.append(s)
        now[0] += s

    result = nfs_userspace.userspace_check(run, server.which, "127.0.0.1", "/media", 4, 0, 0, port=listening_port, timeout=10,
                                           libnfs_factory=server.libnfs, sleep=sleep, clock=lambda: now[0])
    assert result["ok"] is True
    assert slept == [1, 1, 1]
    assert result["steps"][2]["detail"].endswith("(after the server's grace period)")


def test_userspace_check_grace_longer_than_the_timeout_fails(listening_port):
    server = FakeServer({"nfs-cp": "creat call failed with NFS4ERR_GRACE(-5)"})
    now = [0.0]

    def sleep(s):
        now[0] += s

    result = nfs_userspace.userspace_check(server.run, server.which, "127.0.0.1", "/media", 4, 0, 0, port=listening_port,
                                           timeout=4, libnfs_factory=server.libnfs, sleep=sleep, clock=lambda: now[0])
    assert nfs_userspace.failed_step(result)["step"] == "write"
    assert now[0] == 4


def test_userspace_check_unreachable():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    result = check(FakeServer(), port)
    assert result["ok"] is False
    assert result["steps"] == [{"step": "reach", "ok": False, "detail": result["steps"][0]["detail"]}]
    assert result["steps"][0]["detail"].startswith(f"cannot reach 127.0.0.1:{port}")


def test_nfs_url_carries_another_port():
    assert nfs_userspace.nfs_url("10.0.0.5", "/media", 4, 0, 0, port=20490).endswith("?version=4&uid=0&gid=0&nfsport=20490")


# --- deadlines: nothing may outlast the timeout ------------------------------------------------

@needs_nfs_ls
@pytest.mark.parametrize("write", [False, True])
def test_userspace_check_against_a_silent_server_fails_within_the_timeout(silent_server, write):
    import time

    start = time.monotonic()
    result = nfs_userspace.userspace_check(lambda argv: nfs_probe.run_with_deadline(argv, 2), shutil.which, "127.0.0.1", "/media", 4,
                                           0, 0, port=silent_server, timeout=2, write=write)
    assert time.monotonic() - start < 2 + 1.5
    bad = nfs_userspace.failed_step(result)
    assert bad["step"] == "list"
    assert "nfs-ls did not finish within 2s and was killed (the server accepts connections but does not answer?)" \
        in bad["detail"]
    assert f"nfsport={silent_server}" in result["url"]


def _libnfs_or_skip():
    try:
        return nfs_userspace.LibNfs()
    except nfs_errors.NfsError as exc:
        pytest.skip(exc.msg)


def test_libnfs_unlink_against_a_silent_server_fails_within_the_timeout(silent_server):
    import time

    lib = _libnfs_or_skip()
    start = time.monotonic()
    with pytest.raises(nfs_errors.NfsError) as err:
        lib.unlink("127.0.0.1", "/media", "x", 4, 0, 0, 2000, port=silent_server)
    assert time.monotonic() - start < 2 + 1.5
    assert err.value.msg.startswith("unlink x:") or err.value.msg.startswith("mount 127.0.0.1:/media:")
