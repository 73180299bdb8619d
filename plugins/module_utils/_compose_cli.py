# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The compose CLI: which one the host has, running it for a project, reading what it prints.

Private to the collection. The parsers are pure functions, unit-tested over outputs captured
from compose v1.29.2 and v2.40.3.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re
import subprocess

from ansible_collections.wabiz.cluster.plugins.module_utils._detailed_error import DetailedError

try:
    import yaml

    HAS_YAML = True
except ImportError:
    HAS_YAML = False


class ComposeError(DetailedError):
    """What went wrong in a compose step, with the details the module reports (rc, stderr, ...)."""


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


class ComposeRunner:
    """Runs the compose CLI for one project: the same ``-p``, ``--project-directory``, ``-f`` and
    environment on every command, and a list of the commands that change something."""

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
            raise _failed(argv, rc, out, err)
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
                raise _failed(self.base + list(args), proc.returncode, out, err)
            outs.append(out)
        return outs


def _failed(argv, rc, out, err):
    return ComposeError("'%s' failed (rc=%s): %s" % (" ".join(argv), rc, (err or out).strip()),
                        rc=rc, stdout=out, stderr=err)
