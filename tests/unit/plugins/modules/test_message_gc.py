"""message_gc's loop: what can be collected, when a round is finished, when to run another."""

from __future__ import annotations

import pytest
from ansible_collections.wabiz.cluster.plugins.modules import message_gc as m


@pytest.mark.parametrize("counts, mark_read, n", [
    ({"sent": 5, "delivered": 7, "read": 2}, False, 9),
    ({"sent": 5, "delivered": 7, "received": 4}, False, 7),
    ({"sent": 5, "delivered": 7, "received": 4}, True, 11),
    ({}, True, 0),
])
def test_collectable(counts, mark_read, n):
    assert m.collectable(counts, mark_read) == n


@pytest.mark.parametrize("gc, done", [
    ({"c1": {"status": "processing"}, "c2": {"status": "completed"}}, False),
    ({"c1": {"status": "completed", "deleted": 3}, "c2": {"status": "skipped"}}, True),
    ({"c1": {"status": "failed", "error": "x"}}, True),
    ({}, False),
])
def test_all_finished(gc, done):
    assert m.all_finished(gc) is done


@pytest.mark.parametrize("rows, threshold, deleted, round_no, max_rounds, stop", [
    (9_000_000, 10_000_000, 3_000_000, 1, 5, "below threshold"),
    (12_000_000, 10_000_000, 3_000_000, 1, 5, None),
    (12_000_000, 10_000_000, 0, 1, 5, "nothing more to collect"),
    (12_000_000, 10_000_000, 3_000_000, 5, 5, "max_rounds reached"),
])
def test_next_step(rows, threshold, deleted, round_no, max_rounds, stop):
    got = m.next_step(rows, threshold, deleted, round_no, max_rounds)
    assert got == stop if stop is None else got.startswith(stop)


class FakeApi:
    def __init__(self, answers):
        self.answers = list(answers)
        self.calls = []

    def call(self, method, path, body=None, **kw):
        self.calls.append((method, path))
        return {"gc": self.answers.pop(0)}


def test_run_round_polls_until_every_coreapp_finished():
    api = FakeApi([{"c1": {"status": "processing"}, "c2": {"status": "processing"}},
                   {"c1": {"status": "completed", "deleted": 10}, "c2": {"status": "processing"}},
                   {"c1": {"status": "completed", "deleted": 10}, "c2": {"status": "completed", "deleted": 4}}])
    gc, _seconds = m.run_round(api, 0.01, 10, sleep=lambda s: None)
    assert api.calls == [("PUT", "/v1/services/message/gc")] + [("GET", "/v1/services/message/gc")] * 2
    assert gc["c2"] == {"status": "completed", "deleted": 4}


def test_run_round_gives_up_after_the_timeout():
    api = FakeApi([{"c1": {"status": "processing"}}] * 100)
    with pytest.raises(m.ApiError) as e:
        m.run_round(api, 0.01, 0.0, sleep=lambda s: None)
    assert e.value.kind == "timeout" and "c1 processing" in e.value.msg


def test_run_round_without_any_owner_fails_at_once():
    with pytest.raises(m.ApiError) as e:
        m.run_round(FakeApi([{}]), 0.01, 3600, sleep=lambda s: None)
    assert e.value.kind == "unavailable" and "no shard has an owner" in e.value.msg
