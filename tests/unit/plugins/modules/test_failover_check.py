"""failover_check's judgement: from one collected report (DB rows, probes, webapp answers) to
``healthy`` and the findings, one plain sentence per fault; and the table."""

from __future__ import annotations

import copy

import pytest
from ansible_collections.wabiz.cluster.plugins.modules import failover_check as fc

OPTS = {"heartbeat_threshold": 3, "min_masters": 2, "min_spares": 1, "expected_nodes": [], "probe_timeout": 2}


def node(nid, kind, hb=0.5, version="2.53.2", port=None):
    healthcheck = port or (6253 if kind != "webapp" else None)
    return {"node_id": nid, "kind": kind, "host": "10.0.0.1", "healthcheck_port": healthcheck,
            "messaging_port": 9090 if kind == "webapp" else 6250, "version": version, "role": None,
            "heartbeat_age": hb}


def probe(nid, role, gw):
    return {"ok": True, "node_id": nid, "role": role, "gateway_status": gw, "error": None}


HEALTH = {"m1": {"role": "primary_master", "gateway_status": "connected"},
          "m2": {"role": "secondary_master", "gateway_status": "disconnected"},
          "c1": {"role": "coreapp", "gateway_status": "connected"},
          "c2": {"role": "coreapp", "gateway_status": "disconnected"}}


def healthy_data():
    return {
        "lease": {"holder": "m1", "epoch": 4, "expired": False, "seconds_left": 20.0},
        "shards": [{"shard": 0, "owner": "c1", "epoch": 3}],
        "nodes": [node("m1", "master"), node("m2", "master"), node("c1", "coreapp"), node("c2", "coreapp"),
                  node("w1", "webapp")],
        "settings": {"heartbeat_interval": 1, "unhealthy_interval": 4},
        "observations": [{"master": "m1", "node_id": "c1", "ok_age": 0.5},
                         {"master": "m2", "node_id": "c2", "ok_age": 0.7}],
        "probes": {"m1": probe("m1", "primary_master", "connected"), "m2": probe("m2", "secondary_master", "disconnected"),
                   "c1": probe("c1", "coreapp", "connected"), "c2": probe("c2", "coreapp", "disconnected")},
        "webapps": {"https://10.0.0.1:9090": {"ok": True, "health": copy.deepcopy(HEALTH)}},
        "api_url": "https://10.0.0.1:9090",
    }


def down(data, nid, error="Connection refused"):
    data["probes"][nid] = {"ok": False, "node_id": None, "role": None, "gateway_status": None, "error": error}
    return data


def test_healthy_cluster():
    r = fc.judge(healthy_data(), OPTS)
    assert r["healthy"] is True and r["findings"] == []
    assert r["primary_master"] == "m1" and r["spares"] == ["c2"]
    assert r["shards"] == [{"shard": 0, "owner": "c1", "epoch": 3, "owner_status": "connected",
                            "owner_heartbeat_age": 0.5}]
    assert {n["node"]: n["status"] for n in r["nodes"]} == {"m1": "connected", "m2": "disconnected",
                                                            "c1": "connected", "c2": "disconnected", "w1": "serving"}


def test_primary_coreapp_stopped():
    d = down(healthy_data(), "c1")
    d["nodes"][2]["heartbeat_age"] = 1.2
    del d["webapps"]["https://10.0.0.1:9090"]["health"]["c1"]["gateway_status"]
    d["webapps"]["https://10.0.0.1:9090"]["health"]["c1"]["errors"] = [{"code": 1011}]
    r = fc.judge(d, OPTS)
    assert r["findings"] == ["shard 0's owner c1 does not answer on its healthcheck port 10.0.0.1:6253 (Connection "
                             "refused); its last database heartbeat was 1.2s ago"]
    assert r["shards"][0]["owner_status"] == "unreachable"


def test_owner_unregistered_after_a_clean_stop():
    d = healthy_data()
    d["nodes"] = [n for n in d["nodes"] if n["node_id"] != "c1"]
    del d["probes"]["c1"]
    del d["webapps"]["https://10.0.0.1:9090"]["health"]["c1"]
    r = fc.judge(d, OPTS)
    assert "shard 0's owner c1 is not registered in the database (stopped, or removed)" in r["findings"]
    assert r["spares"] == ["c2"] and r["shards"][0]["owner_status"] == "unregistered"


def test_secondary_master_stopped():
    r = fc.judge(down(healthy_data(), "m2"), OPTS)
    assert r["findings"] == [
        "master m2 does not answer on its healthcheck port 10.0.0.1:6253 (Connection refused); its last database "
        "heartbeat was 0.5s ago",
        "only 1 master(s) answer (m1); HA needs 2 so that one can take over"]


def test_no_primary_and_expired_lease():
    d = down(healthy_data(), "m1")
    d["lease"] = {"holder": "m1", "epoch": 4, "expired": True}
    r = fc.judge(d, OPTS)
    assert "no primary master: the master lease is free or expired (last holder m1, epoch 4)" in r["findings"]
    assert r["primary_master"] is None


def test_two_primaries_and_lease_mismatch():
    d = healthy_data()
    d["probes"]["m2"] = probe("m2", "primary_master", "connected")
    r = fc.judge(d, OPTS)
    assert "2 masters answer as primary at once: m1, m2" in r["findings"]
    d = healthy_data()
    d["lease"]["holder"] = "m2"
    assert "m1 answers as primary but the lease names m2 (epoch 4)" in fc.judge(d, OPTS)["findings"]


