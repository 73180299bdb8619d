"""What the NFS tests share: real /proc/self/mountinfo lines, an fstab, a server that never answers."""

from __future__ import annotations

import os
import shutil

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils._nfs_fstab import DEFAULT_OPTS, parse_opts
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils.listeners import Listener

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

DEFAULTS = parse_opts(DEFAULT_OPTS)

FSTAB = (
    "# /etc/fstab: static file system information.\n"
    "UUID=0a1b2c3d / ext4 errors=remount-ro 0 1\n"
    "old:/media /srv/wamedia nfs nfsvers=3 0 0\n"
    "tmpfs /tmp tmpfs defaults 0 0\n"
    "old2:/media /srv/wamedia/ nfs nfsvers=3 0 0\n"
)


@pytest.fixture()
def silent_server():
    """A throwaway TCP listener on 127.0.0.1 that accepts connections and never answers: its port."""
    srv = Listener("silent")
    yield srv.port
    srv.close()


needs_nfs_ls = pytest.mark.skipif(not shutil.which("nfs-ls"), reason="nfs-ls (libnfs-utils) is not installed")
