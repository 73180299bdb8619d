# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the system files say about NFS mounts: mount options, fstab lines, /proc/self/mountinfo
(and how a live mount's options compare with the wanted ones), and /proc/filesystems (whether
the kernel can mount NFS at all).

Private to the collection. Pure functions over the files' text, unit-tested over real captured
lines; reading the files is the caller's business.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.wabiz.cluster.plugins.module_utils._nfs_errors import NfsError

# Meta's cloud templates mount the media share with these.
DEFAULT_OPTS = "nfsvers=4.1,hard,timeo=600,retrans=2,rsize=1048576,wsize=1048576"
NO_KERNEL_NFS = "no kernel NFS client (nfs missing from /proc/filesystems)"

# Options that only steer mount(8), systemd or fstab handling: never visible in mountinfo.
_MOUNT_ONLY = frozenset(["_netdev", "nofail", "noauto", "auto", "defaults", "user", "users", "nouser",
                         "bg", "fg", "retry", "comment", "owner", "group", "mountproto", "mountport",
                         "mountvers", "clientaddr"])
# Per-mount flags (the 6th mountinfo field), as opposed to the NFS super options.
_PER_MOUNT = frozenset(["ro", "rw", "noatime", "atime", "relatime", "norelatime", "strictatime", "nodiratime",
                        "nosuid", "suid", "nodev", "dev", "noexec", "exec"])


def parse_opts(opts):
    """Mount options (a comma-separated string or a list) -> ordered [(name, value or None)]."""
    if opts is None:
        opts = DEFAULT_OPTS
    items = opts if isinstance(opts, list) else str(opts).split(",")
    out = []
    for item in items:
        item = str(item).strip()
        if not item:
            continue
        if any(c.isspace() for c in item):
            raise NfsError("opts: %r contains whitespace." % (item,))
        name, sep, value = item.partition("=")
        out.append((name, value if sep else None))
    if not out:
        raise NfsError("opts: no options given.")
    return out


def opts_text(opts):
    return ",".join(n if v is None else "%s=%s" % (n, v) for n, v in opts)


def fstab_escape(value):
    return (value.replace("\\", "\\134").replace(" ", "\\040").replace("\t", "\\011").replace("\n", "\\012"))


def unescape(value):
    """Octal escapes as fstab(5) and /proc/self/mountinfo write them (``\\040`` is a space)."""
    out = []
    i = 0
    while i < len(value):
        octal = value[i + 1:i + 4]
        if value[i] == "\\" and len(octal) == 3 and all(c in "01234567" for c in octal):
            out.append(chr(int(octal, 8)))
            i += 4
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def fstab_line(src, path, fstype, opts, dump=0, passno=0):
    return "%s %s %s %s %d %d" % (fstab_escape(src), fstab_escape(path), fstype, opts_text(opts), dump, passno)


def update_fstab(content, path, line):
    """New fstab text with the entry for mount point ``path`` set to ``line`` (None removes it).

    Other lines, comments included, are kept as they are. The first entry for ``path`` is replaced
    in place, later duplicates are dropped; a missing entry is appended. Returns (text, old lines).
    """
    lines = (content or "").splitlines()
    out = []
    old = []
    placed = False
    for raw in lines:
        fields = raw.split()
        if fields and not fields[0].startswith("#") and len(fields) >= 2 and \
                os.path.normpath(unescape(fields[1])) == os.path.normpath(path):
            old.append(raw)
            if line is not None and not placed:
                out.append(line)
                placed = True
            continue
        out.append(raw)
    if line is not None and not placed:
        out.append(line)
    text = "\n".join(out)
    if out:
        text += "\n"
    return text, old


