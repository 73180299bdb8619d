#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: host_tools
short_description: Find the commands and libraries a role uses on a host, install from apt only the missing ones
version_added: 0.2.0
description:
  - Each entry of O(tools) names the Debian or Ubuntu package(s) that bring a tool and the probes that
    show the tool is there already. A tool is present when any probe succeeds, whatever installed it
    (a distribution package, Docker's own packages, pip, a binary in C(/usr/local/bin)). An entry
    without probes is present when C(dpkg-query) reports every one of its packages as installed.
  - The packages of the absent tools are installed in one C(apt-get install) run (non-interactive,
    existing configuration files kept), after C(apt-get update) when the package lists are older
    than O(cache_valid_time). A host that has every tool is never touched by apt, so hosts without
    network access or C(python3-apt) are left alone.
  - After installing, every tool installed for is probed again; one still absent fails the task,
    naming the tool and the package, as does a failed C(apt-get) run and a host without C(apt-get).
  - Entries with O(tools[].deferred=true) are probed only after the other entries' packages are
    installed, for a tool that one of those packages may bring on some releases (Debian 12's
    C(docker.io) has the C(docker) command, Debian 13's does not).
author:
  - wabiz.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wabiz.cluster.attributes
attributes:
  check_mode:
    support: full
    details: Runs the probes and reports the packages a real run would install, without installing them.
  diff_mode:
    support: full
    details: The packages installed (or that would be).
  idempotent:
    support: full
  platform:
    platforms: debian
options:
  tools:
    description:
      - The tools, in order. Probes are tried in the order V(command), V(python), V(path), V(run).
    type: list
    elements: dict
    required: true
    suboptions:
      package:
        description: The package(s) that bring the tool.
        type: list
        elements: str
        required: true
      command:
        description:
          - Command names; the tool is present when any is on C(PATH) (the sbin directories included).
        type: list
        elements: str
        default: []
      python:
        description:
          - Python module names; the tool is present when the Python interpreter that runs the modules
            on this host can import any of them.
        type: list
        elements: str
        default: []
      path:
        description: Paths; the tool is present when any exists.
        type: list
        elements: path
        default: []
      run:
        description:
          - Commands as argument lists; the tool is present when any exits with status 0.
        type: list
        elements: list
        default: []
      deferred:
        description: Probe this entry after the other entries' packages are installed.
        type: bool
        default: false
  install:
    description:
      - Install the packages of the absent tools. With V(false) nothing is installed and the absent
        tools' packages are returned in RV(missing) (the task does not fail).
    type: bool
    default: true
  cache_valid_time:
    description: Seconds the package lists stay valid before C(apt-get update) runs first.
    type: int
    default: 3600
  lock_timeout:
    description: Seconds C(apt-get) waits for the dpkg lock another package manager holds.
    type: int
    default: 120
notes:
  - Needs root (C(become)) when something is to be installed.
seealso:
  - module: ansible.builtin.apt
"""

EXAMPLES = r"""
- name: The engine, the docker command, compose and the Docker SDK for Python
  wabiz.cluster.host_tools:
    tools:
      - {package: [docker.io], command: [dockerd]}
      - {package: [docker-compose], run: [[docker, compose, version], [docker-compose, version]]}
      - {package: [python3-docker], python: [docker]}
      - {package: [docker-cli], command: [docker], deferred: true}
  become: true

- name: The database server's packages, by what dpkg knows
  wabiz.cluster.host_tools:
    tools:
      - package: [mariadb-server, python3-pymysql]
  become: true

- name: Only report what is missing
  wabiz.cluster.host_tools:
    tools:
      - {package: [cron], command: [crontab]}
    install: false
  register: cron_tools
"""

RETURN = r"""
installed:
  description: The packages installed by this run (in check mode, that a real run would install).
  returned: always
  type: list
  elements: str
  sample: [docker.io, python3-docker]
missing:
  description: With O(install=false), the packages of the absent tools.
  returned: always
  type: list
  elements: str
  sample: [cron]
undecided:
  description:
    - Check mode only, the packages of absent deferred entries, which the packages a real run installs
      first may bring.
  returned: when there are any
  type: list
  elements: str
  sample: [docker-cli]
tools:
  description: One entry per tool, in order.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The tool, as its first probe names it.
      type: str
      sample: command dockerd
    package:
      description: Its packages.
      type: list
      elements: str
      sample: [docker.io]
    found:
      description: The probe that found it, or V(null) when it is absent.
      type: str
      sample: command dockerd
    installed:
      description: Whether its packages were installed by this run (or would be, in check mode).
      type: bool
      sample: false
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wabiz.cluster.plugins.module_utils._host_tools import argument_spec, run_host_tools


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    module.exit_json(**run_host_tools(module))


if __name__ == "__main__":
    main()
