# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The NFS media share on a host: fstab lines, /proc/self/mountinfo, option comparison, the
kernel's NFS support, a read-write probe, and a userspace check of the export with libnfs.

Private to the collection. Parsers and comparisons are pure functions, unit-tested over real
captured lines; ``run_nfs_media`` is the module's body (it reaches the system only through the
module object and the PROC_* paths, so that tests can give it a fake one).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import ipaddress
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import uuid

from ansible_collections.wabiz.cluster.plugins.module_utils import _files

PROC_MOUNTINFO = "/proc/self/mountinfo"
PROC_FILESYSTEMS = "/proc/filesystems"
# Meta's cloud templates mount the media share with these.
DEFAULT_OPTS = "nfsvers=4.1,hard,timeo=600,retrans=2,rsize=1048576,wsize=1048576"
NO_KERNEL_NFS = "no kernel NFS client (nfs missing from /proc/filesystems)"
PROBE_PREFIX = ".wabiz-probe-"

# Options that only steer mount(8), systemd or fstab handling: never visible in mountinfo.
_MOUNT_ONLY = frozenset(["_netdev", "nofail", "noauto", "auto", "defaults", "user", "users", "nouser",
                         "bg", "fg", "retry", "comment", "owner", "group", "mountproto", "mountport",
                         "mountvers", "clientaddr"])
# Per-mount flags (the 6th mountinfo field), as opposed to the NFS super options.
_PER_MOUNT = frozenset(["ro", "rw", "noatime", "atime", "relatime", "norelatime", "strictatime", "nodiratime",
                        "nosuid", "suid", "nodev", "dev", "noexec", "exec"])


# File systems the module manages: it only replaces, removes or unmounts these.
NFS_TYPES = ("nfs", "nfs4")
# O(path) must not be one of these (mounting there hides the system's files, and its fstab line
# would replace the system's) ...
SYSTEM_DIRS = frozenset(
    ["/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/libx32", "/media", "/mnt", "/opt",
     "/proc", "/root", "/run", "/sbin", "/snap", "/srv", "/sys", "/tmp", "/usr", "/var"]
    + ["/usr/" + d for d in ("bin", "games", "include", "lib", "lib32", "lib64", "libexec", "libx32", "local", "sbin",
                             "share", "src")]
    + ["/usr/local/" + d for d in ("bin", "etc", "games", "include", "lib", "libexec", "man", "sbin", "share", "src")]
    + ["/var/" + d for d in ("backups", "cache", "crash", "lib", "local", "lock", "log", "mail", "opt", "run", "spool",
                             "tmp")]
    + ["/run/lock", "/run/user", "/var/lib/docker"])
# ... nor anything inside these (kernel interfaces, boot files, configuration, programs, libraries).
SYSTEM_TREES = ("/proc", "/sys", "/dev", "/boot", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32",
                "/usr/bin", "/usr/sbin", "/usr/lib", "/usr/lib32", "/usr/lib64", "/usr/libexec", "/usr/libx32",
                "/usr/include", "/usr/share")
_HOST_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_HOSTNAME = re.compile(r"(?:%s\.)*%s\.?" % (_HOST_LABEL, _HOST_LABEL))
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")


class NfsError(Exception):
    def __init__(self, msg, **details):
        super(NfsError, self).__init__(msg)
        self.msg = msg
        self.details = details


class NfsTimeout(NfsError):
    """A command or libnfs call that did not finish within the module's timeout (it was killed)."""


# --- parsing ---------------------------------------------------------------------------------

def _bad_chars(value):
    """Whitespace or control characters (they would split or break an fstab line)."""
    return [c for c in value if c.isspace() or ord(c) < 32 or ord(c) == 127]


