#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: nfs_media
short_description: Mount the WhatsApp Business API client's NFS media share on a host, and prove it is writable
version_added: 0.1.0
description:
  - Ensures the media share C(SERVER:/EXPORT) is mounted at a path on the host (the guide's
    C(mount -t nfs)), with Meta's cloud defaults as default options
    (C(nfsvers=4.1,hard,timeo=600,retrans=2,rsize=1048576,wsize=1048576)), and a persistent fstab
    entry.
  - The fstab is written atomically. When the mount fails, the fstab is restored and the
    directories the module created for the mount point are removed.
  - An existing mount is compared with the wanted source and options through
    C(/proc/self/mountinfo); a difference leads to a remount.
  - After mounting, a read-write probe writes, reads back and deletes a file as the containers'
    user (O(probe_uid)/O(probe_gid)), the guide's "grant read and write permissions".
  - On a kernel without an NFS client (C(nfs) missing from C(/proc/filesystems) and no nfs kernel
    module) the module says so and fails without changing anything. With O(userspace_check=true)
    it then still verifies the server side for real over the NFS protocol from user space (reach,
    list, write, read back, delete a probe file with the libnfs tools), and reports that in the
    message and in RV(userspace_check). O(state=present) with O(userspace_check=true) writes the
    fstab entry and verifies the export that way, on any kernel.
author:
  - wabiz.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wabiz.cluster.attributes
attributes:
  check_mode:
    support: full
    details: Computes the fstab change and the mount actions without acting; the userspace check only reaches and lists the export (no probe file is written).
  diff_mode:
    support: full
    details: The fstab before and after.
  idempotent:
    support: full
  platform:
    platforms: posix
options:
  src:
    description:
      - The share, V(SERVER:/EXPORT) (an IPv6 server as V([ADDR]:/EXPORT)).
      - SERVER must be a host name (letters, digits, C(-) and C(_) in dot-separated labels, not starting
        with C(-)) or an IP address; EXPORT an absolute path. Neither may contain whitespace or control
        characters (they would break the fstab line); anything else is refused before anything is changed.
      - Required when O(state=mounted) or O(state=present).
    type: str
  path:
    description:
      - Mount point on the host. Bind-mount it into the containers at C(/usr/local/wamedia).
      - Must be absolute and in normal form (no trailing or double slash, no C(.) or C(..) parts), without
        whitespace or control characters, and must not be a system directory, also after following symbolic
        links; V(/), the top-level directories (C(/usr), C(/var), C(/etc), C(/home), C(/mnt), C(/tmp), ...),
        their standard subdirectories (C(/usr/local), C(/var/lib), C(/var/lib/docker), ...), and anything
        inside C(/proc), C(/sys), C(/dev), C(/boot), C(/etc), C(/bin), C(/sbin), C(/lib*), C(/usr/bin),
        C(/usr/sbin), C(/usr/lib*), C(/usr/include) or C(/usr/share) are refused. Use a directory of its own
        such as V(/mnt/wamedia).
    type: path
    required: true
  state:
    description:
      - V(mounted) writes the fstab entry and mounts (creating the mount point).
      - V(present) only writes the fstab entry.
      - V(unmounted) unmounts, leaving the fstab as it is.
      - V(absent) unmounts and removes the fstab entry (the mount point directory is kept).
      - The module only acts on NFS (C(nfs), C(nfs4)). When another file system is mounted at O(path)
        (C(/proc/self/mountinfo)), or the fstab has a non-NFS entry for it, every state fails saying what
        is there and changes nothing.
    type: str
    choices: [mounted, present, unmounted, absent]
    default: mounted
  opts:
    description:
      - Mount options, as a comma-separated string or a list.
    type: raw
    default: nfsvers=4.1,hard,timeo=600,retrans=2,rsize=1048576,wsize=1048576
  fstype:
    description:
      - File system type in the fstab and for C(mount -t).
    type: str
    choices: [nfs, nfs4]
    default: nfs
  fstab:
    description:
      - The fstab file to manage (another file is useful for tests).
      - An absolute path in an existing directory; the file itself is created when missing.
    type: path
    default: /etc/fstab
  dump:
    description:
      - Fifth fstab field.
    type: int
    default: 0
  passno:
    description:
      - Sixth fstab field.
    type: int
    default: 0
  probe:
    description:
      - After O(state=mounted), write, read back and delete a probe file in O(path) as
        O(probe_uid)/O(probe_gid), and fail when that does not work.
    type: bool
    default: true
  probe_uid:
    description:
      - User id of the containers' user for the probes (also the AUTH_SYS uid of the userspace check).
    type: int
    default: 0
  probe_gid:
    description:
      - Group id for the probes.
    type: int
    default: 0
  userspace_check:
    description:
      - Verify the export over the NFS protocol from user space with the libnfs tools
        (C(nfs-ls), C(nfs-cp), C(nfs-cat)) and libnfs itself for the delete, that is reach the server,
        list the export, write a probe file, read it back, delete it and see it gone.
      - libnfs speaks NFSv3 and NFSv4.0, so an O(opts) C(nfsvers=4.1) is checked over NFSv4.0.
      - Used with O(state=present), and with O(state=mounted) on a kernel without NFS client.
    type: bool
    default: false
  timeout:
    description:
      - Seconds, greater than 0, that each step may take, that is the connection and each libnfs tool call
        and delete of the userspace check, the read-write probe, and C(mount) and C(umount). A step still
        running then is killed (with its process group) and the task fails naming it, also in check mode,
        so a server that accepts connections and never answers cannot hold the task.
    type: int
    default: 30
