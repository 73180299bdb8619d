# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""compose_stack's hash memo: the config hash compose will label a service's containers with.

compose v2 labels a container with a config hash that differs from what ``config --hash``
prints when the service has an env_file, so the two cannot be compared directly. After each
apply the module notes, per service, the CLI's hash and the label compose gave the container;
a later run (check mode included) translates an unchanged CLI hash back to that label.

Private to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os

MEMO_NAME = ".compose_stack-%s.json"


def memo_path(project_src, project):
    return os.path.join(project_src, MEMO_NAME % project)


def read_memo(path):
    """``{service: {"cli": hash, "label": hash}}`` from an earlier apply, or {}."""
    try:
        with open(path) as fh:
            memo = json.load(fh)
    except (IOError, OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def translate_hashes(hashes, memo):
    """The config hash compose will label each service with, as far as the memo knows it."""
    out = dict(hashes)
    for svc, cli_hash in hashes.items():
        noted = memo.get(svc) or {}
        if noted.get("cli") == cli_hash and noted.get("label"):
            out[svc] = noted["label"]
    return out


def memo_after_apply(hashes, snapshot, memo):
    """The memo to keep after an apply: for each service, its CLI hash and the label now on its
    containers (when they all carry the same one)."""
    new = dict(memo)
    for svc, cli_hash in hashes.items():
        labels = set(rec["config_hash"] for rec in snapshot["containers"].values()
                     if rec["service"] == svc and rec["config_hash"])
        if len(labels) == 1:
            new[svc] = {"cli": cli_hash, "label": labels.pop()}
        else:
            new.pop(svc, None)
    return new


def write_memo(module, path, memo):
    """Keep the memo next to the compose files (atomically, 0600); an empty memo removes it."""
    if not memo:
        if os.path.exists(path):
            os.unlink(path)
        return
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(memo, fh, sort_keys=True)
    module.atomic_move(tmp, path)
