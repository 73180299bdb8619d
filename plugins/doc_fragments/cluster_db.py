# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # The database options of the opt-in cross-check (module_utils._cluster_options.cluster_db_argument_spec).
    DOCUMENTATION = r"""
options:
  db_cross_check:
    description:
      - Stand-in clusters only. Also read the project's stand-in database (its lease, shard map, heartbeats or
        message counts) and compare it with what the API shows. A real cluster's database is the product's own,
        with no such tables; the modules work with the API alone and never write a database.
      - With V(true), O(db_engine) and O(db_user) are required. With V(false) (the default) the C(db_*) options are
        accepted (for C(module_defaults) of C(group/wabiz.cluster.cluster_db)) and not used.
    type: bool
    default: false
  db_engine:
    description:
      - Engine of the cluster database (the cluster's C(WA_DB_ENGINE)).
    type: str
    choices: [mysql, postgresql]
  db_host:
    description:
      - Host name or address of the database server, as this host reaches it.
    type: str
    default: 127.0.0.1
  db_port:
    description:
      - TCP port of the database server, V(1) to V(65535). Defaults to V(3306) (MySQL) or V(5432) (PostgreSQL).
      - When something else answers there, the task fails with C(failure_kind=bad_response)
        (C(HOST:PORT did not answer as a MySQL server)).
    type: int
  db_user:
    description:
      - Database user. Read access to the cluster database is enough (nothing is written).
    type: str
  db_password:
    description:
      - Password of O(db_user). Never shown in output or messages.
    type: str
  db_name_prefix:
    description:
      - The cluster's C(WA_DB_NAME_PREFIX); the cluster database is C(<prefix>waent).
    type: str
    default: ""
  db_connect_timeout:
    description:
      - Seconds to wait for the database connection; more than V(0) and at most V(3600).
    type: float
    default: 5
requirements:
  - With O(db_cross_check=true), PyMySQL (for O(db_engine=mysql)) or psycopg2 (for O(db_engine=postgresql)) on the
    host that runs the module.
"""
