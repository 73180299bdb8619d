# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What db_env shows of a ``db.env`` (results and diffs): secrets masked, unmanaged lines hidden.

Private to the collection. Pure functions, unit-tested directly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.wabiz.cluster.plugins.module_utils._dbenv_file import (
    HEADER,
    MANAGED_KEYS,
    TLS_KEYS,
    parse_line,
    split_lines,
)
from ansible_collections.wabiz.cluster.plugins.module_utils._dbenv_validate import value_problem

SECRET_KEYS = frozenset(["WA_DB_PASSWORD"])
# Parts of a variable name that make its value a secret (for names db_env does not manage).
SECRET_NAME_PARTS = ("PASSWORD", "PASS", "SECRET", "TOKEN", "KEY")
MASK = "********"
# What a diff shows in place of a line of an existing file that db_env does not manage (comments,
# other variables, anything else): such lines may hold secrets, and a write drops them anyway.
HIDDEN_LINE = "# " + MASK + " (a line db_env does not manage: hidden, and dropped when the file is written)"
# What a diff or ``variables`` shows in place of a managed, non-secret value that db_env would
# refuse as input (a hand-edited file): it could hold anything, an inline comment for instance.
HIDDEN_VALUE = MASK + " (hidden: not a value db_env would write)"


def is_secret_key(key):
    """True for the password variable and for any name that looks like it holds a secret."""
    if key in TLS_KEYS:
        return False  # WA_DB_SSL_KEY names a file, it holds no secret itself
    upper = key.upper()
    return key in SECRET_KEYS or any(part in upper for part in SECRET_NAME_PARTS)


def masked(values, other=None):
    """A copy of ``values`` safe to show: secrets (the password, and any name that looks like a
    secret) replaced, and any other value that db_env would refuse as input hidden too. With
    ``other`` (the state on the other side of a diff) a changed secret reads ``******** (changed)``,
    so a diff shows *that* it changed."""
    out = {}
    for key, value in values.items():
        if is_secret_key(key):
            if other is not None and other.get(key) != value:
                out[key] = MASK + " (changed)"
            else:
                out[key] = MASK
        elif value_problem(value) is not None:
            out[key] = HIDDEN_VALUE
        else:
            out[key] = value
    return out


def masked_text(content, other_values=None):
    """Env-file text safe to show in a diff: the header line and blank lines as they are, each line
    of a managed variable as ``KEY=value`` with the secret masked (``******** (changed)`` when it
    differs from ``other_values``), and every other line (comments, other variables, anything
    else: they may hold secrets) replaced by HIDDEN_LINE."""
    if content is None:
        return ""
    out = []
    for raw in split_lines(content):
        if not raw.strip():
            out.append("")
            continue
        if raw.rstrip("\r") + "\n" == HEADER:
            out.append(HEADER.rstrip("\n"))
            continue
        parsed = parse_line(raw)
        if parsed is not None and parsed[0] in MANAGED_KEYS:
            key, value = parsed
            out.append("%s=%s" % (key, masked({key: value}, other_values)[key]))
        else:
            out.append(HIDDEN_LINE)
    return "".join(line + "\n" for line in out)
