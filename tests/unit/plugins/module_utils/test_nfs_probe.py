"""Deadlines for commands and forked calls, and the read-write probe of a mounted share."""

from __future__ import annotations

import os

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs_errors as nfs_errors
from ansible_collections.wabiz.cluster.plugins.module_utils import _nfs_probe as nfs_probe


def test_run_with_deadline_kills_the_whole_process_group(tmp_path):
    import time

    pidfile = tmp_path / "pid"
    start = time.monotonic()
    with pytest.raises(nfs_errors.NfsTimeout) as err:
        nfs_probe.run_with_deadline(["sh", "-c", f"sleep 60 & echo $! > {pidfile}; sleep 60"], 1)
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
    assert nfs_probe.run_with_deadline(["sh", "-c", "echo out; echo err >&2; exit 3"], 5) == (3, "out\n", "err\n")
    rc, out, err = nfs_probe.run_with_deadline(["/nonexistent/tool"], 5)
    assert rc == 127 and "cannot run /nonexistent/tool" in err


def test_call_with_deadline_kills_a_stuck_call():
    import time

    assert nfs_probe.call_with_deadline(lambda: None, 5) is None
    assert nfs_probe.call_with_deadline(lambda: "it broke", 5) == "it broke"
    start = time.monotonic()
    with pytest.raises(nfs_errors.NfsTimeout):
        nfs_probe.call_with_deadline(lambda: time.sleep(60), 1)
    assert time.monotonic() - start < 3


def test_rw_probe_is_killed_at_the_timeout_also_as_the_same_user(tmp_path, monkeypatch):
    import time

    monkeypatch.setattr(nfs_probe, "_probe_here", lambda path, token: time.sleep(60))
    start = time.monotonic()
    err = nfs_probe.rw_probe(str(tmp_path), os.getuid(), os.getgid(), timeout=1)
    assert time.monotonic() - start < 3
    assert err == "the probe did not finish within 1s (a hard NFS mount whose server does not answer?)"
