# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A compose project on one host: which compose CLI, what Docker holds, what a run would do.

Private to the collection. The parsers, the plan and the comparison of Docker state are pure
functions (unit-tested over outputs captured from compose v1.29.2 and v2.40.3); ``DockerState``
reads containers, networks and volumes by the compose project label through the Docker SDK
(only API calls that docker-py 5.0 already has); ``run_compose_stack`` is the module's body.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess
import time
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

try:
    import yaml

    HAS_YAML = True
except ImportError:
    HAS_YAML = False

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_HASH = "com.docker.compose.config-hash"
LABEL_ONEOFF = "com.docker.compose.oneoff"

STATES = ("present", "absent", "stopped", "restarted")


class ComposeError(Exception):
    def __init__(self, msg, **details):
        super(ComposeError, self).__init__(msg)
        self.msg = msg
        self.details = details


# --- the compose CLI ----------------------------------------------------------------------

_VERSION_RE = re.compile(r"v?(\d+)\.(\d+)\.(\d+)")


def parse_version(text):
    """The first ``X.Y.Z`` in the output of ``compose version`` (long or ``--short``), or None.

    v2: ``Docker Compose version v2.40.3`` / ``2.40.3``;
    v1: ``docker-compose version 1.29.2, build unknown`` / ``1.29.2``.
    """
    m = _VERSION_RE.search(text or "")
    return "%s.%s.%s" % m.groups() if m else None


def cli_kind(version):
    """``v1`` for docker-compose 1.x, ``v2`` for 2.x and later."""
    return "v1" if version and version.split(".")[0] == "1" else "v2"


def normalize_project_name(name):
    """The project name compose v2 would derive from a directory name (lower case, only
    ``a-z0-9_-``, starting with a letter or digit). Both CLIs are then given it with ``-p``."""
    name = re.sub(r"[^a-z0-9_-]", "", name.lower())
    return re.sub(r"^[^a-z0-9]+", "", name)


def detect_cli(run, which, preference="auto"):
    """Find the compose CLI.

    ``run(argv) -> (rc, stdout, stderr)``; ``which(name) -> path or None``. ``preference``:
    ``auto`` (the v2 plugin ``docker compose`` when it answers, else ``docker-compose``), ``v2``
    or ``v1``. Returns ``{"kind", "version", "argv"}``; raises ComposeError saying what is missing.
    """
    tried = []
    docker_bin = which("docker")
    if preference in ("auto", "v2") and docker_bin:
        rc, out, err = run([docker_bin, "compose", "version", "--short"])
        version = parse_version(out) if rc == 0 else None
        if version and cli_kind(version) == "v2":
            return {"kind": "v2", "version": version, "argv": [docker_bin, "compose"]}
        tried.append("'docker compose' (plugin): %s" % ((err or out).strip() or "rc=%s" % rc))
    elif preference in ("auto", "v2"):
        tried.append("'docker compose' (plugin): no docker CLI in PATH")
    standalone = which("docker-compose")
    if standalone:
        rc, out, err = run([standalone, "version", "--short"])
        version = parse_version(out) if rc == 0 else None
        if version:
            kind = cli_kind(version)
            if preference == "auto" or preference == kind:
                return {"kind": kind, "version": version, "argv": [standalone]}
            tried.append("%s is compose %s (%s), not %s" % (standalone, version, kind, preference))
        else:
            tried.append("%s version: %s" % (standalone, (err or out).strip() or "rc=%s" % rc))
    else:
        tried.append("no docker-compose in PATH")
    raise ComposeError("no usable compose %s found: %s"
                       % ("CLI" if preference == "auto" else preference, "; ".join(tried)))


def parse_hashes(text):
    """``{service: hash}`` from ``config --hash '*'`` (both versions print ``SERVICE HASH`` lines)."""
    hashes = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and re.match(r"^[0-9a-f]{64}$", parts[1]):
            hashes[parts[0]] = parts[1]
    return hashes


# compose v2 labels a container with a config hash that differs from what `config --hash`
# prints when the service has an env_file, so the two cannot be compared directly. After each
# apply the module notes, per service, the CLI's hash and the label compose gave the container;
# a later run (check mode included) translates an unchanged CLI hash back to that label.
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


