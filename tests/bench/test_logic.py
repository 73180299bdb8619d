"""The arithmetic of the drills and benchmarks, on hand-made records (no cluster needed)."""

from __future__ import annotations

import pytest

from bench.cluster import load_probe
from bench.common import distribution, percentile
from bench.switchover import _longest_gap

probe = load_probe()
SETTINGS = {"heartbeat_interval": 2, "unhealthy_interval": 10}


def record(fail_from: float | None, fail_to: float | None, owners_at: list[tuple[float, dict]]) -> dict:
    """Requests every 0.1 s over 0..30 s, failing in [fail_from, fail_to); owner polls as given."""
    reqs = []
    for i in range(300):
        t = i * 0.1
        ok = not (fail_from is not None and fail_from <= t < fail_to)
        reqs.append({"t": t, "dt": 0.01, "ok": ok, "status": 201 if ok else 0, "id": f"m{i}" if ok else None})
    polls = [{"t": t, "ok": True, "owners": o, "roles": {}} for t, o in owners_at]
    return {"started": 0.0, "requests": reqs, "polls": polls, "settings": SETTINGS, "lost": []}


def polls_moving(at: float) -> list[tuple[float, dict]]:
    return [(t * 0.5, {"0": ["A"] if t * 0.5 < at else ["B"]}) for t in range(60)]


def test_downtime_is_first_failure_to_end_of_first_success_after_the_fault():
    rep = probe.analyze_record(record(5.0, 18.0, polls_moving(17.0)), fault_at=4.0, bound=12.0)
    assert rep["downtime_s"] == pytest.approx(13.01, abs=1e-6)
    assert not rep["within_bound"] and rep["recovered"]
    assert rep["owner_changes"]["0"]["owner"] == "B" and rep["owner_changes"]["0"]["previous"] == "A"
    assert rep["double_owner_moments"] == [] and rep["max_poll_gap_s"] == 0.5


def test_failures_before_the_fault_are_not_downtime():
    rep = probe.analyze_record(record(1.0, 2.0, polls_moving(99)), fault_at=4.0, bound=12.0)
    assert rep["downtime_s"] == 0.0 and rep["failed"] == 10


def test_two_owners_in_one_poll_is_reported():
    polls = polls_moving(10.0)
    polls[25] = (12.5, {"0": ["A", "B"]})
    rep = probe.analyze_record(record(5.0, 11.0, polls), fault_at=4.0, bound=20.0)
    assert rep["double_owner_moments"] == [{"t": 12.5, "shard": "0", "owners": ["A", "B"]}]
    failures = probe.verdict(rep, "kill_owner", 0, SETTINGS)["failures"]
    assert any("two owners" in f for f in failures)


def test_a_kill_without_a_new_owner_fails_the_verdict():
    rep = probe.analyze_record(record(5.0, 30.1, polls_moving(99)), fault_at=4.0, bound=12.0)
    failures = probe.verdict(rep, "kill_owner", 0, SETTINGS)["failures"]
    assert "No spare took over the shard." in failures
    assert "The API did not serve again before the drill ended." in failures


def test_an_owner_cut_off_from_the_database_must_be_replaced_within_the_bound():
    moved = probe.analyze_record(record(5.0, 14.0, polls_moving(13.5)), fault_at=4.0, bound=12.0)
    assert probe.verdict(moved, "partition_owner_database", 0, SETTINGS)["failures"] == []
    stayed = probe.analyze_record(record(5.0, 30.1, polls_moving(99)), fault_at=4.0, bound=12.0)
    assert "No spare took over the shard." in probe.verdict(stayed, "partition_owner_database", 0, SETTINGS)["failures"]


def test_an_owner_cut_off_from_the_masters_only_needs_no_failover_but_must_serve_again():
    served = probe.analyze_record(record(5.0, 9.0, polls_moving(99)), fault_at=4.0, bound=12.0)
    assert probe.verdict(served, "partition_owner_masters", 0, SETTINGS)["failures"] == []
    down = probe.analyze_record(record(5.0, 30.1, polls_moving(99)), fault_at=4.0, bound=12.0)
    assert probe.verdict(down, "partition_owner_masters", 0, SETTINGS)["failures"] == [
        "The API did not serve again after the partition healed."]


