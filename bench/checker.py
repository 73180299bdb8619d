"""The fault campaign's independent checker: it reads only what the client saw (the drill
client's record) and what the database holds afterwards (the stored message rows), never the
cluster's own view of itself (its logs, ``/v1/support``, the shard map).

Per round it answers:

- **lost**: acknowledged messages that are not stored;
- **duplicated**: one request stored more than once although the client sent it once (a
  request the client retried through the other webapp after a timeout may legitimately be
  stored twice: those are counted apart, as ``client_retry_duplicates``);
- **unexpected**: stored rows of this round that no request explains (a body the client never
  sent, a stored id that differs from the acknowledged one, a request the API rejected with a
  4xx stored anyway);
- **dual_owner_intervals**: two fencing epochs of one shard whose accepted writes overlap in
  time (the rows' epochs and database times: epoch e's last write after epoch e+1's first), or
  one epoch written by two owners;
- **stuck_shards**: shards with no successful request within the bound after the heal;
- **false_failover**: a shard's rows show a new epoch after a fault that must not cause one
  (a pause shorter than unhealthy_interval - heartbeat_interval);
- the client-seen **downtime** per shard: the longest time from the fault on without an
  acknowledged message of that shard, whether the requests failed or hung.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

BODY = re.compile(r"^drill (?P<tag>\S+) (?P<n>\d+)$")


@dataclass(frozen=True)
class StoredRow:
    """One row of the messages table: id, shard, body, owner, fencing epoch, database time (epoch s)."""

    id: str
    shard: int
    body: str
    owner: str
    epoch: int
    at: float


def parse_rows(lines: Iterable[str]) -> list[StoredRow]:
    """Rows from the database client's tab-separated output (id, shard, body, owner, epoch, unix time)."""
    rows = []
    for line in lines:
        if not line.strip():
            continue
        msg_id, shard, body, owner, epoch, at = line.rstrip("\n").split("\t")
        rows.append(StoredRow(msg_id, int(shard), body, owner, int(epoch), float(at)))
    return rows


def _n(body: str, tag: str) -> int | None:
    m = BODY.match(body)
    return int(m.group("n")) if m and m.group("tag") == tag else None


def _longest_silence(reqs: list[dict[str, Any]], since: float, until: float) -> float | None:
    """The longest time in [since, until] without an acknowledgement of one shard's messages:
    from ``since`` (or an acknowledgement) to the end of the next acknowledged request. Failed
    and hanging requests both count, as both leave the client waiting. None: no acknowledgement
    came after ``since`` at all."""
    ends = sorted(r["t"] + r["dt"] for r in reqs if r["ok"] and r["t"] + r["dt"] >= since)
    if not ends:
        return None
    points = [since, *ends]
    longest = max(b - a for a, b in zip(points, points[1:], strict=False))
    # A shard still waiting when the client stopped counts up to that moment.
    return max(longest, until - ends[-1]) if until > ends[-1] else longest


