"""nfs_media logic: fstab lines, mountinfo parsing over real captured lines, option comparison,
kernel NFS detection, the userspace check, and the kernel mount path with a fake module."""

from __future__ import annotations

import os
import shutil

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs as nfs

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "nfs")

# Real /proc/self/mountinfo lines, captured on the systems named.
MI_K8S_NFS41 = (  # Kubernetes node, NFSv4.1 persistent volume (public repo fixture)
    "3417 2892 0:212 / /kaiwudb/certs rw,relatime - nfs4 20.20.20.43:/data/k8s/nfs_share/pvc-2108ee90-b185-43f7-a95c-21d9a4d84a67 "
    "rw,vers=4.1,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,"
    "clientaddr=20.20.20.27,local_lock=none,addr=20.20.20.43")
MI_FEDORA_516_NFS42 = (  # Fedora rawhide, Linux 5.16 (linux-nfs mailing list report)
    "601 60 0:55 / /mnt rw,relatime shared:332 - nfs4 192.168.122.225:/exports "
    "rw,vers=4.2,rsize=262144,wsize=262144,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,"
    "clientaddr=192.168.122.83,local_lock=none,addr=192.168.122.225")
MI_NFS3_TCP = (  # snapd test data, NFSv3 over TCP
    "1074 28 0:59 / /home/zyga/nfs rw,relatime shared:342 - nfs localhost:/srv/nfs "
    "rw,vers=3,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys,"
    "mountaddr=127.0.0.1,mountvers=3,mountport=54125,mountproto=tcp,local_lock=none,addr=127.0.0.1")
MI_NFS3_UDP = (  # snapd test data, NFSv3 over UDP
    "1074 28 0:59 / /home/zyga/nfs rw,relatime shared:342 - nfs localhost:/srv/nfs "
    "rw,vers=3,rsize=32768,wsize=32768,namlen=255,hard,proto=udp,timeo=11,retrans=3,sec=sys,"
    "mountaddr=127.0.0.1,mountvers=3,mountport=47875,mountproto=udp,local_lock=none,addr=127.0.0.1")
MI_NCONNECT_6X = (  # Linux 6.x with nconnect and fatal_neterrors (public repo fixture)
    "8533 8498 0:109 / /mnt/shared rw,noatime shared:802 - nfs4 192.168.1.107:/storage_pool/shared "
    "rw,vers=4.2,rsize=1048576,wsize=1048576,namlen=255,hard,fatal_neterrors=none,proto=tcp,nconnect=8,"
    "timeo=600,retrans=2,sec=sys,clientaddr=192.168.1.68,local_lock=none,addr=192.168.1.107")
MI_THIS_HOST = (  # this project's CI VM, Linux 6.18 (no NFS)
    "22 27 0:21 / /proc rw,relatime - proc proc rw\n"
    "23 27 0:22 / /sys rw,relatime - sysfs sysfs rw\n"
    "24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334460k,nr_inodes=3083615,mode=755\n")

DEFAULTS = nfs.parse_opts(nfs.DEFAULT_OPTS)
REAL_RUN = nfs.run_with_deadline  # the fake module's tests replace it


# --- src, opts, fstab ----------------------------------------------------------------------

@pytest.mark.parametrize(
    "src, server, export",
    [("nfs.example:/media", "nfs.example", "/media"), ("10.0.3.20:/exports/media", "10.0.3.20", "/exports/media"),
     ("[fd00::20]:/media", "fd00::20", "/media")],
)
def test_parse_src(src, server, export):
    assert nfs.parse_src(src) == (server, export)


@pytest.mark.parametrize("src", ["nfs.example", "nfs.example:media", ":/media", "a b:/m", "[fd00::1/media", ""])
def test_parse_src_rejects(src):
    with pytest.raises(nfs.NfsError) as err:
        nfs.parse_src(src)
    assert err.value.msg.startswith("src:")


def test_default_opts_are_metas():
    assert nfs.opts_text(DEFAULTS) == "nfsvers=4.1,hard,timeo=600,retrans=2,rsize=1048576,wsize=1048576"


def test_parse_opts_from_list_and_string_agree():
    assert nfs.parse_opts(["nfsvers=4.1", "hard", "_netdev"]) == nfs.parse_opts("nfsvers=4.1,hard,_netdev")


@pytest.mark.parametrize("opts", ["", "nfsvers=4 .1", ",", ["hard", "timeo=6 00"]])
def test_parse_opts_rejects(opts):
    with pytest.raises(nfs.NfsError):
        nfs.parse_opts(opts)


