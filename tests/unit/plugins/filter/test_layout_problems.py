# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The preflight's layout rules: each bad inventory gets its own plain sentence."""

from __future__ import annotations

import pytest
from ansible_collections.wabiz.cluster.plugins.filter.layout_problems import layout_problems, published_ports


def host(kinds, address, **instances):
    return {"kinds": kinds, "instances": instances, "base_port": 6250, "webapp_port": 9090, "address": address}


def good():
    return {
        "m1": host(["master"], "10.0.0.1"),
        "m2": host(["master"], "10.0.0.2"),
        "c1": host(["coreapp"], "10.0.0.3"),
        "c2": host(["coreapp"], "10.0.0.4"),
        "w1": host(["webapp"], "10.0.0.5"),
    }


def test_sound_layout_has_no_problem():
    assert layout_problems(good(), shards=1, engine="mysql") == []


@pytest.mark.parametrize("mutate, shards, engine, idle, expected", [
    (lambda lay: lay.pop("m2"), 1, "mysql", None, "at least 2 masters"),
    (lambda lay: lay["m1"]["instances"].update(master=2), 1, "mysql", None, "distinct hosts"),
    (lambda lay: lay["m2"].update(address="10.0.0.1"), 1, "mysql", None, "all have the address 10.0.0.1"),
    (lambda lay: lay.pop("c2"), 1, "mysql", None, "at least 2 coreapps"),
    (lambda lay: None, 2, "mysql", None, "With 2 shard(s) the cluster needs at least 3 coreapps"),
    (lambda lay: lay.pop("w1"), 1, "mysql", None, "no webapp"),
    (lambda lay: None, 1, "oracle", None, "must be mysql or postgresql"),
    (lambda lay: None, 1, "postgresql", 180000, "MySQL only"),
    (lambda lay: None, 3, "mysql", None, "wabiz_shards must be one of"),
    (lambda lay: lay["w1"].update(kinds=["webapp", "coreapp"], webapp_port=6252), 1, "mysql", None,
     "Port 6252 on 10.0.0.5 is published by coreapp 1 on w1 and webapp 1 on w1"),
])
def test_each_bad_layout_is_named(mutate, shards, engine, idle, expected):
    lay = good()
    mutate(lay)
    problems = layout_problems(lay, shards=shards, engine=engine, idle_timeout=idle)
    assert any(expected in p for p in problems), problems


def test_master_beside_coreapp_publishes_6254_to_6257():
    ports = dict(published_ports(host(["master", "coreapp"], "10.0.0.9")))
    assert [p for p, s in ports.items() if s == "coreapp 1"] == [6250, 6251, 6252, 6253]
    assert [p for p, s in ports.items() if s == "master 1"] == [6254, 6255, 6256, 6257]


def test_two_coreapps_on_one_host_get_their_own_ranges():
    ports = dict(published_ports(host(["coreapp"], "10.0.0.9", coreapp=2)))
    assert ports[6250] == "coreapp 1" and ports[6254] == "coreapp 2" and 6258 not in ports


def test_two_hosts_on_one_address_with_the_same_ports_clash():
    lay = good()
    lay["c2"]["address"] = "10.0.0.3"
    problems = layout_problems(lay, shards=1, engine="mysql")
    assert any("Port 6250 on 10.0.0.3" in p for p in problems), problems


def test_layouts_read_the_whole_inventory_with_defaults_for_unset_values():
    from ansible_collections.wabiz.cluster.plugins.filter.cluster_layouts import cluster_layouts

    groups = {"wabiz_nodes": ["m1", "c1"], "wabiz_master": ["m1"], "wabiz_coreapp": ["c1", "c2"],
              "wabiz_webapp": ["m1"]}
    hostvars = {"m1": {"ansible_host": "10.0.0.1"},
                "c1": {"testbed_address": "10.0.0.2", "wabiz_coreapp_instances": 2},
                "c2": {"wabiz_external_hostname": "c2.example", "wabiz_node_base_port": 7000}}
    defaults = {"wabiz_master_instances": 1, "wabiz_coreapp_instances": 1, "wabiz_webapp_instances": 1,
                "wabiz_node_base_port": 6250, "wabiz_webapp_port": 9090}
    lay = cluster_layouts(groups, hostvars, defaults)
    assert list(lay) == ["m1", "c1", "c2"]
    assert lay["m1"]["kinds"] == ["master", "webapp"] and lay["m1"]["address"] == "10.0.0.1"
    assert lay["c1"]["instances"]["coreapp"] == 2 and lay["c1"]["address"] == "10.0.0.2"
    assert lay["c2"]["base_port"] == 7000 and lay["c2"]["address"] == "c2.example"
    problems = layout_problems(lay, shards=1, engine="mysql")
    assert any("at least 2 masters" in p for p in problems)