def check_round(record: dict[str, Any], rows: list[StoredRow], fault_at: float, healed_at: float,
                recovery_bound: float, failover_allowed: bool = True) -> dict[str, Any]:
    """The verdict of one round. ``record``: the drill client's record (its requests carry ``n``,
    ``t``, ``dt``, ``ok``, ``status``, ``id``, ``shard`` and ``attempts``; ``tag`` names the
    round's bodies). ``rows``: every stored row whose body carries the tag. ``fault_at`` /
    ``healed_at``: when the fault started and ended (the bench's clock, the same host clock as
    the database's). ``failover_allowed``: False for faults that must not move a shard."""
    tag = record["tag"]
    reqs = record["requests"]
    by_n = {r["n"]: r for r in reqs if "n" in r}
    stored: dict[int, list[StoredRow]] = defaultdict(list)
    unexpected: list[dict[str, Any]] = []
    for row in rows:
        n = _n(row.body, tag)
        if n is None or n not in by_n:
            unexpected.append({"id": row.id, "body": row.body, "why": "no request sent this body"})
            continue
        stored[n].append(row)
    lost, duplicated, retried = [], [], []
    for n, r in by_n.items():
        have = stored.get(n, [])
        if r["ok"] and r.get("id"):
            if r["id"] not in {s.id for s in have}:
                lost.append({"n": n, "id": r["id"], "t": r["t"]})
                if have:
                    unexpected.append({"id": have[0].id, "body": have[0].body,
                                       "why": f"stored under another id than the acknowledged {r['id']}"})
        elif 400 <= int(r.get("status") or 0) < 500 and int(r.get("attempts") or 1) == 1 and have:
            unexpected.append({"id": have[0].id, "body": have[0].body, "why": f"stored although rejected with {r['status']}"})
        if len(have) > 1:
            (retried if int(r.get("attempts") or 1) > 1 else duplicated).append(
                {"n": n, "ids": sorted(s.id for s in have)})

    # Fencing, from the rows alone: per shard, each epoch's writes form an interval on the
    # database clock; a later epoch's interval must start after every earlier one ended.
    dual: list[dict[str, Any]] = []
    by_shard_epoch: dict[int, dict[int, list[StoredRow]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_shard_epoch[row.shard][row.epoch].append(row)
    for shard, epochs in by_shard_epoch.items():
        spans = []
        for epoch, rs in sorted(epochs.items()):
            owners = sorted({r.owner for r in rs})
            if len(owners) > 1:
                dual.append({"shard": shard, "epoch": epoch, "owners": owners, "why": "one epoch, two owners"})
            spans.append((epoch, min(r.at for r in rs), max(r.at for r in rs), owners))
        for i, (e1, _s1, end1, o1) in enumerate(spans):
            for e2, start2, _end2, o2 in spans[i + 1:]:
                if end1 > start2:
                    dual.append({"shard": shard, "epochs": [e1, e2], "owners": [o1, o2],
                                 "overlap_s": round(end1 - start2, 6), "why": "an older epoch wrote after a newer one began"})

    # Failover evidence: the epoch of the shard's rows before the fault against after it.
    moved = {}
    for shard, epochs in by_shard_epoch.items():
        before = [r.epoch for rs in epochs.values() for r in rs if r.at < fault_at]
        after = [r.epoch for rs in epochs.values() for r in rs if r.at >= fault_at]
        if before and after and max(after) > max(before):
            moved[shard] = [max(before), max(after)]

    shards = sorted({r["shard"] for r in reqs if r.get("shard") is not None})
    downtime: dict[str, float | None] = {}
    recovery: dict[str, float | None] = {}
    stuck = []
    for shard in shards:
        sreqs = [r for r in reqs if r.get("shard") == shard]
        silence = _longest_silence(sreqs, fault_at, max(r["t"] + r["dt"] for r in reqs))
        downtime[str(shard)] = None if silence is None else round(silence, 3)
        back = next((r["t"] + r["dt"] for r in sorted(sreqs, key=lambda r: r["t"])
                     if r["ok"] and r["t"] >= healed_at), None)
        recovery[str(shard)] = None if back is None else round(max(0.0, back - healed_at), 3)
        if back is None or back - healed_at > recovery_bound:
            stuck.append(shard)
    finite = [d for d in downtime.values() if d is not None]
    return {
        "requests": len(reqs), "acknowledged": sum(1 for r in reqs if r["ok"]),
        "failed": sum(1 for r in reqs if not r["ok"]), "stored": len(rows),
        "lost": lost, "duplicated": duplicated, "client_retry_duplicates": retried, "unexpected": unexpected,
        "dual_owner_intervals": dual, "stuck_shards": stuck,
        "failovers": {str(s): e for s, e in sorted(moved.items())},
        "false_failover": bool(moved) and not failover_allowed,
        "downtime_by_shard_s": downtime,
        "downtime_s": None if len(finite) < len(downtime) else (max(finite) if finite else 0.0),
        "recovery_after_heal_s": recovery,
    }


def problems(verdict: dict[str, Any]) -> list[str]:
    """What broke a promise in one round's verdict, in words (empty: the round passed)."""
    out = []
    for key, what in (("lost", "acknowledged messages not stored"), ("duplicated", "requests stored twice"),
                      ("unexpected", "stored rows no request explains"),
                      ("dual_owner_intervals", "overlapping writes of two owners of a shard"),
                      ("stuck_shards", "shards not serving within the bound after the heal")):
        if verdict[key]:
            out.append(f"{len(verdict[key])} {what}")
    if verdict["false_failover"]:
        out.append(f"a failover for a fault that must not cause one: {verdict['failovers']}")
    return out
