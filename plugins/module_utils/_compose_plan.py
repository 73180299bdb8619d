# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a compose_stack run would do: the services it touches and the actions it would take.

Private to the collection. Pure functions over a Docker snapshot (see ``_compose_state``) and
the desired configuration, unit-tested without Docker.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.wabiz.cluster.plugins.module_utils._compose_cli import ComposeError
from ansible_collections.wabiz.cluster.plugins.module_utils._compose_state import make_action


def service_scope(config, wanted, dependencies=True):
    """The services a run touches: ``wanted`` (all when empty), plus what they depend on.

    Raises ComposeError naming services that the project does not define.
    """
    if not wanted:
        return sorted(config)
    unknown = sorted(set(wanted) - set(config))
    if unknown:
        raise ComposeError("services not defined in the compose project: %s (it defines: %s)"
                           % (", ".join(unknown), ", ".join(sorted(config)) or "nothing"))
    scope = set()
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name in scope:
            continue
        scope.add(name)
        if dependencies:
            todo.extend(d for d in config.get(name, {}).get("depends_on", []) if d in config)
    return sorted(scope)


def plan(state, snapshot, config, hashes, image_ids, scope, remove_volumes=False, remove_orphans=False,
         all_services=True):
    """The actions a run in ``state`` would take, from the Docker state and the desired config.

    ``hashes``: desired config hash per service; ``image_ids``: local image id per service's image
    (None when the image is not on the host). ``all_services``: no service subset was given.
    """
    actions = []
    by_service = {}
    for rec in snapshot["containers"].values():
        by_service.setdefault(rec["service"], []).append(rec)
    for recs in by_service.values():
        recs.sort(key=lambda r: r["name"])

    if state in ("present", "restarted"):
        for svc in scope:
            recs = by_service.get(svc, [])
            if image_ids.get(svc) is None and config.get(svc, {}).get("image"):
                actions.append(make_action("pull", svc, detail=config[svc]["image"]))
            if not recs:
                actions.append(make_action("create", svc))
                continue
            for rec in recs:
                reasons = []
                if hashes.get(svc) and rec["config_hash"] != hashes[svc]:
                    reasons.append("configuration changed")
                if image_ids.get(svc) and rec["image_id"] != image_ids[svc]:
                    reasons.append("image changed")
                if reasons:
                    actions.append(make_action("recreate", svc, rec["name"], ", ".join(reasons)))
                elif rec["state"] != "running":
                    actions.append(make_action("start", svc, rec["name"]))
                elif state == "restarted":
                    actions.append(make_action("restart", svc, rec["name"]))
        if remove_orphans:
            for svc in sorted(set(by_service) - set(config)):
                for rec in by_service[svc]:
                    actions.append(make_action("remove", svc, rec["name"], "orphan"))
    elif state == "stopped":
        for svc in scope:
            for rec in by_service.get(svc, []):
                if rec["state"] in ("running", "restarting", "paused"):
                    actions.append(make_action("stop", svc, rec["name"]))
    elif state == "absent":
        targets = scope if not all_services else sorted(by_service)
        for svc in targets:
            for rec in by_service.get(svc, []):
                actions.append(make_action("remove", svc, rec["name"]))
        if all_services:
            for net in snapshot["networks"]:
                actions.append(make_action("remove_network", detail=net))
            if remove_volumes:
                for vol in snapshot["volumes"]:
                    actions.append(make_action("remove_volume", detail=vol))
    return actions


def always_pulls(actions, config, scope):
    """The pulls that pull=always adds for images already on the host (``actions`` pulls the
    missing ones): each may or may not bring a newer image, which cannot be known beforehand."""
    pulled = set(a["service"] for a in actions if a["action"] == "pull")
    return [make_action("pull", s, detail="%s (always; may bring a newer image)" % config[s]["image"])
            for s in scope if config[s]["image"] and s not in pulled]


class Plan:
    """The outcome of planning a run.

    ``actions`` will happen. ``uncertain`` may or may not (the pulls of ``always_pulls``): they are
    reported, but alone they do not make a dry run ``changed``, since the apply that follows would
    report no change if the registry has nothing newer.
    """

    def __init__(self, actions, uncertain=()):
        self.actions = list(actions)
        self.uncertain = list(uncertain)

    @property
    def reported(self):
        """Every action, in the order the module reports them."""
        return self.actions + self.uncertain

    @property
    def changed(self):
        return bool(self.actions)

    def includes(self, action):
        return any(a["action"] == action for a in self.reported)


def predicted_text(snapshot, actions):
    """``summary_text`` of the state that ``actions`` would leave (check-mode diff)."""
    lines = []
    touched = {}
    for act in actions:
        if act.get("container"):
            touched[act["container"]] = act["action"]
    for name, rec in sorted(snapshot["containers"].items()):
        act = touched.get(name)
        if act == "remove":
            continue
        state = {"start": "running", "stop": "exited", "recreate": "running (recreated)",
                 "restart": "running (restarted)"}.get(act, rec["state"])
        lines.append("%s (service %s): %s, image %s\n" % (name, rec["service"], state, rec["image"]))
    for act in actions:
        if act["action"] == "create":
            lines.append("(new container) (service %s): running\n" % act["service"])
    removed = set(a.get("detail") for a in actions if a["action"] in ("remove_network", "remove_volume"))
    for key in ("networks", "volumes"):
        for name in snapshot[key]:
            if name not in removed:
                lines.append("%s %s\n" % (key[:-1], name))
    return "".join(lines)
