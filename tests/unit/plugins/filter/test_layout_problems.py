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
                "c1": {"ansible_host": "c1.ssh", "wabiz_external_hostname": "10.0.0.2", "wabiz_coreapp_instances": 2},
                "c2": {"wabiz_external_hostname": "c2.example", "wabiz_node_base_port": 7000}}
    defaults = {"wabiz_master_instances": 1, "wabiz_coreapp_instances": 1, "wabiz_webapp_instances": 1,
                "wabiz_node_base_port": 6250, "wabiz_webapp_port": 9090}
    lay = cluster_layouts(groups, hostvars, defaults)
    assert list(lay) == ["m1", "c1", "c2"]
    assert lay["m1"]["kinds"] == ["master", "webapp"] and lay["m1"]["address"] == "10.0.0.1"
    assert lay["c1"]["instances"]["coreapp"] == 2 and lay["c1"]["address"] == "10.0.0.2"
    assert lay["c2"]["base_port"] == 7000 and lay["c2"]["address"] == "c2.example"
    # A name given nowhere else is the address: the inventory name.
    assert cluster_layouts({"wabiz_nodes": ["c3"]}, {"c3": {}}, defaults)["c3"]["address"] == "c3"
    problems = layout_problems(lay, shards=1, engine="mysql")
    assert any("at least 2 masters" in p for p in problems)


# -- what the preflight must not accept silently -----------------------------------------

SETTINGS = {"wabiz_db_host": "10.0.2.10", "wabiz_db_password": True, "wabiz_admin_password": True,
            "wabiz_heartbeat_interval": 5, "wabiz_unhealthy_interval": 30, "wabiz_media_source": "nfs",
            "wabiz_media_nfs_server": "10.0.2.20"}


def with_settings(**changes):
    lay = good()
    for h in lay.values():
        h["settings"] = dict(SETTINGS, **changes)
    return lay


def problems_of(lay, **kwargs):
    kwargs.setdefault("shards", 1)
    kwargs.setdefault("engine", "mysql")
    return layout_problems(lay, **kwargs)


def only(problems, *words):
    """The one problem that mentions every word (and fail when there is none or more)."""
    hits = [p for p in problems if all(w in p for w in words)]
    assert len(hits) == 1, problems
    return hits[0]


def test_sound_layout_with_settings_has_no_problem():
    assert problems_of(with_settings(), database_hosts={"db": "10.0.2.10"}, nfs_hosts=["nfs"]) == []


EMPTY_CASES = [(v, e) for v in ("wabiz_db_host", "wabiz_db_password", "wabiz_admin_password") for e in ("", "   ", None)]
EMPTY_CASES += [("wabiz_db_password", False), ("wabiz_admin_password", False)]


@pytest.mark.parametrize("var, empty", EMPTY_CASES)
def test_an_empty_secret_or_database_host_is_named(var, empty):
    problem = only(problems_of(with_settings(**{var: empty})), var, "is empty")
    assert "set it" in problem


def test_empty_database_settings_name_every_node_host_at_once():
    problem = only(problems_of(with_settings(wabiz_db_host="")), "wabiz_db_host")
    assert "every node host (c1, c2, m1, m2, w1)" in problem and "database server" in problem


def test_empty_database_password_on_one_host_names_that_host():
    lay = with_settings()
    lay["c2"]["settings"]["wabiz_db_password"] = False
    problem = only(problems_of(lay), "wabiz_db_password")
    assert "empty on c2;" in problem and "ansible-vault" in problem


def test_admin_password_is_judged_on_the_webapps_only():
    lay = with_settings()
    lay["m1"]["settings"]["wabiz_admin_password"] = False  # only the webapps' value is used
    assert problems_of(lay) == []
    lay["w1"]["settings"]["wabiz_admin_password"] = False
    assert "wabiz_admin_password is empty on w1" in only(problems_of(lay), "wabiz_admin_password")


