# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that check the cluster layout an inventory describes, before anything is changed."""

from __future__ import annotations

DOCUMENTATION = r"""
name: layout_problems
author: wabiz.cluster maintainers
version_added: 0.1.0
short_description: Plain-language problems of a cluster layout
description:
  - Takes the per-host layouts that the preflight tasks collect (node kinds, container counts,
    published ports, external address) and returns a list of sentences, one per problem; an
    empty list means the layout is sound.
  - Checks at least two masters on distinct hosts, at least two coreapps and at least shards + 1
    of them, at least one webapp, a known database engine, no idle timeout with PostgreSQL,
    a valid shard count, and no two services publishing the same port on one address.
positional: _input
options:
  _input:
    description:
      - Mapping of inventory host name to its layout, a dict with C(kinds) (list of master, coreapp,
        webapp), C(instances) (containers per kind), C(base_port), C(webapp_port) and C(address).
    type: dict
    required: true
  shards:
    description: Shard count of the account.
    type: int
    required: true
  engine:
    description: Database engine (mysql or postgresql).
    type: str
    required: true
  idle_timeout:
    description: WA_DB_CONNECTION_IDLE_TIMEOUT in ms, or null when unset.
    type: raw
    default: null
"""

EXAMPLES = r"""
- name: Refuse a bad inventory
  ansible.builtin.fail:
    msg: "{{ problems | join(' ') }}"
  vars:
    problems: "{{ layouts | wabiz.cluster.layout_problems(shards=1, engine='mysql') }}"
  when: problems | length > 0
"""

RETURN = r"""
_value:
  description: One sentence per problem; empty when the layout is sound.
  type: list
  elements: str
"""

VALID_SHARDS = (1, 2, 4, 8, 16, 32)
BLOCK = 4  # messaging, contacts, control, healthcheck
ENGINES = ("mysql", "postgresql")


def published_ports(layout):
    """(port, service) pairs a host publishes, by the rule the node role's compose template
    follows: coreapp containers take the first 4-port blocks from base_port, masters the next
    ones; webapps take webapp_port, webapp_port + 1, ..."""
    kinds = layout.get("kinds") or []
    instances = layout.get("instances") or {}
    base = int(layout.get("base_port", 6250))
    pairs = []
    block = 0
    for kind in ("coreapp", "master"):
        if kind in kinds:
            for i in range(int(instances.get(kind, 1))):
                pairs.extend((base + BLOCK * block + k, "%s %d" % (kind, i + 1)) for k in range(BLOCK))
                block += 1
    if "webapp" in kinds:
        first = int(layout.get("webapp_port", 9090))
        pairs.extend((first + i, "webapp %d" % (i + 1)) for i in range(int(instances.get("webapp", 1))))
    return pairs


def layout_problems(layouts, shards, engine, idle_timeout=None):
    """Return one plain sentence per problem of the layout (empty list: sound)."""
    problems = []
    layouts = layouts or {}

    def hosts_of(kind):
        return sorted(h for h, lay in layouts.items() if kind in (lay.get("kinds") or []))

    def count(kind):
        return sum(int((layouts[h].get("instances") or {}).get(kind, 1)) for h in hosts_of(kind))

    masters, coreapps, webapps = hosts_of("master"), count("coreapp"), count("webapp")
    if len(masters) < 2:
        problems.append(
            "The cluster needs at least 2 masters on separate hosts, but the group wabiz_master has %d host(s): "
            "add a host to wabiz_master." % len(masters))
    crowded = [h for h in masters if int((layouts[h].get("instances") or {}).get("master", 1)) > 1]
    addresses = {}
    for h in masters:
        addresses.setdefault(layouts[h].get("address") or h, []).append(h)
    for address, names in sorted(addresses.items()):
        if len(names) > 1:
            problems.append("Masters must run on distinct hosts, but %s all have the address %s."
                            % (" and ".join(names), address))
    if crowded:
        problems.append(
            "Masters must run on distinct hosts, but %s run(s) more than one master: set wabiz_master_instances "
            "to 1 there and add master hosts instead." % ", ".join(crowded))
    try:
        shards = int(shards)
    except (TypeError, ValueError):
        shards = -1
    if shards not in VALID_SHARDS:
        problems.append("wabiz_shards must be one of 1, 2, 4, 8, 16 or 32, not %r." % (shards,))
    if coreapps < 2:
        problems.append(
            "The cluster needs at least 2 coreapps, but the inventory has %d: add hosts to wabiz_coreapp." % coreapps)
    elif shards in VALID_SHARDS and coreapps < shards + 1:
        problems.append(
            "With %d shard(s) the cluster needs at least %d coreapps (shards + 1, so one can take over), but the "
            "inventory has %d: add coreapps or lower wabiz_shards." % (shards, shards + 1, coreapps))
    if webapps < 1:
        problems.append("The cluster has no webapp: add a host to wabiz_webapp (it serves the API on port 9090).")
    if engine not in ENGINES:
        problems.append("wabiz_db_engine is %r; it must be mysql or postgresql." % (engine,))
    elif engine == "postgresql" and idle_timeout not in (None, "", 0):
        problems.append(
            "wabiz_db_idle_timeout_ms is set, but WA_DB_CONNECTION_IDLE_TIMEOUT exists for MySQL only: "
            "remove it when wabiz_db_engine is postgresql.")
    # Two services publishing one port on one address cannot both start.
    owners = {}
    for host in sorted(layouts):
        lay = layouts[host]
        for port, service in published_ports(lay):
            owners.setdefault((lay.get("address") or host, port), []).append("%s on %s" % (service, host))
    for (address, port), users in sorted(owners.items()):
        if len(users) > 1:
            problems.append("Port %d on %s is published by %s: give them different ports "
                            "(wabiz_webapp_port, wabiz_node_base_port) or different hosts."
                            % (port, address, " and ".join(users)))
    return problems


class FilterModule(object):
    """wabiz.cluster layout filters."""

    def filters(self):
        return {"layout_problems": layout_problems}
