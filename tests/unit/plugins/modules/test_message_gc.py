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


# -- the shared frame (_cluster_module): one failure shape for a database error ----------------------
def run_main(monkeypatch, capsys, connect_error):
    import json

    from ansible.module_utils.testing import patch_module_args

    closed = []

    class FailingDb:
        def __init__(self, params):
            pass

        def connect(self):
            raise connect_error

        def close(self):
            closed.append(True)

    monkeypatch.setattr(m, "ClusterDb", FailingDb)
    args = {"api_url": "https://wa:9090", "api_password": "Api-Secret-1", "db_engine": "mysql", "db_user": "wa",
            "db_password": "Db-Secret-2"}
    with patch_module_args(args), pytest.raises(SystemExit):
        m.main()
    out = capsys.readouterr().out
    assert "Api-Secret-1" not in out and "Db-Secret-2" not in out
    assert closed, "the frame closes the database"
    return json.loads(out)


def test_a_database_failure_is_one_sentence_with_the_rounds_so_far(monkeypatch, capsys):
    from ansible_collections.wabiz.cluster.plugins.module_utils._clusterdb import ClusterDbError

    res = run_main(monkeypatch, capsys, ClusterDbError("login_refused", "the MySQL server 127.0.0.1:3306 refused "
                                                       "the login of user 'wa' (error 1045: denied): check db_user "
                                                       "and db_password."))
    assert res["failed"] and res["failure_kind"] == "login_refused" and res["rounds"] == []
    assert res["msg"].startswith("the MySQL server 127.0.0.1:3306 refused the login of user 'wa'")


def test_a_missing_driver_is_ansibles_missing_library_message(monkeypatch, capsys):
    from ansible_collections.wabiz.cluster.plugins.module_utils._clusterdb import ClusterDbError

    res = run_main(monkeypatch, capsys, ClusterDbError("missing_library", "PyMySQL", "Traceback (most recent...)"))
    assert res["failed"] and res["failure_kind"] == "missing_library" and "rounds" not in res
    assert "Failed to import the required Python library (PyMySQL)" in res["msg"]