requirements:
  - mount.nfs (nfs-common) for O(state=mounted) on a kernel with an NFS client
  - libnfs-utils for O(userspace_check)
notes:
  - The kernel path (mount, remount, umount, fstab restore) is covered by unit tests; the
    integration tests run it where the kernel has an NFS client and otherwise skip it with the
    reason, while the userspace check runs against a real nfs-ganesha server.
seealso:
  - module: ansible.posix.mount
"""

EXAMPLES = r"""
- name: Mount the media share with Meta's defaults, probe as the containers' user
  wabiz.cluster.nfs_media:
    src: nfs.example.internal:/media
    path: /srv/wamedia
    probe_uid: 1000
    probe_gid: 1000

- name: On hosts without a kernel NFS client, keep the fstab entry and verify the export from user space
  wabiz.cluster.nfs_media:
    src: 10.0.3.20:/media
    path: /srv/wamedia
    state: present
    userspace_check: true

- name: Unmount and forget the share
  wabiz.cluster.nfs_media:
    path: /srv/wamedia
    state: absent
"""

RETURN = r"""
path:
  description: The mount point.
  returned: always
  type: str
  sample: /srv/wamedia
opts:
  description: The mount options in use.
  returned: always
  type: str
  sample: nfsvers=4.1,hard,timeo=600,retrans=2,rsize=1048576,wsize=1048576
fstab_entry:
  description: The fstab line the module manages (null for O(state=unmounted) and O(state=absent)).
  returned: always
  type: str
  sample: nfs.example.internal:/media /srv/wamedia nfs nfsvers=4.1,hard,timeo=600,retrans=2,rsize=1048576,wsize=1048576 0 0
actions:
  description: What was (in check mode, would be) done.
  returned: always
  type: list
  elements: str
  sample: ["fstab: set /srv/wamedia", "mount nfs.example.internal:/media at /srv/wamedia"]
mount_before:
  description: The mount at O(path) before the run, from C(/proc/self/mountinfo) (null when none).
  returned: always
  type: dict
  sample: null
mount:
  description: The mount after the run, from C(/proc/self/mountinfo).
  returned: when O(state=mounted) succeeded
  type: dict
  sample:
    source: nfs.example.internal:/media
    fstype: nfs4
    options: rw,relatime
    super_options: rw,vers=4.1,rsize=1048576,wsize=1048576,namlen=255,hard,proto=tcp,timeo=600,retrans=2,sec=sys
option_differences:
  description: Wanted options that the live mount did not have (before a remount, or after the mount).
  returned: when a mount was compared
  type: list
  elements: dict
  sample: [{option: nfsvers, wanted: "4.1", live: "4.2"}]
notes:
  description: What the server decided differently without it being a difference (a smaller rsize).
  returned: when a mount was compared
  type: list
  elements: str
  sample: ["rsize: the server allows 524288 (asked for 1048576)"]
probe:
  description: The read-write probe on the mounted share.
  returned: when O(probe) ran
  type: dict
  sample: {ok: true, uid: 1000, gid: 1000, error: null}
kernel_nfs:
  description: Whether the kernel can mount NFS.
  returned: when O(state=mounted)
  type: bool
  sample: false
userspace_check:
  description: The userspace check of the export, step by step.
  returned: when O(userspace_check) ran
  type: dict
  sample:
    ok: true
    url: nfs://10.0.3.20/media?version=4&uid=0&gid=0
    protocol: NFSv4.0 over TCP (libnfs)
    uid: 0
    gid: 0
    steps:
      - {step: reach, ok: true, detail: "10.0.3.20:2049 answers"}
      - {step: list, ok: true, detail: "3 entries"}
      - {step: write, ok: true, detail: "wrote .wabiz-probe-3f2a"}
      - {step: read, ok: true, detail: "read back 32 bytes"}
      - {step: delete, ok: true, detail: "deleted .wabiz-probe-3f2a (gone from the listing)"}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wabiz.cluster.plugins.module_utils._nfs import nfs_argument_spec, run_nfs_media


def main():
    module = AnsibleModule(
        argument_spec=nfs_argument_spec(),
        required_if=[("state", "mounted", ("src",)), ("state", "present", ("src",))],
        supports_check_mode=True,
    )
    module.exit_json(**run_nfs_media(module))


if __name__ == "__main__":
    main()