def parse_config(text, fmt):
    """``{service: {"image", "depends_on", "healthcheck", "build"}}`` from ``config`` output:
    JSON (``--format json``, v2) or YAML (v1). Raises ComposeError on unreadable output."""
    try:
        if fmt == "json":
            data = json.loads(text)
        else:
            if not HAS_YAML:
                raise ComposeError("PyYAML is needed to read compose v1's 'config' output")
            data = yaml.safe_load(text)
    except ValueError as exc:
        raise ComposeError("cannot read the compose configuration: %s" % exc) from exc
    except Exception as exc:  # yaml.YAMLError and friends
        if isinstance(exc, ComposeError):
            raise
        raise ComposeError("cannot read the compose configuration: %s" % exc) from exc
    services = {}
    for name, svc in ((data or {}).get("services") or {}).items():
        svc = svc or {}
        deps = svc.get("depends_on") or []
        if isinstance(deps, dict):
            deps = sorted(deps)
        hc = svc.get("healthcheck")
        services[name] = {
            "image": svc.get("image"),
            "depends_on": list(deps),
            "healthcheck": bool(hc) and not hc.get("disable", False),
            "build": "build" in svc,
        }
    return services


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


# --- Docker state --------------------------------------------------------------------------

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


# --- plan and comparison -------------------------------------------------------------------

def _action(action, service=None, container=None, detail=None):
    out = {"action": action}
    if service is not None:
        out["service"] = service
    if container is not None:
        out["container"] = container
    if detail:
        out["detail"] = detail
    return out


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
                actions.append(_action("pull", svc, detail=config[svc]["image"]))
            if not recs:
                actions.append(_action("create", svc))
                continue
            for rec in recs:
                reasons = []
                if hashes.get(svc) and rec["config_hash"] != hashes[svc]:
                    reasons.append("configuration changed")
                if image_ids.get(svc) and rec["image_id"] != image_ids[svc]:
                    reasons.append("image changed")
                if reasons:
                    actions.append(_action("recreate", svc, rec["name"], ", ".join(reasons)))
                elif rec["state"] != "running":
                    actions.append(_action("start", svc, rec["name"]))
                elif state == "restarted":
                    actions.append(_action("restart", svc, rec["name"]))
        if remove_orphans:
            for svc in sorted(set(by_service) - set(config)):
                for rec in by_service[svc]:
                    actions.append(_action("remove", svc, rec["name"], "orphan"))
    elif state == "stopped":
        for svc in scope:
            for rec in by_service.get(svc, []):
                if rec["state"] in ("running", "restarting", "paused"):
                    actions.append(_action("stop", svc, rec["name"]))
    elif state == "absent":
        targets = scope if not all_services else sorted(by_service)
        for svc in targets:
            for rec in by_service.get(svc, []):
                actions.append(_action("remove", svc, rec["name"]))
        if all_services:
            for net in snapshot["networks"]:
                actions.append(_action("remove_network", detail=net))
            if remove_volumes:
                for vol in snapshot["volumes"]:
                    actions.append(_action("remove_volume", detail=vol))
    return actions


def compare(before, after):
    """The actions that happened, read from two snapshots (the basis of ``changed``)."""
    actions = []
    b, a = before["containers"], after["containers"]
    for name in sorted(set(b) | set(a)):
        old, new = b.get(name), a.get(name)
        if old is None:
            actions.append(_action("create", new["service"], name))
        elif new is None:
            actions.append(_action("remove", old["service"], name))
        elif old["id"] != new["id"]:
            actions.append(_action("recreate", new["service"], name))
        else:
            was_up = old["state"] == "running"
            is_up = new["state"] == "running"
            if not was_up and is_up:
                actions.append(_action("start", new["service"], name))
            elif was_up and not is_up:
                actions.append(_action("stop", new["service"], name))
            elif old["started_at"] != new["started_at"]:
                actions.append(_action("restart", new["service"], name))
    for kind, key in (("network", "networks"), ("volume", "volumes")):
        for name in sorted(set(before[key]) - set(after[key])):
            actions.append(_action("remove_" + kind, detail=name))
        for name in sorted(set(after[key]) - set(before[key])):
            actions.append(_action("create_" + kind, detail=name))
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


# --- waiting -------------------------------------------------------------------------------

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


# --- the module's body ---------------------------------------------------------------------

def compose_argument_spec():
    return dict(
        project_src=dict(type="path", required=True),
        files=dict(type="list", elements="path"),
        project_name=dict(type="str"),
        state=dict(type="str", default="present", choices=list(STATES)),
        env=dict(type="dict", default={}),
        services=dict(type="list", elements="str", default=[]),
        dependencies=dict(type="bool", default=True),
        remove_volumes=dict(type="bool", default=False),
        remove_orphans=dict(type="bool", default=False),
        pull=dict(type="str", default="missing", choices=["always", "missing", "never"]),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=120),
        cli=dict(type="str", default="auto", choices=["auto", "v2", "v1"]),
        docker_host=dict(type="str"),
    )


