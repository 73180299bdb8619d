"""shard_table: the plan over the shards as the contract's answers show them (_shards), every
refusal, and the module in process against a contract webapp on a real local socket (the count set
with cc/phone_number/shards answered 201, the wait, the stand-in-only planned move)."""

from __future__ import annotations

import json

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _shards as sh
from ansible_collections.wabiz.cluster.plugins.module_utils import cluster_schema
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_api import (
    parse_health,
    parse_shard_count,
    parse_support,
)
from ansible_collections.wabiz.cluster.plugins.modules import shard_table
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils import contract_webapp as cw
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils.contract_webapp import C1, C2, C3


class Api:
    base = "http://127.0.0.1:9"


def state_of(cluster):
    web = cw.ContractWebapp.__new__(cw.ContractWebapp)
    web.cluster, web.with_support = cluster, True
    auth = "Bearer " + cw.TOKEN
    return {"count": parse_shard_count(Api, web.answer("GET", "/v1/account/shards", None, auth)[1]),
            "support": parse_support(Api, web.answer("GET", "/v1/support", None, auth)[1]),
            "health": parse_health(Api, web.answer("GET", "/v1/health", None, auth)[1])}


def plan_of(cluster, shards=None, move=None, to=None, min_spares=1):
    m, c = sh.summarize(state_of(cluster))
    return [p[2] for p in sh.compute_plan(m, c, shards, move, to, min_spares)]


def test_summarize_marks_health_and_ownership():
    c = cw.ha_cluster()
    c["health"][C3] = cw.unreachable(C3)
    m, cores = sh.summarize(state_of(c))
    assert m == [{"shard": 0, "owner": C1, "owners": [C1], "owner_status": "connected"}]
    assert [(x["node"], x["healthy"], x["status"], x["shards"]) for x in cores] == [
        (C1, True, "connected", [0]), (C2, True, "disconnected", [])]
    assert sh.all_served(state_of(cw.ha_cluster()), 1) and not sh.all_served(state_of(cw.ha_cluster()), 2)


def test_shard_count_plan_and_no_op():
    assert plan_of(cw.ha_cluster(), shards=2) == ["set the shard count from 1 to 2"]
    assert plan_of(cw.ha_cluster(), shards=1) == []
    assert plan_of(cw.ha_cluster()) == []


@pytest.mark.parametrize("down, want, words", [
    ([C2, C3], 2, f"refusing to set 2 shards: the cluster has 1 healthy coreapp(s) ({C1}) and 2 shards need at least 3 "
                  "(shards + 1 spare for failover)"),
    ([C3], 2, f"2 healthy coreapp(s) ({C1}, {C2})"),
    ([], 4, "need at least 5"),
])
def test_shard_count_refused_without_a_spare(down, want, words):
    c = cw.ha_cluster()
    for n in down:
        c["health"][n] = cw.unreachable(n)
    with pytest.raises(sh.Refused) as e:
        plan_of(c, shards=want)
    assert words in str(e.value)


def test_move_plan_and_idempotence():
    assert plan_of(cw.ha_cluster(), move=0, to=C2) == [f"move shard 0 from {C1} to {C2}"]
    assert plan_of(cw.ha_cluster(), move=0, to=C1) == [], "moving a shard to its owner changes nothing"


@pytest.mark.parametrize("move, to, words", [
    (0, "c9", f"no coreapp of that name is listed by the API (listed: {C1}, {C2}, {C3})"),
    (0, C3, "it is not healthy (gateway status unregistered)"),
    (0, C2, f"it already owns shard 1; choose a spare ({C3})"),
    (2, C3, "cannot move shard 2: the cluster has 2 shard(s) (0 to 1)"),
])
def test_move_refused(move, to, words):
    c = cw.multiconnect_cluster()
    if "unregistered" in words:
        c["health"][C3]["gateway_status"] = "unregistered"
    with pytest.raises(sh.Refused) as e:
        plan_of(c, move=move, to=to)
    assert words in str(e.value)


def test_count_and_move_together_are_refused():
    with pytest.raises(sh.Refused, match="two tasks"):
        plan_of(cw.ha_cluster(), shards=2, move=0, to=C3)


def test_negative_min_spares_and_counts_outside_the_contract_are_refused():
    with pytest.raises(sh.Refused, match=r"min_spares must be 0 or more \(got -10\)"):
        plan_of(cw.ha_cluster(), shards=8, min_spares=-10)
    for shards in (0, 3, 64, -1):
        with pytest.raises(sh.Refused, match="shards must be one of 1, 2, 4, 8, 16, 32"):
            plan_of(cw.ha_cluster(), shards=shards)
    assert shard_table.VALID_SHARD_COUNTS == (1, 2, 4, 8, 16, 32)
    # The stand-in's copy (its image ships cluster_schema alone) says the same.
    assert cluster_schema.VALID_SHARD_COUNTS == sh.VALID_SHARD_COUNTS


def test_table_lists_shards_and_spares():
    m, c = sh.summarize(state_of(cw.multiconnect_cluster()))
    lines = sh.table_lines(m, c)
    assert lines[0].split() == ["SHARD", "OWNER", "OWNER", "STATUS"]
    assert lines[1].split() == ["0", C1, "connected"] and lines[-1] == f"spare coreapps: {C3}"
    assert sh.map_text(m) == f"shard 0: {C1}\nshard 1: {C2}\n"


