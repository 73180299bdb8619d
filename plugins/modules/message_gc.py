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
  - Starts the message garbage collection with C(PUT /v1/services/message/gc), with the API URL and
    credentials alone. The answer names every node that took it (status C(processing)); the public
    API has no call to ask how it is going.
  - "Completion is reported only by a webhook callback to C(settings.application.webhooks.url):
    with O(webhook_listen) the module listens there (a small threaded HTTP server) for the callback
    of every node of the answer, until O(wait_timeout); C(webhooks.url) must point at that address
    (or at a relay to it). Without O(webhook_listen) the module starts the collection and returns
    RV(status=processing)."
  - With O(mark_read_ids), first marks those incoming messages read (C(PUT /v1/messages/{id})), since
    the collection keeps unread incoming messages.
  - The message count comes from C(GET /v1/stats/db) when its answer holds a message count metric,
    or (stand-in clusters only) from the database with O(db_cross_check=true); otherwise it is unknown
    and RV(rows_before) is V(null). Only where the count is known does O(threshold) apply, repeating
    the collection while more than O(threshold) messages remain and the last round deleted some, at
    most O(max_rounds) times; otherwise one round is run.
  - When the count is known to be zero (or, with the database counts, nothing is delivered or read)
    and no id is to be marked, nothing is called and C(changed) is V(false).
author:
  - wabiz.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wabiz.cluster.api
  - wabiz.cluster.cluster_db
attributes:
  check_mode:
    support: full
    details: Counts the messages where the count is known and reports what would be done, without starting anything.
  diff_mode:
    support: none
  idempotent:
    description: Whether a second run with the same options changes nothing.
    support: partial
    details: Where the message count is known, a second run finds nothing to collect and changes nothing; where it is
      unknown every run starts a collection.
  platform:
    platforms: posix
options:
  webhook_listen:
    description:
      - C(HOST:PORT) to listen on for the GC completion callbacks, for example V(0.0.0.0:8085). The cluster's
        C(settings.application.webhooks.url) must reach it (directly or through a relay); the module checks that
        a webhook URL is set.
      - Unset, the module starts the collection and returns at once with RV(status=processing).
    type: str
  wait_timeout:
    description:
      - Seconds one round waits for every node's completion callback; more than V(0) and at most V(86400) (a day).
    type: float
    default: 3600
  mark_read_ids:
    description:
      - "Ids of incoming messages to mark read before collecting (C(PUT /v1/messages/{id}) with C({\"status\": \"read\"}))."
    type: list
    elements: str
    default: []
  threshold:
    description:
      - Where the message count is known, run another round while more messages than this remain. V(0) or more.
    type: int
    default: 10000000
  max_rounds:
    description:
      - Most collection rounds in one run where the message count is known, V(1) to V(100). V(0) is refused (to look
        without collecting, use check mode).
    type: int
    default: 5
notes:
  - Needs an admin login (O(api_password) or O(api_token)).
  - The options C(mark_read) (a database update of the stand-in's table) and C(poll_interval) (there is no GET to
    poll) of earlier versions are gone; use O(mark_read_ids) and O(webhook_listen).
"""

EXAMPLES = r"""
- name: Collect, waiting for the completion callbacks on this host
  wabiz.cluster.message_gc:
    api_url: https://wa.example.internal:9090
    api_password: "{{ vault_wa_api_password }}"
    webhook_listen: 0.0.0.0:8085
    wait_timeout: 1800
  register: gc

- name: Report
  ansible.builtin.debug:
    msg: "{{ gc.deleted }} messages deleted in {{ gc.elapsed_seconds }} s ({{ gc.rounds | length }} rounds)"

- name: Start the collection and return at once
  wabiz.cluster.message_gc:
    api_url: https://wa.example.internal:9090
    api_password: "{{ vault_wa_api_password }}"
    mark_read_ids: "{{ unread_incoming_ids }}"
"""

RETURN = r"""
status:
  description: V(complete) (every node reported its collection), V(processing) (started, not waited for), V(idle)
    (nothing done) or V(check_mode).
  returned: success
  type: str
  sample: complete
rows_before:
  description: Messages before the run, or V(null) when the count is unknown.
  returned: success
  type: int
  sample: 12000000
rows_after:
  description: Messages after the run (in check mode, the same as RV(rows_before)), or V(null) when unknown.
  returned: success
  type: int
  sample: 9800000
deleted:
  description: Messages the nodes reported deleted (the sum of C(messages_deleted) of the callbacks), or V(null) when
    not waited for.
  returned: success
  type: int
  sample: 2200000
counts_before:
  description: Messages by status before the run, where the count source gives them.
  returned: success
  type: dict
  sample: {delivered: 2200000, sent: 9800000}
counts_after:
  description: Messages by status after the run, where the count source gives them.
  returned: success
  type: dict
counts_source:
  description: Where the counts came from (C(GET /v1/stats/db), C(database)), or V(null).
  returned: success
  type: str
  sample: GET /v1/stats/db
collectable:
  description: Messages the collection may delete when the run starts (delivered and read), where counts by status
    are known; else V(null).
  returned: success
  type: int
marked_read:
  description: Messages marked read (0 in check mode).
  returned: success
  type: int
  sample: 0
rounds:
  description: Each collection round with what each node reported.
  returned: success
  type: list
  elements: dict
  sample:
    - {round: 1, nodes: {"coreapp1:9f8e7d6c5b4a": {status: complete, messages_deleted: 2200000}},
       messages_deleted: 2200000, rows_after: 9800000, seconds: 41.2}
