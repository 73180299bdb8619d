"""Mount options, fstab lines, mountinfo parsing over real captured lines, option comparison, kernel NFS detection."""

from __future__ import annotations

import os

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs_errors as nfs_errors
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs_fstab as nfs_fstab
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils.nfs_samples import (
    DEFAULTS,
    FIXTURES,
    FSTAB,
    MI_FEDORA_516_NFS42,
    MI_K8S_NFS41,
    MI_NCONNECT_6X,
    MI_NFS3_TCP,
    MI_NFS3_UDP,
    MI_THIS_HOST,
)


def test_default_opts_are_metas():
    assert nfs_fstab.opts_text(DEFAULTS) == "nfsvers=4.1,hard,timeo=600,retrans=2,rsize=1048576,wsize=1048576"


def test_parse_opts_from_list_and_string_agree():
    assert nfs_fstab.parse_opts(["nfsvers=4.1", "hard", "_netdev"]) == nfs_fstab.parse_opts("nfsvers=4.1,hard,_netdev")


@pytest.mark.parametrize("opts", ["", "nfsvers=4 .1", ",", ["hard", "timeo=6 00"]])
def test_parse_opts_rejects(opts):
    with pytest.raises(nfs_errors.NfsError):
        nfs_fstab.parse_opts(opts)


def test_fstab_line_escapes_spaces():
    line = nfs_fstab.fstab_line("srv:/media", "/srv/wa media", "nfs", DEFAULTS)
    assert line == "srv:/media /srv/wa\\040media nfs " + nfs_fstab.DEFAULT_OPTS + " 0 0"
    assert nfs_fstab.unescape(line.split()[1]) == "/srv/wa media"


def test_update_fstab_replaces_in_place_and_drops_duplicates():
    new_line = nfs_fstab.fstab_line("nfs:/media", "/srv/wamedia", "nfs", DEFAULTS)
    text, old = nfs_fstab.update_fstab(FSTAB, "/srv/wamedia", new_line)
    assert old == ["old:/media /srv/wamedia nfs nfsvers=3 0 0", "old2:/media /srv/wamedia/ nfs nfsvers=3 0 0"]
    assert text.splitlines() == [
        "# /etc/fstab: static file system information.",
        "UUID=0a1b2c3d / ext4 errors=remount-ro 0 1",
        new_line,
        "tmpfs /tmp tmpfs defaults 0 0",
    ]


def test_update_fstab_appends_to_empty_or_missing_and_is_stable():
    line = nfs_fstab.fstab_line("nfs:/media", "/srv/wamedia", "nfs", DEFAULTS)
    for content in (None, ""):
        text, old = nfs_fstab.update_fstab(content, "/srv/wamedia", line)
        assert text == line + "\n" and old == []
        assert nfs_fstab.update_fstab(text, "/srv/wamedia", line)[0] == text  # idempotent


def test_update_fstab_remove_keeps_the_rest_and_comments_naming_the_path():
    content = "# old:/media /srv/wamedia nfs defaults 0 0\n" + FSTAB
    text, old = nfs_fstab.update_fstab(content, "/srv/wamedia", None)
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
    (entry,) = nfs_fstab.parse_mountinfo(line)
    assert entry["mount_point"] == mount_point
    assert entry["fstype"] == fstype
    assert entry["source"] == source
    assert "vers=" + vers in entry["super_opts"]
    assert entry["mount_opts"][0] == "rw"


def test_parse_mountinfo_this_hosts_lines_and_garbage():
    entries = nfs_fstab.parse_mountinfo(MI_THIS_HOST + "no separator here\n\n")
    assert [e["mount_point"] for e in entries] == ["/proc", "/sys", "/dev"]
    assert entries[2]["super_opts"][-1] == "mode=755"


def test_parse_mountinfo_octal_escapes():
    line = "41 22 0:40 / /srv/wa\\040media rw,relatime shared:20 - nfs4 nas:/media rw,vers=4.1"
    assert nfs_fstab.parse_mountinfo(line)[0]["mount_point"] == "/srv/wa media"


