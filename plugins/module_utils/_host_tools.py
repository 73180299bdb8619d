# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The host_tools module: find what a role uses on a host, install from apt only what is missing.

A tool counts as present when any of its probes succeeds (a command on PATH, an importable
Python module, an existing path, a command that exits 0) whatever installed it; a tool without
probes is present when dpkg says its packages are installed. Only the packages of absent tools
reach apt-get, in one run, so a host that has everything is never touched by apt.

Private to the collection (leading underscore): the API may change between releases.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import sys
import time

# sudo's secure_path and a login shell's PATH: tools in sbin count even when the module's own
# PATH lacks those directories.
SEARCH_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
APT_LISTS = "/var/lib/apt/lists"
APT_STAMP = "/var/lib/apt/periodic/update-success-stamp"
APT_ENV = {"DEBIAN_FRONTEND": "noninteractive", "LC_ALL": "C"}
PROBE_KINDS = ("command", "python", "path", "run")


def argument_spec():
    return dict(
        tools=dict(
            type="list",
            elements="dict",
            required=True,
            options=dict(
                package=dict(type="list", elements="str", required=True),
                command=dict(type="list", elements="str", default=[]),
                python=dict(type="list", elements="str", default=[]),
                path=dict(type="list", elements="path", default=[]),
                run=dict(type="list", elements="list", default=[]),
                deferred=dict(type="bool", default=False),
            ),
        ),
        install=dict(type="bool", default=True),
        cache_valid_time=dict(type="int", default=3600),
        lock_timeout=dict(type="int", default=120),
    )


class Prober(object):
    """The probes, one method a kind; ``run`` is the module's run_command."""

    def __init__(self, run):
        self._run = run

    def command(self, name):
        return shutil.which(name, path=os.environ.get("PATH", "") + ":" + SEARCH_PATH) is not None

    def python(self, name):
        rc, _out, _err = self._run([sys.executable, "-c", "import " + name])
        return rc == 0

    def path(self, name):
        return os.path.exists(name)

    def run(self, argv):
        argv = [str(a) for a in argv]
        if not argv or not self.command(argv[0]):
            return False
        rc, _out, _err = self._run(argv)
        return rc == 0

    def dpkg(self, package):
        rc, out, _err = self._run(["dpkg-query", "-W", "-f=${db:Status-Status}", package])
        return rc == 0 and out.strip() == "installed"


def describe(kind, value):
    return "%s %s" % (kind, " ".join(value) if isinstance(value, list) else value)


def find(tool, prober):
    """The probe that found ``tool`` (a short description), or None when it is absent."""
    for kind in PROBE_KINDS:
        for value in tool.get(kind) or []:
            if getattr(prober, kind)(value):
                return describe(kind, value)
    if not any(tool.get(kind) for kind in PROBE_KINDS):
        if all(prober.dpkg(p) for p in tool["package"]):
            return "dpkg " + " ".join(tool["package"])
    return None


def label(tool):
    for kind in PROBE_KINDS:
        if tool.get(kind):
            return describe(kind, tool[kind][0])
    return "package " + " ".join(tool["package"])


def apt_cache_age(now=None):
    """Seconds since apt's package lists were last updated (None when there are none)."""
    stamps = []
    for p in (APT_STAMP, APT_LISTS):
        try:
            stamps.append(os.stat(p).st_mtime)
        except OSError:
            pass
    names = os.listdir(APT_LISTS) if os.path.isdir(APT_LISTS) else []
    has_lists = any(n.endswith("_Packages") or "_Packages." in n for n in names)
    if not stamps or not has_lists:
        return None
    return (now or time.time()) - max(stamps)


class Installer(object):
    """apt-get, run the way the apt module does it: non-interactive, old config files kept."""

    def __init__(self, module):
        self.module = module
        self.updated = False

    def available(self):
        return shutil.which("apt-get", path=os.environ.get("PATH", "") + ":" + SEARCH_PATH) is not None

    def _apt(self, args):
        p = self.module.params
        argv = ["apt-get", "-q", "-o", "DPkg::Lock::Timeout=%d" % p["lock_timeout"]] + args
        rc, out, err = self.module.run_command(argv, environ_update=APT_ENV)
        return rc, out, err

    def update_if_old(self):
        age = apt_cache_age()
        if self.updated or (age is not None and age < self.module.params["cache_valid_time"]):
            return None
        rc, out, err = self._apt(["update"])
        self.updated = rc == 0
        return None if rc == 0 else (err or out).strip()

    def install(self, packages):
        update_error = self.update_if_old()
        rc, out, err = self._apt(["install", "-y", "-o", "Dpkg::Options::=--force-confdef",
                                  "-o", "Dpkg::Options::=--force-confold"] + list(packages))
        if rc == 0:
            return None
        text = (err or out).strip().splitlines()[-5:]
        if update_error:
            text = ["apt-get update failed first: " + update_error.splitlines()[-1]] + text
        return "\n".join(text)


def _packages(tools):
    seen = []
    for t in tools:
        for p in t["package"]:
            if p not in seen:
                seen.append(p)
    return seen


def run_host_tools(module, prober=None, installer=None):
    p = module.params
    prober = prober or Prober(module.run_command)
    installer = installer or Installer(module)
    report = [dict(name=label(t), package=t["package"], found=None, installed=False) for t in p["tools"]]
    installed, unknown, missing = [], [], []

    def one_round(indexes, deferred):
        absent = []
        for i in indexes:
            report[i]["found"] = find(p["tools"][i], prober)
            if report[i]["found"] is None:
                absent.append(i)
        wanted = _packages([p["tools"][i] for i in absent])
        if not wanted:
            return
        if not p["install"]:
            missing.extend(x for x in wanted if x not in missing)
            return
        if module.check_mode:
            if deferred and installed:
                unknown.extend(wanted)  # the packages installed first may bring these tools
            else:
                installed.extend(wanted)
            for i in absent:
                report[i]["installed"] = True
            return
        if not installer.available():
            module.fail_json(
                msg="%s: missing on this host, and it has no apt-get. Install the package(s) %s or their "
                    "equivalent yourself, then run again." % (", ".join(report[i]["name"] for i in absent),
                                                              ", ".join(wanted)),
                tools=report)
        error = installer.install(wanted)
        if error:
            module.fail_json(
                msg="apt-get could not install %s (for %s): %s. Check the host's apt sources and network, "
                    "or install them yourself, then run again." % (
                        ", ".join(wanted), ", ".join(report[i]["name"] for i in absent), error),
                tools=report)
        installed.extend(x for x in wanted if x not in installed)
        for i in absent:
            report[i]["installed"] = True
            report[i]["found"] = find(p["tools"][i], prober)
            if report[i]["found"] is None:
                module.fail_json(
                    msg="installed %s, but %s is still not found on this host. Check where the package "
                        "puts it, or name the right package for this distribution." % (
                            ", ".join(p["tools"][i]["package"]), report[i]["name"]),
                    tools=report, installed=installed)

    first = [i for i, t in enumerate(p["tools"]) if not t["deferred"]]
    later = [i for i, t in enumerate(p["tools"]) if t["deferred"]]
    one_round(first, False)
    one_round(later, True)
    result = dict(changed=bool(installed or unknown), installed=installed, missing=missing, tools=report)
    if unknown:
        result["undecided"] = unknown
    if module._diff and (installed or unknown):
        result["diff"] = dict(before="", after="".join(x + "\n" for x in installed + unknown))
    return result
