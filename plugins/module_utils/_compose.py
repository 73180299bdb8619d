# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The body of wabiz.cluster.compose_stack: its options, and one run of it as named steps.

Private to the collection. A run checks the options, reads the project (files, name, compose
CLI, configuration) and what Docker holds, plans, then either reports the plan (check mode) or
applies it and reports what Docker shows changed. Each concern has its own file:
``_compose_cli`` (finding and running the compose CLI, reading its output), ``_compose_state``
(Docker's state and what changed in it), ``_compose_plan`` (what a run would do),
``_compose_memo`` (the config hash memo) and ``_compose_wait`` (waiting for the containers).
Their public names are importable from here as well.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.wabiz.cluster.plugins.module_utils._compose_cli import (
    ComposeError,
    ComposeRunner,
    cli_kind,
    detect_cli,
    normalize_project_name,
    parse_config,
    parse_hashes,
    parse_version,
)
from ansible_collections.wabiz.cluster.plugins.module_utils._compose_memo import (
    memo_after_apply,
    memo_path,
    read_memo,
    translate_hashes,
    write_memo,
)
from ansible_collections.wabiz.cluster.plugins.module_utils._compose_plan import (
    Plan,
    always_pulls,
    plan,
    predicted_text,
    service_scope,
)
from ansible_collections.wabiz.cluster.plugins.module_utils._compose_state import (
    DOCKER_IMP_ERR,
    HAS_DOCKER,
    DockerException,
    DockerState,
    api_timeout,
    bad_address_message,
    compare,
    container_record,
    docker_host_problem,
    public_containers,
    summary_text,
)
from ansible_collections.wabiz.cluster.plugins.module_utils._compose_wait import not_ready, wait_until_up

__all__ = [
    "NUMBER_OPTIONS", "STATES", "ComposeError", "DockerState", "Plan", "api_timeout", "cli_kind", "compare",
    "compose_argument_spec", "container_record", "detect_cli", "docker_host_problem", "memo_after_apply", "memo_path",
    "normalize_project_name", "not_ready",
    "parse_config", "parse_hashes", "parse_version", "plan", "predicted_text", "public_containers", "read_memo",
    "run_compose_stack", "service_scope", "summary_text", "translate_hashes", "validate_params", "wait_until_up",
    "write_memo",
]

STATES = ("present", "absent", "stopped", "restarted")
# The states that bring containers up: only they compare configurations and images.
UP_STATES = ("present", "restarted")


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
    why = docker_host_problem(p.get("docker_host"))
    if why:
        raise ComposeError(bad_address_message("docker_host", p["docker_host"], why))


def run_compose_stack(module):
    """Body of wabiz.cluster.compose_stack."""
    run = _StackRun(module)
    run.check_options()
    if run.files_not_written_yet():
        return run.result
    run.require_sdk()
    run.read_project()
    run.find_cli()
    run.read_docker()
    run.read_configuration()
    run.read_images()
    stack_plan = run.make_plan()
    if module.check_mode:
        return run.planned_result(stack_plan)
    run.apply(stack_plan)
    return run.applied_result()


class _StackRun:
    """One run of the module. Each step reads or does one thing and keeps what the later ones
    need; a step that cannot go on fails the module with what ``result`` holds by then."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.brings_up = self.p["state"] in UP_STATES
        self.result = {"changed": False, "actions": [], "containers": [], "commands": []}
        self.src = src = self.p["project_src"]
        self.files = [f if os.path.isabs(f) else os.path.join(src, f) for f in self.p["files"] or []]
        self.project = self.cli = self.runner = None
        self.docker_state = self.before = None
        self.config = self.scope = None
        self.cli_hashes = self.hashes = self.image_ids = None
        self.memo_file = self.memo = None

    def fail(self, msg, **details):
        self.module.fail_json(msg=msg, **dict(self.result, **details))

    def check_options(self):
        """What needs no Docker, before anything is read or run."""
        try:
            validate_params(self.p)
        except ComposeError as exc:
            self.fail(exc.msg)

    def require_sdk(self):
        """The Docker SDK, which every later step uses (a dry run on a fresh host, where an earlier
        task would install it, has ended before this: see files_not_written_yet)."""
        if not HAS_DOCKER:
            from ansible.module_utils.basic import missing_required_lib
            self.module.fail_json(msg=missing_required_lib("docker (the Docker SDK for Python)"),
                                  exception=DOCKER_IMP_ERR)

    def files_not_written_yet(self):
        """A dry run on a fresh host: the earlier tasks that write the project's files did not run.
        The stack would be started, but what exactly it would do cannot be read without the
        files, so the result says just that (True when that is the case)."""
        missing = ([self.src] if not os.path.isdir(self.src) else []) + [f for f in self.files if not os.path.isfile(f)]
        if not (missing and self.module.check_mode and self.brings_up):
            return False
        self.module.warn("check mode: %s does not exist yet (an earlier task writes it); the stack is "
                         "reported as to be started without a plan." % ", ".join(missing))
        self.result.update(changed=True, actions=[], files_missing=missing)
        return True

    def read_project(self):
        """The project directory, its compose files and the project name."""
        if not os.path.isdir(self.src):
            self.fail("project_src: %s is not a directory." % self.src)
        for full in self.files:
            if not os.path.isfile(full):
                self.fail("files: %s does not exist." % full)
        project = self.p["project_name"] or normalize_project_name(os.path.basename(os.path.abspath(self.src)))
        if not project or normalize_project_name(project) != project:
            self.fail("project_name: %r is not a valid compose project name (lower-case letters, digits, "
                      "'-' and '_', starting with a letter or digit)." % project)
        self.project = project
        self.result["project_name"] = project

    def find_cli(self):
        """The compose CLI, and a runner of it for this project."""
        docker_host = self.p["docker_host"]

        def run_plain(argv):
            return self.module.run_command(argv, environ_update={"DOCKER_HOST": docker_host} if docker_host else None)

        try:
            self.cli = detect_cli(run_plain, self.module.get_bin_path, self.p["cli"])
        except ComposeError as exc:
            self.fail(exc.msg)
        self.result["cli"] = self.cli
        env = dict(self.p["env"])
        if docker_host:
            env["DOCKER_HOST"] = docker_host
        self.runner = ComposeRunner(self.module, self.cli, self.src, self.project, self.files, env)

    def read_docker(self):
        """What Docker holds for the project before the run. Each Docker API call waits at most
        ``api_timeout(wait_timeout)`` seconds for the engine."""
        try:
            self.docker_state = DockerState(self.p["docker_host"], timeout=api_timeout(self.p["wait_timeout"]))
            self.before = self.docker_state.snapshot(self.project)
        except ComposeError as exc:
            self.fail(exc.msg)
        except DockerException as exc:
            self.fail("cannot read Docker state (is the engine running and reachable?): %s" % exc)

    def read_configuration(self):
        """The services, the ones this run touches, and the config hashes compose will label them
        with (as far as the memo of earlier applies knows them)."""
        fmt = "json" if self.cli["kind"] == "v2" else "yaml"
        config_args = ["config", "--format", "json"] if fmt == "json" else ["config"]
        try:
            if self.brings_up:
                config_out, hash_out = self.runner.read_only_pair(config_args, ["config", "--hash", "*"])
                self.cli_hashes = parse_hashes(hash_out)
            else:  # stop and remove do not compare configurations
                config_out, self.cli_hashes = self.runner(config_args, record=False), {}
            self.config = parse_config(config_out, fmt)
            self.scope = service_scope(self.config, self.p["services"], self.p["dependencies"])
        except ComposeError as exc:
            self.fail(exc.msg)
        self.result["services"] = self.scope
        self.memo_file = memo_path(self.src, self.project)
        self.memo = read_memo(self.memo_file)
        self.hashes = translate_hashes(self.cli_hashes, self.memo)

    def read_images(self):
        """The local image id of each service's image (None: not on the host); with pull=never,
        an image that is not there fails the run before anything changes."""
        self.image_ids = {}
        if not self.brings_up:
            return
        try:
            for svc in self.scope:
                image = self.config[svc]["image"]
                self.image_ids[svc] = self.docker_state.image_id(image) if image else None
        except ComposeError as exc:
            self.fail(exc.msg)
        absent = sorted(set(self.config[s]["image"] for s in self.scope
                            if self.config[s]["image"] and self.image_ids[s] is None))
        if absent and self.p["pull"] == "never":
            self.fail("pull=never but these images are not on the host: %s (load them, or use "
                      "pull=missing)." % ", ".join(absent))

    def make_plan(self):
        """What the run would do. Stop and remove act on the named services only (or all of them),
        not on what those depend on."""
        p = self.p
        scope = self.scope if self.brings_up else sorted(p["services"]) or self.scope
        actions = plan(p["state"], self.before, self.config, self.hashes, self.image_ids, scope, p["remove_volumes"],
                       p["remove_orphans"], all_services=not p["services"])
        uncertain = always_pulls(actions, self.config, self.scope) if self.brings_up and p["pull"] == "always" else []
        return Plan(actions, uncertain)

    def planned_result(self, stack_plan):
        """Check mode: the plan, and the containers as they are."""
        actions = stack_plan.reported
        self.result.update(actions=actions, changed=stack_plan.changed, containers=public_containers(self.before))
        if self.module._diff:
            self.result["diff"] = {"before": summary_text(self.before), "after": predicted_text(self.before, actions)}
        return self.result

    def apply(self, stack_plan):
        """Run the compose commands (and wait for the containers); a failure reports what changed
        in Docker up to then, with the failed command's or container's details."""
        try:
            if self.brings_up:
                self._up(stack_plan)
            elif self.p["state"] == "stopped" and stack_plan.actions:
                self.runner(["stop"] + list(self.p["services"]))
            elif self.p["state"] == "absent" and stack_plan.actions:
                self._remove()
        except ComposeError as exc:
            details = dict((k, v) for k, v in exc.details.items() if k in ("rc", "stderr", "container", "log_tail"))
            try:
                self.changes_seen()
            except ComposeError as unseen:
                self.fail("%s (what changed in Docker is unknown: %s)" % (exc.msg, unseen.msg), **details)
            self.fail(exc.msg, **details)

    def _up(self, stack_plan):
        p, svc_args = self.p, list(self.p["services"])
        if self.cli["kind"] == "v1" and p["pull"] == "always":
            self.runner(["pull"] + svc_args)
        up = ["up", "-d", "--no-build"]
        if self.cli["kind"] == "v2":
            up += ["--pull", p["pull"]]
        if not p["dependencies"]:
            up.append("--no-deps")
        if p["remove_orphans"]:
            up.append("--remove-orphans")
        self.runner(up + svc_args)
        if p["state"] == "restarted" and stack_plan.includes("restart"):
            self.runner(["restart"] + svc_args)
        if p["wait"]:
            wait_until_up(self.docker_state, self.project, self.scope, p["wait_timeout"])

    def _remove(self):
        p, svc_args = self.p, list(self.p["services"])
        volumes = ["-v"] if p["remove_volumes"] else []
        if svc_args:
            self.runner(["rm", "-s", "-f"] + volumes + svc_args)
        else:
            self.runner(["down"] + volumes + (["--remove-orphans"] if p["remove_orphans"] else []))

    def changes_seen(self):
        """Fill ``result`` from Docker's state now: what changed since the run began. Returns that
        state. When Docker cannot be read, raises ComposeError with ``changed`` true if a compose
        command ran."""
        self.result["commands"] = self.runner.commands
        try:
            after = self.docker_state.snapshot(self.project)
        except ComposeError:
            self.result["changed"] = bool(self.runner.commands)
            raise
        self.result["actions"] = compare(self.before, after)
        self.result["changed"] = bool(self.result["actions"])
        self.result["containers"] = public_containers(after)
        return after

    def applied_result(self):
        """After a successful apply: the memo kept for the next run, and what changed."""
        try:
            after = self.changes_seen()
        except ComposeError as exc:
            self.fail("the compose commands succeeded, but what changed in Docker is unknown: %s" % exc.msg)
            raise  # not reached: fail_json exits
        removed_all = self.p["state"] == "absent" and not self.p["services"]
        new_memo = {} if removed_all else memo_after_apply(self.cli_hashes, after, self.memo)
        if new_memo != self.memo:
            write_memo(self.module, self.memo_file, new_memo)
        if self.module._diff:
            self.result["diff"] = {"before": summary_text(self.before), "after": summary_text(after)}
        return self.result
