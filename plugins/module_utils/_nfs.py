# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The body of the nfs_media module: the NFS media share on a host, in its fstab and mounted.

Private to the collection. ``run_nfs_media`` takes the steps one by one: check the options
(``_nfs_options``), plan the fstab change (``_nfs_fstab``), refuse what is not NFS, then bring
the share to the wanted state, checking the export from user space (``_nfs_userspace``) and
probing the mount (``_nfs_probe``) where asked. It reaches the system only through the module
object and the PROC_* paths, so that tests can give it a fake one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools
import os

from ansible_collections.wabiz.cluster.plugins.module_utils import _files
from ansible_collections.wabiz.cluster.plugins.module_utils._nfs_errors import NfsError, NfsTimeout
from ansible_collections.wabiz.cluster.plugins.module_utils._nfs_fstab import (
    DEFAULT_OPTS,
    compare_options,
    find_mount,
    fstab_line,
    kernel_nfs,
    module_paths,
    opts_text,
    parse_mountinfo,
    same_source,
    update_fstab,
)
from ansible_collections.wabiz.cluster.plugins.module_utils._nfs_options import validate_params
from ansible_collections.wabiz.cluster.plugins.module_utils._nfs_probe import run_with_deadline, rw_probe
from ansible_collections.wabiz.cluster.plugins.module_utils._nfs_userspace import (
    failed_step,
    libnfs_version,
    userspace_check,
)

PROC_MOUNTINFO = "/proc/self/mountinfo"
PROC_FILESYSTEMS = "/proc/filesystems"
# File systems the module manages: it only replaces, removes or unmounts these.
NFS_TYPES = ("nfs", "nfs4")


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


def run_nfs_media(module):
    """The module's result; fails through ``module.fail_json`` (after putting back what it changed)."""
    p = module.params
    state = p["state"]
    result = {"changed": False, "path": p["path"], "state": state, "actions": []}
    try:
        checked = validate_params(p)
    except NfsError as exc:
        module.fail_json(msg=exc.msg + " Nothing was changed.", **result)
    result["opts"] = opts_text(checked["opts"])
    fstab = _plan_fstab(p, checked, result)
    live = find_mount(parse_mountinfo(_read(PROC_MOUNTINFO)), checked["path"])
    result["mount_before"] = _public_mount(live)
    _refuse_what_is_not_nfs(module, checked["path"], live, fstab, result)
    _report_fstab(module, checked["path"], fstab, result)
    if state == "present":
        return _present(module, checked, fstab, result)
    if state in ("unmounted", "absent"):
        return _unmounted(module, checked["path"], live, fstab, result)
    return _mounted(module, checked, fstab, live, result)


# --- the steps, in the order run_nfs_media takes them ------------------------------------------

def _plan_fstab(p, checked, result):
    """The fstab change the state asks for: {"path", "before", "after", "old" (the lines replaced
    or removed), "changed"}. Reads the file, changes nothing."""
    state = p["state"]
    path = checked["path"]
    before = _files.read_text(p["fstab"])
    line = None
    if state in ("mounted", "present"):
        line = fstab_line(p["src"], path, p["fstype"], checked["opts"], p["dump"], p["passno"])
        after, old = update_fstab(before, path, line)
    elif state == "absent":
        after, old = update_fstab(before, path, None)
    else:
        after, old = before or "", []
    changed = (after or "") != (before or "") and not (state == "absent" and not old)
    result["fstab_entry"] = line
    return {"path": p["fstab"], "before": before, "after": after, "old": old, "changed": changed}


def _refuse_what_is_not_nfs(module, path, live, fstab, result):
    """Only NFS is ours: another file system mounted at path, or another fstab entry for it, is left alone."""
    if live is not None and live["fstype"] not in NFS_TYPES:
        module.fail_json(msg="path: %s is mounted as %s (from %s), not NFS; nfs_media only mounts, remounts or unmounts "
                             "NFS there. Unmount it yourself if it should go, or choose another path. Nothing was changed."
                             % (path, live["fstype"], live["source"]), **result)
    for raw in fstab["old"]:
        if _fstab_type(raw) not in NFS_TYPES:
            module.fail_json(msg="fstab: %s has an entry of type %s for %s, not NFS (%s); nfs_media only replaces or "
                                 "removes NFS entries. Remove that line yourself if it should go, or choose another path. Nothing "
                                 "was changed." % (fstab["path"], _fstab_type(raw) or "malformed", path, raw.strip()),
                             **result)