stopped_because:
  description: Why the rounds stopped.
  returned: success
  type: str
  sample: below threshold
webhook_url:
  description: The cluster's C(settings.application.webhooks.url) (with O(webhook_listen)).
  returned: when webhook_listen is set
  type: str
elapsed_seconds:
  description: Seconds the run took.
  returned: success
  type: float
  sample: 41.9
rate_limited:
  description: When the API answered 429 (too many requests), how often and how long the module backed off.
  returned: when the API rate-limited the run
  type: dict
failure_kind:
  description: Why the module failed (C(invalid_option), C(gc_failed), C(timeout), C(listen_failed), C(no_webhook),
    C(unreachable), C(bad_response), C(auth), C(rate_limited)...).
  returned: failure
  type: str
  sample: gc_failed
"""

import time

from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_api import parse_settings
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_module import BEARER_LOGINS, run_cluster_module
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_options import option_rule, seconds_rule
from ansible_collections.wabiz.cluster.plugins.module_utils._clusterdb import ClusterDb
from ansible_collections.wabiz.cluster.plugins.module_utils._gc import (
    CallbackListener,
    collectable,
    counts_after_round,
    mark_read,
    message_counts,
    next_step,
    parse_listen,
    start,
    wait,
)

MAX_ROUNDS = 100
RULES = (
    option_rule("threshold", 0, None, "the message count to stay under, for example 10000000", whole=True),
    option_rule("max_rounds", 1, MAX_ROUNDS, "the most collection rounds of one run, for example 5 (use check mode "
                "to count without collecting)", whole=True),
    seconds_rule("wait_timeout", 86400, "the seconds one round may wait for the callbacks, for example 3600"),
)

ARGUMENT_SPEC = dict(
    webhook_listen=dict(type="str"),
    wait_timeout=dict(type="float", default=3600.0),
    mark_read_ids=dict(type="list", elements="str", default=[]),
    threshold=dict(type="int", default=10000000),
    max_rounds=dict(type="int", default=5),
)


def run(cluster):
    p = cluster.params
    started = time.time()
    if p["webhook_listen"] is not None:
        try:
            parse_listen(p["webhook_listen"])
        except ValueError as exc:
            cluster.fail(str(exc), failure_kind="invalid_option")
    api = cluster.api
    rounds = cluster.failure["rounds"] = []
    ids = [i for i in p["mark_read_ids"] if i]
    total, counts, source = message_counts(api, cluster.db)
    todo = collectable(counts)
    result = dict(changed=False, status="idle", rows_before=total, rows_after=total, deleted=None,
                  counts_before=counts, counts_after=counts, counts_source=source, collectable=todo, marked_read=0,
                  rounds=rounds)
    if (total == 0 or todo == 0) and not ids:
        return dict(result, stopped_because="nothing to collect", elapsed_seconds=round(time.time() - started, 3))
    if cluster.check_mode:
        return dict(result, changed=True, status="check_mode", stopped_because="check mode",
                    elapsed_seconds=round(time.time() - started, 3))
    listener = None
    if p["webhook_listen"] is not None:
        hooks = parse_settings(api, api.call("GET", "/v1/settings/application")).get("webhooks")
        result["webhook_url"] = hooks.get("url") if isinstance(hooks, dict) else None
        if not result["webhook_url"]:
            cluster.fail("settings.application.webhooks.url is not set, so no GC completion callback can reach "
                         "webhook_listen %s: set it (wabiz.cluster.app_settings, settings: {webhooks: {url: ...}}) to "
                         "this host's address or a relay to it." % p["webhook_listen"], failure_kind="no_webhook")
        listener = CallbackListener(p["webhook_listen"])
    try:
        result["marked_read"] = mark_read(api, ids)
        if listener is None:
            nodes = start(api)
            rounds.append({"round": 1, "nodes": nodes, "messages_deleted": None, "rows_after": None, "seconds": 0.0})
            result.update(changed=True, status="processing", stopped_because="started; completion is reported only "
                          "by webhook callback (set webhook_listen to wait for it)")
            return dict(result, elapsed_seconds=round(time.time() - started, 3))
        stopped = None
        while stopped is None:
            round_started = time.time()
            done = wait(listener, start(api), p["wait_timeout"])
            deleted = sum(v.get("messages_deleted") or 0 for v in done.values())
            after, after_counts = result["rows_after"], result["counts_after"]
            if source is not None:
                after, after_counts = counts_after_round(api, cluster.db, after, deleted)
            rounds.append({"round": len(rounds) + 1, "nodes": done, "messages_deleted": deleted, "rows_after": after,
                           "seconds": round(time.time() - round_started, 3)})
            failed = sorted(k for k, v in done.items() if v.get("status") != "complete")
            if failed:
                cluster.fail("the garbage collection did not complete on %s: %s" % (", ".join(failed), "; ".join(
                    "%s %s" % (k, done[k].get("status")) for k in failed)), failure_kind="gc_failed")
            result.update(rows_after=after, counts_after=after_counts,
                          deleted=(result["deleted"] or 0) + deleted)
            stopped = next_step(after if source is not None else None, p["threshold"], deleted, len(rounds),
                                p["max_rounds"])
    finally:
        if listener is not None:
            listener.close()
    result.update(changed=True, status="complete", stopped_because=stopped)
    return dict(result, elapsed_seconds=round(time.time() - started, 3))


def main():
    run_cluster_module(ARGUMENT_SPEC, RULES, run, db_class=ClusterDb, required_one_of=[BEARER_LOGINS])


if __name__ == "__main__":
    main()