# Numeric options and their smallest value, checked in validate_params.
NUMBER_OPTIONS = {"wait_timeout": (1, "seconds to wait for the containers (default 120)")}


def validate_params(p):
    """The option checks that need no Docker, in one place, before anything is read or run:
    ComposeError naming the option, saying what is wrong and what to give instead."""
    for name, (minimum, what) in sorted(NUMBER_OPTIONS.items()):
        value = p.get(name)
        if value is not None and value < minimum:
            raise ComposeError("%s: %s is too small; it must be at least %s, the %s." % (name, value, minimum, what))


class _Runner:
    def __init__(self, module, cli, project_src, project, files, env):
        self.module = module
        self.cli = cli
        self.project_src = project_src
        # both versions accept --project-directory (v1 since 1.18)
        self.base = list(cli["argv"]) + ["-p", project, "--project-directory", project_src]
        for f in files or []:
            self.base += ["-f", f]
        self.env = dict((k, str(v)) for k, v in (env or {}).items())
        self.commands = []

    def __call__(self, args, record=True, check=True):
        argv = self.base + list(args)
        if record:
            self.commands.append(" ".join(argv))
        rc, out, err = self.module.run_command(argv, cwd=self.project_src, environ_update=self.env)
        if check and rc != 0:
            raise ComposeError("'%s' failed (rc=%s): %s" % (" ".join(argv), rc, (err or out).strip()),
                               rc=rc, stdout=out, stderr=err)
        return out

    def read_only_pair(self, first, second):
        """Run two read-only commands (``config`` and ``config --hash``) at the same time: each
        compose start costs about half a second (v1 is Python), and present/restarted need both."""
        env = dict(os.environ)
        env.update(self.env)
        env.update({"LC_ALL": "C", "LANG": "C"})
        procs = [subprocess.Popen(self.base + list(args), cwd=self.project_src, env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for args in (first, second)]
        outs = []
        for i, proc in enumerate(procs):
            args = (first, second)[i]
            out, err = proc.communicate()
            out = out.decode("utf-8", "replace")
            err = err.decode("utf-8", "replace")
            if proc.returncode != 0:
                for other in procs:
                    if other.poll() is None:
                        other.kill()
                        other.wait()
                cmd = " ".join(self.base + list(args))
                raise ComposeError("'%s' failed (rc=%s): %s" % (cmd, proc.returncode, (err or out).strip()),
                                   rc=proc.returncode, stdout=out, stderr=err)
            outs.append(out)
        return outs


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


def run_compose_stack(module):
    """Body of wabiz.cluster.compose_stack."""
    p = module.params
    result = {"changed": False, "actions": [], "containers": [], "commands": []}
    try:
        validate_params(p)
    except ComposeError as exc:
        module.fail_json(msg=exc.msg, **result)
    if not HAS_DOCKER:
        from ansible.module_utils.basic import missing_required_lib
        module.fail_json(msg=missing_required_lib("docker (the Docker SDK for Python)"), exception=DOCKER_IMP_ERR)
    src = p["project_src"]
    files = [f if os.path.isabs(f) else os.path.join(src, f) for f in p["files"] or []]
    missing = ([src] if not os.path.isdir(src) else []) + [f for f in files if not os.path.isfile(f)]
    if missing and module.check_mode and p["state"] in ("present", "restarted"):
        # A dry run on a fresh host: the earlier tasks that write these did not run. The stack
        # would be started, but what exactly it would do cannot be read without the files.
        module.warn("check mode: %s does not exist yet (an earlier task writes it); the stack is "
                    "reported as to be started without a plan." % ", ".join(missing))
        result.update(changed=True, actions=[_action("create", "*", detail="compose files not written yet")])
        return result
    if not os.path.isdir(src):
        module.fail_json(msg="project_src: %s is not a directory." % src, **result)
    for full in files:
        if not os.path.isfile(full):
            module.fail_json(msg="files: %s does not exist." % full, **result)
    project = p["project_name"] or normalize_project_name(os.path.basename(os.path.abspath(src)))
    if not project or normalize_project_name(project) != project:
        module.fail_json(msg="project_name: %r is not a valid compose project name (lower-case letters, digits, "
                             "'-' and '_', starting with a letter or digit)." % project, **result)
    result["project_name"] = project

    def run_plain(argv):
        return module.run_command(argv, environ_update={"DOCKER_HOST": p["docker_host"]} if p["docker_host"] else None)

    try:
        cli = detect_cli(run_plain, module.get_bin_path, p["cli"])
    except ComposeError as exc:
        module.fail_json(msg=exc.msg, **result)
    result["cli"] = cli
    env = dict(p["env"])
    if p["docker_host"]:
        env["DOCKER_HOST"] = p["docker_host"]
    runner = _Runner(module, cli, src, project, files, env)

    try:
        docker_state = DockerState(p["docker_host"])
        before = docker_state.snapshot(project)
    except DockerException as exc:
        module.fail_json(msg="cannot read Docker state (is the engine running and reachable?): %s" % exc, **result)

    try:
        fmt = "json" if cli["kind"] == "v2" else "yaml"
        config_args = ["config", "--format", "json"] if fmt == "json" else ["config"]
        if p["state"] in ("present", "restarted"):
            config_out, hash_out = runner.read_only_pair(config_args, ["config", "--hash", "*"])
            hashes = parse_hashes(hash_out)
        else:  # stop and remove do not compare configurations
            config_out, hashes = runner(config_args, record=False), {}
        config = parse_config(config_out, fmt)
        scope = service_scope(config, p["services"], p["dependencies"])
    except ComposeError as exc:
        module.fail_json(msg=exc.msg, **result)
    result["services"] = scope
    memo_file = memo_path(src, project)
    memo = read_memo(memo_file)
    cli_hashes = hashes
    hashes = translate_hashes(cli_hashes, memo)

    image_ids = {}
    if p["state"] in ("present", "restarted"):
        for svc in scope:
            image = config[svc]["image"]
            image_ids[svc] = docker_state.image_id(image) if image else None
        absent_images = sorted(set(config[s]["image"] for s in scope if config[s]["image"] and image_ids[s] is None))
        if absent_images and p["pull"] == "never":
            module.fail_json(msg="pull=never but these images are not on the host: %s (load them, or use "
                                 "pull=missing)." % ", ".join(absent_images), **result)

    plan_scope = scope if p["state"] in ("present", "restarted") else sorted(p["services"]) or scope
    actions = plan(p["state"], before, config, hashes, image_ids, plan_scope, p["remove_volumes"],
                   p["remove_orphans"], all_services=not p["services"])
    if p["pull"] == "always" and p["state"] in ("present", "restarted"):
        # a pull of an image that is on the host may or may not bring a new one: not predictable
        pulled = set(a["service"] for a in actions if a["action"] == "pull")
        actions += [_action("pull", s, detail="%s (always; may bring a newer image)" % config[s]["image"])
                    for s in scope if config[s]["image"] and s not in pulled]

    if module.check_mode:
        result["actions"] = actions
        result["changed"] = any(a["action"] != "pull" or "(always" not in a.get("detail", "") for a in actions)
        result["containers"] = public_containers(before)
        if module._diff:
            result["diff"] = {"before": summary_text(before), "after": predicted_text(before, actions)}
        return result

    svc_args = list(p["services"])
    try:
        if p["state"] in ("present", "restarted"):
            if cli["kind"] == "v1" and p["pull"] == "always":
                runner(["pull"] + svc_args)
            up = ["up", "-d", "--no-build"]
            if cli["kind"] == "v2":
                up += ["--pull", p["pull"]]
            if not p["dependencies"]:
                up.append("--no-deps")
            if p["remove_orphans"]:
                up.append("--remove-orphans")
            runner(up + svc_args)
            if p["state"] == "restarted" and any(a["action"] == "restart" for a in actions):
                runner(["restart"] + svc_args)
            if p["wait"]:
                wait_until_up(docker_state, project, scope, p["wait_timeout"])
        elif p["state"] == "stopped" and actions:
            runner(["stop"] + svc_args)
        elif p["state"] == "absent" and actions:
            if svc_args:
                runner(["rm", "-s", "-f"] + (["-v"] if p["remove_volumes"] else []) + svc_args)
            else:
                runner(["down"] + (["-v"] if p["remove_volumes"] else []) + (["--remove-orphans"] if p["remove_orphans"] else []))
    except ComposeError as exc:
        result["commands"] = runner.commands
        after = docker_state.snapshot(project)
        result["actions"] = compare(before, after)
        result["changed"] = bool(result["actions"])
        result["containers"] = public_containers(after)
        details = dict((k, v) for k, v in exc.details.items() if k in ("rc", "stderr", "container", "log_tail"))
        module.fail_json(msg=exc.msg, **dict(result, **details))

    after = docker_state.snapshot(project)
    new_memo = memo_after_apply(cli_hashes, after, memo) if p["state"] != "absent" or p["services"] else {}
    if new_memo != memo:
        write_memo(module, memo_file, new_memo)
    result["commands"] = runner.commands
    result["actions"] = compare(before, after)
    result["changed"] = bool(result["actions"])
    result["containers"] = public_containers(after)
    if module._diff:
        result["diff"] = {"before": summary_text(before), "after": summary_text(after)}
    return result
