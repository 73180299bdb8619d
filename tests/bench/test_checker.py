"""The fault campaign's checker and schedule, on hand-made records and rows (no cluster needed).
The campaign itself runs on the testbed: one round of each fault kind in make test (bench
--quick), 200 rounds in make chaos."""

from __future__ import annotations

import random

import pytest

from bench import checker, faults, nemesis

TAG = "c001abcdef"


def make_round(fail: tuple[float, float] | None = None, hang: tuple[float, float] | None = None,
               shards: int = 2, epoch_after: dict[int, float] | None = None) -> tuple[dict, list[checker.StoredRow]]:
    """Requests every 0.1 s over 0..30 s alternating between ``shards`` shards; those starting in
    ``fail`` fail (status 0), one in ``hang`` waits until its end; every acknowledged one is
    stored once, at its acknowledgement, with epoch 2 after ``epoch_after[shard]`` (else 1)."""
    reqs, rows = [], []
    epoch_after = epoch_after or {}
    i = 0
    t = 0.0
    while t < 30.0:
        shard = i % shards
        dt = 0.01
        ok = not (fail and fail[0] <= t < fail[1])
        if hang and hang[0] <= t < hang[1]:
            dt = hang[1] - t
        req = {"n": i, "t": t, "dt": dt, "ok": ok, "status": 201 if ok else 0, "id": f"m{i}" if ok else None,
               "shard": shard, "attempts": 1}
        reqs.append(req)
        if ok:
            at = t + dt
            epoch = 2 if at >= epoch_after.get(shard, float("inf")) else 1
            rows.append(checker.StoredRow(f"m{i}", shard, f"drill {TAG} {i}", f"owner{epoch}", epoch, at))
        t += dt + 0.09 if dt < 1 else dt
        i += 1
    return {"tag": TAG, "requests": reqs}, rows


def check(record: dict, rows: list[checker.StoredRow], allowed: bool = True, bound: float = 27.0) -> dict:
    return checker.check_round(record, rows, fault_at=5.0, healed_at=15.0, recovery_bound=bound, failover_allowed=allowed)


def test_a_clean_round_has_no_findings():
    rec, rows = make_round()
    v = check(rec, rows)
    assert checker.problems(v) == []
    assert v["downtime_s"] == pytest.approx(0.2, abs=0.02)  # two shards alternate: 0.2 s between a shard's acks
    assert v["stored"] == v["acknowledged"] == v["requests"]


def test_an_acknowledged_message_missing_from_the_database_is_lost():
    rec, rows = make_round()
    v = check(rec, rows[:10] + rows[11:])
    assert [x["id"] for x in v["lost"]] == [rows[10].id]
    assert checker.problems(v) == ["1 acknowledged messages not stored"]


def test_a_request_stored_twice_is_duplicated_unless_the_client_retried_it():
    rec, rows = make_round()
    extra = checker.StoredRow("other", rows[3].shard, rows[3].body, rows[3].owner, rows[3].epoch, rows[3].at)
    assert len(check(rec, [*rows, extra])["duplicated"]) == 1
    rec["requests"][3]["attempts"] = 2  # the first webapp timed out, the second stored it again
    v = check(rec, [*rows, extra])
    assert v["duplicated"] == [] and len(v["client_retry_duplicates"]) == 1 and checker.problems(v) == []


def test_rows_no_request_explains_are_unexpected():
    rec, rows = make_round()
    stray = checker.StoredRow("x1", 0, f"drill {TAG} 999999", "owner1", 1, 20.0)
    v = check(rec, [*rows, stray])
    assert [u["id"] for u in v["unexpected"]] == ["x1"]
    rec["requests"][5].update(ok=False, status=400, id=None)  # rejected, yet stored
    v = check(rec, rows)
    assert [u["why"] for u in v["unexpected"]] == ["stored although rejected with 400"]


def test_an_older_epoch_writing_after_a_newer_one_began_is_two_owners():
    rec, rows = make_round(epoch_after={0: 12.0})
    assert check(rec, rows)["dual_owner_intervals"] == []
    late = checker.StoredRow("late", 0, rows[-2].body, "owner1", 1, 20.0)  # epoch 1 accepted at 20 s
    rows = [late if r.id == rows[-2].id else r for r in rows]
    rec["requests"][-2]["id"] = "late"
    v = check(rec, rows)
    assert len(v["dual_owner_intervals"]) == 1
    d = v["dual_owner_intervals"][0]
    assert d["shard"] == 0 and d["epochs"] == [1, 2] and d["overlap_s"] == pytest.approx(8.0, abs=0.2)


def test_one_epoch_written_by_two_owners_is_reported():
    rec, rows = make_round()
    rows[4] = checker.StoredRow(rows[4].id, rows[4].shard, rows[4].body, "intruder", rows[4].epoch, rows[4].at)
    assert check(rec, rows)["dual_owner_intervals"][0]["why"] == "one epoch, two owners"


def test_a_new_epoch_after_a_fault_that_must_not_move_a_shard_is_a_false_failover():
    rec, rows = make_round(epoch_after={1: 9.0})
    assert check(rec, rows, allowed=True)["failovers"] == {"1": [1, 2]}
    v = check(rec, rows, allowed=False)
    assert v["false_failover"] and "a failover for a fault that must not cause one" in checker.problems(v)[0]


