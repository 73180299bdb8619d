# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What Docker holds for a compose project, and what changed between two readings of it.

Private to the collection. ``DockerState`` reads containers, networks and volumes by the compose
project label through the Docker SDK (only API calls that docker-py 5.0 already has); a reading
is a snapshot ``{"containers": {name: record}, "networks": [...], "volumes": [...]}``. Every
Docker API call has a timeout (``api_timeout``), and an engine that cannot be reached, does not
answer in time or is given by an address that is none raises ComposeError saying so.
``docker_host_problem`` checks an address without Docker. The rest are pure functions over
snapshots.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import socket
import traceback

from ansible.module_utils.six.moves.urllib.parse import urlsplit
from ansible_collections.wabiz.cluster.plugins.module_utils._compose_cli import ComposeError

try:
    import docker
    from docker.errors import DockerException, NotFound
    from docker.utils import kwargs_from_env, parse_host
    from requests.exceptions import RequestException
    from requests.exceptions import Timeout as RequestTimeout

    HAS_DOCKER = True
    DOCKER_IMP_ERR = None
except ImportError:
    HAS_DOCKER = False
    DOCKER_IMP_ERR = traceback.format_exc()

    class DockerException(Exception):
        pass

    class NotFound(DockerException):
        pass

    class RequestException(Exception):
        pass

    class RequestTimeout(RequestException):
        pass

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_HASH = "com.docker.compose.config-hash"
LABEL_ONEOFF = "com.docker.compose.oneoff"

DEFAULT_ADDRESS = "unix:///var/run/docker.sock"
# Each Docker API call waits at most wait_timeout seconds for the engine, but at least API_TIMEOUT_MIN
# (a busy engine may take a few seconds to list containers) and at most API_TIMEOUT_MAX (the
# Docker SDK's own default).
API_TIMEOUT_MIN = 5
API_TIMEOUT_MAX = 60
ADDRESS_HINT = "give unix:///var/run/docker.sock, tcp://HOST:PORT or ssh://USER@HOST"


def api_timeout(wait_timeout):
    """Seconds each Docker API call may wait for the engine, from the module's ``wait_timeout``."""
    if wait_timeout is None:
        return API_TIMEOUT_MAX
    return min(API_TIMEOUT_MAX, max(API_TIMEOUT_MIN, int(wait_timeout)))


def _shown(address):
    """``address`` for a message, with a password in it (never valid) masked."""
    try:
        password = urlsplit(address).password
    except ValueError:
        return address
    return address.replace(":%s@" % password, ":***@", 1) if password else address


def bad_address_message(name, address, why):
    return "%s %r is not a Docker engine address (%s): %s" % (name, _shown(address), why, ADDRESS_HINT)


def docker_host_problem(address):
    """Why ``address`` is not a Docker engine address that both the Docker SDK and the docker CLI
    take (the module gives it to both), or None when it is one, or empty (the default). Needs no
    Docker."""
    if not address:
        return None
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in address):
        return "it holds white space or control characters"
    if "://" not in address:  # HOST:PORT, as the docker CLI reads it
        address = "tcp://" + address
    scheme = address.split("://", 1)[0]
    try:
        parts = urlsplit(address)
        port = parts.port if scheme in ("tcp", "ssh") else None
    except ValueError as exc:
        return str(exc)
    if scheme in ("http", "https"):
        return "the docker CLI does not take %s://; use tcp://HOST:PORT, with DOCKER_TLS_VERIFY for TLS" % scheme
    if scheme == "npipe":
        return "npipe:// is a Windows named pipe; this module runs on POSIX hosts"
    if scheme not in ("unix", "tcp", "ssh"):
        return "unknown scheme %r; an engine listens on unix://, tcp:// or ssh://" % scheme
    if parts.query or parts.fragment or ";" in parts.path:
        return "it has a query, parameters or a fragment"
    if parts.password is not None:
        return "it holds a password, which the engine does not take"
    if scheme == "tcp" and not parts.netloc:
        return "no host and port"
    if scheme == "tcp" and port is None:
        return "no port; the engine's TCP port is usually 2375, or 2376 with TLS"
    if scheme in ("tcp", "ssh") and port == 0:
        return "port 0 is no TCP port"
    if scheme == "ssh" and not parts.hostname:
        return "no host"
    if scheme == "ssh" and parts.path:
        return "ssh:// takes no path"
    return None