def check_server(server, bracketed=False):
    """A host name or an IP address (IPv6 only in brackets); raises NfsError naming src."""
    if bracketed:
        addr, _sep, zone = server.partition("%")
        try:
            ipaddress.IPv6Address(addr)
        except ValueError:
            raise NfsError("src: server [%s] is not an IPv6 address; write an IPv6 server as [ADDR]:/EXPORT and "
                           "a host name or IPv4 address without brackets." % server) from None
        if _sep and not re.match(r"[A-Za-z0-9_.-]+\Z", zone):
            raise NfsError("src: the zone of server [%s] is not an interface name." % server)
        return server
    if not server:
        raise NfsError("src: the server is empty; write SERVER:/EXPORT, for example nfs.example.internal:/media.")
    if _bad_chars(server):
        raise NfsError("src: server %r contains whitespace or control characters; write a host name or an IP address."
                       % server)
    if server.startswith("-"):
        raise NfsError("src: server %r starts with '-' (mount would read it as an option); write a host name or "
                       "an IP address." % server)
    if _DOTTED_NUMBERS.fullmatch(server):
        try:
            ipaddress.IPv4Address(server)
        except ValueError:
            raise NfsError("src: server %r is not a valid IPv4 address (four numbers 0-255 separated by dots)."
                           % server) from None
        return server
    if len(server) > 253 or not _HOSTNAME.fullmatch(server):
        raise NfsError("src: server %r is not a host name or an IP address (host names are letters, digits and '-', "
                       "in labels separated by dots; an IPv6 server goes in brackets: [ADDR]:/EXPORT)." % server)
    return server


def check_export(export, src):
    if not export.startswith("/"):
        hint = " (an IPv6 server goes in brackets: [ADDR]:/EXPORT)" if ":" in export else ""
        raise NfsError("src: the export of %r must be an absolute path, as in SERVER:/EXPORT%s." % (src, hint))
    if _bad_chars(export):
        raise NfsError("src: the export %r contains whitespace or control characters (they break the fstab line); "
                       "rename the export or use a path without them." % export)
    return export


def parse_src(src):
    """``SERVER:/EXPORT`` (IPv6 as ``[addr]:/export``) -> (server, export), both checked: the
    server is a host name or an IP address (never something mount would read as an option),
    the export an absolute path without whitespace."""
    if not src or ":" not in src:
        raise NfsError("src: %r is not SERVER:/EXPORT (for example nfs.example.internal:/media)." % (src,))
    if src.startswith("["):
        end = src.find("]:")
        if end < 0:
            raise NfsError("src: %r is not [IPv6]:/EXPORT." % (src,))
        server, export = check_server(src[1:end], bracketed=True), src[end + 2:]
    else:
        server, export = src.split(":", 1)
        check_server(server)
    check_export(export, src)
    return server, export


def check_path(path):
    """O(path): absolute, in normal form, no whitespace, and not a system directory (SYSTEM_DIRS,
    or inside SYSTEM_TREES), also after resolving symbolic links. Returns it; raises NfsError."""
    if not path or not path.startswith("/"):
        raise NfsError("path: %r is not an absolute path; give the mount point from the root, for example "
                       "/mnt/wamedia." % (path,))
    if _bad_chars(path):
        raise NfsError("path: %r contains whitespace or control characters (they break the fstab line); "
                       "choose a mount point without them." % (path,))
    normal = os.path.normpath(path)
    if normal.startswith("//"):
        normal = "/" + normal.lstrip("/")
    if normal != path:
        raise NfsError("path: %r is not in normal form (no trailing or double slash, no '.' or '..'); write it as %r."
                       % (path, normal))
    for candidate in (path, os.path.realpath(path)):
        if candidate in SYSTEM_DIRS or any(candidate.startswith(t + "/") for t in SYSTEM_TREES):
            shown = path if candidate == path else "%s (a link to %s)" % (path, candidate)
            raise NfsError("path: %s is a system directory: mounting the share there would hide the system's files "
                           "and its fstab line would replace the system's. Choose a directory of its own, for example "
                           "/mnt/wamedia or /srv/wamedia." % shown)
    return path


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


# --- every external call with a deadline ------------------------------------------------------