def test_find_mount_takes_the_last_one_on_a_path():
    text = "\n".join([MI_FEDORA_516_NFS42, MI_K8S_NFS41.replace("/kaiwudb/certs", "/mnt")])
    entry = nfs_fstab.find_mount(nfs_fstab.parse_mountinfo(text), "/mnt/")
    assert entry["source"].startswith("20.20.20.43:")
    assert nfs_fstab.find_mount(nfs_fstab.parse_mountinfo(text), "/srv") is None


# --- option comparison -----------------------------------------------------------------------

def mount(line):
    return nfs_fstab.parse_mountinfo(line)[0]


def test_metas_defaults_match_a_real_41_mount():
    assert nfs_fstab.compare_options(DEFAULTS, mount(MI_K8S_NFS41)) == ([], [])


def test_41_wanted_but_42_live_is_a_difference_and_smaller_rsize_a_note():
    diffs, notes = nfs_fstab.compare_options(DEFAULTS, mount(MI_FEDORA_516_NFS42))
    assert diffs == [{"option": "nfsvers", "wanted": "4.1", "live": "4.2"}]
    assert notes == ["rsize: the server allows 262144 (asked for 1048576)",
                     "wsize: the server allows 262144 (asked for 1048576)"]


def test_nfsvers_4_matches_any_minor():
    assert nfs_fstab.compare_options(nfs_fstab.parse_opts("nfsvers=4,hard"), mount(MI_NCONNECT_6X)) == ([], [])


def test_v3_udp_mount_against_defaults():
    diffs = nfs_fstab.compare_options(DEFAULTS, mount(MI_NFS3_UDP))[0]
    assert {d["option"] for d in diffs} == {"nfsvers", "timeo", "retrans"}


def test_soft_hard_and_per_mount_flags():
    soft = mount(MI_K8S_NFS41.replace(",hard,", ",soft,"))
    assert nfs_fstab.compare_options(nfs_fstab.parse_opts("hard"), soft)[0] == [{"option": "hard", "wanted": "hard", "live": "soft"}]
    assert nfs_fstab.compare_options(nfs_fstab.parse_opts("soft"), soft)[0] == []
    assert nfs_fstab.compare_options(nfs_fstab.parse_opts("noatime"), mount(MI_NCONNECT_6X))[0] == []
    assert nfs_fstab.compare_options(nfs_fstab.parse_opts("noatime"), mount(MI_K8S_NFS41))[0] == [
        {"option": "noatime", "wanted": "noatime", "live": None}]
    assert nfs_fstab.compare_options(nfs_fstab.parse_opts("ro"), mount(MI_K8S_NFS41))[0] == [
        {"option": "ro", "wanted": "ro", "live": "rw"}]


def test_mount_only_options_are_not_compared():
    opts = nfs_fstab.parse_opts(nfs_fstab.DEFAULT_OPTS + ",_netdev,nofail,x-systemd.automount,bg")
    assert nfs_fstab.compare_options(opts, mount(MI_K8S_NFS41)) == ([], [])


def test_other_visible_options_compared_exactly():
    diffs = nfs_fstab.compare_options(nfs_fstab.parse_opts("nconnect=4,proto=tcp"), mount(MI_NCONNECT_6X))[0]
    assert diffs == [{"option": "nconnect", "wanted": "4", "live": "8"}]


# --- kernel support ----------------------------------------------------------------------------

def test_this_hosts_kernel_has_no_nfs():
    with open(os.path.join(FIXTURES, "filesystems-6.18-no-nfs.txt")) as f:
        assert nfs_fstab.kernel_nfs(f.read()) == (False, nfs_fstab.NO_KERNEL_NFS)


@pytest.mark.parametrize("text", ["nodev\tnfs\n", "nodev\tnfs4\nnodev\ttmpfs\n"])
def test_kernel_with_nfs(text):
    assert nfs_fstab.kernel_nfs(text) == (True, None)


def test_kernel_with_loadable_nfs_module(tmp_path):
    ko = tmp_path / "nfs.ko.xz"
    ko.write_text("")
    assert nfs_fstab.kernel_nfs("nodev\ttmpfs\n", [str(ko)]) == (True, None)
