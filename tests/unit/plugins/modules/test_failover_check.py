"""failover_check: the health judgement (_health_judge) over answers shaped exactly as the public
contract shows them (HA mode, multiconnect, a node listed with the 1014 error), and the module run
in process against a contract webapp on a real local socket (first login 401/1024, a 500/1011
retried, a 429/1015 waited out and said, api_key alone)."""

from __future__ import annotations

import copy
import json

from ansible_collections.wabiz.cluster.plugins.module_utils import _health_judge as hj
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_api import (
    parse_health,
    parse_settings,
    parse_shard_count,
    parse_support,
)
from ansible_collections.wabiz.cluster.plugins.modules import failover_check
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils import contract_webapp as cw
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils.contract_webapp import C1, C2, C3, M1, M2

OPTS = {"min_masters": 2, "min_spares": 1, "expected_nodes": [], "heartbeat_threshold": 3}


class Api:
    base = "http://127.0.0.1:9"


def data_of(cluster, support=True, settings=None):
    """What collect() gives for a cluster of contract_webapp (the answers parsed by the real readers)."""
    web = cw.ContractWebapp.__new__(cw.ContractWebapp)
    web.cluster, web.with_support = cluster, support
    web.settings = settings or {"heartbeat_interval": 5, "unhealthy_interval": 30}
    auth = "Bearer " + cw.TOKEN
    health = parse_health(Api, web.answer("GET", "/v1/health", None, auth)[1])
    return {"health": health, "webapps": {}, "errors": {}, "db": None,
            "support": parse_support(Api, web.answer("GET", "/v1/support", None, auth)[1]) if support else None,
            "shard_count": parse_shard_count(Api, web.answer("GET", "/v1/account/shards", None, auth)[1])
            if support else None,
            "settings": parse_settings(Api, web.answer("GET", "/v1/settings/application", None, auth)[1])}


def test_ha_mode_healthy():
    r = hj.judge(data_of(cw.ha_cluster()), OPTS)
    assert r["healthy"] is True and r["findings"] == [], r["findings"]
    assert r["mode"] == "ha" and r["shard_count"] == 1 and r["primary_master"] == M1
    assert r["shards"] == [{"shard": 0, "owner": C1, "owners": [C1], "owner_status": "connected"}]
    assert r["spares"] == [C2, C3]
    by = {n["node"]: n for n in r["nodes"]}
    assert by[C1]["shards"] == [0] and by[C1]["socket_conn"] == "UP" and by[M1]["kind"] == "master"
    assert r["settings"] == {"heartbeat_interval": 5, "unhealthy_interval": 30}


def test_multiconnect_healthy():
    r = hj.judge(data_of(cw.multiconnect_cluster()), OPTS)
    assert r["healthy"] is True, r["findings"]
    assert r["mode"] == "multiconnect" and [s["owner"] for s in r["shards"]] == [C1, C2] and r["spares"] == [C3]


def test_ha_mode_allows_only_the_primary_coreapp_connected():
    c = cw.ha_cluster()
    c["health"][M1]["gateway_status"] = "connected"
    c["health"][C3]["gateway_status"] = "connected"
    r = hj.judge(data_of(c), OPTS)
    assert r["findings"] == [
        f"coreapp {C3} is connected, but in HA mode (1 shard) only the primary coreapp may be",
        f"primary_master {M1} is connected, but in HA mode (1 shard) only the primary coreapp may be"]


def test_multiconnect_needs_the_primary_master_connected():
    c = cw.multiconnect_cluster()
    c["health"][M1]["gateway_status"] = "disconnected"
    r = hj.judge(data_of(c), OPTS)
    assert r["findings"] == [f"the primary master {M1} is disconnected; with 2 shards it must be connected"]


def test_an_unreachable_owner_is_named_once_with_its_shard():
    c = cw.ha_cluster()
    c["health"][C1] = cw.unreachable(C1)
    r = hj.judge(data_of(c), OPTS)
    # the support view of an unreachable node holds its error too: the shard has no known owner
    assert r["findings"] == [f"node {C1} cannot be reached: code 1014, Internal error: Unable to reach the node. Please "
                             "check if wacore is running: coreapp1:6250", "shard 0 has no owner"]
    d = data_of(cw.ha_cluster())
    d["health"] = parse_health(Api, {"health": dict(cw.ha_cluster()["health"], **{C1: cw.unreachable(C1)})})
    r = hj.judge(d, OPTS)
    assert r["findings"] == [f"shard 0's owner {C1} cannot be reached: code 1014, Internal error: Unable to reach the "
                             "node. Please check if wacore is running: coreapp1:6250"]
    assert r["shards"][0]["owner_status"] == "unreachable"
    assert {n["node"]: n["status"] for n in r["nodes"]}[C1] == "unreachable"


