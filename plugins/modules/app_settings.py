#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: app_settings
short_description: Manage the application settings of a WhatsApp Business API client cluster
version_added: 0.1.0
description:
  - Reads C(GET /v1/settings/application), compares it with the values given and sends only the
    values that differ with C(PATCH /v1/settings/application); then reads the settings back and
    reports C(changed) from what it read.
  - Before anything is sent, checks that the resulting settings are sane
    (C(1 <= heartbeat_interval < unhealthy_interval <= 3600)); values not given keep their current value
    in that check. A value out of range fails the task with the option's name and changes nothing.
  - The webapp forwards the change to the primary master, which stores it under its lease and
    pushes it to every node.
author:
  - wabiz.cluster maintainers (!UNKNOWN)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - wabiz.cluster.api
attributes:
  check_mode:
    support: full
    details: Reads the settings and reports what would change, without sending the change.
  diff_mode:
    support: full
    details: Shows the settings before and after.
  idempotent:
    description: Whether a second run with the same options changes nothing.
    support: full
  platform:
    platforms: posix
options:
  heartbeat_interval:
    description:
      - Seconds between the masters' heartbeats to the coreapps (the API's default is V(5)).
      - V(1) to V(3599); it must stay below O(unhealthy_interval).
    type: int
  unhealthy_interval:
    description:
      - Seconds without a heartbeat answer after which a coreapp is considered dead and its shard is
        moved (the API's default is V(30)). Must be greater than O(heartbeat_interval).
      - V(2) to V(3600) (an hour); a longer time would leave a dead coreapp's shard without an owner for longer.
    type: int
  settings:
    description:
      - Other application settings, by name, sent as they are.
      - O(heartbeat_interval) and O(unhealthy_interval) take precedence over the same keys here; when given here,
        they are checked against the same ranges.
    type: dict
    default: {}
notes:
  - Needs an admin login (O(api_password) or O(api_token)); an API key is not enough.
  - Works with the API alone and accepts only the API options; give it its connection with
    C(module_defaults) of C(group/wabiz.cluster.cluster) (the API options of every cluster module). The
    database options belong to C(group/wabiz.cluster.cluster_db), which this module is not in.
  - A rate limit (HTTP 429) is waited out within O(api_rate_limit_wait) and reported in RV(rate_limited).
seealso:
  - module: wabiz.cluster.failover_check
"""

EXAMPLES = r"""
- name: Detect a dead coreapp within 20 seconds
  wabiz.cluster.app_settings:
    api_url: https://wa.example.internal:9090
    api_password: "{{ vault_wa_api_password }}"
    api_token_cache: ~/.cache/wabiz/tokens.json
    ca_path: /etc/wabiz/webapp-ca.pem
    heartbeat_interval: 5
    unhealthy_interval: 20

- name: First run on a fresh cluster (the first login changes the password)
  wabiz.cluster.app_settings:
    api_url: https://127.0.0.1:9090
    api_password: secret
    api_new_password: "{{ vault_wa_api_password }}"
    validate_certs: false
    heartbeat_interval: 5
    unhealthy_interval: 30
"""

RETURN = r"""
settings:
  description: The application settings after the run (in check mode, as they would be).
  returned: success
  type: dict
  sample: {heartbeat_interval: 5, unhealthy_interval: 20}
before:
  description: The application settings before the run.
  returned: success
  type: dict
  sample: {heartbeat_interval: 5, unhealthy_interval: 30}
changes:
  description: The values sent (or, in check mode, that would be sent).
  returned: success
  type: dict
  sample: {unhealthy_interval: 20}
rate_limited:
  description: When the API answered 429 (too many requests), how often and how long the module backed off.
  returned: when the API rate-limited the run
  type: dict
failure_kind:
  description: Why the module failed (C(invalid_option), C(unreachable), C(bad_response), C(auth), C(invalid),
    C(tls), C(not_applied)...).
  returned: failure
  type: str
  sample: auth
"""

from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_api import parse_settings
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_module import BEARER_LOGINS, run_cluster_module
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_options import option_rule

# The module's bounds of the two timers (the API documents only their defaults, 5 and 30 s).
MAX_INTERVAL = 3600
RULES = (
    option_rule("heartbeat_interval", 1, MAX_INTERVAL - 1, "the seconds between heartbeats, for example 5", whole=True),
    option_rule("unhealthy_interval", 2, MAX_INTERVAL, "the seconds after which a silent coreapp is dead, for "
                "example 30 (more than heartbeat_interval)", whole=True),
)


def desired_values(params):
    want = dict(params.get("settings") or {})
    for key in ("heartbeat_interval", "unhealthy_interval"):
        if params.get(key) is not None:
            want[key] = params[key]
    return want


def contains(current, wanted):
    """True when ``current`` already holds ``wanted``: equal, or for an object (such as webhooks) every
    wanted field holds its value (the API reads back fields that were not given)."""
    if isinstance(wanted, dict) and isinstance(current, dict):
        return all(k in current and contains(current[k], v) for k, v in wanted.items())
    return current == wanted


def merged(current, wanted):
    """The value to send for ``wanted``: an object completed with the current fields not given."""
    if isinstance(wanted, dict) and isinstance(current, dict):
        out = dict(current)
        for k, v in wanted.items():
            out[k] = merged(current.get(k), v)
        return out
    return wanted


def plan(current, want):
    """(changes, resulting settings, problem sentence or None); pure, unit-tested."""
    changes = dict((k, merged(current.get(k), v)) for k, v in want.items() if not contains(current.get(k), v))
    after = dict(current)
    after.update(changes)
    hb, uh = after.get("heartbeat_interval"), after.get("unhealthy_interval")
    problem = None
    for key, value in (("heartbeat_interval", hb), ("unhealthy_interval", uh)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            problem = "%s must be a whole number of seconds, not %r" % (key, value)
    if problem is None and hb is not None and hb < 1:
        problem = "heartbeat_interval must be at least 1 second (got %s)" % hb
    if problem is None and hb is not None and hb >= MAX_INTERVAL:
        problem = "heartbeat_interval must be less than %d seconds (got %s)" % (MAX_INTERVAL, hb)
    if problem is None and uh is not None and uh > MAX_INTERVAL:
        problem = "unhealthy_interval must be at most %d seconds (an hour; got %s)" % (MAX_INTERVAL, uh)
    if problem is None and uh is not None and uh < 2:
        problem = "unhealthy_interval must be at least 2 seconds (got %s)" % uh
    if problem is None and hb is not None and uh is not None and uh <= hb:
        problem = ("unhealthy_interval (%s s) must be greater than heartbeat_interval (%s s): a coreapp would be "
                   "declared dead before it could answer one heartbeat" % (uh, hb))
    return changes, after, problem


def as_text(settings):
    return "".join("%s: %s\n" % (k, settings[k]) for k in sorted(settings))


def read(api):
    return parse_settings(api, api.call("GET", "/v1/settings/application"))


ARGUMENT_SPEC = dict(
    heartbeat_interval=dict(type="int"),
    unhealthy_interval=dict(type="int"),
    settings=dict(type="dict", default={}),
)


def run(cluster):
    api = cluster.api
    before = read(api)
    changes, after, problem = plan(before, desired_values(cluster.params))
    if problem:
        cluster.fail("refusing to change the settings: %s." % problem, failure_kind="invalid", before=before)
    if changes and not cluster.check_mode:
        api.call("PATCH", "/v1/settings/application", changes)
        after = read(api)
        missed = dict((k, after.get(k)) for k, v in changes.items() if not contains(after.get(k), v))
        if missed:
            cluster.fail("the API accepted the change but reads back %s" % missed, failure_kind="not_applied",
                         before=before, settings=after)
    changed = bool(changes) if cluster.check_mode else after != before
    result = dict(changed=changed, settings=after, before=before, changes=changes)
    if cluster.module._diff:
        result["diff"] = {"before": as_text(before), "after": as_text(after),
                          "before_header": "settings/application", "after_header": "settings/application"}
    return result


def main():
    run_cluster_module(ARGUMENT_SPEC, RULES, run,
                       required_one_of=[BEARER_LOGINS, ("heartbeat_interval", "unhealthy_interval", "settings")])


if __name__ == "__main__":
    main()
