# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Deadlines for everything that talks to an NFS server, and the read-write probe of a mounted
share.

A server that accepts connections and never answers must not hold the module: commands run in
a process group of their own that is killed at the deadline, and calls that cannot be
interrupted otherwise (file I/O on a hard mount, libnfs through ctypes) run in a forked child
that is killed at the deadline. The probe runs in such a child, as the containers' uid:gid.

Private to the collection (leading underscore): the API may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import os
import signal
import subprocess
import time
import uuid

from ansible_collections.wabiz.cluster.plugins.module_utils._nfs_errors import NfsTimeout

PROBE_PREFIX = ".wabiz-probe-"


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


def _probe_as(uid, gid, path, token):
    """In the forked child: become uid:gid (unless that is who runs already), then probe."""
    if (uid, gid) != (os.getuid(), os.getgid()):
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
        except OSError as exc:
            return "cannot switch to uid %s / gid %s: %s" % (uid, gid, exc)
    return _probe_here(path, token)


def rw_probe(path, uid, gid, timeout=60, sleep=time.sleep):
    """Write, read back and delete a probe file in ``path`` as uid:gid, in a forked child (that
    drops to that user, so the server sees the containers' credentials) killed after ``timeout``
    seconds. None, or an error."""
    token = uuid.uuid4().hex
    try:
        return call_with_deadline(functools.partial(_probe_as, uid, gid, path, token), timeout, sleep=sleep)
    except NfsTimeout:
        return "the probe did not finish within %ss (a hard NFS mount whose server does not answer?)" % timeout
