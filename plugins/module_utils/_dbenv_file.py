# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``db.env`` file format: the variables db_env manages, and rendering and parsing env-file text.

Private to the collection. Pure functions, unit-tested directly.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# The seven variables, in the order Meta's db.env lists them.
KEYS = (
    "WA_DB_ENGINE",
    "WA_DB_HOSTNAME",
    "WA_DB_PORT",
    "WA_DB_USERNAME",
    "WA_DB_PASSWORD",
    "WA_DB_NAME_PREFIX",
    "WA_DB_CONNECTION_IDLE_TIMEOUT",
)
# TLS to the database (the client's WA_DB_SSL_* variables): paths inside the client containers,
# written after the seven, only when set.
TLS_KEYS = ("WA_DB_SSL_CA", "WA_DB_SSL_CERT", "WA_DB_SSL_KEY")
MANAGED_KEYS = KEYS + TLS_KEYS

HEADER = "# Managed by wabiz.cluster.db_env: database settings of the WhatsApp Business API client.\n"


def render(values):
    """The file content for ``values`` (known keys in Meta's order, then any others sorted)."""
    lines = [HEADER]
    for key in list(MANAGED_KEYS) + sorted(k for k in values if k not in MANAGED_KEYS):
        if key in values:
            lines.append("%s=%s\n" % (key, values[key]))
    return "".join(lines)


def split_lines(content):
    """The lines of env-file text, split on "\\n" only (as the file is written, and as compose reads
    it); a "\\r" before it is stripped with the rest of the line's surrounding whitespace."""
    lines = content.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def parse_line(raw):
    """``(key, value)`` of one env-file line, or None for a blank line, a comment or a line without ``=``."""
    line = raw.strip()
    if not line or line.startswith("#"):
        return None
    if line.startswith("export "):
        line = line[len("export "):].lstrip()
    if "=" not in line:
        return None
    key, value = line.split("=", 1)
    key = key.strip()
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        value = value[1:-1]
    return key, value


def parse(content):
    """``{KEY: value}`` from env-file text: blank lines and ``#`` comments skipped, an optional
    ``export`` prefix accepted, the first ``=`` splits, matching surrounding quotes removed.
    Lines end at "\\n" only, never at the other characters ``str.splitlines`` splits on."""
    values = {}
    if not content:
        return values
    for raw in split_lines(content):
        parsed = parse_line(raw)
        if parsed is not None:
            values[parsed[0]] = parsed[1]
    return values


def managed(values):
    """Only the variables db_env manages (the others of an existing file are never shown)."""
    return dict((k, v) for k, v in values.items() if k in MANAGED_KEYS)


def changed_keys(before, after):
    """Sorted keys whose value differs, or that exist on one side only."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