def parse_mountinfo(text):
    """Entries of /proc/self/mountinfo (proc(5)): dicts with mount_point, root, fstype, source,
    mount_opts (per mount) and super_opts; malformed lines are skipped."""
    entries = []
    for line in (text or "").splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 6 or len(fields) < sep + 3:
            continue
        entries.append({
            "mount_id": fields[0],
            "parent_id": fields[1],
            "device": fields[2],
            "root": unescape(fields[3]),
            "mount_point": unescape(fields[4]),
            "mount_opts": fields[5].split(","),
            "optional": fields[6:sep],
            "fstype": fields[sep + 1],
            "source": unescape(fields[sep + 2]),
            "super_opts": fields[sep + 3].split(",") if len(fields) > sep + 3 else [],
        })
    return entries


def find_mount(entries, path):
    """The entry mounted on ``path`` that is visible (the last one: later mounts cover earlier)."""
    path = os.path.normpath(path)
    found = None
    for e in entries:
        if os.path.normpath(e["mount_point"]) == path:
            found = e
    return found


def _kv(opts):
    out = {}
    for item in opts:
        name, sep, value = item.partition("=")
        out[name] = value if sep else None
    return out


def compare_options(desired, entry):
    """Differences between the wanted options and a live NFS mount, as
    ``[{"option", "wanted", "live"}]``; plus notes for what the server decided (smaller rsize).

    NFS spells versions ``vers=4.1`` in mountinfo for ``nfsvers=4.1``/``vers=4.1``; ``nfsvers=4``
    matches any 4.x; ``hard`` is the default, so only a live ``soft`` contradicts it; the server may
    lower rsize/wsize (a note, not a difference, since a remount cannot raise them).
    """
    live = _kv(entry["super_opts"])
    per_mount = set(entry["mount_opts"])
    diffs = []
    notes = []
    for name, value in desired:
        if name in _MOUNT_ONLY or name.startswith("x-"):
            continue
        if name in ("nfsvers", "vers"):
            have = live.get("vers")
            if have is None:
                continue
            if not (have == value or (value and "." not in value and have.split(".")[0] == value)):
                diffs.append({"option": "nfsvers", "wanted": value, "live": have})
        elif name in ("hard", "soft"):
            is_soft = "soft" in live or "softerr" in live
            if (name == "soft") != is_soft:
                diffs.append({"option": name, "wanted": name, "live": "soft" if is_soft else "hard"})
        elif name in ("rsize", "wsize"):
            have = live.get(name)
            if have is None or value is None:
                continue
            if int(have) > int(value):
                diffs.append({"option": name, "wanted": value, "live": have})
            elif int(have) < int(value):
                notes.append("%s: the server allows %s (asked for %s)" % (name, have, value))
        elif name in _PER_MOUNT:
            if name in ("ro", "rw"):
                have = "ro" if "ro" in per_mount else "rw"
                if have != name:
                    diffs.append({"option": name, "wanted": name, "live": have})
            elif name not in per_mount and name not in live:
                diffs.append({"option": name, "wanted": name, "live": None})
        elif name in live:
            if value is not None and live[name] != value:
                diffs.append({"option": name, "wanted": value, "live": live[name]})
        # an option the kernel does not show (e.g. lookupcache on older kernels) cannot be compared
    return diffs, notes


def same_source(live_source, src):
    return live_source.rstrip("/") == src.rstrip("/") or live_source == src


def kernel_nfs(proc_filesystems_text, module_paths=()):
    """(True, None) when the kernel can mount NFS: 'nfs'/'nfs4' in /proc/filesystems, or an nfs
    kernel module that mount.nfs can load; else (False, reason)."""
    names = set()
    for line in (proc_filesystems_text or "").splitlines():
        fields = line.split()
        if fields:
            names.add(fields[-1])
    if names & set(["nfs", "nfs4"]):
        return True, None
    for p in module_paths:
        if os.path.exists(p):
            return True, None
    return False, NO_KERNEL_NFS


def module_paths(release):
    base = "/lib/modules/%s/kernel/fs/nfs" % release
    return [os.path.join(base, n) for n in ("nfs.ko", "nfs.ko.xz", "nfs.ko.zst", "nfs.ko.gz")]