def _report_fstab(module, path, fstab, result):
    if fstab["changed"]:
        verb = "set" if module.params["state"] in ("mounted", "present") else "remove"
        result["actions"].append("fstab: %s %s" % (verb, path))
    if module._diff:
        before = fstab["before"] or ""
        result["diff"] = {"before": before, "after": fstab["after"] if fstab["changed"] else before,
                          "before_header": fstab["path"], "after_header": fstab["path"]}


def _present(module, checked, fstab, result):
    """In fstab, not mounted: write the entry, after a userspace check of the export if asked."""
    p = module.params
    if p["userspace_check"]:
        bad = failed_step(_userspace(module, checked, result, write=not module.check_mode))
        if bad and module.check_mode:
            # A dry run of a new cluster: the NFS server and the tools are what earlier (also unrun)
            # tasks would set up, so a failed check is said, not fatal; a real run still fails here.
            module.warn("check mode: the userspace check of %s failed at '%s': %s. A real run fails here "
                        "unless that is in place by then." % (p["src"], bad["step"], bad["detail"]))
        elif bad:
            result["actions"] = []
            module.fail_json(msg="userspace check of %s failed at '%s': %s (fstab left as it was)"
                             % (p["src"], bad["step"], bad["detail"]), **result)
    _write_fstab(module, fstab)
    result["changed"] = fstab["changed"]
    return result


def _unmounted(module, path, live, fstab, result):
    """unmounted and absent: unmount what is live, then write fstab (absent removes the entry)."""
    if live is not None:
        result["actions"].append("umount %s" % path)
        if not module.check_mode:
            _umount(module, path, module.params["timeout"], result)
    _write_fstab(module, fstab)
    result["changed"] = bool(result["actions"])
    return result


def _mounted(module, checked, fstab, live, result):
    """In fstab and mounted with the wanted options (remounted when they differ), then probed."""
    _require_kernel_nfs(module, checked, live, result)
    remount = _plan_mount(module, checked, live, result)
    if module.check_mode:
        result["changed"] = bool(result["actions"])
        return result
    if live is None or remount:
        live = _mount(module, checked, fstab, remount, result)
    else:
        _write_fstab(module, fstab)
    result["mount"] = _public_mount(live)
    if module.params["probe"]:
        _probe(module, checked["path"], result)
    result["changed"] = bool(result["actions"])
    return result


def _require_kernel_nfs(module, checked, live, result):
    """Fail, changing nothing, when the kernel cannot mount NFS (and nothing is mounted yet); the
    message says whether the export itself works, when a userspace check is asked for."""
    p = module.params
    ok, why = kernel_nfs(_read(PROC_FILESYSTEMS), module_paths(os.uname()[2]))
    if not ok and live is None:
        msg = "cannot mount %s at %s: this host has %s; mount -t nfs cannot work here." % (p["src"], checked["path"], why)
        if p["userspace_check"]:
            check = _userspace(module, checked, result, write=not module.check_mode)
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


def _plan_mount(module, checked, live, result):
    """The mount, or the remount when the live options or source differ: True for a remount."""
    src, path = module.params["src"], checked["path"]
    if live is None:
        result["actions"].append("mount %s at %s" % (src, path))
        if not os.path.isdir(path):
            result["actions"].append("mkdir %s" % path)
        return False
    diffs, notes = compare_options(checked["opts"], live)
    result["option_differences"] = diffs
    result["notes"] = notes
    if not same_source(live["source"], src):
        diffs = diffs + [{"option": "src", "wanted": src, "live": live["source"]}]
        result["option_differences"] = diffs
    if diffs:
        result["actions"].append("remount %s (%s)" % (path, ", ".join(d["option"] for d in diffs)))
    return bool(diffs)