def _kill_group(proc):
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def run_with_deadline(argv, timeout):
    """Run ``argv`` (stdin closed, C locale) in a process group of its own: (rc, out, err). After
    ``timeout`` seconds the whole group is killed and NfsTimeout raised, so that a server that
    accepts connections and never answers cannot hold the module (libnfs' tools and mount.nfs
    wait for an answer for minutes)."""
    env = dict(os.environ, LC_ALL="C", LANG="C")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env=env, start_new_session=True)
    except OSError as exc:
        return 127, "", "cannot run %s: %s" % (argv[0], exc)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        try:
            proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:  # a child stuck in the kernel: leave it, do not wait with it
            pass
        raise NfsTimeout("%s did not finish within %ss and was killed (the server accepts connections but "
                         "does not answer?)" % (os.path.basename(argv[0]), timeout)) from None
    finally:
        _kill_group(proc)  # what the command left running in its group
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def call_with_deadline(fn, timeout, sleep=time.sleep, clock=time.time):
    """Run ``fn()`` (it returns None or an error text) in a forked child, for calls that cannot be
    interrupted otherwise (file I/O on a hard NFS mount, a libnfs call through ctypes). Returns
    None or the error text; raises NfsTimeout when the child was still busy after ``timeout``
    seconds (it is killed)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: run, report through the pipe, never return
        code = 0
        try:
            os.close(read_fd)
            err = fn()
        except BaseException as exc:  # noqa: B036 - the child must always reach os._exit
            err = "%s: %s" % (type(exc).__name__, exc)
        try:
            if err:
                code = 1
                os.write(write_fd, str(err).encode("utf-8", "replace")[:4000])
        finally:
            os._exit(code)
    os.close(write_fd)
    deadline = clock() + timeout
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if clock() >= deadline:
                os.kill(pid, signal.SIGKILL)
                for _i in range(100):  # a child in an uninterruptible wait dies when it returns: 5 s at most
                    if os.waitpid(pid, os.WNOHANG)[0]:
                        break
                    sleep(0.05)
                raise NfsTimeout("did not finish within %ss and was killed" % timeout)
            sleep(0.02)
        message = os.read(read_fd, 4096).decode("utf-8", "replace")
    finally:
        os.close(read_fd)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return None
    return message or "failed (status %s)" % status


# --- read-write probe on a mounted share ------------------------------------------------------

def _probe_here(path, token):
    """Write, read back and delete a probe file in ``path``: None, or what failed."""
    name = os.path.join(path, PROBE_PREFIX + token)
    try:
        with open(name, "w") as f:
            f.write(token)
            f.flush()
            os.fsync(f.fileno())
    except (IOError, OSError) as exc:
        return "write %s: %s" % (name, exc)
    try:
        with open(name) as f:
            back = f.read()
    except (IOError, OSError) as exc:
        return "read back %s: %s" % (name, exc)
    try:
        os.unlink(name)
    except (IOError, OSError) as exc:
        return "delete %s: %s" % (name, exc)
    if back != token:
        return "read back %s: other content than written" % name
    return None


def rw_probe(path, uid, gid, timeout=60, sleep=time.sleep):
    """Write, read back and delete a probe file in ``path`` as uid:gid, in a forked child (that
    drops to that user, so the server sees the containers' credentials) killed after ``timeout``
    seconds. None, or an error."""
    token = uuid.uuid4().hex

    def child():
        if (uid, gid) != (os.getuid(), os.getgid()):
            try:
                os.setgroups([])
                os.setgid(gid)
                os.setuid(uid)
            except OSError as exc:
                return "cannot switch to uid %s / gid %s: %s" % (uid, gid, exc)
        return _probe_here(path, token)

    try:
        return call_with_deadline(child, timeout, sleep=sleep)
    except NfsTimeout:
        return "the probe did not finish within %ss (a hard NFS mount whose server does not answer?)" % timeout


# --- userspace check of the export with libnfs -------------------------------------------------

def libnfs_version(opts):
    """libnfs speaks NFSv3 and NFSv4.0: map the wanted version to what it can check."""
    for name, value in opts:
        if name in ("nfsvers", "vers") and value:
            if value.startswith("3"):
                return 3
            return 4
    return 4


def nfs_url(server, export, version, uid, gid, name="", port=2049):
    host = "[%s]" % server if ":" in server else server
    path = export.rstrip("/") + ("/" + name if name else "")
    url = "nfs://%s%s?version=%d&uid=%d&gid=%d" % (host, path or "/", version, uid, gid)
    return url + ("&nfsport=%d" % port if port != 2049 else "")


class LibNfs:
    """The few libnfs calls the tools lack (libnfs-utils has no rm): unlink through ctypes."""

    def __init__(self):
        name = ctypes.util.find_library("nfs") or "libnfs.so.13"
        try:
            self.lib = ctypes.CDLL(name)
        except OSError as exc:
            raise NfsError("cannot load libnfs (%s): install libnfs-utils (it brings the library)" % exc) from exc
        lib = self.lib
        lib.nfs_init_context.restype = ctypes.c_void_p
        lib.nfs_init_context.argtypes = []
        lib.nfs_destroy_context.argtypes = [ctypes.c_void_p]
        lib.nfs_get_error.restype = ctypes.c_char_p
        lib.nfs_get_error.argtypes = [ctypes.c_void_p]
        lib.nfs_mount.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p]
        lib.nfs_unlink.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        for fn in ("nfs_set_uid", "nfs_set_gid", "nfs_set_timeout", "nfs_set_version"):
            if hasattr(lib, fn):
                getattr(lib, fn).argtypes = [ctypes.c_void_p, ctypes.c_int]

    def unlink(self, server, export, name, version, uid, gid, timeout_ms, port=2049):
        """Delete ``name`` in the export, in a forked child killed after ``timeout_ms`` (libnfs'
        own timeout is set too, where it has one); raises NfsError, NfsTimeout."""
        try:
            err = call_with_deadline(lambda: self._unlink(server, export, name, version, uid, gid, timeout_ms, port),
                                     timeout_ms / 1000.0)
        except NfsTimeout as exc:
            raise NfsTimeout("unlink %s: libnfs %s (the server accepts connections but does not answer?)"
                             % (name, exc.msg)) from None
        if err:
            raise NfsError(err)

    def _unlink(self, server, export, name, version, uid, gid, timeout_ms, port):
        """In the child: None or the error text."""
        lib = self.lib
        ctx = lib.nfs_init_context()
        if not ctx:
            return "libnfs: cannot create a context"
        try:
            if version == 4:
                if not hasattr(lib, "nfs_set_version") or lib.nfs_set_version(ctx, 4) != 0:
                    return "this libnfs cannot speak NFSv4"
            lib.nfs_set_uid(ctx, uid)
            lib.nfs_set_gid(ctx, gid)
            if hasattr(lib, "nfs_set_timeout"):
                lib.nfs_set_timeout(ctx, int(timeout_ms))
            if port != 2049:  # libnfs 4.0 has no nfs_set_nfsport: parsing a URL sets the port on the context
                lib.nfs_parse_url_dir.restype = ctypes.c_void_p
                lib.nfs_parse_url_dir.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
                lib.nfs_destroy_url.argtypes = [ctypes.c_void_p]
                url = lib.nfs_parse_url_dir(ctx, nfs_url(server, export, version, uid, gid, port=port).encode())
                if not url:
                    return "libnfs: cannot set the port %s: %s" % (port, (lib.nfs_get_error(ctx) or b"").decode())
                lib.nfs_destroy_url(url)
            if lib.nfs_mount(ctx, server.encode(), export.encode()) != 0:
                return "mount %s:%s: %s" % (server, export, (lib.nfs_get_error(ctx) or b"").decode())
            if lib.nfs_unlink(ctx, ("/" + name).encode()) != 0:
                return "unlink %s: %s" % (name, (lib.nfs_get_error(ctx) or b"").decode())
            return None
        finally:
            lib.nfs_destroy_context(ctx)


def userspace_check(run, which, server, export, version, uid, gid, port=2049, timeout=15, write=True,
                    libnfs_factory=LibNfs, sleep=time.sleep, clock=time.time):
    """Check the export over the NFS protocol from user space: reach the server, list the export,
    write a probe file, read it back, delete it (as uid:gid, the AUTH_SYS credentials libnfs sends).

    ``run(argv) -> (rc, out, err)``, killing the command after ``timeout`` seconds (NfsTimeout:
    run_with_deadline); each network step has ``timeout`` seconds. With ``write=False`` (check
    mode) only reach and list. Returns {"ok", "url", "protocol", "steps": [{"step", "ok", "detail"}]}.
    """
    steps = []
    result = {"ok": False, "url": nfs_url(server, export, version, uid, gid, port=port), "steps": steps,
              "protocol": "NFSv%s over TCP (libnfs)" % ("4.0" if version == 4 else "3"),
              "uid": uid, "gid": gid}

    def step(name, ok, detail):
        steps.append({"step": name, "ok": ok, "detail": detail})
        return ok

    def call(argv):
        try:
            return run(argv)
        except NfsTimeout as exc:
            return None, "", exc.msg

    try:
        sock = socket.create_connection((server, port), timeout=timeout)
        sock.close()
    except (socket.error, OSError) as exc:
        step("reach", False, "cannot reach %s:%s: %s" % (server, port, exc))
        return result
    step("reach", True, "%s:%s answers" % (server, port))

    tools = {}
    for tool in ("nfs-ls", "nfs-cp", "nfs-cat"):
        tools[tool] = which(tool)
        if not tools[tool]:
            step("tools", False, "%s not found: install libnfs-utils" % tool)
            return result
    rc, out, err = call([tools["nfs-ls"], result["url"]])
    if rc != 0:
        step("list", False, "nfs-ls %s: %s" % (result["url"], (err or out).strip()))
        return result
    entries = [ln for ln in out.splitlines() if ln.strip()]
    step("list", True, "%d entries" % len(entries))
    if not write:
        result["ok"] = True
        return result

    name = PROBE_PREFIX + uuid.uuid4().hex
    token = uuid.uuid4().hex
    url = nfs_url(server, export, version, uid, gid, name, port=port)
    deadline = clock() + timeout

    def in_grace(rc, out, err):
        """A server that has just started refuses state-changing calls for its grace period
        (NFS4ERR_GRACE): wait it out, within the timeout, instead of failing."""
        if rc != 0 and "NFS4ERR_GRACE" in (err or out) and clock() < deadline:
            waited[0] = True
            sleep(1)
            return True
        return False

    waited = [False]
    fd, local = tempfile.mkstemp(prefix="wabiz-nfs-probe-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(token)
        rc, out, err = call([tools["nfs-cp"], local, url])
        while in_grace(rc, out, err):
            rc, out, err = call([tools["nfs-cp"], local, url])
        if rc != 0:
            step("write", False, "nfs-cp to %s: %s" % (url, (err or out).strip()))
            return result
        step("write", True, "wrote %s%s" % (name, " (after the server's grace period)" if waited[0] else ""))
        rc, out, err = call([tools["nfs-cat"], url])
        while in_grace(rc, out, err):
            rc, out, err = call([tools["nfs-cat"], url])
        if rc != 0 or out != token:
            step("read", False, "nfs-cat %s: %s" % (url, (err or out).strip() if rc else "other content than written"))
            return result
        step("read", True, "read back %d bytes" % len(token))
    finally:
        os.unlink(local)
    while True:
        try:
            libnfs_factory().unlink(server, export, name, version, uid, gid, timeout * 1000, port=port)
            break
        except NfsError as exc:
            if in_grace(1, "", exc.msg):
                continue
            step("delete", False, exc.msg)
            return result
    rc, out, err = call([tools["nfs-ls"], result["url"]])
    if rc != 0 or name in out:
        step("delete", False, "%s is still listed after the delete" % name if rc == 0 else (err or out).strip())
        return result
    step("delete", True, "deleted %s (gone from the listing)" % name)
    result["ok"] = True
    return result


def failed_step(check):
    for s in check["steps"]:
        if not s["ok"]:
            return s
    return None


# --- the module's body -------------------------------------------------------------------------

def nfs_argument_spec():
    return dict(
        src=dict(type="str"),
        path=dict(type="path", required=True),
        state=dict(type="str", default="mounted", choices=["mounted", "present", "unmounted", "absent"]),
        opts=dict(type="raw", default=DEFAULT_OPTS),
        fstype=dict(type="str", default="nfs", choices=["nfs", "nfs4"]),
        fstab=dict(type="path", default="/etc/fstab"),
        dump=dict(type="int", default=0),
        passno=dict(type="int", default=0, no_log=False),
        probe=dict(type="bool", default=True),
        probe_uid=dict(type="int", default=0),
        probe_gid=dict(type="int", default=0),
        userspace_check=dict(type="bool", default=False),
        timeout=dict(type="int", default=30),
    )


def _read(path):
    try:
        with open(path) as f:
            return f.read()
    except (IOError, OSError):
        return ""


def _mkdirs(path):
    """Create ``path`` and missing parents; return the ones created, deepest last."""
    created = []
    todo = []
    p = os.path.abspath(path)
    while not os.path.exists(p):
        todo.append(p)
        p = os.path.dirname(p)
    for d in reversed(todo):
        os.mkdir(d, 0o755)
        created.append(d)
    return created


def _rmdirs(created):
    for d in reversed(created):
        try:
            os.rmdir(d)
        except OSError:
            pass


def _port_opt(opts):
    """The port=N mount option (None when absent); NfsError when it is not a port number."""
    for name, value in opts:
        if name == "port":
            if not (value or "").isdigit() or not 0 < int(value) < 65536:
                raise NfsError("opts: port=%s is not a port number (1-65535); leave it out for NFS's 2049." % value)
            return int(value)
    return None


def validate_params(p):
    """Every check of the options, in one place, before anything is read or changed: NfsError
    naming the option, saying what is wrong and what to do. Returns the checked values
    {"path", "server", "export", "opts", "port"}."""
    path = check_path(p["path"])
    server = export = None
    if p["src"] is not None:
        server, export = parse_src(p["src"])
    opts = parse_opts(p["opts"])
    port = _port_opt(opts)
    for name in ("dump", "passno", "probe_uid", "probe_gid"):
        if p[name] < 0:
            raise NfsError("%s: must not be negative (it is %s)." % (name, p[name]))
    if p["timeout"] <= 0:
        raise NfsError("timeout: %s is not a number of seconds greater than 0; give how long each network step may "
                       "take (default 30)." % p["timeout"])
    fstab = p["fstab"]
    if not fstab or not os.path.isabs(fstab):
        raise NfsError("fstab: %r is not an absolute path; give the fstab file's full path (default /etc/fstab)."
                       % (fstab,))
    if os.path.isdir(fstab):
        raise NfsError("fstab: %s is a directory; give the path of the fstab file itself." % fstab)
    directory = os.path.dirname(fstab)
    if not os.path.isdir(directory):
        raise NfsError("fstab: the directory %s of %s does not exist; create it first, or give an fstab path in an "
                       "existing directory." % (directory, fstab))
    return {"path": path, "server": server, "export": export, "opts": opts, "port": port or 2049}


def _fstab_type(line):
    fields = line.split()
    return fields[2] if len(fields) >= 3 else None


def run_nfs_media(module):
    p = module.params
    state = p["state"]
    result = {"changed": False, "path": p["path"], "state": state, "actions": []}
    try:
        checked = validate_params(p)
    except NfsError as exc:
        module.fail_json(msg=exc.msg + " Nothing was changed.", **result)
    path, server, export, opts = checked["path"], checked["server"], checked["export"], checked["opts"]
    result["opts"] = opts_text(opts)

    fstab_path = p["fstab"]
    fstab_before = _files.read_text(fstab_path)
    if state in ("mounted", "present"):
        line = fstab_line(p["src"], path, p["fstype"], opts, p["dump"], p["passno"])
        fstab_after, old = update_fstab(fstab_before, path, line)
    elif state == "absent":
        fstab_after, old = update_fstab(fstab_before, path, None)
    else:
        fstab_after, old = fstab_before or "", []
    fstab_changed = (fstab_after or "") != (fstab_before or "") and not (state == "absent" and not old)
    result["fstab_entry"] = line if state in ("mounted", "present") else None

    live = find_mount(parse_mountinfo(_read(PROC_MOUNTINFO)), path)
    result["mount_before"] = _public_mount(live)
    # Only NFS is ours: another file system mounted at path, or another fstab entry for it, is left alone.
    if live is not None and live["fstype"] not in NFS_TYPES:
        module.fail_json(msg="path: %s is mounted as %s (from %s), not NFS; nfs_media only mounts, remounts or unmounts "
                             "NFS there. Unmount it yourself if it should go, or choose another path. Nothing was changed."
                             % (path, live["fstype"], live["source"]), **result)
    for raw in old:
        if _fstab_type(raw) not in NFS_TYPES:
            module.fail_json(msg="fstab: %s has an entry of type %s for %s, not NFS (%s); nfs_media only replaces or "
                                 "removes NFS entries. Remove that line yourself if it should go, or choose another path. Nothing "
                                 "was changed." % (fstab_path, _fstab_type(raw) or "malformed", path, raw.strip()),
                             **result)

    if fstab_changed:
        result["actions"].append("fstab: %s %s" % ("set" if state in ("mounted", "present") else "remove", path))
    if module._diff:
        result["diff"] = {"before": fstab_before or "", "after": fstab_after if fstab_changed else (fstab_before or ""),
                          "before_header": fstab_path, "after_header": fstab_path}

    def write_fstab():
        if fstab_changed and not module.check_mode:
            _files.write_atomic(module, fstab_path, fstab_after, mode=None if fstab_before is not None else 0o644)

    def restore_fstab():
        if fstab_changed and not module.check_mode:
            _files.restore(module, fstab_path, fstab_before)

    def do_userspace(write):
        check = userspace_check(
            lambda argv: run_with_deadline(argv, p["timeout"]), module.get_bin_path, server, export,
            libnfs_version(opts), p["probe_uid"], p["probe_gid"], port=checked["port"], timeout=p["timeout"],
            write=write)
        result["userspace_check"] = check
        return check

    if state == "present":
        if p["userspace_check"]:
            check = do_userspace(write=not module.check_mode)
            bad = failed_step(check)
            if bad:
                result["actions"] = []
                module.fail_json(msg="userspace check of %s failed at '%s': %s (fstab left as it was)"
                                 % (p["src"], bad["step"], bad["detail"]), **result)
        write_fstab()
        result["changed"] = fstab_changed
        return result

    if state in ("unmounted", "absent"):
        if live is not None:
            result["actions"].append("umount %s" % path)
            if not module.check_mode:
                _umount(module, path, p["timeout"], result)
        write_fstab()
        result["changed"] = bool(result["actions"])
        return result

    # state == mounted
    ok, why = kernel_nfs(_read(PROC_FILESYSTEMS), module_paths(os.uname()[2]))
    if not ok and live is None:
        msg = "cannot mount %s at %s: this host has %s; mount -t nfs cannot work here." % (p["src"], path, why)
        if p["userspace_check"]:
            check = do_userspace(write=not module.check_mode)
            bad = failed_step(check)
            if bad:
                msg += " The userspace check of the export failed too, at '%s': %s." % (bad["step"], bad["detail"])
            else:
                msg += (" The export itself works: a userspace check over %s reached it, listed it%s."
                        % (check["protocol"], "" if module.check_mode else
                           ", wrote, read back and deleted a probe file as %s:%s" % (p["probe_uid"], p["probe_gid"])))
        else:
            msg += " Set userspace_check=true to verify the export over NFS from user space instead."
        result["kernel_nfs"] = False
        result["actions"] = []
        module.fail_json(msg=msg + " Nothing was changed.", **result)
    result["kernel_nfs"] = True

    remount = False
    if live is not None:
        diffs, notes = compare_options(opts, live)
        result["option_differences"] = diffs
        result["notes"] = notes
        if not same_source(live["source"], p["src"]):
            diffs = diffs + [{"option": "src", "wanted": p["src"], "live": live["source"]}]
            result["option_differences"] = diffs
        remount = bool(diffs)
        if remount:
            result["actions"].append("remount %s (%s)" % (path, ", ".join(d["option"] for d in diffs)))
    else:
        result["actions"].append("mount %s at %s" % (p["src"], path))
        if not os.path.isdir(path):
            result["actions"].append("mkdir %s" % path)

    if module.check_mode:
        result["changed"] = bool(result["actions"])
        return result

    created = []
    if live is None or remount:
        if live is None:
            try:
                created = _mkdirs(path)
            except OSError as exc:
                module.fail_json(msg="cannot create mount point %s: %s" % (path, exc), **result)
        write_fstab()
        if remount:
            _umount(module, path, p["timeout"], result, on_error=restore_fstab)
        mount_bin = module.get_bin_path("mount", required=True)
        rc, out, err = _run(module, [mount_bin, "-t", p["fstype"], "-o", opts_text(opts), p["src"], path], p["timeout"])
        if rc != 0:
            restore_fstab()
            _rmdirs(created)
            result["actions"] = []
            module.fail_json(msg="mount %s at %s failed (fstab restored%s): %s" % (
                p["src"], path, ", created directories removed" if created else "", (err or out).strip()),
                rc=rc, **result)
        live = find_mount(parse_mountinfo(_read(PROC_MOUNTINFO)), path)
        if live is None:
            restore_fstab()
            _rmdirs(created)
            module.fail_json(msg="mount reported success but %s is not in %s" % (path, PROC_MOUNTINFO), **result)
        result["option_differences"], result["notes"] = compare_options(opts, live)
    else:
        write_fstab()
    result["mount"] = _public_mount(live)

    if p["probe"]:
        err = rw_probe(path, p["probe_uid"], p["probe_gid"], timeout=p["timeout"])
        result["probe"] = {"ok": err is None, "uid": p["probe_uid"], "gid": p["probe_gid"], "error": err}
        if err:
            result["changed"] = bool(result["actions"])
            module.fail_json(msg="%s is mounted, but uid %s / gid %s cannot write, read back and delete a file "
                                 "there (the guide asks for read and write permissions for the containers): %s"
                                 % (path, p["probe_uid"], p["probe_gid"], err), **result)
    result["changed"] = bool(result["actions"])
    return result


def _run(module, argv, timeout):
    """mount and umount with the deadline; a timeout is (rc None, "", why)."""
    try:
        return run_with_deadline(argv, timeout)
    except NfsTimeout as exc:
        return None, "", exc.msg


def _umount(module, path, timeout, result, on_error=None):
    umount_bin = module.get_bin_path("umount", required=True)
    rc, out, err = _run(module, [umount_bin, path], timeout)
    if rc != 0:
        if on_error:
            on_error()
        module.fail_json(msg="umount %s failed: %s" % (path, (err or out).strip()), rc=rc, **result)


def _public_mount(entry):
    if entry is None:
        return None
    return {"source": entry["source"], "fstype": entry["fstype"],
            "options": ",".join(entry["mount_opts"]), "super_options": ",".join(entry["super_opts"])}
