"""app_settings' plan: only differing values are sent, and insane timers are refused."""

from __future__ import annotations

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
