# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks of nfs_media's options: src (server and export), path, opts, the numbers and the
fstab path, all before anything is read or changed.

Private to the collection. Each check raises NfsError naming the option, saying what is wrong
and what to do instead.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import re

from ansible_collections.wabiz.cluster.plugins.module_utils._nfs_errors import NfsError
from ansible_collections.wabiz.cluster.plugins.module_utils._nfs_fstab import parse_opts

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