def test_a_secret_value_never_appears_in_a_message():
    lay = with_settings(wabiz_unhealthy_interval=1)
    for h in lay.values():
        h["settings"]["wabiz_db_password"] = "hunter2-secret"
    assert not any("hunter2" in p for p in problems_of(lay))


@pytest.mark.parametrize("kind", ["master", "coreapp", "webapp"])
@pytest.mark.parametrize("value", [0, -1, "two"])
def test_zero_or_bad_instances_are_named(kind, value):
    lay = good()
    for h in lay.values():
        h["instances"][kind] = value
    problem = only(problems_of(lay), f"wabiz_{kind}_instances is {value!r}")
    assert f"at least one {kind} container" in problem and f"set wabiz_{kind}_instances to" in problem


def test_master_instances_zero_on_every_master():
    lay = good()
    lay["m1"]["instances"]["master"] = lay["m2"]["instances"]["master"] = 0
    problem = only(problems_of(lay), "wabiz_master_instances is 0")
    assert "every master host (m1, m2)" in problem and "set wabiz_master_instances to 1" in problem


@pytest.mark.parametrize("host, var, value, expected", [
    ("c1", "base_port", 70000,
     "wabiz_node_base_port is 70000 on c1, but the 1 coreapp container there (4 ports each) "
     "would publish up to port 70003, beyond 65535: set wabiz_node_base_port to at most 65532"),
    ("c1", "base_port", 65534, "up to port 65537, beyond 65535: set wabiz_node_base_port to at most 65532"),
    ("c1", "base_port", 65533, "up to port 65536"),
    ("c1", "base_port", 0, "wabiz_node_base_port is 0 on c1: a port must be from 1 to 65535"),
    ("c1", "base_port", "6250x", "wabiz_node_base_port is '6250x' on c1: it must be a port number"),
    ("w1", "webapp_port", 70000, "wabiz_webapp_port is 70000 on w1, but the 1 webapp container there (one port each) "
                                 "would publish up to port 70000, beyond 65535: set wabiz_webapp_port to at most 65535"),
    ("w1", "webapp_port", -5, "wabiz_webapp_port is -5 on w1: a port must be from 1 to 65535"),
])
def test_ports_out_of_range_are_named(host, var, value, expected):
    lay = good()
    lay[host][var] = value
    assert any(expected in p for p in problems_of(lay)), problems_of(lay)


def test_the_highest_ports_that_fit_are_sound():
    lay = good()
    lay["c1"]["base_port"] = 65532  # 65532..65535
    lay["w1"]["webapp_port"] = 65535
    assert problems_of(lay) == []


def test_the_last_block_of_several_containers_must_fit():
    lay = good()
    lay["c1"].update(kinds=["coreapp", "master"], base_port=65524)
    lay["c1"]["instances"]["coreapp"] = 2  # 3 blocks: 65524..65535 fits
    lay["c1"]["address"] = "10.0.0.9"
    assert not any("wabiz_node_base_port" in p for p in problems_of(lay))
    lay["c1"]["base_port"] = 65525
    problem = only(problems_of(lay), "wabiz_node_base_port is 65525")
    assert "2 coreapp and 1 master containers" in problem and "at most 65524" in problem
    lay["w1"]["instances"]["webapp"] = 3
    lay["w1"]["webapp_port"] = 65534
    assert "set wabiz_webapp_port to at most 65533" in only(problems_of(lay), "wabiz_webapp_port is 65534")


@pytest.mark.parametrize("hb, uh, expected", [
    (30, 30, "wabiz_unhealthy_interval (30 s) must be greater than wabiz_heartbeat_interval (30 s) on w1"),
    (10, 5, "wabiz_unhealthy_interval (5 s) must be greater than wabiz_heartbeat_interval (10 s)"),
    (0, 30, "wabiz_heartbeat_interval is 0 on w1: it must be a whole number of seconds, at least 1"),
    ("soon", 30, "wabiz_heartbeat_interval is 'soon'"),
    (5, "", "wabiz_unhealthy_interval is '' on w1"),
])
def test_unhealthy_interval_must_exceed_the_heartbeat(hb, uh, expected):
    problems = problems_of(with_settings(wabiz_heartbeat_interval=hb, wabiz_unhealthy_interval=uh))
    assert len([p for p in problems if "interval" in p]) == 1, problems
    assert any(expected in p for p in problems), problems


