#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: compose_stack
short_description: Run, stop, restart or remove a docker compose project on a host, with compose v2 or v1
version_added: 0.1.0
description:
  - Manages one compose project on the host, the way the WhatsApp Business API client's guides run
    C(EXTERNAL_HOSTNAME=... docker-compose -f multiconnect-<role>.yml up -d) on each machine.
  - Uses the compose v2 CLI plugin (C(docker compose)) when it answers and the v1 C(docker-compose)
    otherwise (the syntax of the guides' files); O(cli) forces one.
  - C(changed) comes from the Docker state read before and after the run through the Docker SDK,
    that is the project's containers (by the C(com.docker.compose.project) label), their config hash, image
    id, state and start time, and the project's networks and volumes; never from the CLI's
    progress output. Check mode predicts the same actions from the desired configuration
    (C(config --hash)) and the local images without acting.
  - With O(wait=true) the module waits until the containers run and, where the service has a
    healthcheck, are healthy; a container that does not come up fails the task with its name and
    the tail of its log.
author:
  - wabiz.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wabiz.cluster.attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads the configuration and the Docker state, and returns the predicted RV(actions); runs no compose command that changes anything.
      - When O(project_src) or a file in O(files) does not exist yet (a dry run on a fresh host, where an earlier task would write them),
        it warns and reports one C(create) action for every service (C(service=*)) with C(changed=true) instead of failing.
  diff_mode:
    support: full
    details: One line per container (state, image, config hash) before and after.
  idempotent:
    support: partial
    details: O(state=restarted) restarts the containers on every run, by design; the other states change nothing on a second run.
  platform:
    platforms: posix
options:
  project_src:
    description:
      - Directory of the compose project (relative paths in the files are resolved from it).
    type: path
    required: true
  files:
    description:
      - Compose files, relative to O(project_src) or absolute, in order (later ones override).
      - Defaults to what the CLI finds in O(project_src) (C(docker-compose.yml), C(compose.yaml)...).
    type: list
    elements: path
  project_name:
    description:
      - Compose project name; containers are found by it.
      - Defaults to the base name of O(project_src), lower-cased with characters other than
        C(a-z0-9_-) removed. It is always passed with C(-p), so v1 and v2 agree on it.
    type: str
  state:
    description:
      - V(present) creates and starts what is missing or out of date (C(up -d)).
      - V(stopped) stops running containers (C(stop)), creating nothing.
      - V(restarted) does what V(present) does, then restarts the containers (C(restart)).
      - V(absent) removes the containers and networks (C(down)), or with O(services) only those
        services' containers (C(rm -s -f)).
    type: str
    choices: [present, absent, stopped, restarted]
    default: present
  env:
    description:
      - Environment for interpolation in the compose files, such as C(EXTERNAL_HOSTNAME) or port
        variables. Passed to every compose command.
    type: dict
    default: {}
  services:
    description:
      - Only these services (a coreapp host starts only its own). Empty means all.
    type: list
    elements: str
    default: []
  dependencies:
    description:
      - With O(services), also start the services they depend on (C(depends_on)). V(false) passes
        C(--no-deps).
    type: bool
    default: true
  remove_volumes:
    description:
      - With O(state=absent), also remove the project's volumes (C(down -v)). Removes data.
    type: bool
    default: false
  remove_orphans:
    description:
      - Remove containers of services that the files no longer define.
    type: bool
    default: false
  pull:
    description:
      - V(missing) pulls images that are not on the host, V(always) pulls before starting,
        V(never) fails before acting when an image is not on the host.
      - With compose v1 (which has no C(--pull)), V(always) runs C(pull) first and V(never) relies
        on the module's own check of the local images.
    type: str
    choices: [always, missing, never]
    default: missing
  wait:
    description:
      - After O(state=present) or O(state=restarted), wait until the containers of the selected
        services run, and are healthy where they have a healthcheck.
    type: bool
    default: true
  wait_timeout:
    description:
      - Seconds to wait for O(wait), at least 1. A smaller value fails the task before anything is
        read or run, also in check mode.
      - Also bounds every call to the Docker engine's API (in every state and in check mode, with
        O(wait=false) too), each waiting at most O(wait_timeout) seconds for an answer, but at
        least 5 and at most 60; so an engine that accepts connections but does not answer fails
        the task after about that long, with the message that it did not answer.
      - The compose CLI commands themselves (C(up), C(pull)...) are not bounded by it.
    type: int
    default: 120
  cli:
    description:
      - Which compose to use. V(auto) takes the v2 plugin C(docker compose) when it answers, else
        C(docker-compose) (v1, or a standalone v2).
    type: str
    choices: [auto, v2, v1]
    default: auto
  docker_host:
    description:
      - Docker daemon to talk to, for example V(unix:///var/run/docker.sock) or V(tcp://10.0.0.5:2375).
      - Defaults to the C(DOCKER_HOST) environment variable, then the local socket.
      - Given to both the Docker SDK and the compose CLI, so it must be an address both take, that is
        V(unix://PATH), V(tcp://HOST:PORT) (the port is required), V(ssh://USER@HOST[:PORT]), or V(HOST:PORT)
        (read as V(tcp://HOST:PORT)). Anything else (V(http://), a port out of range, a
        password, a malformed IPv6 address...) fails the task before anything is read or run, also in
        check mode. An empty value means the default.
      - An engine that does not answer fails the task after the time O(wait_timeout) sets.
    type: str
requirements:
  - docker (the Docker SDK for Python) 5.0 or later on the managed host
  - the docker CLI with the compose v2 plugin, or docker-compose v1
  - PyYAML when compose v1 is used (Debian's docker-compose package depends on it)
notes:
  - Images are never built (C(--no-build)), since the cluster runs published images.
  - Switching a project between compose v1 and v2 recreates its containers once (the two compute
    different config hashes).
  - After an apply the module keeps C(.compose_stack-PROJECT.json) (mode C(0600)) in O(project_src),
    noting per service the hash C(config --hash) printed and the config-hash label compose gave the
    containers. Compose v2 labels services that have an C(env_file) with a hash C(config --hash)
    does not print, so without this note check mode would predict a recreate that C(up) does not do.
    Deleting the file is harmless (check mode may then over-predict once).
seealso:
  - module: wabiz.cluster.db_env
  - module: community.docker.docker_compose_v2
"""

EXAMPLES = r"""
- name: Start only this host's coreapp service of the production compose file
  wabiz.cluster.compose_stack:
    project_src: /opt/whatsapp
    files: [multiconnect-coreapp.yml]
    project_name: whatsapp
    services: [wacore]
    env:
      EXTERNAL_HOSTNAME: "{{ ansible_host }}"
      WA_API_VERSION: "2.53.1"
    pull: missing
    wait_timeout: 300

- name: Same stack with compose v1 (the syntax of the guides)
  wabiz.cluster.compose_stack:
    project_src: /opt/whatsapp
    files: [multiconnect-webapp.yml]
    cli: v1
    env:
      EXTERNAL_HOSTNAME: "{{ ansible_host }}"

- name: Uninstall, keeping the volumes
  wabiz.cluster.compose_stack:
    project_src: /opt/whatsapp
    files: [multiconnect-coreapp.yml]
    project_name: whatsapp
    state: absent

- name: Uninstall and delete the data (down -v)
  wabiz.cluster.compose_stack:
    project_src: /opt/whatsapp
    project_name: whatsapp
    state: absent
    remove_volumes: true
"""

RETURN = r"""
project_name:
  description: The compose project name used.
  returned: always
  type: str
  sample: whatsapp
cli:
  description: The compose CLI used.
  returned: when a compose CLI was found
  type: dict
  contains:
    kind:
      description: V(v2) or V(v1).
      type: str
      sample: v2
    version:
      description: Its version.
      type: str
      sample: 2.40.3
    argv:
      description: How it is called.
      type: list
      elements: str
      sample: [/usr/bin/docker, compose]
services:
  description: The services the run covered (O(services) plus their dependencies, or all).
  returned: when the configuration was read
  type: list
  elements: str
  sample: [wacore]
actions:
  description:
    - What changed, read from the Docker state before and after (in check mode, what would change).
    - Each has C(action) (create, recreate, start, stop, restart, remove, pull, create_network,
      remove_network, create_volume, remove_volume), and where it applies C(service), C(container)
      and C(detail).
  returned: always
  type: list
  elements: dict
  sample:
    - {action: recreate, service: wacore, container: whatsapp-wacore-1}
files_missing:
  description:
    - In check mode, the project directory or compose files that do not exist yet because an earlier
      task of the run writes them (a dry run on a fresh host). The stack is then reported as
      changed (it would be started) with no RV(actions), since its plan cannot be read.
  returned: in check mode, when the project's files are not written yet
  type: list
  elements: str
  sample: [/opt/whatsapp/multiconnect-coreapp.yml]
containers:
  description: The project's containers after the run (in check mode, as they are now).
  returned: always
  type: list
  elements: dict
  sample:
    - name: whatsapp-wacore-1
      service: wacore
      state: running
      health: healthy
      image: docker.whatsapp.biz/coreapp:v2.53.1
      image_id: sha256:6cd09b6fb6e92b41bbddbab300fe1b8db52d5d17dfaff6c93a858fe43270aeb7
      ports: ["0.0.0.0:6250->6250/tcp"]
commands:
  description: The compose commands that were run (environment values are not shown).
  returned: always
  type: list
  elements: str
  sample: ["/usr/bin/docker compose -p whatsapp --project-directory /opt/whatsapp up -d --no-build --pull missing wacore"]
container:
  description: On a failed wait, the container that did not come up.
  returned: failure
  type: str
  sample: whatsapp-wacore-1
log_tail:
  description: On a failed wait, the last lines of that container's log.
  returned: failure
  type: str
  sample: "Error: cannot connect to the database"
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.wabiz.cluster.plugins.module_utils._compose import compose_argument_spec, run_compose_stack


def main():
    module = AnsibleModule(
        argument_spec=compose_argument_spec(),
        supports_check_mode=True,
    )
    module.exit_json(**run_compose_stack(module))


if __name__ == "__main__":
    main()