def test_the_count_body_is_the_contracts():
    p = {"cc": "1", "phone_number": "6315551234", "pin": None, "cert": "Q0VSVA=="}
    assert sh.count_body(p, 2) == {"cc": "1", "phone_number": "6315551234", "shards": 2, "cert": "Q0VSVA=="}


# -- the module, in process ------------------------------------------------------------------------
def args(web, **kw):
    return dict({"api_url": web.url, "api_password": cw.PASSWORD, "wait_timeout": 5}, **kw)


def test_module_reads_the_shards_from_the_api(web, capsys):
    r = cw.run_module(shard_table, args(web), capsys)
    assert r["changed"] is False and r["shards"] == 1 and r["plan"] == [], r
    assert r["map"][0]["owner"] == C1 and [c["node"] for c in r["coreapps"]] == [C1, C2, C3]
    assert set(web.paths()) == {"/v1/users/login", "/v1/account/shards", "/v1/support", "/v1/health"}


def test_module_sets_the_count_with_cc_and_phone_number_and_waits(web, capsys):
    r = cw.run_module(shard_table, args(web, shards=2), capsys)
    assert r["failed"] and r["failure_kind"] == "invalid_option" and "cc and phone_number" in r["msg"], r
    assert ("POST", "/v1/account/shards") not in [(m, p) for m, p, _b in web.calls]

    r = cw.run_module(shard_table, args(web, shards=2, cc="1", phone_number="6315551234"), capsys, check=True)
    assert r["changed"] is True and r["plan"] == ["set the shard count from 1 to 2"] and r["shards"] == 2
    assert web.cluster["count"] == 1, "check mode changes nothing"

    def take(count):  # the primary master gives shard 1 to coreapp2 a little later
        import threading

        def later():
            import time
            time.sleep(0.4)
            web.cluster.update(cw.multiconnect_cluster())

        web.cluster["count"] = count
        threading.Thread(target=later, daemon=True).start()

    web.on_shards_post = take
    r = cw.run_module(shard_table, args(web, shards=2, cc="1", phone_number="6315551234", pin="123456",
                                        cert="Q0VSVC1TRUNSRVQ="), capsys, diff=True)
    assert r["changed"] is True and r["shards"] == 2 and [m["owner"] for m in r["map"]] == [C1, C2], r
    posted = [b for m, p, b in web.calls if m == "POST" and p == "/v1/account/shards"]
    assert posted == [{"cc": "1", "phone_number": "6315551234", "shards": 2, "pin": "123456",
                       "cert": "Q0VSVC1TRUNSRVQ="}]
    assert "123456" not in json.dumps(r) and "Q0VSVC1TRUNSRVQ=" not in json.dumps(r), "pin and cert are no_log"
    assert r["diff"]["after"] == f"shard 0: {C1}\nshard 1: {C2}\n"

    r = cw.run_module(shard_table, args(web, shards=2), capsys)
    assert r["changed"] is False and r["plan"] == [], "no change needs no cc"


def test_module_times_out_naming_what_is_missing(web, capsys):
    web.on_shards_post = lambda count: web.cluster.update(count=count)
    r = cw.run_module(shard_table, args(web, shards=2, cc="1", phone_number="6315551234", wait_timeout=1), capsys)
    assert r["failed"] and r["failure_kind"] == "timeout", r
    assert "shard 1 without one owner (none)" in r["msg"]


def test_module_planned_move_is_stand_in_only(web, capsys):
    r = cw.run_module(shard_table, args(web, move_shard=0, move_to=C2), capsys)
    assert r["failed"] and r["failure_kind"] == "unsupported" and "standin_extensions=true" in r["msg"], r
    assert web.calls == [], "refused before anything is contacted"
    r = cw.run_module(shard_table, args(web, move_shard=0, move_to=C2, standin_extensions=True), capsys)
    assert r["failed"] and r["failure_kind"] == "unsupported" and "answered 404" in r["msg"], r

    def on_move(shard, owner):
        web.cluster["shards"][C1] = []
        web.cluster["shards"][owner] = [shard]
        web.cluster["health"][C1]["gateway_status"] = "disconnected"
        web.cluster["health"][owner]["gateway_status"] = "connected"

    web.extension, web.on_move = True, on_move
    r = cw.run_module(shard_table, args(web, move_shard=0, move_to=C2, standin_extensions=True), capsys)
    assert r["changed"] is True and r["previous_owner"] == C1 and r["map"][0]["owner"] == C2, r
    assert 0 <= r["ownerless_seconds"] < 5
    r = cw.run_module(shard_table, args(web, move_shard=0, move_to=C2, standin_extensions=True), capsys)
    assert r["changed"] is False and r["plan"] == []


def test_module_refusal_and_rate_limit(web, capsys):
    web.script["/v1/support"] = [(429, cw.TOO_MANY, {"Retry-After": "0"})]
    r = cw.run_module(shard_table, args(web, shards=8, cc="1", phone_number="6315551234"), capsys)
    assert r["failed"] and r["failure_kind"] == "refused" and "need at least 9" in r["msg"], r
    assert r["rate_limited"]["calls"] == ["GET /v1/support"]


def test_module_accepts_only_api_options(web, capsys):
    r = cw.run_module(shard_table, args(web, db_engine="mysql"), capsys)
    assert r["failed"] and r["failure_kind"] == "invalid_option" and "db_engine given" in r["msg"], r
    assert "group/wabiz.cluster.cluster_db" in r["msg"] and web.calls == []
    r = cw.run_module(shard_table, args(web, heartbeat_threshold=3), capsys)
    assert r["failed"] and "Unsupported parameters" in r["msg"], "the options of earlier versions are gone"
