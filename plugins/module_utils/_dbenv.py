# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The body of wabiz.cluster.db_env: check the path, validate, write or remove ``db.env``.

Private to the collection. The file format is in ``_dbenv_file``, what is shown of it in
``_dbenv_mask`` and the option checks in ``_dbenv_validate``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import os
import pwd
import stat

from ansible_collections.wabiz.cluster.plugins.module_utils import _dbcheck, _dbconnect, _files
from ansible_collections.wabiz.cluster.plugins.module_utils._dbenv_file import changed_keys, managed, parse, render
from ansible_collections.wabiz.cluster.plugins.module_utils._dbenv_mask import masked, masked_text
from ansible_collections.wabiz.cluster.plugins.module_utils._dbenv_validate import DbEnvError, validate_params


def check_path(path):
    """A sentence saying why ``path`` cannot be the db.env file (a symbolic link, a directory), or None."""
    if os.path.islink(path):
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return ("path: %s is a symbolic link (to %s); db_env does not follow links, so that the password "
                "cannot end up in another file than the one named, nor the link be replaced. Give the path of "
                "the file itself, or remove the link first." % (path, target))
    if os.path.isdir(path):
        return "path: %s is a directory; give the path of the db.env file." % path
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode):
        return "path: %s exists and is not a regular file; give the path of the db.env file." % path
    return None


def _fail(module, msg, **kw):
    module.fail_json(msg=msg, **kw)


def run_db_env(module):
    """Body of wabiz.cluster.db_env: returns the result dict (fails through ``module``)."""
    p = module.params
    path = p["path"]
    result = {"changed": False, "path": path, "changed_keys": [], "variables": {}}
    problem = check_path(path)
    if problem:
        _fail(module, problem, **result)
    # In check mode a missing directory is what an earlier (also unrun) task would create: report
    # the file as to be written instead of failing a dry run on a fresh host.
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))) and not module.check_mode:
        _fail(module, "path: the directory of %s does not exist; create it first (ansible.builtin.file "
                      "state=directory)." % path, **result)

    desired = mode = None
    if p["state"] == "present":
        try:
            desired, mode = validate_params(p)
        except DbEnvError as exc:
            _fail(module, str(exc), **result)
        for option, lookup in (("owner", pwd.getpwnam), ("group", grp.getgrnam)):
            value = p[option]
            if value is not None and not value.isdigit():
                try:
                    lookup(value)
                except KeyError:
                    _fail(module, "%s: %r does not exist on this host; give an existing user or group name, or a "
                                  "numeric id." % (option, value), **result)

    try:
        current_text = _files.read_text(path)
    except (IOError, OSError, UnicodeError) as exc:
        _fail(module, "cannot read %s: %s" % (path, exc), **result)
    current = managed(parse(current_text))

    if p["state"] == "absent":
        result["variables"] = masked(current)
        if current_text is None:
            return result
        result["changed"] = True
        result["changed_keys"] = sorted(current)
        if module._diff:
            result["diff"] = {"before": masked_text(current_text), "after": "",
                              "before_header": path, "after_header": path}
        if not module.check_mode:
            os.unlink(path)
        return result

    missing = _dbconnect.missing_library(p["engine"]) if p["validate_connection"] else None
    if missing and module.check_mode:
        # A dry run on a fresh host: the driver is what an earlier (also unrun) task would install,
        # so the login cannot be tried yet; say so instead of failing the whole dry run.
        result["connection"] = {"checked": False, "reason": "%s is not installed yet" % missing[0]}
        module.warn("db_env: the database login was not checked in check mode: %s is not installed on "
                    "this host yet (the node role installs it on a real run)." % missing[0])
    elif p["validate_connection"]:
        if missing:
            from ansible.module_utils.basic import missing_required_lib
            _fail(module, missing_required_lib(missing[0], reason="for validate_connection"),
                  exception=missing[1], **result)
        port = int(desired["WA_DB_PORT"])
        try:
            result["connection"] = _dbcheck.validate_connection(
                p["engine"], p["hostname"], port, p["username"], p["password"], p["name_prefix"],
                p["connect_timeout"])
        except _dbcheck.DbCheckError as exc:
            if exc.details:
                result["connection"] = exc.details
            _fail(module, exc.msg, failure_kind=exc.kind, **result)

    content = render(desired)
    result["variables"] = masked(desired)
    result["changed_keys"] = changed_keys(current, desired)
    content_changed = content != current_text
    if module._diff and content_changed:
        result["diff"] = {"before": masked_text(current_text, desired),
                          "after": masked_text(content, current),
                          "before_header": path, "after_header": path}
    if content_changed and not module.check_mode:
        try:
            _files.write_atomic(module, path, content, mode=mode, follow=False)
        except (IOError, OSError) as exc:
            _fail(module, "cannot write %s: %s" % (path, exc), **result)
    file_args = {"path": path, "owner": p["owner"], "group": p["group"], "mode": mode,
                 "attributes": None, "secontext": [None, None, None]}
    if current_text is None and module.check_mode:
        attrs_changed = False  # the file does not exist yet: nothing to compare
    else:
        attrs_changed = module.set_fs_attributes_if_different(file_args, False)
    result["changed"] = content_changed or attrs_changed
    return result