def test_a_short_pause_must_not_move_the_shard():
    rep = probe.analyze_record(record(5.0, 8.0, polls_moving(7.0)), fault_at=4.0, bound=12.0)
    failures = probe.verdict(rep, "pause_owner", 4, SETTINGS)["failures"]
    assert failures == ["A pause of 4 s (shorter than unhealthy - heartbeat) caused a failover."]
    ok = probe.analyze_record(record(5.0, 8.0, polls_moving(99)), fault_at=4.0, bound=12.0)
    assert probe.verdict(ok, "pause_owner", 4, SETTINGS)["failures"] == []


def test_percentiles_interpolate_between_ranks():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    d = distribution([3.0, 1.0, 2.0])
    assert (d["n"], d["min"], d["p50"], d["max"], d["mean"]) == (3, 1.0, 2.0, 3.0, 2.0)
    assert distribution([]) == {"n": 0}
    with pytest.raises(ValueError):
        percentile([], 50)


def test_longest_gap_counts_the_window_edges():
    reqs = [{"t": t, "dt": 0.0, "ok": ok} for t, ok in [(1.0, True), (2.0, False), (5.0, True)]]
    assert _longest_gap(reqs, 0.0, 6.0) == pytest.approx(4.0)
    assert _longest_gap([], 0.0, 6.0) == pytest.approx(6.0)


def test_downtime_is_per_shard_so_a_healthy_shard_does_not_hide_a_failed_one():
    """Two shards, requests alternating between them; only shard 0's owner fails (5..18 s). The
    successes of shard 1 must not end shard 0's downtime (a 2-shard run understated it)."""
    reqs = []
    for i in range(300):
        t, shard = i * 0.1, i % 2
        ok = not (shard == 0 and 5.0 <= t < 18.0)
        reqs.append({"t": t, "dt": 0.01, "ok": ok, "status": 201 if ok else 500, "id": f"m{i}" if ok else None,
                     "shard": shard})
    rec = {"started": 0.0, "requests": reqs, "polls": [{"t": t * 0.5, "ok": True, "owners": {}, "roles": {}}
                                                      for t in range(60)], "settings": SETTINGS, "lost": [], "shards": 2}
    rep = probe.analyze_record(rec, fault_at=4.0, bound=12.0)
    assert rep["downtime_s"] == pytest.approx(13.01, abs=1e-6)
    assert rep["downtime_by_shard_s"] == {"0": pytest.approx(13.01, abs=1e-6), "1": 0.0}
    assert rep["worst_shard"] == "0" and rep["shards"] == 2 and not rep["within_bound"]
    for r in reqs:
        del r["shard"]  # an older record without shards: one group, as before
    assert probe.analyze_record(rec, fault_at=4.0, bound=12.0)["downtime_s"] == pytest.approx(0.11, abs=1e-6)


def test_shard_of_a_recipient_is_the_stand_ins_routing():
    import importlib.util

    from bench.common import ROOT

    spec = importlib.util.spec_from_file_location("cluster_schema_for_bench",
                                                  ROOT / "plugins" / "module_utils" / "cluster_schema.py")
    S = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(S)
    for n in range(200):
        to = f"1555{n:07d}"
        for shards in (1, 2, 4, 32):
            assert probe.shard_for(to, shards) == S.shard_for(to, shards)


def test_gc_summary_line_says_unknown_counts_instead_of_failing():
    """The module's rows_before/rows_after are null when GET /v1/stats/db holds no count: the
    summary must still print (it raised TypeError after a 10-million-row run, losing its JSON)."""
    from bench import gc

    r = {"rows": 10_000_000, "fill": {"seconds": 61.7}, "gc_seconds": 354.5, "module_seconds": 353.4,
         "gc_round_seconds": 352.0, "fill_rows_deleted": 9_000_000, "deletion_rate_rows_per_s": 25_388,
         "rows_before": None, "rows_after": None, "rows_after_direct": 1_000_200, "fill_rows_after": 1_000_000,
         "must_keep": 1_000_000, "latency_ms": {"idle": {"p99": 6.1}, "during_gc": {"p99": 8.0}},
         "p99_ratio": 1.31, "requests": {"failed": 0}}
    line = gc._summary("mysql", r)
    assert "rows ? -> ?" in line and "9,000,000 deleted (25,388 rows/s)" in line and "kept 1,000,000/1,000,000" in line
