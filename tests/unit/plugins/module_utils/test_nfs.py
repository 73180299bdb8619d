"""The nfs_media module's body with a fake module: the kernel mount path, bad input, what is not NFS, deadlines."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs as nfs
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs_fstab as nfs_fstab
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs_probe as nfs_probe
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils import nfs_samples
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils.nfs_samples import (
    DEFAULTS,
    FIXTURES,
    FSTAB,
    MI_FEDORA_516_NFS42,
    MI_K8S_NFS41,
    MI_THIS_HOST,
    needs_nfs_ls,
)

silent_server = nfs_samples.silent_server  # a fixture: pytest finds it in this module

REAL_RUN = nfs_probe.run_with_deadline  # the fake module's tests replace it


# --- the kernel mount path, with a fake module ------------------------------------------------

class Failed(Exception):
    pass


class FakeModule:
    """Just what run_nfs_media uses of AnsibleModule; mount/umount edit a fake mountinfo file."""

    def __init__(self, tmp_path, params, mount_rc=0, check_mode=False, live_line=None):
        self.params = dict((k, v.get("default")) for k, v in nfs.nfs_argument_spec().items())
        self.params.update(params)
        self.check_mode = check_mode
        self._diff = True
        self.mountinfo = tmp_path / "mountinfo"
        self.mountinfo.write_text(MI_THIS_HOST + (live_line + "\n" if live_line else ""))
        self.mount_rc = mount_rc
        self.commands = []
        self.warnings = []

    def fail_json(self, **kw):
        raise Failed(kw)

    def warn(self, msg):
        self.warnings.append(msg)

    def get_bin_path(self, name, required=False):
        return "/bin/" + name

    def atomic_move(self, src, dest, unsafe_writes=False):
        os.rename(src, dest)

    def run_command(self, argv):
        self.commands.append(argv)
        if argv[0] == "/bin/mount":
            if self.mount_rc:
                return self.mount_rc, "", "mount.nfs: Connection timed out"
            src, path = argv[-2], argv[-1]
            with open(self.mountinfo, "a") as f:
                f.write(f"900 22 0:90 / {path} rw,relatime shared:500 - nfs4 {src} rw,vers=4.1,rsize=1048576,wsize=1048576,"
                        "namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,clientaddr=10.0.0.2,"
                        "local_lock=none,addr=10.0.0.1\n")
            return 0, "", ""
        if argv[0] == "/bin/umount":
            lines = [ln for ln in self.mountinfo.read_text().splitlines() if f" {argv[1]} " not in ln]
            self.mountinfo.write_text("\n".join(lines) + "\n")
            return 0, "", ""
        raise AssertionError(argv)


@pytest.fixture()
def kernel_with_nfs(tmp_path, monkeypatch):
    fs = tmp_path / "filesystems"
    fs.write_text("nodev\ttmpfs\nnodev\tnfs\nnodev\tnfs4\n")
    monkeypatch.setattr(nfs, "PROC_FILESYSTEMS", str(fs))
    return tmp_path


def make(tmp_path, monkeypatch, **kw):
    params = {"src": "10.0.0.1:/media", "path": str(tmp_path / "srv" / "wamedia"),
              "fstab": str(tmp_path / "fstab")}
    params.update(kw.pop("params", {}))
    module = FakeModule(tmp_path, params, **kw)
    monkeypatch.setattr(nfs, "PROC_MOUNTINFO", str(module.mountinfo))
    monkeypatch.setattr(nfs, "run_with_deadline", lambda argv, timeout: module.run_command(argv))
    return module


def test_mount_writes_fstab_mounts_and_probes(kernel_with_nfs, monkeypatch):
    tmp = kernel_with_nfs
    (tmp / "fstab").write_text(FSTAB)
    module = make(tmp, monkeypatch)
    result = nfs.run_nfs_media(module)
    path = str(tmp / "srv" / "wamedia")
    assert result["changed"] is True
    assert result["actions"] == ["fstab: set " + path, "mount 10.0.0.1:/media at " + path, "mkdir " + path]
    assert module.commands == [["/bin/mount", "-t", "nfs", "-o", nfs_fstab.DEFAULT_OPTS, "10.0.0.1:/media", path]]
    assert (f"10.0.0.1:/media {path} nfs {nfs_fstab.DEFAULT_OPTS} 0 0") in (tmp / "fstab").read_text()
    assert result["option_differences"] == []
    assert result["mount"]["fstype"] == "nfs4"
    assert result["probe"]["ok"] is True  # a real write/read/delete in the (local) directory
    assert os.listdir(path) == []
    # second run, with the mount the first one made: nothing to do
    mounted = module.mountinfo.read_text().splitlines()[-1]
    second = make(tmp, monkeypatch, live_line=mounted)
    again = nfs.run_nfs_media(second)
    assert again["changed"] is False and again["actions"] == [] and second.commands == []


def test_failed_mount_restores_fstab_and_removes_created_dirs(kernel_with_nfs, monkeypatch):
    tmp = kernel_with_nfs
    (tmp / "fstab").write_text(FSTAB)
    module = make(tmp, monkeypatch, mount_rc=32)
    with pytest.raises(Failed) as err:
        nfs.run_nfs_media(module)
    msg = err.value.args[0]["msg"]
    assert "failed (fstab restored, created directories removed): mount.nfs: Connection timed out" in msg
    assert (tmp / "fstab").read_text() == FSTAB
    assert not (tmp / "srv").exists()


def test_failed_mount_with_no_fstab_before_removes_it(kernel_with_nfs, monkeypatch):
    tmp = kernel_with_nfs
    (tmp / "srv" / "wamedia").mkdir(parents=True)
    with pytest.raises(Failed) as err:
        nfs.run_nfs_media(make(tmp, monkeypatch, mount_rc=32))
    assert "fstab restored)" in err.value.args[0]["msg"]
    assert not (tmp / "fstab").exists()
    assert (tmp / "srv" / "wamedia").is_dir()  # it existed before: kept


def test_check_mode_touches_nothing(kernel_with_nfs, monkeypatch):
    tmp = kernel_with_nfs
    (tmp / "fstab").write_text(FSTAB)
    module = make(tmp, monkeypatch, check_mode=True)
    result = nfs.run_nfs_media(module)
    assert result["changed"] is True and module.commands == []
    assert (tmp / "fstab").read_text() == FSTAB
    assert not (tmp / "srv").exists()
    assert "+10.0.0.1:/media" not in result["diff"]["before"]
    assert "10.0.0.1:/media" in result["diff"]["after"]


def test_live_mount_with_other_options_is_remounted(kernel_with_nfs, monkeypatch):
    tmp = kernel_with_nfs
    path = tmp / "srv" / "wamedia"
    path.mkdir(parents=True)
    live = MI_FEDORA_516_NFS42.replace(" /mnt ", f" {path} ").replace("192.168.122.225:/exports", "10.0.0.1:/media")
    module = make(tmp, monkeypatch, live_line=live)
    result = nfs.run_nfs_media(module)
    assert result["changed"] is True
    assert any(a.startswith(f"remount {path} (nfsvers)") for a in result["actions"])
    assert [c[0] for c in module.commands] == ["/bin/umount", "/bin/mount"]
    assert result["mount"]["super_options"].startswith("rw,vers=4.1,")


def test_live_mount_matching_is_left_alone_but_probe_still_runs(kernel_with_nfs, monkeypatch):
    tmp = kernel_with_nfs
    path = tmp / "srv" / "wamedia"
    path.mkdir(parents=True)
    line = nfs_fstab.fstab_line("10.0.0.1:/media", str(path), "nfs", DEFAULTS)
    (tmp / "fstab").write_text(line + "\n")
    live = MI_K8S_NFS41.replace("/kaiwudb/certs", str(path)).replace(
        "20.20.20.43:/data/k8s/nfs_share/pvc-2108ee90-b185-43f7-a95c-21d9a4d84a67", "10.0.0.1:/media")
    module = make(tmp, monkeypatch, live_line=live)
    result = nfs.run_nfs_media(module)
    assert result["changed"] is False and module.commands == []
    assert result["probe"]["ok"] is True


def test_probe_failure_is_reported(kernel_with_nfs, monkeypatch):
    tmp = kernel_with_nfs
    path = tmp / "srv" / "wamedia"
    path.mkdir(parents=True)
    path.chmod(0o555)
    live = MI_K8S_NFS41.replace("/kaiwudb/certs", str(path)).replace(
        "20.20.20.43:/data/k8s/nfs_share/pvc-2108ee90-b185-43f7-a95c-21d9a4d84a67", "10.0.0.1:/media")
    module = make(tmp, monkeypatch, live_line=live, params={"probe_uid": 65534, "probe_gid": 65534})
    if os.geteuid() != 0:
        pytest.skip("switching to uid 65534 for the probe needs root")
    with pytest.raises(Failed) as err:
        nfs.run_nfs_media(module)
    kw = err.value.args[0]
    assert "uid 65534 / gid 65534 cannot write" in kw["msg"]
    assert "Permission denied" in kw["probe"]["error"]


def test_unmounted_and_absent(kernel_with_nfs, monkeypatch):
    tmp = kernel_with_nfs
    path = tmp / "srv" / "wamedia"
    path.mkdir(parents=True)
    line = nfs_fstab.fstab_line("10.0.0.1:/media", str(path), "nfs", DEFAULTS)
    (tmp / "fstab").write_text(FSTAB + line + "\n")
    live = MI_K8S_NFS41.replace("/kaiwudb/certs", str(path))
    module = make(tmp, monkeypatch, live_line=live, params={"state": "unmounted", "src": None})
    result = nfs.run_nfs_media(module)
    assert result["changed"] is True and module.commands == [["/bin/umount", str(path)]]
    assert line in (tmp / "fstab").read_text()
    module = make(tmp, monkeypatch, params={"state": "absent", "src": None})
    result = nfs.run_nfs_media(module)
    assert result["changed"] is True and module.commands == []
    assert str(path) not in (tmp / "fstab").read_text()
    assert nfs.run_nfs_media(make(tmp, monkeypatch, params={"state": "absent", "src": None}))["changed"] is False


def test_no_kernel_nfs_fails_clearly_and_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(nfs, "PROC_FILESYSTEMS", os.path.join(FIXTURES, "filesystems-6.18-no-nfs.txt"))
    monkeypatch.setattr(nfs, "module_paths", lambda release: [])
    (tmp_path / "fstab").write_text(FSTAB)
    module = make(tmp_path, monkeypatch)
    with pytest.raises(Failed) as err:
        nfs.run_nfs_media(module)
    kw = err.value.args[0]
    assert "no kernel NFS client (nfs missing from /proc/filesystems)" in kw["msg"]
    assert "userspace_check=true" in kw["msg"]
    assert kw["kernel_nfs"] is False
    assert (tmp_path / "fstab").read_text() == FSTAB
    assert not (tmp_path / "srv").exists() and module.commands == []


def _refused(tmp: Path, monkeypatch: pytest.MonkeyPatch, params: dict[str, Any], fragment: str) -> str:
    """Run the module with ``params`` over the sample fstab: it must fail with ``fragment`` in its
    message, leaving the fstab as it was and running no command. Returns the message."""
    (tmp / "fstab").write_text(FSTAB)
    module = make(tmp, monkeypatch, params=params)
    with pytest.raises(Failed) as err:
        nfs.run_nfs_media(module)
    msg = err.value.args[0]["msg"]
    assert fragment in msg
    assert (tmp / "fstab").read_text() == FSTAB and module.commands == []
    return msg


@pytest.mark.parametrize(
    "params, fragment",
    [({"path": "relative/dir"}, "not an absolute path"), ({"src": "nohost"}, "src:"),
     ({"opts": "hard,timeo=6 00"}, "whitespace"), ({"dump": -1}, "dump: must not be negative")],
)
def test_bad_input_fails_before_touching_anything(kernel_with_nfs, monkeypatch, params, fragment):
    _refused(kernel_with_nfs, monkeypatch, params, fragment)


# --- bad input: each is refused naming the option, before anything is read or changed ---------

@pytest.mark.parametrize(
    "params, fragment",
    [({"path": "/"}, "path: / is a system directory"), ({"path": "/var"}, "path: /var is a system directory"),
     ({"src": "-oremount,rw:/media"}, "src: server '-oremount,rw' starts with '-'"),
     ({"src": "10.0.0.1:/me dia"}, "src: the export '/me dia' contains whitespace"),
     ({"timeout": 0}, "timeout: 0 is not a number of seconds greater than 0"),
     ({"timeout": -5}, "timeout: -5 is not a number of seconds greater than 0"),
     ({"probe_uid": -1}, "probe_uid: must not be negative (it is -1)"),
     ({"opts": "hard,port=abc"}, "opts: port=abc is not a port number"),
     ({"opts": "hard,port=70000"}, "opts: port=70000 is not a port number"),
     ({"fstab": "relative/fstab"}, "fstab: 'relative/fstab' is not an absolute path")],
)
def test_bad_input_names_the_option_and_changes_nothing(kernel_with_nfs, monkeypatch, params, fragment):
    msg = _refused(kernel_with_nfs, monkeypatch, params, fragment)
    assert msg.endswith("Nothing was changed.")
    assert not (kernel_with_nfs / "srv").exists()


@pytest.mark.parametrize("state", ["mounted", "present", "absent", "unmounted"])
def test_fstab_in_a_missing_directory_is_a_clear_error(kernel_with_nfs, monkeypatch, state):
    tmp = kernel_with_nfs
    fstab = tmp / "nope" / "fstab"
    module = make(tmp, monkeypatch, params={"fstab": str(fstab), "state": state})
    with pytest.raises(Failed) as err:
        nfs.run_nfs_media(module)
    assert err.value.args[0]["msg"].startswith(f"fstab: the directory {tmp / 'nope'} of {fstab} does not exist;")
    assert not (tmp / "nope").exists() and module.commands == []


EXT4_LIVE = "30 22 8:17 / {path} rw,relatime shared:9 - ext4 /dev/sdb1 rw,errors=remount-ro"
ROOT_LIVE = "25 1 8:2 / / rw,relatime shared:1 - ext4 /dev/sda2 rw,errors=remount-ro"


@pytest.mark.parametrize("state", ["absent", "unmounted", "mounted", "present"])
def test_a_non_nfs_mount_at_path_is_left_alone(kernel_with_nfs, monkeypatch, state):
    tmp = kernel_with_nfs
    path = tmp / "srv" / "wamedia"
    path.mkdir(parents=True)
    line = nfs_fstab.fstab_line("10.0.0.1:/media", str(path), "nfs", DEFAULTS)
    (tmp / "fstab").write_text(FSTAB + line + "\n")
    module = make(tmp, monkeypatch, live_line=EXT4_LIVE.format(path=path), params={"state": state})
    with pytest.raises(Failed) as err:
        nfs.run_nfs_media(module)
    kw = err.value.args[0]
    assert kw["msg"].startswith(f"path: {path} is mounted as ext4 (from /dev/sdb1), not NFS;")
    assert "Nothing was changed." in kw["msg"]
    assert kw["mount_before"]["fstype"] == "ext4"
    assert module.commands == [] and (tmp / "fstab").read_text() == FSTAB + line + "\n"


@pytest.mark.parametrize("state", ["absent", "present", "mounted"])
def test_a_non_nfs_fstab_entry_for_path_is_left_alone(kernel_with_nfs, monkeypatch, state):
    tmp = kernel_with_nfs
    path = tmp / "data"
    content = FSTAB + f"UUID=4e5f6a7b {path} ext4 defaults 0 2\n"
    (tmp / "fstab").write_text(content)
    module = make(tmp, monkeypatch, params={"state": state, "path": str(path)})
    with pytest.raises(Failed) as err:
        nfs.run_nfs_media(module)
    msg = err.value.args[0]["msg"]
    assert msg.startswith(f"fstab: {tmp / 'fstab'} has an entry of type ext4 for {path}, not NFS (UUID=4e5f6a7b {path} ext4")
    assert module.commands == [] and (tmp / "fstab").read_text() == content


def test_absent_unmounts_and_removes_an_nfs4_mount(kernel_with_nfs, monkeypatch):
    tmp = kernel_with_nfs
    path = tmp / "srv" / "wamedia"
    path.mkdir(parents=True)
    (tmp / "fstab").write_text(FSTAB + f"10.0.0.1:/media {path} nfs4 {nfs_fstab.DEFAULT_OPTS} 0 0\n")
    live = MI_K8S_NFS41.replace("/kaiwudb/certs", str(path))
    module = make(tmp, monkeypatch, live_line=ROOT_LIVE + "\n" + live, params={"state": "absent", "src": None})
    result = nfs.run_nfs_media(module)
    assert result["changed"] is True and module.commands == [["/bin/umount", str(path)]]
    assert (tmp / "fstab").read_text() == FSTAB


# --- deadlines: nothing may outlast the timeout ------------------------------------------------

class RealToolsModule(FakeModule):
    def get_bin_path(self, name, required=False):
        return shutil.which(name)


@needs_nfs_ls
@pytest.mark.parametrize("check_mode", [True, False])
def test_module_userspace_check_against_a_silent_server_fails_within_the_timeout(
        tmp_path, monkeypatch, silent_server, check_mode):
    """A real run fails; check mode (a dry run of a new cluster, whose NFS server is not set up
    yet) reports the fstab entry as to be written and says the check failed."""
    import time

    (tmp_path / "fstab").write_text(FSTAB)
    params = {"src": "127.0.0.1:/media", "path": str(tmp_path / "srv" / "wamedia"), "fstab": str(tmp_path / "fstab"),
              "state": "present", "userspace_check": True, "timeout": 2,
              "opts": f"{nfs_fstab.DEFAULT_OPTS},port={silent_server}"}
    module = RealToolsModule(tmp_path, params, check_mode=check_mode)
    monkeypatch.setattr(nfs, "PROC_MOUNTINFO", str(module.mountinfo))
    start = time.monotonic()
    if check_mode:
        result = nfs.run_nfs_media(module)
        assert result["changed"] is True and len(module.warnings) == 1, module.warnings
        msg = module.warnings[0]
        assert msg.startswith("check mode: the userspace check of 127.0.0.1:/media failed at 'list': nfs-ls ")
        assert msg.endswith("A real run fails here unless that is in place by then.")
    else:
        with pytest.raises(Failed) as err:
            nfs.run_nfs_media(module)
        msg = err.value.args[0]["msg"]
        assert msg.startswith("userspace check of 127.0.0.1:/media failed at 'list': nfs-ls nfs://127.0.0.1/media?")
        assert msg.endswith("(fstab left as it was)")
    assert time.monotonic() - start < 2 + 1.5
    assert "did not finish within 2s and was killed" in msg
    assert (tmp_path / "fstab").read_text() == FSTAB


def test_mount_that_hangs_is_killed_and_everything_restored(kernel_with_nfs, monkeypatch):
    tmp = kernel_with_nfs
    (tmp / "fstab").write_text(FSTAB)
    module = make(tmp, monkeypatch, params={"timeout": 1})
    monkeypatch.setattr(nfs, "run_with_deadline", lambda argv, timeout: REAL_RUN(["sleep", "30"], timeout))
    with pytest.raises(Failed) as err:
        nfs.run_nfs_media(module)
    assert "failed (fstab restored, created directories removed): sleep did not finish within 1s" in \
        err.value.args[0]["msg"]
    assert (tmp / "fstab").read_text() == FSTAB and not (tmp / "srv").exists()
