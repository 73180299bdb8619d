"""nfs_media's option checks: src (server and export) and path; each is refused naming the option."""

from __future__ import annotations

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs_errors as nfs_errors
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs_options as nfs_options


@pytest.mark.parametrize(
    "src, server, export",
    [("nfs.example:/media", "nfs.example", "/media"), ("10.0.3.20:/exports/media", "10.0.3.20", "/exports/media"),
     ("[fd00::20]:/media", "fd00::20", "/media")],
)
def test_parse_src(src, server, export):
    assert nfs_options.parse_src(src) == (server, export)


@pytest.mark.parametrize("src", ["nfs.example", "nfs.example:media", ":/media", "a b:/m", "[fd00::1/media", ""])
def test_parse_src_rejects(src):
    with pytest.raises(nfs_errors.NfsError) as err:
        nfs_options.parse_src(src)
    assert err.value.msg.startswith("src:")


# --- bad input: each is refused naming the option, before anything is read or changed ---------

@pytest.mark.parametrize(
    "path",
    ["/", "/usr", "/var", "/etc", "/home", "/boot", "/proc", "/sys", "/dev", "/run", "/tmp", "/mnt", "/var/lib",
     "/usr/local", "/var/lib/docker", "/proc/1", "/sys/fs/cgroup", "/dev/shm", "/boot/efi", "/etc/ssl", "/usr/lib/x"],
)
def test_check_path_refuses_system_directories(path):
    with pytest.raises(nfs_errors.NfsError) as err:
        nfs_options.check_path(path)
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
    with pytest.raises(nfs_errors.NfsError) as err:
        nfs_options.check_path(path)
    assert err.value.msg.startswith("path:") and fragment in err.value.msg


@pytest.mark.parametrize("path", ["/mnt/wamedia", "/srv/wamedia", "/usr/local/wamedia", "/var/lib/wamedia",
                                  "/home/wa/media", "/data", "/opt/whatsapp/media"])
def test_check_path_accepts_dedicated_directories(path):
    assert nfs_options.check_path(path) == path


def test_check_path_follows_symbolic_links(tmp_path):
    (tmp_path / "root-link").symlink_to("/")
    with pytest.raises(nfs_errors.NfsError) as err:
        nfs_options.check_path(str(tmp_path / "root-link"))
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
    with pytest.raises(nfs_errors.NfsError) as err:
        nfs_options.parse_src(src)
    assert err.value.msg.startswith("src:") and fragment in err.value.msg


@pytest.mark.parametrize(
    "src, server",
    [("nfs-1.example.internal:/media", "nfs-1.example.internal"), ("localhost:/x", "localhost"),
     ("NAS_01:/media", "NAS_01"), ("nfs.example.:/m", "nfs.example."), ("[fe80::1%eth0]:/m", "fe80::1%eth0"),
     ("[::1]:/m", "::1"), ("192.168.1.107:/storage_pool/shared", "192.168.1.107")],
)
def test_parse_src_accepts_host_names_and_addresses(src, server):
    assert nfs_options.parse_src(src)[0] == server