def test_stale_heartbeat_of_a_node_that_still_answers():
    d = healthy_data()
    d["nodes"][3]["heartbeat_age"] = 7.25
    r = fc.judge(d, OPTS)
    assert r["findings"] == ["coreapp c2's last database heartbeat is 7.2s old (threshold 3s)",
                             "no spare coreapp for failover: 1 shard(s), 2 coreapp(s) answer, 0 spare(s) (need 1); "
                             "run shards + 1 coreapps"]


def test_masters_lost_heartbeat_answers_of_a_coreapp():
    d = healthy_data()
    d["observations"][1]["ok_age"] = 9.0
    assert fc.judge(d, OPTS)["findings"] == [
        "no master has had a heartbeat answer from coreapp c2 for 9.0s (unhealthy_interval 4s)"]


def test_owner_not_serving_and_connected_non_owner():
    d = healthy_data()
    d["probes"]["c1"] = probe("c1", "coreapp", "connecting")
    d["probes"]["c2"] = probe("c2", "coreapp", "connected")
    d["webapps"]["https://10.0.0.1:9090"]["health"]["c1"]["gateway_status"] = "connecting"
    d["webapps"]["https://10.0.0.1:9090"]["health"]["c2"]["gateway_status"] = "connected"
    r = fc.judge(d, OPTS)
    assert "shard 0's owner c1 is not serving: its gateway status is connecting" in r["findings"]
    assert "coreapp c2 answers as connected but owns no shard in the database" in r["findings"]


def test_shard_without_owner_and_owner_of_two_shards():
    d = healthy_data()
    d["shards"] = [{"shard": 0, "owner": "c1", "epoch": 3}, {"shard": 1, "owner": None, "epoch": 2},
                   {"shard": 2, "owner": "c1", "epoch": 1}]
    r = fc.judge(d, OPTS)
    assert "shard 1 has no owner" in r["findings"]
    assert "c1 owns 2 shards (0, 2); each shard needs its own coreapp" in r["findings"]


def test_webapps_disagree_and_one_is_down():
    d = healthy_data()
    other = copy.deepcopy(HEALTH)
    other["c1"]["gateway_status"] = "connecting"
    d["webapps"]["https://w2:9090"] = {"ok": True, "health": other}
    d["webapps"]["https://w3:9090"] = {"ok": False, "error": "connection refused"}
    r = fc.judge(d, OPTS)
    assert ("webapps disagree: https://10.0.0.1:9090 and https://w2:9090 see c1 differently (c1: coreapp/connected vs "
            "coreapp/connecting)") in r["findings"]
    assert "webapp https://w3:9090 does not answer /v1/health (connection refused)" in r["findings"]


def test_registered_webapp_that_does_not_answer():
    d = healthy_data()
    d["nodes"].append(dict(node("w2", "webapp"), host="10.0.0.2"))
    d["webapps"]["https://10.0.0.2:9090"] = {"ok": False, "error": "timed out"}
    r = fc.judge(d, OPTS)
    assert r["findings"] == ["webapp https://10.0.0.2:9090 does not answer /v1/health (timed out)"]
    statuses = {n["node"]: n["status"] for n in r["nodes"] if n["kind"] == "webapp"}
    assert statuses == {"w1": "serving", "w2": "unreachable"}


def test_api_and_probe_disagree():
    d = healthy_data()
    d["webapps"]["https://10.0.0.1:9090"]["health"]["m2"]["role"] = "primary_master"
    r = fc.judge(d, OPTS)
    assert ("the API reports m2 as primary_master/disconnected but its healthcheck port says "
            "secondary_master/disconnected") in r["findings"]


def test_versions_differ_and_expected_node_missing():
    d = healthy_data()
    d["nodes"][1]["version"] = "2.53.1"
    r = fc.judge(d, dict(OPTS, expected_nodes=["m1", "m2", "m3"]))
    assert "nodes run different versions: 2.53.1 on m2; 2.53.2 on c1, c2, m1, w1" in r["findings"]
    assert "m3 is expected but not registered in the database (stopped cleanly, or never started)" in r["findings"]
    assert {"node": "m3", "status": "missing"}.items() <= next(n for n in r["nodes"] if n["node"] == "m3").items()


def test_a_port_answered_by_another_node_does_not_count():
    d = healthy_data()
    d["probes"]["c2"] = probe("c9", "coreapp", "disconnected")
    r = fc.judge(d, OPTS)
    assert any(f.startswith("coreapp c2 does not answer on its healthcheck port 10.0.0.1:6253 (another node (c9) "
                            "answers there)") for f in r["findings"])


@pytest.mark.parametrize("healthy", [True, False])
def test_table(healthy):
    d = healthy_data() if healthy else down(healthy_data(), "c1")
    lines = fc.table_lines(fc.judge(d, OPTS))
    assert lines[0].split() == ["NODE", "KIND", "ROLE", "STATUS", "VERSION", "HEARTBEAT", "HEALTHCHECK"]
    assert lines[1].split() == ["m1", "master", "primary_master", "connected", "2.53.2", "0.5s", "10.0.0.1:6253"]
    assert "lease: m1 (epoch 4)" in lines
    assert ("healthy: yes" in lines) is healthy
    shard_line = next(line for line in lines if line.startswith("0 "))
    assert shard_line.split()[:4] == ["0", "c1", "3", "connected" if healthy else "unreachable"]
