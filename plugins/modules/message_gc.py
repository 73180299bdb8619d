#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: message_gc
short_description: Run the message garbage collection of a WhatsApp Business API client cluster
version_added: 0.1.0
description:
  - Counts the messages in the cluster database, calls C(PUT /v1/services/message/gc), waits until
    every coreapp reports its collection finished (C(GET /v1/services/message/gc)), and counts again.
  - Repeats while the messages table still holds more than O(threshold) rows and the last round
    deleted something, at most O(max_rounds) times (the guide says a table of over ten million rows
    needs several calls).
  - With O(mark_read), first marks incoming messages that are not read yet as read, since the
    collection keeps unread incoming messages.
  - When nothing can be collected (no delivered or read message), nothing is called and
    C(changed) is V(false).
  - Reports the rows before and after, per round what each coreapp did, and the time taken.
author:
  - wabiz.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wabiz.cluster.api
  - wabiz.cluster.cluster_db
attributes:
  check_mode:
    support: full
    details: Counts the rows and reports how many could be collected (RV(collectable)) without calling the API.
  diff_mode:
    support: none
  idempotent:
    description: Whether a second run with the same options changes nothing.
    support: full
    details: A second run finds nothing to collect and changes nothing.
  platform:
    platforms: posix
options:
  db_engine:
    required: true
  db_user:
    required: true
  threshold:
    description:
      - Run another collection round while the messages table holds more rows than this.
      - V(0) or more.
    type: int
    default: 10000000
  max_rounds:
    description:
      - Most collection rounds in one run, V(1) to V(100). V(0) is refused (to look without collecting, use check
        mode).
    type: int
    default: 5
  mark_read:
    description:
      - Mark incoming unread messages read before collecting (a database update; needs a user that may
        update the messages table).
    type: bool
    default: false
  poll_interval:
    description:
      - Seconds between status polls while the coreapps collect; more than V(0) and at most V(600).
    type: float
    default: 1
  wait_timeout:
    description:
      - Seconds one round may take before the module gives up (the deadline of the polling loop; each poll also
        ends within O(api_timeout)); more than V(0) and at most V(86400) (a day).
    type: float
    default: 3600
notes:
  - Needs an admin login (O(api_password) or O(api_token)).
"""

EXAMPLES = r"""
- name: Collect delivered messages, as many rounds as it takes to get under 10 million rows
  wabiz.cluster.message_gc:
    api_url: https://wa.example.internal:9090
    api_password: "{{ vault_wa_api_password }}"
    db_engine: mysql
    db_host: db.example.internal
    db_user: whatsapp
    db_password: "{{ vault_wa_db_password }}"
    mark_read: true
  register: gc

- name: Report
  ansible.builtin.debug:
    msg: "{{ gc.rows_before }} -> {{ gc.rows_after }} rows in {{ gc.elapsed_seconds }} s ({{ gc.rounds | length }} rounds)"
"""

RETURN = r"""
rows_before:
  description: Rows in the messages table before the run.
  returned: success
  type: int
  sample: 12000000
rows_after:
  description: Rows after the run (in check mode, the same as RV(rows_before)).
  returned: success
  type: int
  sample: 9800000
deleted:
  description: Rows removed by the run (from the counts).
  returned: success
  type: int
  sample: 2200000
collectable:
  description: Rows the collection may delete when the run starts (delivered and read messages, plus the unread
    incoming ones with O(mark_read)).
  returned: success
  type: int
  sample: 2200000
marked_read:
  description: Incoming messages marked read (with O(mark_read); 0 in check mode).
  returned: success
  type: int
  sample: 0
counts_before:
  description: Rows by status before the run.
  returned: success
  type: dict
  sample: {delivered: 2200000, sent: 9800000}
counts_after:
  description: Rows by status after the run.
  returned: success
  type: dict
  sample: {sent: 9800000}
rounds:
  description: Each collection round, with what each coreapp reported.
  returned: success
  type: list
  elements: dict
  sample:
    - {round: 1, coreapps: {coreapp1: {status: completed, deleted: 2200000}}, rows_after: 9800000, seconds: 41.2}
stopped_because:
  description: Why the rounds stopped.
  returned: success
  type: str
  sample: below threshold
elapsed_seconds:
  description: Seconds the run took.
  returned: success
  type: float
  sample: 41.9
failure_kind:
  description: Why the module failed (C(invalid_option), C(gc_failed), C(timeout), C(unreachable),
    C(bad_response), C(auth)...).
  returned: failure
  type: str
  sample: gc_failed