def test_no_primary_master_and_too_few_masters():
    c = cw.ha_cluster()
    c["health"][M1] = cw.unreachable(M1)
    r = hj.judge(data_of(c), OPTS)
    assert r["primary_master"] is None
    assert "no primary master: no node answers /v1/health with the role primary_master" in r["findings"]
    assert f"only 1 master(s) answer ({M2}); HA needs 2 so that one can take over" in r["findings"]


def test_two_primaries():
    c = cw.ha_cluster()
    c["health"][M2]["role"] = "primary_master"
    assert f"2 masters answer as primary at once: {M1}, {M2}" in hj.judge(data_of(c), OPTS)["findings"]


def test_fewer_spares_than_min_spares():
    c = cw.ha_cluster()
    c["health"][C2] = cw.unreachable(C2)
    c["health"][C3] = cw.unreachable(C3)
    r = hj.judge(data_of(c), OPTS)
    assert ("fewer spare coreapps than min_spares: 0 spare(s) (need 1) for 1 shard(s) and 1 reachable coreapp(s); "
            "run shards + 1 coreapps") in r["findings"]
    assert hj.judge(data_of(cw.ha_cluster()), dict(OPTS, min_spares=3))["findings"][0].startswith(
        "fewer spare coreapps than min_spares: 2 spare(s) (need 3)")


def test_a_shard_without_owner_and_a_coreapp_with_two():
    c = cw.multiconnect_cluster()
    c["shards"][C2] = []
    c["shards"][C1] = [0, 1]
    r = hj.judge(data_of(c), OPTS)
    assert f"{C1} owns 2 shards (0, 1); each shard needs its own coreapp" in r["findings"]
    assert f"coreapp {C2} is connected but holds no shard" in r["findings"]
    c = cw.multiconnect_cluster()
    c["shards"][C2] = []
    assert "shard 1 has no owner" in hj.judge(data_of(c), OPTS)["findings"]


def test_an_owner_that_is_not_connected():
    c = cw.ha_cluster()
    c["health"][C1]["gateway_status"] = "connecting"
    assert hj.judge(data_of(c), OPTS)["findings"] == [
        f"shard 0's owner {C1} is not connected (gateway status connecting)"]


def test_expected_nodes_and_versions_and_settings():
    d = data_of(cw.ha_cluster(), settings={"heartbeat_interval": 30, "unhealthy_interval": 30})
    d["support"][C2]["version"] = "2.53.2"
    d["support"][C3]["version"] = "2.51.1"
    r = hj.judge(d, dict(OPTS, expected_nodes=[C1, "coreapp9:999999999999"]))
    assert r["findings"] == [
        "coreapp9:999999999999 is expected but not listed by /v1/health (not registered: stopped cleanly, or never "
        "started)",
        "unhealthy_interval (30 s) is not greater than heartbeat_interval (30 s): a coreapp may be declared dead "
        "before it could answer one heartbeat",
        f"nodes run different versions: 2.51.1 on {C3}; 2.53.2 on {C2}"]


def test_health_alone_takes_the_connected_coreapps_as_owners():
    r = hj.judge(data_of(cw.ha_cluster(), support=False), OPTS)
    assert r["healthy"] is True and r["owners_inferred"] is True and r["mode"] == "ha", r["findings"]
    r = hj.judge(data_of(cw.multiconnect_cluster(), support=False), OPTS)
    assert r["healthy"] is True and r["mode"] == "multiconnect" and r["shard_count"] == 2, r["findings"]
    c = cw.ha_cluster()
    c["health"][C1]["gateway_status"] = "disconnected"
    assert "no coreapp is connected: no shard is served" in hj.judge(data_of(c, support=False), OPTS)["findings"]


def test_webapps_that_disagree_or_do_not_answer():
    d = data_of(cw.ha_cluster())
    other = copy.deepcopy(d["health"])
    other[C1] = dict(other[C1], gateway_status="disconnected")
    d["webapps"] = {"http://w2:9090": {"ok": True, "health": other}, "http://w3:9090": {"ok": False, "error": "boom"}}
    r = hj.judge(d, OPTS)
    assert r["findings"] == [f"webapps disagree: http://w2:9090 sees {C1} as coreapp/disconnected (here "
                             "coreapp/connected)", "webapp http://w3:9090 does not answer /v1/health (boom)"]


def test_the_database_cross_check_compares_the_stand_in_with_the_api():
    d = data_of(cw.ha_cluster())
    d["db"] = {"lease": {"holder": M2, "epoch": 4, "expired": False},
               "shards": [{"shard": 0, "owner": C2, "active": True}],
               "nodes": [{"node_id": C1, "kind": "coreapp", "heartbeat_age": 0.5},
                         {"node_id": C3, "kind": "coreapp", "heartbeat_age": 7.25}]}
    r = hj.judge(d, OPTS)
    assert r["findings"] == [
        f"coreapp {C3}'s last database heartbeat is 7.2s old (threshold 3s)",
        f"shard 0: the database names {C2} as its owner, the API {C1}",
        f"the database's master lease names {M2} (epoch 4) but the API's primary master is {M1}"]
    assert {n["node"]: n["heartbeat_age"] for n in r["nodes"]}[C3] == 7.25


