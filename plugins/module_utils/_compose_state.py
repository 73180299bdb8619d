# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What Docker holds for a compose project, and what changed between two readings of it.

Private to the collection. ``DockerState`` reads containers, networks and volumes by the compose
project label through the Docker SDK (only API calls that docker-py 5.0 already has); a reading
is a snapshot ``{"containers": {name: record}, "networks": [...], "volumes": [...]}``. The rest
are pure functions over snapshots.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

try:
    import docker
    from docker.errors import DockerException, NotFound
    from docker.utils import kwargs_from_env

    HAS_DOCKER = True
    DOCKER_IMP_ERR = None
except ImportError:
    HAS_DOCKER = False
    DOCKER_IMP_ERR = traceback.format_exc()

    class DockerException(Exception):
        pass

    class NotFound(DockerException):
        pass

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_HASH = "com.docker.compose.config-hash"
LABEL_ONEOFF = "com.docker.compose.oneoff"


def make_action(action, service=None, container=None, detail=None):
    """One entry of the module's ``actions``: what happens (or would) to which service, container
    or network/volume (``detail``)."""
    out = {"action": action}
    if service is not None:
        out["service"] = service
    if container is not None:
        out["container"] = container
    if detail:
        out["detail"] = detail
    return out


def _ports(entries):
    out = []
    for p in entries or []:
        if p.get("PublicPort"):
            ip = p.get("IP") or "0.0.0.0"
            out.append("%s:%s->%s/%s" % (ip, p["PublicPort"], p["PrivatePort"], p.get("Type", "tcp")))
        else:
            out.append("%s/%s" % (p.get("PrivatePort"), p.get("Type", "tcp")))
    return sorted(set(out))


def container_record(summary, inspected):
    """What the module keeps about one container: from the list API entry and ``inspect``."""
    labels = summary.get("Labels") or {}
    state = inspected.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    return {
        "name": (summary.get("Names") or ["/?"])[0].lstrip("/"),
        "id": summary["Id"],
        "service": labels.get(LABEL_SERVICE),
        "state": state.get("Status") or summary.get("State"),
        "health": health,
        "image": (inspected.get("Config") or {}).get("Image") or summary.get("Image"),
        "image_id": summary.get("ImageID") or inspected.get("Image"),
        "config_hash": labels.get(LABEL_HASH),
        "started_at": state.get("StartedAt"),
        "restart_policy": ((inspected.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no",
        "ports": _ports(summary.get("Ports")),
    }


class DockerState:
    """Reads a compose project's containers, networks and volumes through the Docker SDK."""

    def __init__(self, docker_host=None, timeout=60):
        kwargs = kwargs_from_env()
        if docker_host:
            kwargs["base_url"] = docker_host
        self.api = docker.APIClient(version="auto", timeout=timeout, **kwargs)

    def snapshot(self, project):
        flt = {"label": ["%s=%s" % (LABEL_PROJECT, project)]}
        containers = {}
        for summary in self.api.containers(all=True, filters=flt):
            labels = summary.get("Labels") or {}
            if labels.get(LABEL_ONEOFF, "False") == "True":
                continue  # 'compose run' containers are not part of the stack
            try:
                inspected = self.api.inspect_container(summary["Id"])
            except NotFound:
                continue  # removed between list and inspect
            rec = container_record(summary, inspected)
            containers[rec["name"]] = rec
        networks = sorted(n["Name"] for n in self.api.networks(filters=flt))
        volumes = sorted(v["Name"] for v in (self.api.volumes(filters=flt).get("Volumes") or []))
        return {"containers": containers, "networks": networks, "volumes": volumes}

    def image_id(self, name):
        try:
            return self.api.inspect_image(name)["Id"]
        except NotFound:
            return None

    def inspect(self, container_id):
        return self.api.inspect_container(container_id)

    def log_tail(self, container_id, lines=20):
        try:
            data = self.api.logs(container_id, stdout=True, stderr=True, tail=lines)
        except DockerException as exc:
            return "(no log: %s)" % exc
        if isinstance(data, bytes):
            data = data.decode("utf-8", "replace")
        return data.rstrip()


def compare(before, after):
    """The actions that happened, read from two snapshots (the basis of ``changed``)."""
    actions = []
    b, a = before["containers"], after["containers"]
    for name in sorted(set(b) | set(a)):
        old, new = b.get(name), a.get(name)
        if old is None:
            actions.append(make_action("create", new["service"], name))
        elif new is None:
            actions.append(make_action("remove", old["service"], name))
        elif old["id"] != new["id"]:
            actions.append(make_action("recreate", new["service"], name))
        else:
            was_up = old["state"] == "running"
            is_up = new["state"] == "running"
            if not was_up and is_up:
                actions.append(make_action("start", new["service"], name))
            elif was_up and not is_up:
                actions.append(make_action("stop", new["service"], name))
            elif old["started_at"] != new["started_at"]:
                actions.append(make_action("restart", new["service"], name))
    for kind, key in (("network", "networks"), ("volume", "volumes")):
        for name in sorted(set(before[key]) - set(after[key])):
            actions.append(make_action("remove_" + kind, detail=name))
        for name in sorted(set(after[key]) - set(before[key])):
            actions.append(make_action("create_" + kind, detail=name))
    return actions


def public_containers(snapshot):
    keys = ("name", "service", "state", "health", "image", "image_id", "ports")
    return [dict((k, rec[k]) for k in keys) for rec in sorted(snapshot["containers"].values(), key=lambda r: r["name"])]


def summary_text(snapshot):
    """One line per container, for diff mode."""
    lines = []
    for name, rec in sorted(snapshot["containers"].items()):
        lines.append("%s (service %s): %s%s, image %s, config %s\n" % (
            name, rec["service"], rec["state"], " (%s)" % rec["health"] if rec["health"] else "",
            rec["image"], (rec["config_hash"] or "-")[:12]))
    for key in ("networks", "volumes"):
        for name in snapshot[key]:
            lines.append("%s %s\n" % (key[:-1], name))
    return "".join(lines)