def test_fstab_line_escapes_spaces():
    line = nfs.fstab_line("srv:/media", "/srv/wa media", "nfs", DEFAULTS)
    assert line == "srv:/media /srv/wa\\040media nfs " + nfs.DEFAULT_OPTS + " 0 0"
    assert nfs.unescape(line.split()[1]) == "/srv/wa media"


FSTAB = (
    "# /etc/fstab: static file system information.\n"
    "UUID=0a1b2c3d / ext4 errors=remount-ro 0 1\n"
    "old:/media /srv/wamedia nfs nfsvers=3 0 0\n"
    "tmpfs /tmp tmpfs defaults 0 0\n"
    "old2:/media /srv/wamedia/ nfs nfsvers=3 0 0\n"
)


def test_update_fstab_replaces_in_place_and_drops_duplicates():
    new_line = nfs.fstab_line("nfs:/media", "/srv/wamedia", "nfs", DEFAULTS)
    text, old = nfs.update_fstab(FSTAB, "/srv/wamedia", new_line)
    assert old == ["old:/media /srv/wamedia nfs nfsvers=3 0 0", "old2:/media /srv/wamedia/ nfs nfsvers=3 0 0"]
    assert text.splitlines() == [
        "# /etc/fstab: static file system information.",
        "UUID=0a1b2c3d / ext4 errors=remount-ro 0 1",
        new_line,
        "tmpfs /tmp tmpfs defaults 0 0",
    ]


def test_update_fstab_appends_to_empty_or_missing_and_is_stable():
    line = nfs.fstab_line("nfs:/media", "/srv/wamedia", "nfs", DEFAULTS)
    for content in (None, ""):
        text, old = nfs.update_fstab(content, "/srv/wamedia", line)
        assert text == line + "\n" and old == []
        assert nfs.update_fstab(text, "/srv/wamedia", line)[0] == text  # idempotent


def test_update_fstab_remove_keeps_the_rest_and_comments_naming_the_path():
    content = "# old:/media /srv/wamedia nfs defaults 0 0\n" + FSTAB
    text, old = nfs.update_fstab(content, "/srv/wamedia", None)
    assert len(old) == 2
    assert "/srv/wamedia nfs nfsvers=3" not in text
    assert text.startswith("# old:/media /srv/wamedia nfs defaults 0 0\n")
    assert "tmpfs /tmp tmpfs defaults 0 0" in text


# --- mountinfo -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "line, mount_point, fstype, source, vers",
    [
        (MI_K8S_NFS41, "/kaiwudb/certs", "nfs4", "20.20.20.43:/data/k8s/nfs_share/pvc-2108ee90-b185-43f7-a95c-21d9a4d84a67", "4.1"),
        (MI_FEDORA_516_NFS42, "/mnt", "nfs4", "192.168.122.225:/exports", "4.2"),
        (MI_NFS3_TCP, "/home/zyga/nfs", "nfs", "localhost:/srv/nfs", "3"),
        (MI_NCONNECT_6X, "/mnt/shared", "nfs4", "192.168.1.107:/storage_pool/shared", "4.2"),
    ],
)
def test_parse_mountinfo_real_nfs_lines(line, mount_point, fstype, source, vers):
    (entry,) = nfs.parse_mountinfo(line)
    assert entry["mount_point"] == mount_point
    assert entry["fstype"] == fstype
    assert entry["source"] == source
    assert "vers=" + vers in entry["super_opts"]
    assert entry["mount_opts"][0] == "rw"


def test_parse_mountinfo_this_hosts_lines_and_garbage():
    entries = nfs.parse_mountinfo(MI_THIS_HOST + "no separator here\n\n")
    assert [e["mount_point"] for e in entries] == ["/proc", "/sys", "/dev"]
    assert entries[2]["super_opts"][-1] == "mode=755"


def test_parse_mountinfo_octal_escapes():
    line = "41 22 0:40 / /srv/wa\\040media rw,relatime shared:20 - nfs4 nas:/media rw,vers=4.1"
    assert nfs.parse_mountinfo(line)[0]["mount_point"] == "/srv/wa media"


def test_find_mount_takes_the_last_one_on_a_path():
    text = "\n".join([MI_FEDORA_516_NFS42, MI_K8S_NFS41.replace("/kaiwudb/certs", "/mnt")])
    entry = nfs.find_mount(nfs.parse_mountinfo(text), "/mnt/")
    assert entry["source"].startswith("20.20.20.43:")
    assert nfs.find_mount(nfs.parse_mountinfo(text), "/srv") is None