def test_timers_just_apart_are_sound():
    assert problems_of(with_settings(wabiz_heartbeat_interval=5, wabiz_unhealthy_interval=6)) == []
    assert problems_of(with_settings(wabiz_heartbeat_interval="5", wabiz_unhealthy_interval="6")) == []


def test_nfs_media_without_any_server_is_named():
    problem = only(problems_of(with_settings(wabiz_media_nfs_server="")), "wabiz_media_source is nfs")
    assert "wabiz_media_nfs_server is empty and the group wabiz_nfs has no host" in problem
    assert "every node host" in problem


def test_nfs_media_with_a_wabiz_nfs_host_still_needs_the_server_variable():
    # the node role mounts wabiz_media_nfs_server:export; the group alone does not fill it in
    problem = only(problems_of(with_settings(wabiz_media_nfs_server=""), nfs_hosts=["nfs1"]),
                   "wabiz_media_nfs_server is empty")
    assert "wabiz_nfs host (nfs1)" in problem


def test_nfs_media_with_an_outside_server_and_no_nfs_host_is_sound():
    assert problems_of(with_settings(), nfs_hosts=[]) == []


def test_other_media_sources_need_no_server():
    assert problems_of(with_settings(wabiz_media_source="bind", wabiz_media_nfs_server="")) == []


@pytest.mark.parametrize("db", ["c1", "m1", "w1"])
def test_the_database_on_a_node_host_is_refused(db):
    problem = only(problems_of(good(), database_hosts=[db]), "is in both wabiz_database")
    assert problem.startswith(f"{db} is in both wabiz_database and wabiz_") and "server of its own" in problem


def test_the_database_on_a_node_address_is_refused():
    problem = only(problems_of(good(), database_hosts={"db": "10.0.0.3"}), "database host db")
    assert "has the address 10.0.0.3, like the node host(s) c1" in problem


def test_the_database_on_its_own_server_is_sound():
    assert problems_of(good(), database_hosts={"db": "10.0.2.10"}) == []
    assert problems_of(good(), database_hosts=["db"]) == []


def test_an_inventory_without_node_hosts_is_refused_in_one_sentence():
    for empty in ({}, None):
        problems = problems_of(empty)
        assert len(problems) == 1 and "no cluster node host" in problems[0] and "wabiz_dev" in problems[0]


def test_a_development_inventory_without_node_hosts_is_sound():
    assert problems_of({}, dev_hosts=["localhost"]) == []


def test_cluster_layouts_carries_settings_and_secrets_only_as_whether_set():
    from ansible_collections.wabiz.cluster.plugins.filter.cluster_layouts import cluster_layouts

    groups = {"wabiz_master": ["m1"], "wabiz_webapp": ["w1"]}
    hostvars = {"m1": {"wabiz_db_password": "s3cret", "wabiz_node_base_port": "65534x"},
                "w1": {"wabiz_db_host": "db.example", "wabiz_admin_password": "  ", "wabiz_webapp_instances": "0"}}
    defaults = {"wabiz_master_instances": 1, "wabiz_coreapp_instances": 1, "wabiz_webapp_instances": 1,
                "wabiz_node_base_port": 6250, "wabiz_webapp_port": 9090, "wabiz_db_host": "",
                "wabiz_db_password": False, "wabiz_admin_password": True, "wabiz_heartbeat_interval": 5}
    lay = cluster_layouts(groups, hostvars, defaults)
    assert lay["m1"]["settings"] == {"wabiz_db_host": "", "wabiz_db_password": True, "wabiz_admin_password": True,
                                     "wabiz_heartbeat_interval": 5}
    assert lay["w1"]["settings"]["wabiz_db_password"] is False and lay["w1"]["settings"]["wabiz_admin_password"] is False
    assert "s3cret" not in repr(lay)
    assert lay["m1"]["base_port"] == "65534x" and lay["w1"]["instances"]["webapp"] == 0
    problems = layout_problems(lay, shards=1, engine="mysql")
    assert any("wabiz_node_base_port is '65534x' on m1" in p for p in problems), problems
    assert any("wabiz_webapp_instances is 0 on w1" in p for p in problems), problems
    assert any(p.startswith("wabiz_db_host is empty on m1;") for p in problems), problems
    assert any("wabiz_admin_password is empty on w1" in p for p in problems), problems
    # without settings in the defaults, no settings are read (older callers)
    old = {k: defaults[k] for k in list(defaults)[:5]}
    assert all("settings" not in h for h in cluster_layouts(groups, hostvars, old).values())


