# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one frame of the cluster modules (app_settings, failover_check, message_gc, shard_table).

It builds the AnsibleModule from the option groups (the API group always; the database group only
for a module that offers the opt-in database cross-check, ``db_class``), checks the options before
anything is contacted, hands the body one ``ClusterRun`` (the module, the API client, the database
when ``db_cross_check`` is set, a ``failure`` dict), says when the API rate-limited the run (a
warning and ``rate_limited`` in the result, success or failure), closes the database, and turns an
API or database error into one shape of failure. Each module keeps only its options and a thin
body; the logic lives in one module_utils home per concern (_health_judge, _shards, _gc).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule, _load_params, missing_required_lib
from ansible_collections.wabiz.cluster.plugins.module_utils._api import WabizApi
from ansible_collections.wabiz.cluster.plugins.module_utils._api_errors import ApiError
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_options import (
    DB_REQUIRED_IF,
    check_options,
    cluster_argument_spec,
)
from ansible_collections.wabiz.cluster.plugins.module_utils._dbconnect import DbError

# The logins that get a Bearer token (every admin call); api_key alone is enough only for health and stats.
BEARER_LOGINS = ("api_password", "api_new_password", "api_token")


class ClusterRun(object):
    """What a module's body works with: ``module``, ``params``, ``api`` (made at first use),
    ``db`` (the cluster database, only with ``db_cross_check``; connected by the body, closed by
    the frame), ``failure`` (what a failed run reports besides the message)."""

    def __init__(self, module, db_class=None, api_overrides=None):
        self.module = module
        self.params = module.params
        self.failure = {}
        self._api = None
        self._api_overrides = dict(api_overrides or {})
        self.db = db_class(module.params) if db_class is not None and module.params.get("db_cross_check") else None

    @property
    def check_mode(self):
        return self.module.check_mode

    @property
    def api(self):
        if self._api is None:
            self._api = WabizApi(dict(self.params, **self._api_overrides), check_mode=self.module.check_mode)
        return self._api

    def notes(self):
        """What every result says besides the body's: ``rate_limited`` when the API rate-limited the run."""
        if self._api is None or not self._api.rate_limits:
            return {}
        return {"rate_limited": {"answers": len(self._api.rate_limits),
                                 "waited_seconds": round(self._api.rate_limited_seconds(), 3),
                                 "calls": sorted(set(r["call"] for r in self._api.rate_limits))}}

    def warn_rate_limit(self):
        note = self._api.rate_limit_note() if self._api is not None else None
        if note:
            self.module.warn(note)

    def fail(self, msg, **result):
        """Fail the task with ``msg``, what the body collected in ``failure`` and ``result``."""
        self.warn_rate_limit()
        out = dict(self.failure)
        out.update(self.notes())
        out.update(result)
        self.close()
        self.module.fail_json(msg=msg, **out)

    def close(self):
        if self.db is not None:
            self.db.close()


def run_cluster_module(argument_spec_extra, rules, body, db_class=None, api_overrides=None, **module_options):
    """Run a cluster module: exit with the result dict ``body(run)`` returns (``run`` a ClusterRun).

    ``argument_spec_extra`` and ``rules`` (option_rule()s) are the module's own options and their
    bounds. ``db_class`` (ClusterDb, named by the module so that tests can replace it) gives the
    module the database group and the opt-in cross-check. ``api_overrides`` change the client's
    options (failover_check: no retries). ``module_options`` go to AnsibleModule
    (required_one_of...).

    An ApiError or DbError fails the task with its sentence and ``failure_kind`` (a missing driver
    with ansible's missing-library message and the import traceback). The sentences never hold a
    secret, and fail_json masks the value of every no_log option besides.
    """
    if db_class is not None:
        module_options["required_if"] = list(module_options.get("required_if") or []) + DB_REQUIRED_IF
    spec = cluster_argument_spec(argument_spec_extra, db=db_class is not None)
    stray = _stray_db_options(spec)
    # A db_* option given to a module without the database group (module_defaults of the wrong group) is refused,
    # as any unknown option, but with its value masked: Ansible would show an unknown db_password as given.
    module = AnsibleModule(argument_spec=dict(spec, **dict((k, dict(type="raw", no_log=True)) for k in stray)),
                           supports_check_mode=True, **module_options)
    if stray:
        module.fail_json(msg="this module works with the API alone and takes no database option: %s given. The db_* "
                         "options belong to module_defaults of group/wabiz.cluster.cluster_db (failover_check and "
                         "message_gc, with db_cross_check on a stand-in cluster), not group/wabiz.cluster.cluster."
                         % ", ".join(stray), failure_kind="invalid_option")
    check_options(module, rules)
    run = ClusterRun(module, db_class, api_overrides)
    try:
        result = body(run)
    except DbError as exc:
        if exc.kind == "missing_library":
            run.fail(missing_required_lib(exc.msg), exception=exc.exception, failure_kind=exc.kind)
        run.fail(exc.msg, failure_kind=exc.kind)
    except ApiError as exc:
        run.fail(exc.msg, **exc.as_result())
    finally:
        run.close()
    run.warn_rate_limit()
    result.update(run.notes())
    module.exit_json(**result)


def _stray_db_options(spec):
    """The db_* options given that ``spec`` does not have (none when the parameters cannot be read
    here: AnsibleModule then reports what is wrong)."""
    try:
        given = _load_params()
    except Exception:  # not run as a module (documentation tools): nothing to look at
        return []
    if not isinstance(given, dict):
        return []
    return sorted(k for k in given if isinstance(k, str) and k.startswith("db_") and k not in spec)
