# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Waiting for a compose project's containers to come up after ``up``.

Private to the collection. Reaches Docker only through the ``DockerState`` it is given
(``snapshot``, ``inspect``, ``log_tail``), so that tests can give it a fake one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible_collections.wabiz.cluster.plugins.module_utils._compose_cli import ComposeError


def not_ready(inspected):
    """Why a container is not up yet (None when it runs and, if it has a healthcheck, is healthy),
    and whether it can still come up."""
    state = inspected.get("State") or {}
    status = state.get("Status")
    health = (state.get("Health") or {}).get("Status")
    policy = ((inspected.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
    if status == "running":
        if health in (None, "healthy"):
            return None, True
        return "is %s" % ("unhealthy" if health == "unhealthy" else "not healthy yet (%s)" % health), True
    if status in ("exited", "dead") and policy in ("no", ""):
        return "exited with code %s and has no restart policy" % state.get("ExitCode"), False
    return "is %s (exit code %s)" % (status, state.get("ExitCode")), True


def wait_until_up(docker_state, project, scope, timeout, sleep=time.sleep, clock=time.time, settle=2):
    """Wait until every container of ``scope`` runs (and is healthy where it has a healthcheck),
    and has kept doing so for ``settle`` seconds: a process that dies just after its start is
    seen running at first.

    Raises ComposeError naming the first container that did not come up, with its log tail.
    """
    deadline = clock() + timeout
    ready_since = None
    while True:
        snap = docker_state.snapshot(project)
        pending = []
        for rec in sorted(snap["containers"].values(), key=lambda r: r["name"]):
            if rec["service"] not in scope:
                continue
            why, can_recover = not_ready(docker_state.inspect(rec["id"]))
            if why:
                pending.append((rec, why, can_recover))
        missing = sorted(set(scope) - set(r["service"] for r in snap["containers"].values()))
        hopeless = [p for p in pending if not p[2]]
        if not pending and not missing:
            ready_since = clock() if ready_since is None else ready_since
            if clock() - ready_since >= settle:
                return snap
        else:
            ready_since = None
        if hopeless or clock() >= deadline:
            if missing and not pending:
                raise ComposeError("no container of service(s) %s appeared within %ss" % (", ".join(missing), timeout))
            rec, why = (hopeless or pending)[0][:2]
            tail = docker_state.log_tail(rec["id"])
            raise ComposeError(
                "container %s (service %s) %s%s. Last log lines:\n%s"
                % (rec["name"], rec["service"], why, "" if hopeless else " after %ss" % timeout, tail or "(empty)"),
                container=rec["name"], log_tail=tail)
        sleep(1)
