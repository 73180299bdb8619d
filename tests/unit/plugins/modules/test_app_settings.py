"""app_settings' plan: only differing values are sent, and insane timers are refused."""

from __future__ import annotations

import json

import pytest
from ansible_collections.wabiz.cluster.plugins.modules import app_settings as m

CURRENT = {"heartbeat_interval": 5, "unhealthy_interval": 30}


def test_desired_values_named_options_win_over_the_dict():
    p = {"settings": {"unhealthy_interval": 99, "other": "x"}, "heartbeat_interval": None, "unhealthy_interval": 20}
    assert m.desired_values(p) == {"unhealthy_interval": 20, "other": "x"}


@pytest.mark.parametrize("want, changes", [
    ({"heartbeat_interval": 5, "unhealthy_interval": 30}, {}),
    ({"unhealthy_interval": 20}, {"unhealthy_interval": 20}),
    ({"heartbeat_interval": 2, "unhealthy_interval": 30}, {"heartbeat_interval": 2}),
])
def test_only_differences_are_sent(want, changes):
    got, after, problem = m.plan(CURRENT, want)
    assert got == changes and problem is None
    assert after == dict(CURRENT, **changes)


@pytest.mark.parametrize("want, words", [
    ({"heartbeat_interval": 30}, "unhealthy_interval (30 s) must be greater than heartbeat_interval (30 s)"),
    ({"unhealthy_interval": 4}, "unhealthy_interval (4 s) must be greater than heartbeat_interval (5 s)"),
    ({"heartbeat_interval": 0}, "heartbeat_interval must be at least 1 second"),
    ({"heartbeat_interval": "5"}, "heartbeat_interval must be a whole number of seconds"),
])
def test_insane_timers_are_refused_against_the_current_values(want, words):
    _changes, _after, problem = m.plan(CURRENT, want)
    assert problem is not None and words in problem


def test_diff_text_is_sorted_key_value_lines():
    assert m.as_text({"unhealthy_interval": 30, "heartbeat_interval": 5}) == \
        "heartbeat_interval: 5\nunhealthy_interval: 30\n"


@pytest.mark.parametrize("want, words", [
    ({"heartbeat_interval": 10**9}, "heartbeat_interval must be less than 3600 seconds (got 1000000000)"),
    ({"unhealthy_interval": 10**9}, "unhealthy_interval must be at most 3600 seconds (an hour; got 1000000000)"),
    ({"heartbeat_interval": 10**9, "unhealthy_interval": 10**9 + 1}, "heartbeat_interval must be less than 3600"),
    ({"heartbeat_interval": -5}, "heartbeat_interval must be at least 1 second (got -5)"),
    ({"heartbeat_interval": 1, "unhealthy_interval": 1}, "unhealthy_interval must be at least 2 seconds (got 1)"),
    ({"heartbeat_interval": 3, "unhealthy_interval": 3}, "unhealthy_interval (3 s) must be greater than"),
    ({"heartbeat_interval": 10, "unhealthy_interval": 5}, "unhealthy_interval (5 s) must be greater than "
                                                          "heartbeat_interval (10 s)"),
])
def test_timers_out_of_range_are_refused(want, words):
    _changes, _after, problem = m.plan(CURRENT, want)
    assert problem is not None and words in problem


def test_the_limits_themselves_are_accepted():
    for want in ({"heartbeat_interval": 1, "unhealthy_interval": 2}, {"heartbeat_interval": 3599,
                                                                      "unhealthy_interval": 3600}):
        assert m.plan(CURRENT, want)[2] is None


def test_the_option_rules_match_the_plan_limits():
    from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_options import option_problems

    assert option_problems({"heartbeat_interval": 3600}, m.RULES) == [
        "heartbeat_interval must be at most 3599 (got 3600): set the seconds between heartbeats, for example 5."]
    assert option_problems({"heartbeat_interval": 0, "unhealthy_interval": 3601}, m.RULES)[1].startswith(
        "unhealthy_interval must be at most 3600 (got 3601)")
    assert option_problems({"heartbeat_interval": 5, "unhealthy_interval": 30}, m.RULES) == []


# -- the module, in process, against the contract webapp ---------------------------------------------
@pytest.fixture
def web():
    from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils import contract_webapp as cw

    w = cw.ContractWebapp(must_change=True)
    yield w
    w.close()


def test_module_first_login_401_1024_then_the_change_and_idempotence(web, capsys):
    from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils import contract_webapp as cw

    base = {"api_url": web.url, "api_password": "secret", "api_new_password": cw.PASSWORD, "unhealthy_interval": 20}
    r = cw.run_module(m, base, capsys, check=True)
    assert r["failed"] and r["failure_kind"] == "password_change_required" and "check mode" in r["msg"], r
    assert web.must_change, "check mode never changes the password"
    r = cw.run_module(m, base, capsys, diff=True)
    assert r["changed"] is True and r["changes"] == {"unhealthy_interval": 20} and web.settings["unhealthy_interval"] == 20
    assert web.password == cw.PASSWORD and "unhealthy_interval: 20" in r["diff"]["after"]
    r = cw.run_module(m, base, capsys)
    assert r["changed"] is False and r["changes"] == {}


def test_module_retries_500_1011_and_says_when_it_was_rate_limited(web, capsys):
    from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils import contract_webapp as cw

    web.must_change, web.password = False, cw.PASSWORD
    web.script["/v1/settings/application"] = [(500, cw.NOT_READY), (429, cw.TOO_MANY, {"Retry-After": "0"})]
    r = cw.run_module(m, {"api_url": web.url, "api_password": cw.PASSWORD, "heartbeat_interval": 5}, capsys)
    assert not r.get("failed") and r["changed"] is False, r
    assert r["rate_limited"] == {"answers": 1, "waited_seconds": 0.0, "calls": ["GET /v1/settings/application"]}


@pytest.mark.parametrize("option", ["db_engine", "db_user", "db_cross_check", "db_password"])
def test_module_accepts_only_api_options(web, capsys, option):
    from ansible_collections.wabiz.cluster.tests.unit.plugins.module_utils import contract_webapp as cw

    r = cw.run_module(m, {"api_url": web.url, "api_password": cw.PASSWORD, "heartbeat_interval": 5,
                          option: "Db-Secret-4714"}, capsys)
    assert r["failed"] and r["failure_kind"] == "invalid_option" and option + " given" in r["msg"], r
    assert "group/wabiz.cluster.cluster_db" in r["msg"] and web.calls == []
    assert "Db-Secret-4714" not in json.dumps(r), "the value is masked (a db_password would be a secret)"


def test_an_object_setting_is_compared_by_the_fields_given_and_sent_whole():
    current = {"webhooks": {"url": "", "max_concurrent_requests": 6}, "heartbeat_interval": 5}
    changes, after, problem = m.plan(current, {"webhooks": {"url": "https://hooks.example/wa"}})
    assert problem is None and changes == {"webhooks": {"url": "https://hooks.example/wa", "max_concurrent_requests": 6}}
    assert after["webhooks"]["max_concurrent_requests"] == 6
    assert m.plan(after, {"webhooks": {"url": "https://hooks.example/wa"}})[0] == {}, "idempotent"
