"""The cluster modules (failover_check, app_settings, shard_table, message_gc) against a running
stand-in cluster (the API alone; failover_check and message_gc with the opt-in database cross-check,
the other two refusing every db_* option) whose admin password, API key and database password hold the marker: a bad or
borderline value of any one option fails cleanly or is accepted, never a traceback or a hang past
the run's timeouts, never a secret in any output, and a failed run changes neither the cluster
(shard map, application settings) nor the throwaway dir; and each against listeners that
accept and never answer, answer garbage, close at once or serve HTML."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.properties import strategies as S
from tests.properties.conftest import PROFILE, examples
from tests.properties.harness import MARKER, Listener, assert_clean, judge, run_module, snapshot

API = {
    "api_url": S.bad_str(["http://127.0.0.1:1", "https://", "ftp://127.0.0.1/", "https://[::1", "127.0.0.1",
                          "https://127.0.0.1:99999", "https://127.0.0.1:0", "javascript:alert(1)",
                          f"https://u:{MARKER}@127.0.0.1:1", "https://127.0.0.1:1/#x", "https://127.0.0.1:1 "]),
    "api_username": S.bad_str(["admin", "Admin", "admin:", "admin\n", "a" * 300]),
    "api_password": S.bad_secret(), "api_new_password": S.bad_secret([MARKER[:4]]),
    "api_key": S.bad_secret(), "api_token": S.bad_secret(),
    "api_token_cache": st.sampled_from(["", "relative-cache.json", "/", "DIR", "/missing/deep/cache.json",
                                        "GARBAGE", "JSONLIST", "/c\nache"]),
    "validate_certs": S.bad_bool(),
    "ca_path": st.sampled_from(["", "/nonexistent.pem", "GARBAGE", "DIR", "relative.pem", "/etc/hostname"]),
    "api_timeout": S.bad_float(), "api_retries": S.bad_int([-1, 0, 10**6]),
    "api_rate_limit_wait": S.bad_float(),
}
DB = {
    "db_engine": S.bad_str(["mysql", "postgresql", "MYSQL", "mariadb"]),
    "db_host": S.bad_str(["localhost", "::1", "256.0.0.1", "127.0.0.1:33306", "-h", "/tmp", "[::1]"]),
    "db_port": S.bad_int([0, -1, 65536, 1]),
    "db_user": S.bad_str(["root", "x' OR '1'='1", "a" * 200]),
    "db_password": S.bad_secret(),
    "db_name_prefix": S.bad_str(["`; DROP DATABASE x; --", "x'", "a" * 100, "../", "wa-"]),
    "db_connect_timeout": S.bad_float(), "db_cross_check": S.bad_bool(),
}
# The modules with the database group; the others refuse every db_* option (invalid_option).
DB_MODULES = ("failover_check", "message_gc")
OWN = {
    "failover_check": {
        "heartbeat_threshold": S.bad_float(), "fail_on_unhealthy": S.bad_bool(),
        "min_masters": S.bad_int(), "min_spares": S.bad_int(), "expected_nodes": S.bad_list(),
        "webapp_urls": S.bad_list()},
    "app_settings": {
        "heartbeat_interval": S.bad_int([0, -1, 1, 10**9]), "unhealthy_interval": S.bad_int([0, -1, 1, 10**9]),
        "settings": st.one_of(S.bad_dict(), st.sampled_from([{"heartbeat_interval": "5"}, {"nosuch": 1},
                                                             {"unhealthy_interval": -1}, {"heartbeat_interval": None},
                                                             {"heartbeat_interval": 1.5}]))},
    "shard_table": {
        "shards": S.bad_int([0, 3, 64, -1, "2x", 2.5]).filter(lambda v: v not in (2, 4, 8, 16, 32, "2", "4")),
        "cc": S.bad_str(["", "1", "+1", "x" * 300]), "phone_number": S.bad_str(["", "6315551234", "abc"]),
        "pin": S.bad_secret(), "cert": S.bad_secret(),
        "move_shard": S.bad_int([-1, 99, 2**63]), "move_to": S.bad_str(["nosuchnode", "master1", "webapp1"]),
        "standin_extensions": S.bad_bool(), "min_spares": S.bad_int(), "wait_timeout": S.bad_float()},
    "message_gc": {
        "threshold": S.bad_int(), "max_rounds": S.bad_int([0, -1, 10**9]), "mark_read_ids": S.bad_list(),
        "webhook_listen": S.bad_str(["8085", "127.0.0.1:0", "127.0.0.1:1", ":", "[::1]:99999"]),
        "wait_timeout": S.bad_float()},
}
# Shared options: every value kind on failover_check (all three viewpoints), fewer on the others.
PRIMARY = "failover_check"
EXPLICIT = {
    "api_url": ["https://[::1", "https://127.0.0.1:99999", "", "javascript:alert(1)"],
    "api_timeout": [0, -1, "nan", "inf"], "api_retries": [-1], "api_password": ["'" + MARKER],
    "api_key": ["\n" + MARKER], "api_token": [MARKER + " x"], "api_token_cache": ["DIR", "GARBAGE", "/"],
    "ca_path": ["GARBAGE", "DIR"], "db_port": [0, 65536, -1], "db_connect_timeout": [0, -1, "nan"],
    "db_host": ["", "-h"], "db_name_prefix": ["x'", "`; DROP DATABASE x; --"], "db_password": [MARKER + "'"],
    "api_rate_limit_wait": [-1, "nan", 601], "heartbeat_threshold": ["nan", -1], "min_masters": [-1, 10**9],
    "expected_nodes": [[None], "x"], "heartbeat_interval": [0, -1, 10**9], "unhealthy_interval": [0, 1],
    "settings": [{"heartbeat_interval": "5"}, {"nosuch": 1}], "shards": [0, 3],
    "move_shard": [-1, 99], "wait_timeout": [-1, "nan"], "webhook_listen": ["8085", "127.0.0.1:0"],
    "threshold": [-1], "max_rounds": [0, -1], "pin": [MARKER], "cert": [MARKER + "\n"],
}


def _num(v, default, lo=0.0, hi=10.0):
    try:
        f = float(v)
    except (TypeError, ValueError):
        return default
    return f if math.isfinite(f) and lo <= f <= hi else default


def budget_of(args) -> float:
    """The longest a run may take by its own timeouts (values out of a sane range count as the defaults
    the suite would use): API calls with retries, two database connections, three probe rounds, a wait."""
    api = _num(args.get("api_timeout"), 3) * (1 + int(_num(args.get("api_retries"), 0, 0, 3)))
    rate = _num(args.get("api_rate_limit_wait"), 30, 0, 600)
    return 3 * api + 2 * _num(args.get("db_connect_timeout"), 3) + min(rate, 30) \
        + min(_num(args.get("wait_timeout"), 5, 0, 60), 10) + 8


def base_args(module: str, pc, w: Path) -> dict:
    args = dict(pc.api_args())
    if module in DB_MODULES:  # with the cross-check, so that every db_* option is used
        args.update(pc.db_args(), db_cross_check=True)
    if module == "failover_check":
        args.update(api_key=pc.api_key, heartbeat_threshold=3, fail_on_unhealthy=True)
    elif module == "app_settings":
        args.update(heartbeat_interval=pc.baseline["heartbeat_interval"])
    elif module == "shard_table":
        args.update(wait_timeout=5)
    elif module == "message_gc":
        args.update(max_rounds=1, wait_timeout=5)
    return args


def _materialize(option: str, value, w: Path):
    """Path-valued options: the kinds become real paths inside the throwaway dir."""
    if option not in ("api_token_cache", "ca_path") or not isinstance(value, str):
        return value
    if value == "DIR":
        (w / "adir").mkdir(exist_ok=True)
        return str(w / "adir")
    if value == "GARBAGE":
        (w / "garbage").write_bytes(b"\x00\xff not json, not PEM \x80")
        return str(w / "garbage")
    if value == "JSONLIST":
        (w / "list.json").write_text("[1, 2, 3]")
        return str(w / "list.json")
    if value.startswith("/"):
        return str(w) + value
    return value


# On the other modules the shared options each module handles on its own path (its login, its
# database connection) run too; the rest of the shared options only on PRIMARY, to keep the ci
# profile within its time (the thorough profile runs them all everywhere).
SHARED_EVERYWHERE = ("api_url", "api_password", "api_timeout", "api_token_cache", "db_port", "db_password",
                     "db_connect_timeout", "db_name_prefix")


def cases():
    for module, own in OWN.items():
        for option in sorted(API) + sorted(DB) + sorted(own):
            if module != PRIMARY and option not in own and option not in SHARED_EVERYWHERE and PROFILE == "ci":
                continue
            yield pytest.param(module, option, id=f"{module}-{option}")


def listener_cases():
    for module in sorted(OWN):
        for target in ("api_url", "db_port"):
            for kind in Listener.KINDS:
                if module != PRIMARY and kind in ("close", "html") and PROFILE == "ci":
                    continue
                yield pytest.param(module, target, kind, id=f"{module}-{target}-{kind}")


@pytest.fixture(scope="module")
def pc(prop_cluster):
    prop_cluster.baseline = dict(prop_cluster.settings())
    return prop_cluster


def _run_and_judge(module, args, w, pc, check, diff, budget, must_fail=None):
    before_dir, before_state = snapshot(w), pc.state()
    run = run_module(module, args, w, check=check, diff=diff, budget=budget)
    after_state = pc.state()
    judge(run, before=before_dir, after=snapshot(w), secrets_root=w, extra_state=(before_state, after_state))
    if must_fail and not run.failed:
        run.problems.append(must_fail)
    if module == "app_settings" and not run.failed:
        pc.restore_settings(pc.baseline)  # an accepted borderline value must not disturb later cases
    return run


@pytest.mark.parametrize("module", sorted(OWN))
def test_cluster_module_valid_baseline_is_accepted_without_leak(module, pc, workdir):
    """The suite's own starting point: the valid arguments every case varies one option of."""
    w = workdir()
    run = _run_and_judge(module, base_args(module, pc, w), w, pc, False, True, 30,
                         must_fail=None)
    if run.failed:
        run.problems.append("the valid baseline arguments were refused")
    assert_clean(run)