def _mount(module, checked, fstab, remount, result):
    """Write fstab and mount (unmounting first for a remount); on failure put fstab back and remove
    the directories created. Returns the live mountinfo entry."""
    p = module.params
    path = checked["path"]
    created = []
    if not remount:
        try:
            created = _mkdirs(path)
        except OSError as exc:
            module.fail_json(msg="cannot create mount point %s: %s" % (path, exc), **result)
    _write_fstab(module, fstab)
    if remount:
        _umount(module, path, p["timeout"], result, restore=fstab)
    mount_bin = module.get_bin_path("mount", required=True)
    rc, out, err = _run(module, [mount_bin, "-t", p["fstype"], "-o", opts_text(checked["opts"]), p["src"], path],
                        p["timeout"])
    if rc != 0:
        _restore_fstab(module, fstab)
        _rmdirs(created)
        result["actions"] = []
        module.fail_json(msg="mount %s at %s failed (fstab restored%s): %s" % (
            p["src"], path, ", created directories removed" if created else "", (err or out).strip()),
            rc=rc, **result)
    live = find_mount(parse_mountinfo(_read(PROC_MOUNTINFO)), path)
    if live is None:
        _restore_fstab(module, fstab)
        _rmdirs(created)
        module.fail_json(msg="mount reported success but %s is not in %s" % (path, PROC_MOUNTINFO), **result)
    result["option_differences"], result["notes"] = compare_options(checked["opts"], live)
    return live


def _probe(module, path, result):
    p = module.params
    err = rw_probe(path, p["probe_uid"], p["probe_gid"], timeout=p["timeout"])
    result["probe"] = {"ok": err is None, "uid": p["probe_uid"], "gid": p["probe_gid"], "error": err}
    if err:
        result["changed"] = bool(result["actions"])
        module.fail_json(msg="%s is mounted, but uid %s / gid %s cannot write, read back and delete a file "
                             "there (the guide asks for read and write permissions for the containers): %s"
                             % (path, p["probe_uid"], p["probe_gid"], err), **result)


# --- what the steps share ----------------------------------------------------------------------

def _userspace(module, checked, result, write):
    p = module.params
    check = userspace_check(
        functools.partial(run_with_deadline, timeout=p["timeout"]), module.get_bin_path, checked["server"],
        checked["export"], libnfs_version(checked["opts"]), p["probe_uid"], p["probe_gid"], port=checked["port"],
        timeout=p["timeout"], write=write)
    result["userspace_check"] = check
    return check


def _write_fstab(module, fstab):
    if fstab["changed"] and not module.check_mode:
        _files.write_atomic(module, fstab["path"], fstab["after"], mode=None if fstab["before"] is not None else 0o644)


def _restore_fstab(module, fstab):
    if fstab["changed"] and not module.check_mode:
        _files.restore(module, fstab["path"], fstab["before"])


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


def _fstab_type(line):
    fields = line.split()
    return fields[2] if len(fields) >= 3 else None


def _run(module, argv, timeout):
    """mount and umount with the deadline; a timeout is (rc None, "", why)."""
    try:
        return run_with_deadline(argv, timeout)
    except NfsTimeout as exc:
        return None, "", exc.msg


def _umount(module, path, timeout, result, restore=None):
    """Unmount ``path``; on failure put the fstab plan ``restore`` back (when given) and fail."""
    umount_bin = module.get_bin_path("umount", required=True)
    rc, out, err = _run(module, [umount_bin, path], timeout)
    if rc != 0:
        if restore is not None:
            _restore_fstab(module, restore)
        module.fail_json(msg="umount %s failed: %s" % (path, (err or out).strip()), rc=rc, **result)


def _public_mount(entry):
    if entry is None:
        return None
    return {"source": entry["source"], "fstype": entry["fstype"],
            "options": ",".join(entry["mount_opts"]), "super_options": ",".join(entry["super_opts"])}
