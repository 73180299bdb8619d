# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The frame of the cluster modules (app_settings, failover_check, message_gc, shard_table).

It builds the AnsibleModule with the shared option groups, checks the options before anything
is contacted, closes the cluster database after the module's body, and turns an API
or database error into one shape of failure; each module keeps only what it does.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.wabiz.cluster.plugins.module_utils._api_errors import ApiError
from ansible_collections.wabiz.cluster.plugins.module_utils._cluster_options import check_options, cluster_argument_spec
from ansible_collections.wabiz.cluster.plugins.module_utils._dbconnect import DbError


def run_cluster_module(argument_spec_extra, rules, body, db_class=None, db_required=True, **module_options):
    """Run a cluster module: exit with the result dict ``body(module, db, failure)`` returns.

    ``argument_spec_extra`` and ``rules`` (option_rule()s) are the module's own options and their
    bounds; ``db_required`` makes db_engine and db_user required; ``module_options`` go to
    AnsibleModule (required_one_of...). ``db`` is the cluster database made by ``db_class``
    (ClusterDb, named by the module so that tests can replace it), or None without one: the body
    connects it (its time counts in the body's) and the frame closes it. ``failure`` is a dict
    the body fills with what a failed run reports besides the message (what it did so far).

    An ApiError or DbError fails the task with its sentence and ``failure_kind`` (a missing driver
    with ansible's missing-library message and the import traceback). The sentences never hold a
    secret, and fail_json masks the value of every no_log option besides.
    """
    module = AnsibleModule(argument_spec=cluster_argument_spec(argument_spec_extra, db_required),
                           supports_check_mode=True, **module_options)
    check_options(module, rules)
    db = db_class(module.params) if db_class is not None else None
    failure = {}
    try:
        result = body(module, db, failure)
    except DbError as exc:
        if exc.kind == "missing_library":
            module.fail_json(msg=missing_required_lib(exc.msg), exception=exc.exception, failure_kind=exc.kind)
        module.fail_json(msg=exc.msg, failure_kind=exc.kind, **failure)
    except ApiError as exc:
        module.fail_json(msg=exc.msg, **dict(failure, **exc.as_result()))
    finally:
        if db is not None:
            db.close()
    module.exit_json(**result)
