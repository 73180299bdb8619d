# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The optional database drivers, imported once for db_env's login check and the cluster modules.

Each is None when missing; ``*_IMP_ERR`` holds the import traceback for ``missing_required_lib``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import traceback

try:
    import pymysql  # pylint: disable=unused-import

    HAS_PYMYSQL = True
    PYMYSQL_IMP_ERR = None
except ImportError:
    pymysql = None
    HAS_PYMYSQL = False
    PYMYSQL_IMP_ERR = traceback.format_exc()

try:
    import psycopg2  # pylint: disable=unused-import

    HAS_PSYCOPG2 = True
    PSYCOPG2_IMP_ERR = None
except ImportError:
    psycopg2 = None
    HAS_PSYCOPG2 = False
    PSYCOPG2_IMP_ERR = traceback.format_exc()

ENGINE_NAMES = {"mysql": "MySQL", "postgresql": "PostgreSQL"}