def _timed_out(exc):
    """Whether ``exc`` (or what caused it) is a timeout of the connection to the engine."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (RequestTimeout, socket.timeout)):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


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
    """Reads a compose project's containers, networks and volumes through the Docker SDK.

    ``timeout``: seconds each API call waits for the engine (see ``api_timeout``). Trouble with
    the engine (its address, reaching it, an answer in time, an error from it other than
    NotFound) raises ComposeError."""

    def __init__(self, docker_host=None, timeout=60):
        self.timeout = timeout
        name, address = ("docker_host", docker_host) if docker_host else ("DOCKER_HOST", os.environ.get("DOCKER_HOST"))
        self.address = address or DEFAULT_ADDRESS
        try:
            kwargs = kwargs_from_env()
        except (DockerException, ValueError) as exc:
            raise ComposeError(
                "cannot use the Docker TLS settings (DOCKER_TLS_VERIFY, DOCKER_CERT_PATH): %s" % exc) from exc
        if docker_host:  # HOST:PORT is tcp://HOST:PORT, as the docker CLI reads it
            kwargs["base_url"] = docker_host if "://" in docker_host else "tcp://" + docker_host
        if address:
            try:
                parse_host(kwargs["base_url"], False, tls=bool(kwargs.get("tls")))
            except (DockerException, ValueError) as exc:
                raise ComposeError(bad_address_message(name, address, exc)) from exc
        try:
            self.api = docker.APIClient(version="auto", timeout=timeout, **kwargs)
        except ValueError as exc:
            raise ComposeError(bad_address_message(name, self.address, exc)) from exc
        except (DockerException, RequestException) as exc:
            raise self._engine_error(exc) from exc

    def _engine_error(self, exc):
        if _timed_out(exc):
            return ComposeError(
                "the Docker engine at %s did not answer within %s s: check that docker_host (or DOCKER_HOST) names "
                "a running Docker engine, or raise wait_timeout if it is only slow (each Docker API call waits "
                "wait_timeout seconds, at least %s and at most %s)." % (_shown(self.address), self.timeout,
                                                                        API_TIMEOUT_MIN, API_TIMEOUT_MAX))
        return ComposeError("cannot read Docker state (is the engine at %s running and reachable?): %s"
                            % (_shown(self.address), exc))

    def _call(self, method, *args, **kwargs):
        """``self.api.METHOD(...)``, with NotFound passed on and other trouble as ComposeError."""
        try:
            return getattr(self.api, method)(*args, **kwargs)
        except NotFound:
            raise
        except (DockerException, RequestException) as exc:
            raise self._engine_error(exc) from exc

    def snapshot(self, project):
        flt = {"label": ["%s=%s" % (LABEL_PROJECT, project)]}
        containers = {}
        for summary in self._call("containers", all=True, filters=flt):
            labels = summary.get("Labels") or {}
            if labels.get(LABEL_ONEOFF, "False") == "True":
                continue  # 'compose run' containers are not part of the stack
            try:
                inspected = self._call("inspect_container", summary["Id"])
            except NotFound:
                continue  # removed between list and inspect
            rec = container_record(summary, inspected)
            containers[rec["name"]] = rec
        networks = sorted(n["Name"] for n in self._call("networks", filters=flt))
        volumes = sorted(v["Name"] for v in (self._call("volumes", filters=flt).get("Volumes") or []))
        return {"containers": containers, "networks": networks, "volumes": volumes}

    def image_id(self, name):
        try:
            return self._call("inspect_image", name)["Id"]
        except NotFound:
            return None

    def inspect(self, container_id):
        return self._call("inspect_container", container_id)

    def log_tail(self, container_id, lines=20):
        try:
            data = self.api.logs(container_id, stdout=True, stderr=True, tail=lines)
        except (DockerException, RequestException) as exc:
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
