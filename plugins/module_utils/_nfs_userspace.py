# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The userspace check of an NFS export: over the NFS protocol with libnfs (its nfs-ls, nfs-cp
and nfs-cat tools, and its library through ctypes for the delete the tools lack), so that the
export can be verified on a host whose kernel cannot mount NFS.

Private to the collection (leading underscore): the API may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ctypes
import ctypes.util
import os
import socket
import tempfile
import time
import uuid

from ansible_collections.wabiz.cluster.plugins.module_utils._nfs_errors import NfsError, NfsTimeout
from ansible_collections.wabiz.cluster.plugins.module_utils._nfs_probe import PROBE_PREFIX, call_with_deadline


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
    check = _UserspaceCheck(run, which, server, export, version, uid, gid, port, timeout, libnfs_factory, sleep,
                            clock)
    result = {"ok": False, "url": check.url, "steps": check.steps,
              "protocol": "NFSv%s over TCP (libnfs)" % ("4.0" if version == 4 else "3"),
              "uid": uid, "gid": gid}
    if not (check.reach() and check.find_tools() and check.list_export()):
        return result
    if not write:
        result["ok"] = True
        return result
    name = PROBE_PREFIX + uuid.uuid4().hex
    token = uuid.uuid4().hex
    url = nfs_url(server, export, version, uid, gid, name, port=port)
    check.deadline = clock() + timeout
    result["ok"] = check.write_and_read(url, name, token) and check.delete(name)
    return result


class _UserspaceCheck:
    """The steps of one userspace check, each recorded in ``steps`` as it is taken; a step
    returns whether it worked, and the check stops at the first that did not."""

    def __init__(self, run, which, server, export, version, uid, gid, port, timeout, libnfs_factory, sleep, clock):
        self.run, self.which, self.libnfs_factory, self.sleep, self.clock = run, which, libnfs_factory, sleep, clock
        self.server, self.export, self.version, self.uid, self.gid = server, export, version, uid, gid
        self.port, self.timeout = port, timeout
        self.url = nfs_url(server, export, version, uid, gid, port=port)
        self.steps = []
        self.tools = {}
        self.deadline = None  # for the writing steps: how long to wait out the server's grace period
        self.waited = False

    def step(self, name, ok, detail):
        self.steps.append({"step": name, "ok": ok, "detail": detail})
        return ok

    def call(self, argv):
        try:
            return self.run(argv)
        except NfsTimeout as exc:
            return None, "", exc.msg

    def in_grace(self, rc, out, err):
        """A server that has just started refuses state-changing calls for its grace period
        (NFS4ERR_GRACE): wait it out, within the timeout, instead of failing."""
        if rc != 0 and "NFS4ERR_GRACE" in (err or out) and self.clock() < self.deadline:
            self.waited = True
            self.sleep(1)
            return True
        return False

    def call_after_grace(self, argv):
        rc, out, err = self.call(argv)
        while self.in_grace(rc, out, err):
            rc, out, err = self.call(argv)
        return rc, out, err

    def reach(self):
        try:
            sock = socket.create_connection((self.server, self.port), timeout=self.timeout)
            sock.close()
        except (socket.error, OSError) as exc:
            return self.step("reach", False, "cannot reach %s:%s: %s" % (self.server, self.port, exc))
        return self.step("reach", True, "%s:%s answers" % (self.server, self.port))

    def find_tools(self):
        for tool in ("nfs-ls", "nfs-cp", "nfs-cat"):
            self.tools[tool] = self.which(tool)
            if not self.tools[tool]:
                return self.step("tools", False, "%s not found: install libnfs-utils" % tool)
        return True

    def list_export(self):
        rc, out, err = self.call([self.tools["nfs-ls"], self.url])
        if rc != 0:
            return self.step("list", False, "nfs-ls %s: %s" % (self.url, (err or out).strip()))
        entries = [ln for ln in out.splitlines() if ln.strip()]
        return self.step("list", True, "%d entries" % len(entries))

    def write_and_read(self, url, name, token):
        fd, local = tempfile.mkstemp(prefix="wabiz-nfs-probe-")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(token)
            rc, out, err = self.call_after_grace([self.tools["nfs-cp"], local, url])
            if rc != 0:
                return self.step("write", False, "nfs-cp to %s: %s" % (url, (err or out).strip()))
            self.step("write", True, "wrote %s%s" % (name, " (after the server's grace period)" if self.waited else ""))
            rc, out, err = self.call_after_grace([self.tools["nfs-cat"], url])
            if rc != 0 or out != token:
                why = (err or out).strip() if rc else "other content than written"
                return self.step("read", False, "nfs-cat %s: %s" % (url, why))
            return self.step("read", True, "read back %d bytes" % len(token))
        finally:
            os.unlink(local)

    def delete(self, name):
        """Delete the probe file with libnfs, then make sure the listing no longer shows it."""
        while True:
            try:
                self.libnfs_factory().unlink(self.server, self.export, name, self.version, self.uid, self.gid,
                                             self.timeout * 1000, port=self.port)
                break
            except NfsError as exc:
                if self.in_grace(1, "", exc.msg):
                    continue
                return self.step("delete", False, exc.msg)
        rc, out, err = self.call([self.tools["nfs-ls"], self.url])
        if rc != 0 or name in out:
            why = "%s is still listed after the delete" % name if rc == 0 else (err or out).strip()
            return self.step("delete", False, why)
        return self.step("delete", True, "deleted %s (gone from the listing)" % name)


def failed_step(check):
    for s in check["steps"]:
        if not s["ok"]:
            return s
    return None