def test_table():
    r = hj.judge(data_of(cw.ha_cluster()), OPTS)
    lines = hj.table_lines(r)
    assert lines[0].split() == ["NODE", "ROLE", "STATUS", "SHARDS", "SOCKET"]
    assert f"mode: HA (1 shard), spares: {C2}, {C3}" in lines and lines[-1] == "healthy: yes"


# -- the module, in process, against the contract webapp ---------------------------------------------
def args(web, **kw):
    return dict({"api_url": web.url, "api_password": cw.PASSWORD}, **kw)


def test_module_healthy_over_the_api_alone(web, capsys):
    r = cw.run_module(failover_check, args(web), capsys)
    assert not r.get("failed") and r["healthy"] is True and r["changed"] is False, r
    assert r["sources"] == ["GET /v1/account/shards", "GET /v1/health", "GET /v1/settings/application",
                            "GET /v1/support"]
    assert r["shards"][0]["owner"] == C1 and r["notes"] == [] and "rate_limited" not in r
    assert "healthy: yes" in r["table_lines"]


def test_module_first_login_401_1024_changes_the_password(capsys):
    web = cw.ContractWebapp(must_change=True)
    try:
        r = cw.run_module(failover_check, {"api_url": web.url, "api_password": "secret"}, capsys)
        assert r["failed"] and r["failure_kind"] == "password_change_required" and "api_new_password" in r["msg"]
        r = cw.run_module(failover_check, {"api_url": web.url, "api_password": "secret",
                                           "api_new_password": cw.PASSWORD}, capsys)
        assert r["healthy"] is True and web.password == cw.PASSWORD, r
    finally:
        web.close()


def test_module_retries_500_1011_and_waits_out_429_1015(web, capsys):
    web.script["/v1/health"] = [(500, cw.NOT_READY), (429, cw.TOO_MANY, {"Retry-After": "0"})]
    r = cw.run_module(failover_check, args(web), capsys)
    assert r["healthy"] is True, r
    assert r["rate_limited"]["answers"] == 1 and r["rate_limited"]["calls"] == ["GET /v1/health"]
    assert "backed off 0.0 s in all" in json.dumps(r["warnings"]), r.get("warnings")
    assert web.paths().count("/v1/health") == 3


def test_module_fails_on_a_rate_limit_past_its_budget(web, capsys):
    web.script["/v1/health"] = [(429, cw.TOO_MANY)] * 5
    r = cw.run_module(failover_check, args(web, api_rate_limit_wait=0), capsys)
    assert r["failed"] and r["failure_kind"] == "rate_limited" and "too many requests" in r["msg"], r


def test_module_names_the_fault_and_fails_on_unhealthy(web, capsys):
    web.cluster["health"][C1] = cw.unreachable(C1)
    r = cw.run_module(failover_check, args(web), capsys)
    assert r["failed"] and r["healthy"] is False and "shard 0 has no owner" in r["findings"], r
    assert r["msg"].startswith("the cluster is not healthy: ")
    r = cw.run_module(failover_check, args(web, fail_on_unhealthy=False), capsys)
    assert not r.get("failed") and r["healthy"] is False


def test_module_with_the_api_key_alone_reads_health_only(web, capsys):
    r = cw.run_module(failover_check, {"api_url": web.url, "api_key": cw.API_KEY}, capsys)
    assert r["healthy"] is True and r["owners_inferred"] is True and r["sources"] == ["GET /v1/health"], r
    assert "api_key alone" in r["notes"][0] and set(web.paths()) == {"/v1/health"}


def test_module_db_options_are_not_used_without_the_cross_check(web, capsys, monkeypatch):
    def never(self):
        raise AssertionError("the database was contacted")

    monkeypatch.setattr(failover_check.ClusterDb, "connect", never)
    r = cw.run_module(failover_check, args(web, db_engine="mysql", db_user="wa", db_password="x"), capsys)
    assert r["healthy"] is True, r
    r = cw.run_module(failover_check, args(web, db_cross_check=True), capsys)
    assert r["failed"] and "db_engine" in r["msg"], "the cross-check needs the database named"


def test_module_other_webapps(web, capsys):
    other = cw.ContractWebapp()
    other.cluster["health"][C3] = cw.unreachable(C3)
    try:
        r = cw.run_module(failover_check, args(web, webapp_urls=[other.url], fail_on_unhealthy=False), capsys)
    finally:
        other.close()
    assert sorted(r["webapps"]) == sorted([web.url, other.url])
    assert any(f.startswith(f"webapps disagree: {other.url} sees {C3} as None/error") for f in r["findings"]), \
        r["findings"]