def test_host_address_prefers_the_cluster_address_then_the_ssh_address_then_the_name():
    from ansible_collections.wabiz.cluster.plugins.filter.host_address import host_address

    hostvars = {"a": {"wabiz_external_hostname": "10.0.0.1", "ansible_host": "a.ssh"}, "b": {"ansible_host": "b.ssh"},
                "c": {"wabiz_external_hostname": "  ", "ansible_host": None}}
    assert [host_address(h, hostvars) for h in ("a", "b", "c")] == ["10.0.0.1", "b.ssh", "c"]
    assert host_address("10.0.0.9", hostvars) == "10.0.0.9"  # not an inventory host: itself


# -- huge counts, values that are no whole number -----------------------------------------------

@pytest.mark.parametrize("kind, value", [("coreapp", 1497299), ("coreapp", 9223372036854775808), ("coreapp", 65),
                                         ("webapp", 1497299), ("webapp", 9223372036854775808), ("webapp", 65)])
def test_more_containers_than_a_host_may_run_are_one_sentence_and_no_port_list(kind, value, monkeypatch):
    from ansible_collections.wabiz.cluster.plugins.filter import layout_problems as mod

    lay = good()
    for h in lay.values():
        h["instances"][kind] = value

    def bounded_range(*args):
        if max(args) > 1000:
            pytest.fail(f"ports enumerated: range{args!r}")
        return range(*args)

    monkeypatch.setattr(mod, "range", bounded_range, raising=False)  # the module's range() calls are watched
    problems = problems_of(lay)
    problem = only(problems, f"wabiz_{kind}_instances is {value}")
    assert f"at most {mod.MAX_INSTANCES} {kind} containers" in problem and f"1 to {mod.MAX_INSTANCES}" in problem
    assert len(problems) == 1, problems
    assert published_ports(lay["c1" if kind == "coreapp" else "w1"]) == []


def test_a_huge_master_count_is_the_one_master_rule_and_no_port_list():
    lay = good()
    lay["m1"]["instances"]["master"] = 2147483647
    problems = problems_of(lay)
    assert len(problems) == 1 and "m1 run(s) more than one master" in problems[0], problems
    assert published_ports(lay["m1"]) == []


def test_the_most_containers_a_host_may_run_are_sound():
    from ansible_collections.wabiz.cluster.plugins.filter.layout_problems import MAX_INSTANCES

    lay = good()
    lay["c1"]["instances"]["coreapp"] = lay["w1"]["instances"]["webapp"] = MAX_INSTANCES
    assert problems_of(lay) == []
    assert len(published_ports(lay["c1"])) == 4 * MAX_INSTANCES


def test_a_coreapp_over_the_limit_beside_a_master_publishes_nothing_after_it():
    lay = good()
    lay["m1"].update(kinds=["master", "coreapp"])
    lay["m1"]["instances"]["coreapp"] = 10 ** 6
    assert published_ports(lay["m1"]) == []
    assert not any("wabiz_node_base_port" in p for p in problems_of(lay))