def test_downtime_counts_failed_and_hanging_requests_per_shard():
    rec, rows = make_round(fail=(6.0, 14.0))
    v = check(rec, rows)
    assert v["downtime_s"] == pytest.approx(8.2, abs=0.2)
    assert set(v["downtime_by_shard_s"]) == {"0", "1"}
    rec, rows = make_round(hang=(7.0, 13.0))  # one request waits 6 s, nothing fails
    v = check(rec, rows)
    assert v["failed"] == 0 and v["downtime_s"] == pytest.approx(6.0, abs=0.3)


def test_a_shard_that_does_not_serve_after_the_heal_is_stuck():
    rec, rows = make_round(fail=(6.0, 40.0))
    v = check(rec, rows)
    assert v["stuck_shards"] == [0, 1] and v["recovery_after_heal_s"] == {"0": None, "1": None}
    rec, rows = make_round(fail=(6.0, 25.0))  # back 10 s after the heal: stuck only with a 5 s bound
    assert check(rec, rows)["stuck_shards"] == []
    assert check(rec, rows, bound=5.0)["stuck_shards"] == [0, 1]


def test_rows_are_read_from_the_database_clients_tab_separated_output():
    rows = checker.parse_rows(["id1\t0\tdrill c1 3\t172.28.10.13:abc\t7\t1796219898.123456\n", ""])
    assert rows == [checker.StoredRow("id1", 0, "drill c1 3", "172.28.10.13:abc", 7, 1796219898.123456)]


def test_the_schedule_is_replayable_and_covers_every_kind_evenly():
    kinds = list(nemesis.KINDS)
    one = faults.schedule(7, 3 * len(kinds), kinds)
    assert one == faults.schedule(7, 3 * len(kinds), kinds)
    assert one != faults.schedule(8, 3 * len(kinds), kinds)
    assert all(one.count(k) == 3 for k in kinds)


def test_the_fault_kinds_cover_what_the_campaign_must_exercise():
    assert {"partition_owner_masters", "partition_owner_database", "partition_primary_database",
            "partition_primary_all", "partition_webapp_database", "partition_halves", "restart_database",
            "stall_database_short", "stall_database_long", "stop_nfs", "kill_owner", "kill_primary_master",
            "kill_webapp", "pause_owner_short", "pause_owner_long", "pause_primary_master", "pause_webapp",
            "double"} == set(nemesis.KINDS)
    only_short_pause = [k for k, kind in nemesis.KINDS.items() if not kind.failover_allowed]
    assert only_short_pause == ["pause_owner_short"]


class FakeNemesis(nemesis.Nemesis):
    """Targets without a cluster; the building blocks record what they would do."""

    def __init__(self, seed: int):
        super().__init__(None, nemesis.Timers(heartbeat=2.0, unhealthy=10.0), random.Random(seed))  # type: ignore[arg-type]
        self.done: list[tuple] = []

    def owner_host(self) -> str:
        return "coreapp2"

    def primary_host(self) -> str:
        return "master1"

    def cut(self, host, peers, active):  # type: ignore[override]
        self.done.append(("cut", host, tuple(peers)))
        active.undo.append(lambda: self.done.append(("heal", host)))

    def pause(self, host, active):  # type: ignore[override]
        self.done.append(("pause", host))
        active.undo.append(lambda: self.done.append(("unpause", host)))

    def signal(self, host, sig, undo_sig, active):  # type: ignore[override]
        self.done.append((sig, host))
        active.undo.append(lambda: self.done.append((undo_sig, host)))

    def stop(self, host, active):  # type: ignore[override]
        self.done.append(("stop", host))
        active.undo.append(lambda: self.done.append(("start", host)))

    def kill(self, host, active):  # type: ignore[override]
        self.done.append(("kill", host))
        active.undo.append(lambda: self.done.append(("start", host)))


def test_a_short_pause_stays_below_unhealthy_minus_heartbeat_and_a_long_one_above_unhealthy():
    for seed in range(30):
        n = FakeNemesis(seed)
        assert n.start("pause_owner_short").hold_s <= 10.0 - 2.0 - 1.0
        assert n.start("pause_owner_long").hold_s > 10.0


def test_the_halves_split_every_node_and_the_heal_undoes_each_cut():
    n = FakeNemesis(3)
    a = n.start("partition_halves")
    other = a.detail["other_side"]
    assert sorted(a.targets + other) == sorted(nemesis.MASTERS + nemesis.COREAPPS + nemesis.WEBAPPS)
    cuts = [d for d in n.done if d[0] == "cut"]
    assert len(cuts) == len(a.targets)
    nemesis.Nemesis.heal(a)
    assert [d for d in n.done if d[0] == "heal"] == [("heal", h) for h in reversed(a.targets)]


def test_two_faults_at_once_never_aim_at_the_same_machine():
    for seed in range(40):
        n = FakeNemesis(seed)
        a = n.start("double")
        assert len(a.detail["faults"]) == 2 and len(set(a.targets)) == len(a.targets), a
        nemesis.Nemesis.heal(a)
        assert len(n.done) == 2 * len(a.undo)  # every step undone