@pytest.mark.parametrize("module,option", list(cases()))
def test_cluster_module_bad_value_fails_cleanly_no_traceback_no_hang_no_leak_no_change(module, option, pc,
                                                                                      workdir):
    shared = option in API or option in DB
    strategy = API[option] if option in API else DB[option] if option in DB else OWN[module][option]
    n = 2 if (not shared or module == PRIMARY) else 1

    @settings(max_examples=examples(n))
    @given(value=strategy, check=st.booleans(), diff=st.booleans())
    def prop(value, check, diff):
        w = workdir()
        args = base_args(module, pc, w)
        args[option] = _materialize(option, value, w)
        if module == "app_settings" and option in ("api_key",):
            args.pop("api_password")  # app_settings needs a login: api_key alone must be refused
        run = _run_and_judge(module, args, w, pc, check, diff, budget_of(args))
        assert_clean(run)

    if module == PRIMARY or not shared:
        for v in EXPLICIT.get(option, []):
            prop = example(value=v, check=False, diff=True)(prop)
    prop()


@pytest.mark.parametrize("module,target,kind", list(listener_cases()))
def test_cluster_module_against_broken_listener_fails_within_timeouts(module, target, kind, pc, listeners, workdir):
    """api_url or the database port pointing at a listener that misbehaves: no hang past the
    run's own timeouts; a module that needs that endpoint fails with a message."""

    @settings(max_examples=1)
    @given(timeout=st.sampled_from([1, 2]), retries=st.sampled_from([0, 1]), scheme=st.sampled_from(["https", "http"]),
           check=st.booleans())
    def prop(timeout, retries, scheme, check):
        w = workdir()
        args = base_args(module, pc, w)
        args.update(api_timeout=timeout, api_retries=retries)
        if module in DB_MODULES:
            args["db_connect_timeout"] = timeout
        if target == "api_url":
            args["api_url"] = f"{scheme}://127.0.0.1:{listeners[kind].port}"
            # every module works with the API; message_gc with the database counts and nothing to collect
            # (the stand-in's table holds no delivered message here) calls nothing
            needs = module != "message_gc"
        else:
            args["db_port"] = listeners[kind].port
            needs = True  # the cross-check modules need the database; the others refuse db_port
        run = _run_and_judge(module, args, w, pc, check, True, budget_of(args),
                             must_fail=f"succeeded with {target} on a {kind} listener" if needs else None)
        assert_clean(run)

    prop()