@pytest.mark.parametrize("where, key, value, words", [
    ("c1", "base_port", {}, "wabiz_node_base_port is {} on c1: it must be a port number"),
    ("c1", "base_port", [], "wabiz_node_base_port is [] on c1: it must be a port number"),
    ("c1", "base_port", [6250], "wabiz_node_base_port is [6250] on c1: it must be a port number"),
    ("w1", "webapp_port", [], "wabiz_webapp_port is [] on w1: it must be a port number"),
    ("w1", "webapp_port", {"a": 1}, "wabiz_webapp_port is {'a': 1} on w1: it must be a port number"),
    ("w1", "webapp_port", 9090.5, "wabiz_webapp_port is 9090.5 on w1: it must be a port number"),
    ("w1", "webapp_port", True, "wabiz_webapp_port is True on w1: it must be a port number"),
    ("c1", "base_port", 1e300, "wabiz_node_base_port is 1e+300 on c1: it must be a port number"),
    ("c1", "base_port", float("inf"), "wabiz_node_base_port is inf on c1: it must be a port number"),
    ("c1", "base_port", "x" * 500, "wabiz_node_base_port is '" + "x" * 59 + "... on c1"),
])
def test_a_port_that_is_no_whole_number_is_named_never_raised(where, key, value, words):
    lay = good()
    lay[where][key] = value
    assert only(problems_of(lay), words)


@pytest.mark.parametrize("kind", ["master", "coreapp", "webapp"])
@pytest.mark.parametrize("value", [{}, [], [1], {"a": 1}, 1.5, True])
def test_instances_that_are_no_whole_number_are_named_never_raised(kind, value):
    lay = good()
    for h in lay.values():
        h["instances"][kind] = value
    problem = only(problems_of(lay), f"wabiz_{kind}_instances is {value!r}")
    assert f"at least one {kind} container" in problem


def test_unhashable_values_on_several_hosts_are_grouped_in_one_sentence():
    lay = good()
    lay["c1"]["base_port"] = lay["c2"]["base_port"] = {}
    lay["m1"]["base_port"] = []
    problems = problems_of(lay)
    assert "wabiz_node_base_port is {} on c1 and c2:" in only(problems, "wabiz_node_base_port is {}")
    assert "wabiz_node_base_port is [] on m1:" in only(problems, "wabiz_node_base_port is []")


@pytest.mark.parametrize("hb, uh, expected", [
    ([], 30, "wabiz_heartbeat_interval is [] on w1: it must be a whole number of seconds"),
    ({}, 30, "wabiz_heartbeat_interval is {} on w1: it must be a whole number of seconds"),
    (1.5, 30, "wabiz_heartbeat_interval is 1.5 on w1"),
    (5, [], "wabiz_unhealthy_interval is [] on w1: it must be a whole number of seconds"),
    (5, {"a": 1}, "wabiz_unhealthy_interval is {'a': 1} on w1"),
])
def test_intervals_that_are_no_whole_number_are_named_never_raised(hb, uh, expected):
    problems = problems_of(with_settings(wabiz_heartbeat_interval=hb, wabiz_unhealthy_interval=uh))
    assert len([p for p in problems if "interval" in p]) == 1, problems
    assert any(expected in p for p in problems), problems


@pytest.mark.parametrize("shards, shown", [(2.5, "2.5"), (1.5, "1.5"), (True, "True"), (False, "False"),
                                           ("2x", "'2x'"), ("2.5", "'2.5'"), ("", "''"), (None, "None"),
                                           ([], "[]"), ({}, "{}"), ([2], "[2]"), (float("nan"), "nan")])
def test_a_shard_count_that_is_no_whole_number_is_named_not_rounded(shards, shown):
    problem = only(problems_of(good(), shards=shards), "wabiz_shards must be one of")
    assert problem.endswith(f"not {shown}."), problem


@pytest.mark.parametrize("shards", [1, "1", " 1 ", 1.0])
def test_a_whole_shard_count_in_any_spelling_is_sound(shards):
    assert problems_of(good(), shards=shards) == []