# --- option comparison -----------------------------------------------------------------------

def mount(line):
    return nfs.parse_mountinfo(line)[0]


def test_metas_defaults_match_a_real_41_mount():
    assert nfs.compare_options(DEFAULTS, mount(MI_K8S_NFS41)) == ([], [])


def test_41_wanted_but_42_live_is_a_difference_and_smaller_rsize_a_note():
    diffs, notes = nfs.compare_options(DEFAULTS, mount(MI_FEDORA_516_NFS42))
    assert diffs == [{"option": "nfsvers", "wanted": "4.1", "live": "4.2"}]
    assert notes == ["rsize: the server allows 262144 (asked for 1048576)",
                     "wsize: the server allows 262144 (asked for 1048576)"]


def test_nfsvers_4_matches_any_minor():
    assert nfs.compare_options(nfs.parse_opts("nfsvers=4,hard"), mount(MI_NCONNECT_6X)) == ([], [])


def test_v3_udp_mount_against_defaults():
    diffs = nfs.compare_options(DEFAULTS, mount(MI_NFS3_UDP))[0]
    assert {d["option"] for d in diffs} == {"nfsvers", "timeo", "retrans"}


def test_soft_hard_and_per_mount_flags():
    soft = mount(MI_K8S_NFS41.replace(",hard,", ",soft,"))
    assert nfs.compare_options(nfs.parse_opts("hard"), soft)[0] == [{"option": "hard", "wanted": "hard", "live": "soft"}]
    assert nfs.compare_options(nfs.parse_opts("soft"), soft)[0] == []
    assert nfs.compare_options(nfs.parse_opts("noatime"), mount(MI_NCONNECT_6X))[0] == []
    assert nfs.compare_options(nfs.parse_opts("noatime"), mount(MI_K8S_NFS41))[0] == [
        {"option": "noatime", "wanted": "noatime", "live": None}]
    assert nfs.compare_options(nfs.parse_opts("ro"), mount(MI_K8S_NFS41))[0] == [
        {"option": "ro", "wanted": "ro", "live": "rw"}]


def test_mount_only_options_are_not_compared():
    opts = nfs.parse_opts(nfs.DEFAULT_OPTS + ",_netdev,nofail,x-systemd.automount,bg")
    assert nfs.compare_options(opts, mount(MI_K8S_NFS41)) == ([], [])


def test_other_visible_options_compared_exactly():
    diffs = nfs.compare_options(nfs.parse_opts("nconnect=4,proto=tcp"), mount(MI_NCONNECT_6X))[0]
    assert diffs == [{"option": "nconnect", "wanted": "4", "live": "8"}]


# --- kernel support ----------------------------------------------------------------------------

def test_this_hosts_kernel_has_no_nfs():
    with open(os.path.join(FIXTURES, "filesystems-6.18-no-nfs.txt")) as f:
        assert nfs.kernel_nfs(f.read()) == (False, nfs.NO_KERNEL_NFS)


@pytest.mark.parametrize("text", ["nodev\tnfs\n", "nodev\tnfs4\nnodev\ttmpfs\n"])
def test_kernel_with_nfs(text):
    assert nfs.kernel_nfs(text) == (True, None)


def test_kernel_with_loadable_nfs_module(tmp_path):
    ko = tmp_path / "nfs.ko.xz"
    ko.write_text("")
    assert nfs.kernel_nfs("nodev\ttmpfs\n", [str(ko)]) == (True, None)


# --- userspace check ---------------------------------------------------------------------------

@pytest.mark.parametrize("opts, version", [(nfs.DEFAULT_OPTS, 4), ("nfsvers=3,hard", 3), ("vers=4.2", 4), ("hard", 4)])
def test_libnfs_version(opts, version):
    assert nfs.libnfs_version(nfs.parse_opts(opts)) == version


