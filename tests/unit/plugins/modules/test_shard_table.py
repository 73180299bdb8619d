"""shard_table's plan: what a shard count or a planned move would do, and every refusal."""

from __future__ import annotations

import pytest
from ansible_collections.wabiz.cluster.plugins.modules import shard_table as st


def state(owners, coreapps, down=(), stale=()):
    """owners: {shard: owner}; coreapps: names; down: names not answering; stale: old heartbeat."""
    shards = [{"shard": s, "owner": o, "epoch": 3, "active": True} for s, o in sorted(owners.items())]
    nodes = [{"node_id": n, "host": "10.0.0.1", "healthcheck_port": 6253, "control_port": 6252,
              "heartbeat_age": 99.0 if n in stale else 0.4} for n in coreapps]
    probes = {}
    for n in coreapps:
        if n in down:
            probes[n] = {"ok": False, "error": "refused"}
        else:
            probes[n] = {"ok": True, "node_id": n, "role": "coreapp",
                         "gateway_status": "connected" if n in owners.values() else "disconnected"}
    return {"shards": shards, "coreapps": nodes, "probes": probes, "lease": {"holder": "m1", "epoch": 2}}


def plan_of(s, shards=None, move=None, to=None, min_spares=1):
    m, c = st.summarize(s, 3)
    return [p[2] for p in st.compute_plan(m, c, shards, move, to, min_spares)]


def test_summarize_marks_health_and_ownership():
    m, c = st.summarize(state({0: "c1"}, ["c1", "c2", "c3"], down=["c3"]), 3)
    assert m == [{"shard": 0, "owner": "c1", "epoch": 3, "owner_status": "connected", "owner_heartbeat_age": 0.4}]
    assert [(x["node"], x["healthy"], x["status"], x["shards"]) for x in c] == [
        ("c1", True, "connected", [0]), ("c2", True, "disconnected", []), ("c3", False, "unreachable", [])]


def test_shard_count_plan_and_no_op():
    s = state({0: "c1"}, ["c1", "c2", "c3"])
    assert plan_of(s, shards=2) == ["set the shard count from 1 to 2"]
    assert plan_of(s, shards=1) == []
    assert plan_of(s) == []


@pytest.mark.parametrize("coreapps, down, want, words", [
    (["c1", "c2"], [], 2, "refusing to set 2 shards: the cluster has 2 healthy coreapp(s) (c1, c2) and 2 shards need "
                          "at least 3 (shards + 1 spare for failover)"),
    (["c1", "c2", "c3"], ["c3"], 2, "2 healthy coreapp(s) (c1, c2)"),
    (["c1", "c2", "c3"], [], 4, "need at least 5"),
])
def test_shard_count_refused_without_a_spare(coreapps, down, want, words):
    with pytest.raises(st.Refused) as e:
        plan_of(state({0: "c1"}, coreapps, down=down), shards=want)
    assert words in str(e.value)


def test_move_plan_and_idempotence():
    s = state({0: "c1"}, ["c1", "c2", "c3"])
    assert plan_of(s, move=0, to="c2") == ["move shard 0 from c1 to c2"]
    assert plan_of(s, move=0, to="c1") == [], "moving a shard to its owner changes nothing"
    assert plan_of(state({0: None}, ["c1", "c2"]), move=0, to="c2") == ["move shard 0 from no owner to c2"]


@pytest.mark.parametrize("owners, coreapps, down, stale, move, to, words", [
    ({0: "c1"}, ["c1", "c2"], [], [], 0, "c9", "no coreapp of that name is registered (registered: c1, c2)"),
    ({0: "c1"}, ["c1", "c2"], ["c2"], [], 0, "c2", "it is not healthy (status unreachable"),
    ({0: "c1"}, ["c1", "c2"], [], ["c2"], 0, "c2", "it is not healthy (status disconnected, heartbeat 99.0s ago)"),
    ({0: "c1", 1: "c2"}, ["c1", "c2", "c3"], [], [], 0, "c2", "it already owns shard 1; choose a spare (c3)"),
    ({0: "c1"}, ["c1", "c2"], [], [], 1, "c2", "cannot move shard 1: the cluster has 1 shard(s) (0 to 0)"),
])
def test_move_refused(owners, coreapps, down, stale, move, to, words):
    with pytest.raises(st.Refused) as e:
        plan_of(state(owners, coreapps, down=down, stale=stale), move=move, to=to)
    assert words in str(e.value)


def test_count_and_move_together_are_refused():
    with pytest.raises(st.Refused, match="two tasks"):
        plan_of(state({0: "c1"}, ["c1", "c2", "c3"]), shards=2, move=0, to="c3")


def test_table_lists_shards_and_spares():
    m, c = st.summarize(state({0: "c1", 1: "c2"}, ["c1", "c2", "c3"]), 3)
    lines = st.table_lines(m, c)
    assert lines[0].split() == ["SHARD", "OWNER", "EPOCH", "OWNER", "STATUS", "OWNER", "HEARTBEAT"]
    assert lines[1].split() == ["0", "c1", "3", "connected", "0.4s"]
    assert lines[-1] == "spare coreapps: c3"
    assert st.map_text(m) == "shard 0: c1\nshard 1: c2\n"


def test_negative_min_spares_never_plans_more_shards_than_coreapps():
    s = state({0: "c1"}, ["c1", "c2", "c3"])
    with pytest.raises(st.Refused, match=r"min_spares must be 0 or more \(got -10\)"):
        plan_of(s, shards=8, min_spares=-10)
    with pytest.raises(st.Refused, match="refusing to set 8 shards: the cluster has 3 healthy coreapp"):
        plan_of(s, shards=8, min_spares=0)
    assert plan_of(s, shards=2, min_spares=0) == ["set the shard count from 1 to 2"]


@pytest.mark.parametrize("shards", [0, 3, 64, -1])
def test_a_shard_count_outside_the_valid_counts_is_refused(shards):
    with pytest.raises(st.Refused, match="shards must be one of 1, 2, 4, 8, 16, 32"):
        plan_of(state({0: "c1"}, ["c1", "c2", "c3"]), shards=shards)


def test_the_shards_choices_are_the_schema_s_valid_counts():
    from ansible_collections.wabiz.cluster.plugins.module_utils.cluster_schema import VALID_SHARD_COUNTS

    assert st.VALID_SHARD_COUNTS == VALID_SHARD_COUNTS == (1, 2, 4, 8, 16, 32)
