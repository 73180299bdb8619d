"""nfs_media against a throwaway fstab and mount point (this host has no kernel NFS, so
state=mounted must refuse cleanly): bad values of every option, and the userspace check against
listeners that misbehave."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.properties import strategies as S
from tests.properties.conftest import examples
from tests.properties.harness import Listener, assert_clean, judge, run_module, snapshot

FSTAB = "# /etc/fstab: static file system information.\nUUID=1234 / ext4 errors=remount-ro 0 1\n" \
        "nfs1:/other /mnt/other nfs defaults 0 0\n"


def _inside(w: Path, value):
    """Keep generated paths inside the throwaway dir: an absolute path is re-rooted under it
    (relative ones resolve there already: the module runs with it as its working directory)."""
    if isinstance(value, str) and value.startswith("/"):
        return str(w) + value
    return value


def _base(w: Path) -> dict:
    return {"src": "127.0.0.1:/export", "path": str(w / "media"), "state": "present", "fstab": str(w / "fstab"),
            "probe": False, "userspace_check": False, "timeout": 3}


OPTIONS = {
    "src": S.bad_str(["127.0.0.1:/export", "nfs:export", ":/x", "nfs:", "[::1]:/x", "[::1/x", "a b:/x", "h:/x y",
                      "h:/x\n/y", "h:/x#y", "h:/" + "x" * 5000, "h:/x,y"]),
    "path": S.bad_str(["relative", "/", "/media dir", "/m\nx", "/m#x", "/m\\040x", "/" + "d" * 300, "//x//y/"]),
    "state": S.bad_str(["mounted", "present", "unmounted", "absent", "Mounted", "remounted"]),
    "opts": st.one_of(S.bad_str(["", ",,,", "ro,rw", "nfsvers=9", "port=70000", "port=-1", "a b", "timeo=x",
                                 "nfsvers=4.1,,hard", "#x", "x=y=z"]), S.bad_list(), S.bad_int()),
    "fstype": S.bad_str(["nfs", "nfs4", "NFS", "ext4", "cifs"]),
    "fstab": S.bad_str(["", "relative-fstab", "/", "/nodir/fstab"]).filter(lambda v: v is not None),
    "dump": S.bad_int(), "passno": S.bad_int(), "probe": S.bad_bool(), "probe_uid": S.bad_int(),
    "probe_gid": S.bad_int(), "userspace_check": S.bad_bool(),
    "timeout": S.bad_int([0, -1, 1, 2**31]),
}
EXPLICIT = {
    "src": ["", "nfs:export", "a b:/x", "[::1/x", "h:/x\ny"],
    "path": ["relative", "/", "/m\nx", "/m x"],
    "state": ["", "remounted", "mounted"],
    "opts": ["", ",,,", "a b", "port=70000", 5, [], ["ro", 1]],
    "fstype": ["ext4", ""],
    "fstab": ["", "/", "/nodir/fstab"],
    "dump": [-1, 2**63, "x"], "passno": [-1, 3, "x"], "probe": ["maybe"],
    "probe_uid": [-1, 2**32, "x"], "probe_gid": [-1, 2**32], "userspace_check": ["maybe"],
    "timeout": [0, -1, 2**31],
}
INVALID_STATES = {"mounted", "present", "unmounted", "absent"}


def invalid_reason(option, value):
    if option in ("dump", "passno", "probe_uid", "probe_gid") and isinstance(value, int) and value < 0:
        return "negative"
    if option == "passno" and isinstance(value, int) and not isinstance(value, bool) and value > 2:
        return "fsck pass number above 2"
    if option == "timeout" and isinstance(value, int) and not isinstance(value, bool) and value <= 0:
        return "non-positive timeout"
    if option == "state" and value not in INVALID_STATES:
        return "state not in choices"
    if option == "src" and isinstance(value, str) and (":/" not in value or any(c.isspace() for c in value)):
        return "not SERVER:/EXPORT"
    if option == "path" and isinstance(value, str) and not value.startswith("/"):
        return "relative mount point"
    return None


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_nfs_media_bad_value_fails_cleanly_no_traceback_no_hang_no_change(option, workdir):
    @settings(max_examples=examples(3))
    @given(value=OPTIONS[option], existing=st.booleans(), check=st.booleans(), state=st.sampled_from(
        ["present", "mounted", "absent"]))
    def prop(value, existing, check, state):
        w = workdir()
        if existing:
            (w / "fstab").write_text(FSTAB)
        args = _base(w)
        args["state"] = state
        if option in ("path", "fstab"):
            value = _inside(w, value)
        args[option] = value
        before = snapshot(w)
        run = run_module("nfs_media", args, w, check=check, budget=15)
        judge(run, before=before, after=snapshot(w), invalid=invalid_reason(option, value))
        assert_clean(run)

    for i, v in enumerate(EXPLICIT[option]):
        prop = example(value=v, existing=True, check=False, state=("present", "mounted")[i % 2])(prop)
    prop()


@pytest.mark.parametrize("kind", Listener.KINDS)
def test_nfs_media_userspace_check_against_broken_server_fails_within_timeout(kind, workdir, listeners):
    """userspace_check=true against a server port that misbehaves: a clean failure within the
    module's timeout (per step), fstab untouched."""

    @settings(max_examples=examples(1))
    @given(timeout=st.integers(1, 3), state=st.sampled_from(["present", "mounted"]), check=st.booleans())
    def prop(timeout, state, check):
        w = workdir()
        (w / "fstab").write_text(FSTAB)
        args = _base(w)
        args.update(state=state, userspace_check=True, timeout=timeout,
                    opts=f"nfsvers=4.1,hard,port={listeners[kind].port}")
        before = snapshot(w)
        # reach, list, write, read, delete, list: each bounded by the timeout
        run = run_module("nfs_media", args, w, check=check, budget=6 * timeout + 2)
        judge(run, before=before, after=snapshot(w))
        if not run.failed:
            run.problems.append(f"the userspace check passed against a {kind} listener")
        assert_clean(run)

    prop()