def test_nfs_url():
    assert nfs.nfs_url("10.0.0.5", "/media", 4, 1000, 1000) == "nfs://10.0.0.5/media?version=4&uid=1000&gid=1000"
    assert nfs.nfs_url("fd00::5", "/media/", 3, 0, 0, "x") == "nfs://[fd00::5]/media/x?version=3&uid=0&gid=0"


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
                    raise nfs.NfsError("unlink {}: {}".format(name, server.fail["unlink"]))
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
    return nfs.userspace_check(server.run, server.which, "127.0.0.1", "/media", 4, 1000, 1000, port=port,
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
    bad = nfs.failed_step(result)
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

    result = nfs.userspace_check(run, server.which, "127.0.0.1", "/media", 4, 0, 0, port=listening_port, timeout=10,
                                 libnfs_factory=server.libnfs, sleep=sleep, clock=lambda: now[0])
    assert result["ok"] is True
    assert slept == [1, 1, 1]
    assert result["steps"][2]["detail"].endswith("(after the server's grace period)")


def test_userspace_check_grace_longer_than_the_timeout_fails(listening_port):
    server = FakeServer({"nfs-cp": "creat call failed with NFS4ERR_GRACE(-5)"})
    now = [0.0]

    def sleep(s):
        now[0] += s

    result = nfs.userspace_check(server.run, server.which, "127.0.0.1", "/media", 4, 0, 0, port=listening_port,
                                 timeout=4, libnfs_factory=server.libnfs, sleep=sleep, clock=lambda: now[0])
    assert nfs.failed_step(result)["step"] == "write"
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

    def fail_json(self, **kw):
        raise Failed(kw)

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
    assert module.commands == [["/bin/mount", "-t", "nfs", "-o", nfs.DEFAULT_OPTS, "10.0.0.1:/media", path]]
    assert (f"10.0.0.1:/media {path} nfs {nfs.DEFAULT_OPTS} 0 0") in (tmp / "fstab").read_text()
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
    line = nfs.fstab_line("10.0.0.1:/media", str(path), "nfs", DEFAULTS)
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
    line = nfs.fstab_line("10.0.0.1:/media", str(path), "nfs", DEFAULTS)
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


@pytest.mark.parametrize(
    "params, fragment",
    [({"path": "relative/dir"}, "not an absolute path"), ({"src": "nohost"}, "src:"),
     ({"opts": "hard,timeo=6 00"}, "whitespace"), ({"dump": -1}, "dump: must not be negative")],
)
def test_bad_input_fails_before_touching_anything(kernel_with_nfs, monkeypatch, params, fragment):
    tmp = kernel_with_nfs
    (tmp / "fstab").write_text(FSTAB)
    module = make(tmp, monkeypatch, params=params)
    with pytest.raises(Failed) as err:
        nfs.run_nfs_media(module)
    assert fragment in err.value.args[0]["msg"]
    assert (tmp / "fstab").read_text() == FSTAB and module.commands == []


# --- bad input (issue #17): each is refused naming the option, before anything is read or changed --

@pytest.mark.parametrize(
    "path",
    ["/", "/usr", "/var", "/etc", "/home", "/boot", "/proc", "/sys", "/dev", "/run", "/tmp", "/mnt", "/var/lib",
     "/usr/local", "/var/lib/docker", "/proc/1", "/sys/fs/cgroup", "/dev/shm", "/boot/efi", "/etc/ssl", "/usr/lib/x"],
)
def test_check_path_refuses_system_directories(path):
    with pytest.raises(nfs.NfsError) as err:
        nfs.check_path(path)
    assert err.value.msg.startswith(f"path: {path} is a system directory")
    assert "/mnt/wamedia" in err.value.msg  # what to do instead


@pytest.mark.parametrize(
    "path, fragment",
    [("relative/dir", "not an absolute path"), ("", "not an absolute path"), ("-o", "not an absolute path"),
     ("/srv/wamedia/", "write it as '/srv/wamedia'"), ("//srv/wamedia", "write it as '/srv/wamedia'"),
     ("/srv//wamedia", "write it as '/srv/wamedia'"), ("/srv/./wamedia", "not in normal form"),
     ("/srv/x/../../etc", "write it as '/etc'"), ("/srv/wa media", "whitespace"), ("/srv/wamedia\n", "whitespace"),
     ("/srv/wa\tmedia", "whitespace")],
)
def test_check_path_refuses_unnormalised_and_odd_paths(path, fragment):
    with pytest.raises(nfs.NfsError) as err:
        nfs.check_path(path)
    assert err.value.msg.startswith("path:") and fragment in err.value.msg


@pytest.mark.parametrize("path", ["/mnt/wamedia", "/srv/wamedia", "/usr/local/wamedia", "/var/lib/wamedia",
                                  "/home/wa/media", "/data", "/opt/whatsapp/media"])
def test_check_path_accepts_dedicated_directories(path):
    assert nfs.check_path(path) == path


def test_check_path_follows_symbolic_links(tmp_path):
    (tmp_path / "root-link").symlink_to("/")
    with pytest.raises(nfs.NfsError) as err:
        nfs.check_path(str(tmp_path / "root-link"))
    assert "(a link to /) is a system directory" in err.value.msg


@pytest.mark.parametrize(
    "src, fragment",
    [("-oremount:/media", "starts with '-'"), ("--help:/media", "starts with '-'"),
     ("999.1.1.1:/media", "not a valid IPv4 address"), ("10.0.0:/media", "not a valid IPv4 address"),
     ("nfs..example:/media", "not a host name"), ("nfs-.example:/media", "not a host name"),
     ("nfs/x:/media", "not a host name"), ("nfs;rm:/media", "not a host name"), ("a" * 64 + ".example:/m", "not a host name"),
     ("[nfs.example]:/media", "not an IPv6 address"), ("[fe80::1%eth 0]:/m", "zone"),
     ("fd00::1:/media", "brackets"), ("nfs:-o/media", "must be an absolute path"), ("nfs:media", "absolute"),
     ("nfs:/me dia", "whitespace"), ("nfs:/media\n", "whitespace"), ("nfs\n:/media", "whitespace"),
     ("nfs\t:/media", "whitespace"), (":/media", "server is empty")],
)
def test_parse_src_refuses_bad_server_and_export(src, fragment):
    with pytest.raises(nfs.NfsError) as err:
        nfs.parse_src(src)
    assert err.value.msg.startswith("src:") and fragment in err.value.msg


@pytest.mark.parametrize(
    "src, server",
    [("nfs-1.example.internal:/media", "nfs-1.example.internal"), ("localhost:/x", "localhost"),
     ("NAS_01:/media", "NAS_01"), ("nfs.example.:/m", "nfs.example."), ("[fe80::1%eth0]:/m", "fe80::1%eth0"),
     ("[::1]:/m", "::1"), ("192.168.1.107:/storage_pool/shared", "192.168.1.107")],
)
def test_parse_src_accepts_host_names_and_addresses(src, server):
    assert nfs.parse_src(src)[0] == server


def test_nfs_url_carries_another_port():
    assert nfs.nfs_url("10.0.0.5", "/media", 4, 0, 0, port=20490).endswith("?version=4&uid=0&gid=0&nfsport=20490")


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
    tmp = kernel_with_nfs
    (tmp / "fstab").write_text(FSTAB)
    module = make(tmp, monkeypatch, params=params)
    with pytest.raises(Failed) as err:
        nfs.run_nfs_media(module)
    assert fragment in err.value.args[0]["msg"]
    assert err.value.args[0]["msg"].endswith("Nothing was changed.")
    assert (tmp / "fstab").read_text() == FSTAB and module.commands == []
    assert not (tmp / "srv").exists()


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
    line = nfs.fstab_line("10.0.0.1:/media", str(path), "nfs", DEFAULTS)
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
    (tmp / "fstab").write_text(FSTAB + f"10.0.0.1:/media {path} nfs4 {nfs.DEFAULT_OPTS} 0 0\n")
    live = MI_K8S_NFS41.replace("/kaiwudb/certs", str(path))
    module = make(tmp, monkeypatch, live_line=ROOT_LIVE + "\n" + live, params={"state": "absent", "src": None})
    result = nfs.run_nfs_media(module)
    assert result["changed"] is True and module.commands == [["/bin/umount", str(path)]]
    assert (tmp / "fstab").read_text() == FSTAB


# --- deadlines: nothing may outlast the timeout ------------------------------------------------

def test_run_with_deadline_kills_the_whole_process_group(tmp_path):
    import time

    pidfile = tmp_path / "pid"
    start = time.monotonic()
    with pytest.raises(nfs.NfsTimeout) as err:
        nfs.run_with_deadline(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; sleep 60"], 1)
    assert time.monotonic() - start < 3
    assert "sh did not finish within 1s and was killed" in err.value.msg
    grandchild = int(pidfile.read_text())
    time.sleep(0.2)
    try:
        with open(f"/proc/{grandchild}/stat") as f:  # killed with its group: gone, or a zombie until reaped
            assert f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        pass


def test_run_with_deadline_returns_output_and_status():
    assert nfs.run_with_deadline(["sh", "-c", "echo out; echo err >&2; exit 3"], 5) == (3, "out\n", "err\n")
    rc, out, err = nfs.run_with_deadline(["/nonexistent/tool"], 5)
    assert rc == 127 and "cannot run /nonexistent/tool" in err


def test_call_with_deadline_kills_a_stuck_call():
    import time

    assert nfs.call_with_deadline(lambda: None, 5) is None
    assert nfs.call_with_deadline(lambda: "it broke", 5) == "it broke"
    start = time.monotonic()
    with pytest.raises(nfs.NfsTimeout):
        nfs.call_with_deadline(lambda: time.sleep(60), 1)
    assert time.monotonic() - start < 3


@pytest.fixture()
def silent_server():
    """A throwaway TCP listener on 127.0.0.1 that accepts connections and never answers."""
    import socket
    import threading

    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    conns = []
    stop = threading.Event()

    def accept():
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                conns.append(s.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield s.getsockname()[1]
    stop.set()
    t.join()
    for c in conns:
        c.close()
    s.close()


needs_nfs_ls = pytest.mark.skipif(not shutil.which("nfs-ls"), reason="nfs-ls (libnfs-utils) is not installed")


@needs_nfs_ls
@pytest.mark.parametrize("write", [False, True])
def test_userspace_check_against_a_silent_server_fails_within_the_timeout(silent_server, write):
    import time

    start = time.monotonic()
    result = nfs.userspace_check(lambda argv: nfs.run_with_deadline(argv, 2), shutil.which, "127.0.0.1", "/media", 4,
                                 0, 0, port=silent_server, timeout=2, write=write)
    assert time.monotonic() - start < 2 + 1.5
    bad = nfs.failed_step(result)
    assert bad["step"] == "list"
    assert "nfs-ls did not finish within 2s and was killed (the server accepts connections but does not answer?)" \
        in bad["detail"]
    assert f"nfsport={silent_server}" in result["url"]


def _libnfs_or_skip():
    try:
        return nfs.LibNfs()
    except nfs.NfsError as exc:
        pytest.skip(exc.msg)


def test_libnfs_unlink_against_a_silent_server_fails_within_the_timeout(silent_server):
    import time

    lib = _libnfs_or_skip()
    start = time.monotonic()
    with pytest.raises(nfs.NfsError) as err:
        lib.unlink("127.0.0.1", "/media", "x", 4, 0, 0, 2000, port=silent_server)
    assert time.monotonic() - start < 2 + 1.5
    assert err.value.msg.startswith("unlink x:") or err.value.msg.startswith("mount 127.0.0.1:/media:")


class RealToolsModule(FakeModule):
    def get_bin_path(self, name, required=False):
        return shutil.which(name)


@needs_nfs_ls
@pytest.mark.parametrize("check_mode", [True, False])
def test_module_userspace_check_against_a_silent_server_fails_within_the_timeout(
        tmp_path, monkeypatch, silent_server, check_mode):
    import time

    (tmp_path / "fstab").write_text(FSTAB)
    params = {"src": "127.0.0.1:/media", "path": str(tmp_path / "srv" / "wamedia"), "fstab": str(tmp_path / "fstab"),
              "state": "present", "userspace_check": True, "timeout": 2,
              "opts": f"{nfs.DEFAULT_OPTS},port={silent_server}"}
    module = RealToolsModule(tmp_path, params, check_mode=check_mode)
    monkeypatch.setattr(nfs, "PROC_MOUNTINFO", str(module.mountinfo))
    start = time.monotonic()
    with pytest.raises(Failed) as err:
        nfs.run_nfs_media(module)
    assert time.monotonic() - start < 2 + 1.5
    msg = err.value.args[0]["msg"]
    assert msg.startswith("userspace check of 127.0.0.1:/media failed at 'list': nfs-ls nfs://127.0.0.1/media?")
    assert "did not finish within 2s and was killed" in msg and msg.endswith("(fstab left as it was)")
    assert (tmp_path / "fstab").read_text() == FSTAB


def test_rw_probe_is_killed_at_the_timeout_also_as_the_same_user(tmp_path, monkeypatch):
    import time

    monkeypatch.setattr(nfs, "_probe_here", lambda path, token: time.sleep(60))
    start = time.monotonic()
    err = nfs.rw_probe(str(tmp_path), os.getuid(), os.getgid(), timeout=1)
    assert time.monotonic() - start < 3
    assert err == "the probe did not finish within 1s (a hard NFS mount whose server does not answer?)"


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
