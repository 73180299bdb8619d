"""message_gc: the contract's GC envelope and webhook callbacks (_gc) over a real local socket, the
rounds where the message count is known, mark-read through PUT /v1/messages/{id}, and the module in
process against a contract webapp."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _gc as gc
from ansible_collections.wabiz.cluster.plugins.module_utils._api_errors import ApiError
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_api import parse_message_counts
from ansible_collections.wabiz.cluster.plugins.modules import message_gc
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils import contract_webapp as cw
from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils.contract_webapp import C1, C2

ENVELOPE = {"services": {"message": {"gc": {C1: {"status": "processing"}}}}, "meta": cw.META}
DONE = {"services": [{"message": {"gc": {"messages_deleted": 12, "node": C1, "status": "complete"}}}]}
FAILED = {"errors": [{"code": 1014, "title": "Internal error", "details": f"garbage collection failed on {C1}"}]}


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.status


class FakeApi:
    base = "http://wa:9090"

    def __init__(self, answer):
        self.answer, self.calls = answer, []

    def call(self, method, path, body=None, **kw):
        self.calls.append((method, path, body))
        return self.answer


def test_start_reads_the_envelope():
    api = FakeApi(ENVELOPE)
    assert gc.start(api) == {C1: {"status": "processing"}} and api.calls == [("PUT", "/v1/services/message/gc", None)]
    for body in ({"gc": {C1: {"status": "processing"}}}, {"services": {"message": {"gc": {C1: "processing"}}}},
                 {"hello": "world"}):
        with pytest.raises(ApiError) as e:
            gc.start(FakeApi(body))
        assert e.value.kind == "bad_response" and "services.message.gc" in e.value.msg
    with pytest.raises(ApiError) as e:
        gc.start(FakeApi({"services": {"message": {"gc": {}}}}))
    assert e.value.kind == "unavailable" and "no node took" in e.value.msg


def test_parse_callback():
    assert gc.parse_callback(DONE) == [("gc", "complete", C1, 12)]
    assert gc.parse_callback(FAILED) == [("error", 1014, f"Internal error: garbage collection failed on {C1}")]
    assert gc.parse_callback({"messages": [{"id": "x"}], "contacts": []}) == []
    assert gc.parse_callback("not an object") == [] and gc.parse_callback(None) == []


def test_the_listener_takes_the_callbacks_over_a_real_socket():
    port = free_port()
    listener = gc.CallbackListener(f"127.0.0.1:{port}")
    try:
        url = f"http://127.0.0.1:{port}/"

        def later():
            time.sleep(0.1)
            post(url, {"statuses": [{"id": "m1", "status": "read"}]})  # another webhook: ignored
            post(url, {"services": [{"message": {"gc": {"messages_deleted": 3, "node": C2, "status": "complete"}}}]})
            post(url, DONE)

        threading.Thread(target=later, daemon=True).start()
        got = gc.wait(listener, {C1: {"status": "processing"}, C2: {"status": "processing"}}, 5)
        assert got == {C1: {"status": "complete", "messages_deleted": 12},
                       C2: {"status": "complete", "messages_deleted": 3}}
        assert listener.callbacks == 3
    finally:
        listener.close()


def test_an_error_callback_fails_the_round_and_silence_times_out():
    port = free_port()
    listener = gc.CallbackListener(f"127.0.0.1:{port}")
    try:
        post(f"http://127.0.0.1:{port}/", FAILED)
        with pytest.raises(ApiError) as e:
            gc.wait(listener, {C1: {}, C2: {}}, 5)
        assert e.value.kind == "gc_failed" and e.value.msg.startswith(f"the garbage collection failed on {C1} ")
        listener.events[:] = []
        started = time.monotonic()
        with pytest.raises(ApiError) as e:
            gc.wait(listener, {C2: {}}, 0.3)
        assert e.value.kind == "timeout" and C2 in e.value.msg and "webhooks.url" in e.value.msg
        assert time.monotonic() - started < 2
    finally:
        listener.close()


def test_listen_address_and_a_busy_port():
    assert gc.parse_listen("0.0.0.0:8085") == ("0.0.0.0", 8085)
    assert gc.parse_listen(":8085") == ("0.0.0.0", 8085) and gc.parse_listen("[::1]:8085") == ("::1", 8085)
    for bad in ("8085", "host:", "host:0", "host:70000", ""):
        with pytest.raises(ValueError, match="webhook_listen must be HOST:PORT"):
            gc.parse_listen(bad)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        with pytest.raises(ApiError) as e:
            gc.CallbackListener(f"127.0.0.1:{busy.getsockname()[1]}")
        assert e.value.kind == "listen_failed"
    finally:
        busy.close()


@pytest.mark.parametrize("body, total, by_status", [
    ({"stats": {"db": {"m1:1": {"messages": {"type": "gauge", "help": "Messages", "data": 42}}}}}, 42, {}),
    ({"stats": {"db": {"m1:1": {"wa_messages": {"type": "gauge", "help": "by status", "data": [
        {"labels": {"status": "delivered"}, "value": 5}, {"labels": {"status": "sent"}, "value": 2}]}}}}},
     7, {"delivered": 5, "sent": 2}),
    ({"stats": {"db": {"m1:1": {"message_count": {"data": {"delivered": 1, "read": 2}}}}}}, 3,
     {"delivered": 1, "read": 2}),
    ({"stats": {"db": {"m1:1": {"contacts": {"data": 5}}, "c1:1": {}}}}, None, {}),
    ({"stats": {"db": {}}}, None, {}),
    ({"stats": {"db": {"m1:1": {"messages_total": {"type": "gauge", "help": "x", "data": []}}}}}, 0, {}),
    ({"stats": "x"}, None, {}),
])
def test_message_counts_from_the_db_stats_are_tolerant(body, total, by_status):
    assert parse_message_counts(body) == (total, by_status)


@pytest.mark.parametrize("rows, threshold, deleted, round_no, max_rounds, stop", [
    (9_000_000, 10_000_000, 3_000_000, 1, 5, "below threshold"),
    (12_000_000, 10_000_000, 3_000_000, 1, 5, None),
    (12_000_000, 10_000_000, 0, 1, 5, "nothing more to collect"),
    (12_000_000, 10_000_000, 3_000_000, 5, 5, "max_rounds reached"),
    (None, 0, 5, 1, 5, "one round: the message count is unknown"),
])
def test_next_step(rows, threshold, deleted, round_no, max_rounds, stop):
    got = gc.next_step(rows, threshold, deleted, round_no, max_rounds)
    assert got == stop if stop is None else got.startswith(stop)


def test_mark_read_uses_the_messages_endpoint():
    api = FakeApi({})
    assert gc.mark_read(api, ["gBEGkYiEB1VXAglK1ZE_OLD", "a/b"]) == 2
    assert api.calls == [("PUT", "/v1/messages/gBEGkYiEB1VXAglK1ZE_OLD", {"status": "read"}),
                         ("PUT", "/v1/messages/a%2Fb", {"status": "read"})]


# -- the module, in process ------------------------------------------------------------------------
def args(web, **kw):
    return dict({"api_url": web.url, "api_password": cw.PASSWORD, "wait_timeout": 5}, **kw)


def test_module_without_a_listener_starts_and_returns_processing(web, capsys):
    r = cw.run_module(message_gc, args(web), capsys)
    assert r["changed"] is True and r["status"] == "processing" and r["rows_before"] is None, r
    assert r["rounds"] == [{"round": 1, "nodes": {C1: {"status": "processing"}}, "messages_deleted": None,
                            "rows_after": None, "seconds": 0.0}]
    assert web.paths("PUT") == ["/v1/services/message/gc"]


def test_module_waits_for_the_callbacks_on_webhook_listen(web, capsys):
    port = free_port()
    r = cw.run_module(message_gc, args(web, webhook_listen=f"127.0.0.1:{port}"), capsys)
    assert r["failed"] and r["failure_kind"] == "no_webhook", r
    web.settings["webhooks"]["url"] = f"http://127.0.0.1:{port}/"
    web.cluster.update(cw.multiconnect_cluster())
    r = cw.run_module(message_gc, args(web, webhook_listen=f"127.0.0.1:{port}",
                                       mark_read_ids=["gBEGin1", "gBEGin2"]), capsys)
    assert r["changed"] is True and r["status"] == "complete" and r["deleted"] == 14, r
    assert r["rounds"][0]["nodes"] == {C1: {"status": "complete", "messages_deleted": 7},
                                       C2: {"status": "complete", "messages_deleted": 7}}
    assert r["stopped_because"].startswith("one round: the message count is unknown")
    assert r["marked_read"] == 2 and web.marked == ["gBEGin1", "gBEGin2"]
    assert r["webhook_url"] == f"http://127.0.0.1:{port}/"


def test_module_fails_on_an_error_callback(web, capsys):
    port = free_port()
    web.settings["webhooks"]["url"] = f"http://127.0.0.1:{port}/"
    web.gc_callback = "error"
    r = cw.run_module(message_gc, args(web, webhook_listen=f"127.0.0.1:{port}"), capsys)
    assert r["failed"] and r["failure_kind"] == "gc_failed" and C1 in r["msg"], r
    assert r["rounds"] == []


def test_module_rounds_while_the_known_count_is_above_the_threshold(web, capsys):
    port = free_port()
    web.settings["webhooks"]["url"] = f"http://127.0.0.1:{port}/"
    counts = iter([30, 20, 10, 10])

    def stats_after_gc(*a):
        return {"m1:1": {"messages": {"type": "gauge", "help": "Messages", "data": next(counts)}}}

    orig = web.answer

    def answer(method, path, body, auth):
        if path == "/v1/stats/db":
            return 200, {"stats": {"db": stats_after_gc()}, "meta": cw.META}
        return orig(method, path, body, auth)

    web.answer = answer
    r = cw.run_module(message_gc, args(web, webhook_listen=f"127.0.0.1:{port}", threshold=15, max_rounds=5),
                      capsys)
    assert r["rows_before"] == 30 and r["rows_after"] == 10 and r["counts_source"] == "GET /v1/stats/db", r
    assert [x["rows_after"] for x in r["rounds"]] == [20, 10] and r["stopped_because"] == "below threshold"


def test_module_check_mode_and_nothing_to_collect(web, capsys):
    web.stats_db = {"m1:1": {"messages": {"type": "gauge", "help": "Messages", "data": 9}}}
    r = cw.run_module(message_gc, args(web, mark_read_ids=["x"]), capsys, check=True)
    assert r["changed"] is True and r["status"] == "check_mode" and r["rows_before"] == 9 and r["marked_read"] == 0
    assert web.paths("PUT") == []
    web.stats_db = {"m1:1": {"messages": {"type": "gauge", "help": "Messages", "data": 0}}}
    r = cw.run_module(message_gc, args(web), capsys)
    assert r["changed"] is False and r["stopped_because"] == "nothing to collect" and web.paths("PUT") == []


def test_module_counts_from_the_opt_in_database_cross_check(web, capsys, monkeypatch):
    class FakeDb:
        def __init__(self, params):
            self.conn = None

        def connect(self):
            self.conn = object()

        def close(self):
            pass

        def message_counts(self):
            return {"sent": 4}

    monkeypatch.setattr(message_gc, "ClusterDb", FakeDb)
    r = cw.run_module(message_gc, args(web, db_cross_check=True, db_engine="mysql", db_user="wa"), capsys)
    assert r["changed"] is False and r["collectable"] == 0 and r["counts_source"] == "database", r
    assert r["stopped_because"] == "nothing to collect"


def test_module_refuses_a_bad_listen_address_and_the_old_options(web, capsys):
    r = cw.run_module(message_gc, args(web, webhook_listen="8085"), capsys)
    assert r["failed"] and r["failure_kind"] == "invalid_option" and web.calls == []
    r = cw.run_module(message_gc, args(web, mark_read=True), capsys)
    assert r["failed"] and "Unsupported parameters" in r["msg"]


def test_counts_after_a_round_wait_for_cached_stats_to_catch_up():
    answers = iter([30, 30, 18])

    class StatsApi(FakeApi):
        def call(self, method, path, body=None, **kw):
            self.calls.append((method, path, body))
            return {"stats": {"db": {"m1:1": {"messages_total": {"data": next(answers)}}}}}

    slept = []
    api = StatsApi(None)
    assert gc.counts_after_round(api, None, 30, 12, sleep=slept.append) == (18, {})
    assert slept == [1.0, 1.0] and len(api.calls) == 3
    answers = iter([31] * 10)
    assert gc.counts_after_round(StatsApi(None), None, 30, 12, sleep=slept.append)[0] == 31, "bounded: 4 reads"
