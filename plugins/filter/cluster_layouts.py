# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Collect the cluster layout that an inventory describes, for wabiz.cluster.layout_problems."""

from __future__ import annotations

from ansible_collections.wabiz.cluster.plugins.filter.host_address import address_of
from ansible_collections.wabiz.cluster.plugins.module_utils._password_rules import password_problems

DOCUMENTATION = r"""
name: cluster_layouts
author: wabiz.cluster maintainers
version_added: 0.1.0
short_description: The per-host layout of the cluster an inventory describes
description:
  - For every host of the groups C(wabiz_nodes), C(wabiz_master), C(wabiz_coreapp) and C(wabiz_webapp),
    returns its node kinds, container counts, first ports and address, taking each setting from the
    host's inventory variables and else from O(defaults).
  - Reads the whole inventory, not only the hosts of the current run, so a run with C(--limit) is
    judged against the whole cluster.
  - For the settings that O(defaults) has a value for, also returns each host's C(settings) (C(wabiz_db_host),
    C(wabiz_heartbeat_interval), C(wabiz_unhealthy_interval), C(wabiz_media_source), C(wabiz_media_nfs_server),
    and of the secrets C(wabiz_db_password) and C(wabiz_admin_password) only whether they are set, never
    their value), and as C(wabiz_admin_password_problems) the API's password rules that a host's own
    C(wabiz_admin_password) breaks (phrases that never hold the password).
  - A count or port that is not a whole number is returned as it is, for
    P(wabiz.cluster.layout_problems#filter) to name it.
positional: _input, hostvars, defaults
options:
  _input:
    description: The C(groups) magic variable.
    type: dict
    required: true
  hostvars:
    description: The C(hostvars) magic variable.
    type: dict
    required: true
  defaults:
    description:
      - Values for hosts that do not set them, with keys C(wabiz_master_instances),
        C(wabiz_coreapp_instances), C(wabiz_webapp_instances), C(wabiz_node_base_port), C(wabiz_webapp_port),
        and optionally the settings to judge (a secret may be given as a bool, whether it is set).
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Judge the inventory
  ansible.builtin.debug:
    msg: "{{ groups | wabiz.cluster.cluster_layouts(hostvars, defaults) | wabiz.cluster.layout_problems(shards=1, engine='mysql') }}"
"""

RETURN = r"""
_value:
  description: Host name to layout (C(kinds), C(instances), C(base_port), C(webapp_port), C(address), C(settings)).
  type: dict
"""

KINDS = ("master", "coreapp", "webapp")
# Per-host settings the preflight judges; the secrets are carried only as whether they are set.
SETTINGS = ("wabiz_db_host", "wabiz_db_password", "wabiz_admin_password", "wabiz_heartbeat_interval",
            "wabiz_unhealthy_interval", "wabiz_media_source", "wabiz_media_nfs_server")
SECRETS = ("wabiz_db_password", "wabiz_admin_password")


def _get(hv, key, default):
    try:
        value = hv[key]
    except (KeyError, TypeError):
        return default
    return default if value is None else value


def _int(value):
    """An int when ``value`` is a whole number, else ``value`` itself (layout_problems names it): a
    bool, a float with a fraction (1.5 is not quietly 1), a list or a mapping stays as it is."""
    if isinstance(value, (bool, list, tuple, dict, set, frozenset)):
        return value
    if isinstance(value, float) and not value.is_integer():
        return value
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return value


def _is_set(value):
    if isinstance(value, bool):
        return value
    return value is not None and bool(str(value).strip())


def cluster_layouts(groups, hostvars, defaults):
    """Host name -> layout dict for every cluster node host of the inventory."""
    members = {kind: list(groups.get("wabiz_" + kind, []) or []) for kind in KINDS}
    hosts = []
    for name in list(groups.get("wabiz_nodes", []) or []) + [h for kind in KINDS for h in members[kind]]:
        if name not in hosts:
            hosts.append(name)
    out = {}
    for host in hosts:
        hv = hostvars[host]
        out[host] = {
            "kinds": [kind for kind in KINDS if host in members[kind]],
            "instances": {kind: _int(_get(hv, "wabiz_%s_instances" % kind, defaults["wabiz_%s_instances" % kind]))
                          for kind in KINDS},
            "base_port": _int(_get(hv, "wabiz_node_base_port", defaults["wabiz_node_base_port"])),
            "webapp_port": _int(_get(hv, "wabiz_webapp_port", defaults["wabiz_webapp_port"])),
            "address": address_of(host, hv),
        }
        settings = {}
        for key in SETTINGS:
            if key not in defaults:
                continue
            value = _get(hv, key, defaults[key])
            settings[key] = _is_set(value) if key in SECRETS else value
            own = _get(hv, key, None)
            if key == "wabiz_admin_password" and isinstance(own, str) and own.strip():
                settings["wabiz_admin_password_problems"] = password_problems(own)
        if settings:
            out[host]["settings"] = settings
    return out


class FilterModule(object):
    """wabiz.cluster inventory filters."""

    def filters(self):
        return {"cluster_layouts": cluster_layouts}