"""

import time

from ansible_collections.wabiz.cluster.plugins.module_utils._api import ApiError, WabizApi
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_module import run_cluster_module
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_options import option_rule, seconds_rule
from ansible_collections.wabiz.cluster.plugins.module_utils._clusterdb import ClusterDb
from ansible_collections.wabiz.cluster.plugins.module_utils.cluster_schema import STATUS_INCOMING_UNREAD

COLLECTED_STATUSES = ("delivered", "read")
FINISHED = ("completed", "skipped", "failed", "idle")
MAX_ROUNDS = 100
RULES = (
    option_rule("threshold", 0, None, "the row count to stay under, for example 10000000", whole=True),
    option_rule("max_rounds", 1, MAX_ROUNDS, "the most collection rounds of one run, for example 5 (use check mode "
                "to count without collecting)", whole=True),
    seconds_rule("poll_interval", 600, "the seconds between status polls, for example 1"),
    seconds_rule("wait_timeout", 86400, "the seconds one round may take, for example 3600"),
)


def collectable(counts, mark_read):
    n = sum(counts.get(s, 0) for s in COLLECTED_STATUSES)
    if mark_read:
        n += counts.get(STATUS_INCOMING_UNREAD, 0)
    return n


def all_finished(gc):
    """True when every coreapp of a GC status answer has finished (pure, unit-tested)."""
    return bool(gc) and all(isinstance(v, dict) and v.get("status") in FINISHED for v in gc.values())


def next_step(rows_after, threshold, deleted, round_no, max_rounds):
    """None to run another round, else why to stop (pure, unit-tested)."""
    if rows_after <= threshold:
        return "below threshold"
    if deleted <= 0:
        return "nothing more to collect (%d rows remain above the threshold of %d)" % (rows_after, threshold)
    if round_no >= max_rounds:
        return "max_rounds reached with %d rows above the threshold of %d" % (rows_after, threshold)
    return None


def _gc_of(api, body, method):
    """The ``gc`` object of a GC answer, ``{node: {status...}}`` (at the top, or under services.message
    as the product's documents show it); bad_response when the answer holds none."""
    services = body.get("services")
    message = services.get("message") if isinstance(services, dict) else None
    if "gc" in body:
        gc = body["gc"] or {}
    elif isinstance(message, dict) and "gc" in message:
        gc = message["gc"] or {}
    else:
        gc = None
    if not isinstance(gc, dict) or not all(isinstance(v, dict) for v in gc.values()):
        raise ApiError("bad_response", "api_url %s did not answer as the WhatsApp Business API (%s "
                       "/v1/services/message/gc answered without a gc object per coreapp): check that api_url names "
                       "a webapp of the cluster." % (getattr(api, "base", "?"), method))
    return gc


def run_round(api, poll_interval, wait_timeout, sleep=time.sleep, clock=time.time):
    """One collection: PUT, then poll until every coreapp finished. {node: {status, deleted...}}.
    The polling ends at ``wait_timeout`` seconds after the PUT (a timeout ApiError), never later than
    one poll interval and one call past it."""
    started = clock()
    deadline = started + float(wait_timeout)
    gc = _gc_of(api, api.call("PUT", "/v1/services/message/gc"), "PUT")
    if not gc:
        raise ApiError("unavailable", "no coreapp took the garbage collection: no shard has an owner that serves "
                       "(check the cluster with wabiz.cluster.failover_check)")
    while not all_finished(gc):
        left = deadline - clock()
        if not left > 0:  # also stops on a NaN deadline
            raise ApiError("timeout", "the message garbage collection did not finish within %ss: %s (raise "
                           "wait_timeout, or look at the coreapps' logs)" % (wait_timeout, ", ".join(
                               "%s %s" % (k, (v or {}).get("status")) for k, v in sorted(gc.items()))))
        sleep(min(float(poll_interval), left))
        gc = _gc_of(api, api.call("GET", "/v1/services/message/gc"), "GET")
    return gc, round(clock() - started, 3)


ARGUMENT_SPEC = dict(
    threshold=dict(type="int", default=10000000),
    max_rounds=dict(type="int", default=5),
    mark_read=dict(type="bool", default=False),
    poll_interval=dict(type="float", default=1.0),
    wait_timeout=dict(type="float", default=3600.0),
)


def run(module, db, failure):
    p = module.params
    started = time.time()
    rounds = failure["rounds"] = []
    marked = 0
    stopped = "nothing to collect"
    db.connect()
    before = db.message_counts()
    todo = collectable(before, p["mark_read"])
    after = before
    if todo and not module.check_mode:
        if p["mark_read"]:
            marked = db.mark_incoming_read()
        api = WabizApi(p, check_mode=module.check_mode)
        stopped = None
        rows = sum(before.values())
        while stopped is None:
            gc, seconds = run_round(api, p["poll_interval"], p["wait_timeout"])
            after = db.message_counts()
            deleted = rows - sum(after.values())
            rows = sum(after.values())
            rounds.append({"round": len(rounds) + 1, "coreapps": gc, "rows_after": rows, "seconds": seconds})
            failed = sorted(k for k, v in gc.items() if (v or {}).get("status") == "failed")
            if failed:
                module.fail_json(msg="the garbage collection failed on %s: %s" % (", ".join(failed), "; ".join(
                    str(gc[k].get("error") or gc[k].get("details") or "no detail") for k in failed)),
                    failure_kind="gc_failed", rounds=rounds, rows_before=sum(before.values()), rows_after=rows)
            stopped = next_step(rows, p["threshold"], deleted, len(rounds), p["max_rounds"])
    elif todo:
        stopped = "check mode"
    rows_before, rows_after = sum(before.values()), sum(after.values())
    changed = bool(todo) if module.check_mode else (rows_after < rows_before or marked > 0)
    return dict(changed=changed, rows_before=rows_before, rows_after=rows_after, deleted=rows_before - rows_after,
                collectable=todo, marked_read=marked, counts_before=before, counts_after=after, rounds=rounds,
                stopped_because=stopped, elapsed_seconds=round(time.time() - started, 3))


def main():
    run_cluster_module(ARGUMENT_SPEC, RULES, run, db_class=ClusterDb,
                       required_one_of=[("api_password", "api_new_password", "api_token")])


if __name__ == "__main__":
    main()
