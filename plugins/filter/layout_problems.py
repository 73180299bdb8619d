# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters that check the cluster layout an inventory describes, before anything is changed."""

from __future__ import annotations

import re

from ansible_collections.wabiz.cluster.plugins.module_utils._password_rules import RULES_TEXT
from ansible_collections.wabiz.cluster.plugins.module_utils._shards import VALID_SHARD_COUNTS

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
  - Also checks at least one container of each kind a host belongs to and at most 64 (C(MAX_INSTANCES);
    a coreapp or master takes 4 ports, a webapp one, and they all must fit below port 65535; a larger
    count is named and its ports are not enumerated), published ports from 1 to
    65535 (the last port of the base port's last 4-port block and the last webapp port included),
    the database on a server of its own, and that there are node hosts at all (or a development
    host in C(wabiz_dev)).
  - A count, port, interval or shard count that is not a whole number (a list, a mapping, a bool, a
    number with a fraction, a text that is no whole number) is a problem named in a sentence, never an
    error of the filter.
  - When the layouts carry C(settings) (as P(wabiz.cluster.cluster_layouts#filter) returns them),
    also checks that C(wabiz_db_host) and C(wabiz_db_password) are set on every node host and
    C(wabiz_admin_password) on every webapp host (and that it follows the API's password rules, from
    C(wabiz_admin_password_problems)), that C(wabiz_unhealthy_interval) is greater than
    C(wabiz_heartbeat_interval) (at least 1), and that NFS media has a server.
positional: _input
options:
  _input:
    description:
      - Mapping of inventory host name to its layout, a dict with C(kinds) (list of master, coreapp,
        webapp), C(instances) (containers per kind), C(base_port), C(webapp_port), C(address) and
        optionally C(settings) (variable name to value; secrets only as whether they are set).
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
  database_hosts:
    description:
      - The hosts of C(wabiz_database), as a list of names or a mapping of name to address; none of
        them may be a node host or (with addresses) share a node host's address.
    type: raw
    default: null
  nfs_hosts:
    description: The hosts of C(wabiz_nfs).
    type: list
    elements: str
    default: []
  dev_hosts:
    description: The hosts of C(wabiz_dev); with them, an inventory without node hosts is sound.
    type: list
    elements: str
    default: []
  account:
    description:
      - The account whose shard count the cluster sets, a dict with C(cc) (country calling code) and
        C(phone_number); when given, both must be set and made of digits. Not judged when null.
    type: dict
    default: null
"""

EXAMPLES = r"""
- name: Refuse a bad inventory
  ansible.builtin.fail:
    msg: "{{ problems | join(' ') }}"
  vars:
    problems: "{{ layouts | wabiz.cluster.layout_problems(shards=1, engine='mysql', nfs_hosts=groups['wabiz_nfs'] | default([])) }}"
  when: problems | length > 0
"""

RETURN = r"""
_value:
  description: One sentence per problem; empty when the layout is sound.
  type: list
  elements: str
"""

BLOCK = 4  # messaging, contacts, control, healthcheck
ENGINES = ("mysql", "postgresql")
MAX_PORT = 65535
KINDS = ("master", "coreapp", "webapp")
# The most containers of one kind on one host: a coreapp or master takes a 4-port block, a webapp one
# port, so 64 of them need at most 256 ports. More is refused before any port is enumerated (a huge
# count would otherwise take unbounded memory); more capacity means more hosts.
MAX_INSTANCES = 64
# The product's defaults, named in the messages.
DEFAULT_PORTS = {"wabiz_node_base_port": 6250, "wabiz_webapp_port": 9090}


def _as_int(value):
    """``value`` as an int, or None when it is not a whole number: a bool, a float with a fraction (or
    not finite, or beyond 2**53 where floats are no longer exact), a text that is not a whole number,
    a list or a mapping are not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() and abs(value) <= 2 ** 53 else None
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return None
    try:
        text = str(value).strip()
        return int(text) if text.lstrip("+-").isdigit() else None
    except (TypeError, ValueError):
        return None


def _shown(value, limit=60):
    """``repr(value)`` for a message, cut after ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _instances(layout, kind):
    """Containers of ``kind`` the host runs (1 when unset, 0 when not a whole number)."""
    value = _as_int((layout.get("instances") or {}).get(kind, 1))
    return 0 if value is None else value


def published_ports(layout):
    """(port, service) pairs a host publishes, by the rule the node role's compose template
    follows: coreapp containers take the first 4-port blocks from base_port, masters the next
    ones; webapps take webapp_port, webapp_port + 1, ... A kind with more than MAX_INSTANCES
    containers (a problem layout_problems names) publishes nothing here, nor do the blocks after it:
    at most 2 * MAX_INSTANCES blocks and MAX_INSTANCES webapp ports are ever listed."""
    kinds = layout.get("kinds") or []
    base = _as_int(layout.get("base_port", 6250))
    pairs = []
    block = 0
    if base is not None:
        for kind in ("coreapp", "master"):
            if kind in kinds:
                count = max(_instances(layout, kind), 0)
                if count > MAX_INSTANCES:
                    break
                for i in range(count):
                    pairs.extend((base + BLOCK * block + k, "%s %d" % (kind, i + 1)) for k in range(BLOCK))
                    block += 1
    first = _as_int(layout.get("webapp_port", 9090))
    webapps = max(_instances(layout, "webapp"), 0)
    if "webapp" in kinds and first is not None and webapps <= MAX_INSTANCES:
        pairs.extend((first + i, "webapp %d" % (i + 1)) for i in range(webapps))
    return pairs


def _names(hosts, every):
    """``c1 and c2`` / ``every node host (c1, c2, ...)``, for the hosts a message is about."""
    hosts = list(hosts)
    if len(hosts) > 1 and set(hosts) == set(every):
        return "every %s (%s)" % (every.label, ", ".join(hosts))
    if len(hosts) > 1:
        return ", ".join(hosts[:-1]) + " and " + hosts[-1]
    return hosts[0]


class _Hosts(list):
    """A list of host names with a label (``node host``, ``webapp host``) for _names."""

    def __init__(self, hosts, label):
        super(_Hosts, self).__init__(hosts)
        self.label = label


class _Grouped(object):
    """Problems that several hosts share, gathered so that each gets one sentence. A key may hold
    any value an inventory gives (a list, a mapping): keys are told apart by their repr."""

    def __init__(self):
        self._items = {}

    def add(self, key, host):
        self._items.setdefault(repr(key), (key, []))[1].append(host)

    def items(self):
        return list(self._items.values())


def _setting(layout, name):
    """The value of a setting the layout carries, or a marker that it does not carry it."""
    return (layout.get("settings") or {}).get(name, _MISSING)


_MISSING = object()


def _blank(value):
    """True for an unset text setting ("" or only spaces); a secret is carried as a bool."""
    if value is _MISSING:
        return False
    if isinstance(value, bool):
        return not value
    return value is None or not str(value).strip()


def _check_instances(layouts, problems):
    for kind in KINDS:
        bad = _Grouped()
        for host in sorted(layouts):
            lay = layouts[host]
            if kind not in (lay.get("kinds") or []):
                continue
            raw = (lay.get("instances") or {}).get(kind, 1)
            value = _as_int(raw)
            if value is None or value < 1:
                bad.add((False, raw), host)
            elif value > MAX_INSTANCES and kind != "master":  # more than one master is named on its own
                bad.add((True, raw), host)
        every = _Hosts([h for h in sorted(layouts) if kind in (layouts[h].get("kinds") or [])], "%s host" % kind)
        for (too_many, raw), hosts in bad.items():
            if too_many:
                ports = "the next 4 ports" if kind == "coreapp" else "the next port"
                problems.append(
                    "wabiz_%s_instances is %s on %s, but a host runs at most %d %s containers (each takes %s, "
                    "and every port must fit below 65535): set wabiz_%s_instances to 1 to %d, and add hosts to "
                    "wabiz_%s for more." % (kind, _shown(raw), _names(hosts, every), MAX_INSTANCES, kind, ports,
                                            kind, MAX_INSTANCES, kind))
                continue
            what = ("1 (one master per host)" if kind == "master"
                    else "1 or more (one container each; more take the next ports)")
            problems.append(
                "wabiz_%s_instances is %s on %s, but a host of wabiz_%s must run at least one %s container: "
                "set wabiz_%s_instances to %s, or take the host out of wabiz_%s."
                % (kind, _shown(raw), _names(hosts, every), kind, kind, kind, what, kind))


def _containers(per_kind):
    """``1 coreapp container`` / ``2 coreapp and 1 master containers``."""
    total = sum(n for n, _k in per_kind)
    return " and ".join("%d %s" % (n, k) for n, k in per_kind) + (" container" if total == 1 else " containers")


def _check_ports(layouts, problems):
    """Every published port must be a whole number from 1 to 65535, including the last port of
    the last block (base port + 4 per container - 1) and of the last webapp."""
    every = _Hosts(sorted(layouts), "node host")
    bad = _Grouped()
    for host in sorted(layouts):
        lay = layouts[host]
        kinds = lay.get("kinds") or []
        per_kind = [(max(_instances(lay, k), 0), k) for k in ("coreapp", "master") if k in kinds]
        per_kind = [(n, k) for n, k in per_kind if n]
        webapps = max(_instances(lay, "webapp"), 0) if "webapp" in kinds else 0
        for var, key, counts, width in (
                ("wabiz_node_base_port", "base_port", per_kind, BLOCK),
                ("wabiz_webapp_port", "webapp_port", [(webapps, "webapp")], 1)):
            count = sum(n for n, _k in counts)
            if not count or any(n > MAX_INSTANCES for n, _k in counts):
                continue  # none, or more than MAX_INSTANCES of a kind: named on its own, no range judged
            what = _containers(counts)
            raw = lay.get(key, DEFAULT_PORTS[var])
            first = _as_int(raw)
            if first is None:
                bad.add((var, raw, None, None, None), host)
                continue
            last = first + count * width - 1
            if first < 1 or last > MAX_PORT:
                bad.add((var, raw, last, MAX_PORT + 1 - count * width, what), host)
    for (var, raw, last, highest, what), hosts in bad.items():
        if last is None:
            problems.append("%s is %s on %s: it must be a port number (a whole number from 1 to %d); the default is %d."
                            % (var, _shown(raw), _names(hosts, every), MAX_PORT, DEFAULT_PORTS[var]))
        elif _as_int(raw) < 1:
            problems.append("%s is %s on %s: a port must be from 1 to %d; set it to a free port such as the default %d."
                            % (var, _shown(raw), _names(hosts, every), MAX_PORT, DEFAULT_PORTS[var]))
        else:
            width = "4 ports" if var == "wabiz_node_base_port" else "one port"
            problems.append(
                "%s is %s on %s, but the %s there (%s each) would publish up to port %d, beyond %d: set %s to "
                "at most %d (the default is %d)." % (var, raw, _names(hosts, every), what, width, last, MAX_PORT,
                                                     var, highest, DEFAULT_PORTS[var]))


def _check_settings(layouts, problems, nfs_hosts):
    """The per-host settings cluster_layouts carries (absent ones are not judged)."""
    nodes = _Hosts(sorted(layouts), "node host")
    webapps = _Hosts([h for h in nodes if "webapp" in (layouts[h].get("kinds") or [])], "webapp host")
    required = (
        ("wabiz_db_host", nodes, "the nodes write it to db.env: set it to the address of the database server that "
                                 "every node host reaches"),
        ("wabiz_db_password", nodes, "the nodes log in to the database with it: set it, from an ansible-vault "
                                     "file (as vault_wabiz_db_password in inventories/production.example)"),
        ("wabiz_admin_password", webapps, "the first login replaces the admin user's default password \"secret\" "
                                          "with it, and the drill, switchover and message GC playbooks log in with it: "
                                          "set it (keep it in ansible-vault)"),
    )
    for var, hosts, advice in required:
        empty = [h for h in hosts if _blank(_setting(layouts[h], var))]
        if empty:
            problems.append("%s is empty on %s; %s." % (var, _names(empty, hosts), advice))

    weak = _Grouped()
    for host in webapps:
        broken = _setting(layouts[host], "wabiz_admin_password_problems")
        if broken is not _MISSING and broken:
            weak.add(tuple(broken), host)
    for broken, hosts in weak.items():
        problems.append("wabiz_admin_password on %s breaks the API's password rules (%s): the first login would be "
                        "refused with 400 / 1009. Use %s." % (_names(hosts, webapps), "; ".join(broken), RULES_TEXT))

    timers = _Grouped()
    for host in webapps:
        hb_raw = _setting(layouts[host], "wabiz_heartbeat_interval")
        uh_raw = _setting(layouts[host], "wabiz_unhealthy_interval")
        if hb_raw is _MISSING or uh_raw is _MISSING:
            continue
        hb, uh = _as_int(hb_raw), _as_int(uh_raw)
        if hb is None or hb < 1:
            timers.add(("heartbeat", hb_raw, uh_raw), host)
        elif uh is None or uh < 1:
            timers.add(("unhealthy", hb_raw, uh_raw), host)
        elif uh <= hb:
            timers.add(("order", hb_raw, uh_raw), host)
    for (what, hb_raw, uh_raw), hosts in timers.items():
        where = _names(hosts, webapps)
        if what == "heartbeat":
            problems.append("wabiz_heartbeat_interval is %s on %s: it must be a whole number of seconds, at least 1 "
                            "(the default is 5)." % (_shown(hb_raw), where))
        elif what == "unhealthy":
            problems.append("wabiz_unhealthy_interval is %s on %s: it must be a whole number of seconds, greater than "
                            "wabiz_heartbeat_interval (the default is 30)." % (_shown(uh_raw), where))
        else:
            problems.append(
                "wabiz_unhealthy_interval (%s s) must be greater than wabiz_heartbeat_interval (%s s) on %s: a master "
                "would declare a coreapp dead before it could answer one heartbeat. Raise wabiz_unhealthy_interval "
                "(the default is 30) or lower wabiz_heartbeat_interval (the default is 5)." % (uh_raw, hb_raw, where))

    no_server = [h for h in nodes if str(_setting(layouts[h], "wabiz_media_source")) == "nfs"
                 and _blank(_setting(layouts[h], "wabiz_media_nfs_server"))]
    if no_server and not nfs_hosts:
        problems.append(
            "wabiz_media_source is nfs on %s, but there is no NFS server: wabiz_media_nfs_server is empty and the "
            "group wabiz_nfs has no host. Add the NFS server to wabiz_nfs (site.yml sets it up) and set "
            "wabiz_media_nfs_server to its address, or set wabiz_media_nfs_server to an existing server, or use "
            "wabiz_media_source volume or bind." % _names(no_server, nodes))
    elif no_server:
        problems.append(
            "wabiz_media_source is nfs on %s, but wabiz_media_nfs_server is empty: set it to the address of the "
            "wabiz_nfs host (%s) that the node hosts reach." % (_names(no_server, nodes), ", ".join(sorted(nfs_hosts))))


def _check_database_hosts(layouts, problems, database_hosts):
    """The database must have a server of its own: no node on the same host or address."""
    if not database_hosts:
        return
    if isinstance(database_hosts, dict):
        addresses = dict((h, str(a or h)) for h, a in database_hosts.items())
    else:
        addresses = dict((h, h) for h in database_hosts)
    for db in sorted(addresses):
        if db in layouts:
            groups = ["wabiz_%s" % k for k in (layouts[db].get("kinds") or [])] or ["wabiz_nodes"]
            problems.append(
                "%s is in both wabiz_database and %s: the database must run on a server of its own, not on a "
                "cluster node (a node's load or failure would hit every node's database). Put the database on a "
                "host outside wabiz_nodes." % (db, " and ".join(groups)))
            continue
        sharing = sorted(h for h, lay in layouts.items() if (lay.get("address") or h) == addresses[db])
        if sharing:
            problems.append(
                "The database host %s has the address %s, like the node host(s) %s: the database must run on a "
                "server of its own. Put it on another machine (or fix its ansible_host)."
                % (db, addresses[db], ", ".join(sharing)))


def _check_account(account, problems):
    """The account the shard count is set for (POST /v1/account/shards needs cc and phone_number)."""
    cc, phone = str(account.get("cc") or "").strip(), str(account.get("phone_number") or "").strip()
    if not cc or not phone:
        problems.append("wabiz_account_cc and wabiz_account_phone_number must be set: the API sets the shard "
                        "count only with the account's country code and phone number (e.g. wabiz_account_cc: "
                        "\"1\", wabiz_account_phone_number: \"6505550100\").")
        return
    if not re.match(r"^[1-9][0-9]{0,2}$", cc):
        problems.append("wabiz_account_cc is %s: it must be the country calling code, 1 to 3 digits without "
                        "\"+\" (e.g. \"1\" or \"44\")." % _shown(account.get("cc")))
    if not re.match(r"^[0-9]{4,14}$", phone):
        problems.append("wabiz_account_phone_number is %s: it must be the number without the country code, "
                        "4 to 14 digits only." % _shown(account.get("phone_number")))


def layout_problems(layouts, shards, engine, idle_timeout=None, database_hosts=None, nfs_hosts=None,
                    dev_hosts=None, account=None):
    """Return one plain sentence per problem of the layout (empty list: sound)."""
    problems = []
    layouts = layouts or {}
    if not layouts:
        if dev_hosts:
            return problems  # the single-server layout: wabiz.cluster.dev_cluster checks its own settings
        return ["The inventory has no cluster node host: the groups wabiz_master, wabiz_coreapp, wabiz_webapp "
                "(children of wabiz_nodes) are empty or missing. Put the cluster's machines in them (see "
                "inventories/production.example), or a single host in wabiz_dev for the development layout; "
                "check that -i names the right inventory."]

    if account is not None:
        _check_account(account if isinstance(account, dict) else {}, problems)

    def hosts_of(kind):
        return sorted(h for h, lay in layouts.items() if kind in (lay.get("kinds") or []))

    def count(kind):
        return sum(max(_instances(layouts[h], kind), 0) for h in hosts_of(kind))

    masters, coreapps, webapps = hosts_of("master"), count("coreapp"), count("webapp")
    if len(masters) < 2:
        problems.append(
            "The cluster needs at least 2 masters on separate hosts, but the group wabiz_master has %d host(s): "
            "add a host to wabiz_master." % len(masters))
    crowded = [h for h in masters if _instances(layouts[h], "master") > 1]
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
    _check_instances(layouts, problems)
    raw_shards, shards = shards, _as_int(shards)  # 2.5, True or "2x" is no shard count: never rounded
    if shards not in VALID_SHARD_COUNTS:
        problems.append("wabiz_shards must be one of %s or %d, not %s." % (
            ", ".join(str(n) for n in VALID_SHARD_COUNTS[:-1]), VALID_SHARD_COUNTS[-1], _shown(raw_shards)))
    if coreapps < 2:
        problems.append(
            "The cluster needs at least 2 coreapps, but the inventory has %d: add hosts to wabiz_coreapp." % coreapps)
    elif shards in VALID_SHARD_COUNTS and coreapps < shards + 1:
        problems.append(
            "With %d shard(s) the cluster needs at least %d coreapps (shards + 1, so one can take over), but the "
            "inventory has %d: add coreapps or lower wabiz_shards." % (shards, shards + 1, coreapps))
    if webapps < 1:
        problems.append("The cluster has no webapp: add a host to wabiz_webapp (it serves the API on port 9090).")
    if engine not in ENGINES:
        problems.append("wabiz_db_engine is %s; it must be mysql or postgresql." % (_shown(engine),))
    elif engine == "postgresql" and idle_timeout not in (None, "", 0):
        problems.append(
            "wabiz_db_idle_timeout_ms is set, but WA_DB_CONNECTION_IDLE_TIMEOUT exists for MySQL only: "
            "remove it when wabiz_db_engine is postgresql.")
    _check_settings(layouts, problems, list(nfs_hosts or []))
    _check_database_hosts(layouts, problems, database_hosts)
    _check_ports(layouts, problems)
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