def test_cluster_layouts_keeps_what_is_no_whole_number_for_layout_problems_to_name():
    from ansible_collections.wabiz.cluster.plugins.filter.cluster_layouts import cluster_layouts

    groups = {"wabiz_coreapp": ["c1"], "wabiz_webapp": ["c1"]}
    hostvars = {"c1": {"wabiz_coreapp_instances": 1.5, "wabiz_webapp_instances": [], "wabiz_node_base_port": {},
                       "wabiz_webapp_port": float("inf")}}
    defaults = {"wabiz_master_instances": 2.0, "wabiz_coreapp_instances": 1, "wabiz_webapp_instances": 1,
                "wabiz_node_base_port": 6250, "wabiz_webapp_port": 9090}
    lay = cluster_layouts(groups, hostvars, defaults)["c1"]
    assert lay["instances"] == {"master": 2, "coreapp": 1.5, "webapp": []}
    assert lay["base_port"] == {} and lay["webapp_port"] == float("inf")
    problems = layout_problems({"c1": lay}, shards=1, engine="mysql")
    assert any("wabiz_coreapp_instances is 1.5 on c1" in p for p in problems), problems
    assert any("wabiz_webapp_instances is [] on c1" in p for p in problems), problems


def test_an_admin_password_that_breaks_the_api_rules_is_named_with_the_rules():
    lay = with_settings()
    lay["w1"]["settings"]["wabiz_admin_password_problems"] = ["it has no digit", "it has no special character"]
    lay["m1"]["settings"]["wabiz_admin_password_problems"] = ["it has no digit"]  # not a webapp: not judged
    problem = only(problems_of(lay), "wabiz_admin_password")
    assert "on w1 breaks the API's password rules (it has no digit; it has no special character)" in problem
    assert "400 / 1009" in problem and "8 to 64 characters" in problem


def test_cluster_layouts_carries_the_broken_rules_never_the_password():
    from ansible_collections.wabiz.cluster.plugins.filter.cluster_layouts import cluster_layouts

    groups = {"wabiz_webapp": ["w1", "w2"]}
    hostvars = {"w1": {"wabiz_admin_password": "weakpassword"}, "w2": {"wabiz_admin_password": "Str0ng-enough"}}
    defaults = {"wabiz_master_instances": 1, "wabiz_coreapp_instances": 1, "wabiz_webapp_instances": 1,
                "wabiz_node_base_port": 6250, "wabiz_webapp_port": 9090, "wabiz_admin_password": True}
    out = cluster_layouts(groups, hostvars, defaults)
    assert out["w1"]["settings"]["wabiz_admin_password"] is True
    assert out["w1"]["settings"]["wabiz_admin_password_problems"] == ["it has no upper-case letter", "it has no digit",
                                                                      "it has no special character"]
    assert out["w2"]["settings"]["wabiz_admin_password_problems"] == []
    assert "weakpassword" not in repr(out)


@pytest.mark.parametrize("account, expected", [
    ({}, "wabiz_account_cc and wabiz_account_phone_number must be set"),
    ({"cc": "1"}, "wabiz_account_cc and wabiz_account_phone_number must be set"),
    ({"cc": "+1", "phone_number": "6505550100"}, "wabiz_account_cc is '+1'"),
    ({"cc": "1234", "phone_number": "6505550100"}, "wabiz_account_cc is '1234'"),
    ({"cc": "1", "phone_number": "650-555"}, "wabiz_account_phone_number is '650-555'"),
    ({"cc": "1", "phone_number": "123"}, "wabiz_account_phone_number is '123'"),
    ("not a mapping", "wabiz_account_cc and wabiz_account_phone_number must be set"),
])
def test_the_account_needs_a_country_code_and_a_phone_number_of_digits(account, expected):
    assert expected in only(problems_of(with_settings(), account=account), "wabiz_account")


def test_a_sound_account_and_no_account_are_not_problems():
    assert problems_of(with_settings(), account={"cc": "44", "phone_number": "7700900123"}) == []
    assert problems_of(with_settings()) == []
