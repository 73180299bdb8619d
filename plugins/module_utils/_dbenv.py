# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WhatsApp Business API client's ``db.env``: validate, render, parse, diff with secrets masked.

Private to the collection. Everything but ``run_db_env`` is a pure function (no AnsibleModule),
unit-tested directly; ``run_db_env`` is the module's body.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import grp
import os
import pwd
import re

from ansible_collections.wabiz.cluster.plugins.module_utils import _dbcheck, _files

# engine option value -> what the client expects in WA_DB_ENGINE
ENGINES = {"mysql": "MYSQL", "postgresql": "PGSQL"}
DEFAULT_PORTS = {"mysql": 3306, "postgresql": 5432}
# Meta's default db.env sets 180000 ms for MySQL; PostgreSQL has no such setting.
DEFAULT_IDLE_TIMEOUT_MS = 180000

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
SECRET_KEYS = frozenset(["WA_DB_PASSWORD"])
MASK = "********"

HEADER = "# Managed by wabiz.cluster.db_env: database settings of the WhatsApp Business API client.\n"

_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                          r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")
_IPV4_RE = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
_IPV6_RE = re.compile(r"^[0-9A-Fa-f:.]+$")
# MySQL and PostgreSQL identifiers: the prefix starts every database name the client creates.
_PREFIX_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
PREFIX_MAX = 32  # leaves room for the client's own suffix within MySQL's 64-character limit
USERNAME_MAX = 63  # PostgreSQL's NAMEDATALEN - 1 (MySQL/MariaDB allow 80 / 128)
# Characters that the two compose versions read differently in an env_file (interpolation,
# quoting, comments, line structure): refusing them keeps the file meaning the same everywhere.
_UNSAFE_VALUE_CHARS = set("$\"'`\\\n\r\x00")


class DbEnvError(ValueError):
    """Bad input: the message names the option and what is wrong with it."""


def valid_hostname(value):
    if _IPV4_RE.match(value):
        return all(0 <= int(p) <= 255 for p in value.split("."))
    if ":" in value:
        return bool(_IPV6_RE.match(value)) and value.count(":") >= 2
    if value.replace(".", "").isdigit():
        return False  # looks like a broken IPv4 address, not a name
    return bool(_HOSTNAME_RE.match(value))


def _check_value(option, value, secret=False):
    shown = "the value" if secret else repr(value)
    bad = sorted(set(value) & _UNSAFE_VALUE_CHARS)
    if bad:
        names = ", ".join(repr(c) for c in bad)
        raise DbEnvError(
            "%s: %s contains %s; compose v1 and v2 read these differently in an env file "
            "(interpolation, quoting, line breaks), so the client could see another value. "
            "Choose one without them." % (option, shown, names))
    if value != value.strip():
        raise DbEnvError("%s: %s starts or ends with whitespace, which env files drop." % (option, shown))
    if any(ord(c) < 32 for c in value):
        raise DbEnvError("%s: %s contains control characters." % (option, shown))


def build_variables(engine, hostname, port, username, password, name_prefix=None,
                    connection_idle_timeout=None):
    """Validate the inputs and return the ordered ``{KEY: value}`` the file must hold.

    Raises DbEnvError with a plain sentence for each kind of bad input.
    """
    if engine not in ENGINES:
        raise DbEnvError("engine: %r is neither 'mysql' nor 'postgresql'." % (engine,))
    if engine == "postgresql" and connection_idle_timeout is not None:
        raise DbEnvError(
            "connection_idle_timeout: WA_DB_CONNECTION_IDLE_TIMEOUT is a MySQL-only setting (the client "
            "closes MySQL connections idle longer than that); with engine=postgresql the client has no "
            "such setting. Remove connection_idle_timeout or use engine=mysql.")
    if not hostname or not valid_hostname(hostname):
        raise DbEnvError("hostname: %r is not a valid host name or IP address." % (hostname,))
    if port is None:
        port = DEFAULT_PORTS[engine]
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        raise DbEnvError("port: %r is not a TCP port (1-65535)." % (port,))
    if not username:
        raise DbEnvError("username: must not be empty.")
    if len(username) > USERNAME_MAX:
        raise DbEnvError("username: %r is longer than %d characters." % (username, USERNAME_MAX))
    _check_value("username", username)
    if not password:
        raise DbEnvError("password: must not be empty (the client cannot log in without one).")
    _check_value("password", password, secret=True)
    if name_prefix is not None:
        if not _PREFIX_RE.match(name_prefix):
            raise DbEnvError(
                "name_prefix: %r is not usable as the start of a database name (letters, digits and "
                "underscores, not starting with a digit)." % (name_prefix,))
        if len(name_prefix) > PREFIX_MAX:
            raise DbEnvError("name_prefix: %r is longer than %d characters." % (name_prefix, PREFIX_MAX))
    if engine == "mysql":
        if connection_idle_timeout is None:
            connection_idle_timeout = DEFAULT_IDLE_TIMEOUT_MS
        if (not isinstance(connection_idle_timeout, int) or isinstance(connection_idle_timeout, bool)
                or connection_idle_timeout < 1000):
            raise DbEnvError(
                "connection_idle_timeout: %r is not a number of milliseconds of at least 1000."
                % (connection_idle_timeout,))

    values = {
        "WA_DB_ENGINE": ENGINES[engine],
        "WA_DB_HOSTNAME": hostname,
        "WA_DB_PORT": str(port),
        "WA_DB_USERNAME": username,
        "WA_DB_PASSWORD": password,
    }
    if name_prefix is not None:
        values["WA_DB_NAME_PREFIX"] = name_prefix
    if engine == "mysql":
        values["WA_DB_CONNECTION_IDLE_TIMEOUT"] = str(connection_idle_timeout)
    return values


def render(values):
    """The file content for ``values`` (known keys in Meta's order, then any others sorted)."""
    lines = [HEADER]
    for key in list(KEYS) + sorted(k for k in values if k not in KEYS):
        if key in values:
            lines.append("%s=%s\n" % (key, values[key]))
    return "".join(lines)


def parse(content):
    """``{KEY: value}`` from env-file text: blank lines and ``#`` comments skipped, an optional
    ``export`` prefix accepted, the first ``=`` splits, matching surrounding quotes removed."""
    values = {}
    if not content:
        return values
    for raw in content.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        if "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key] = value
    return values


def changed_keys(before, after):
    """Sorted keys whose value differs, or that exist on one side only."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def masked(values, other=None):
    """A copy of ``values`` with secrets replaced. With ``other`` (the state on the other side of
    a diff) a changed secret reads ``******** (changed)``, so a diff shows *that* it changed."""
    out = {}
    for key, value in values.items():
        if key in SECRET_KEYS:
            if other is not None and other.get(key) != value:
                out[key] = MASK + " (changed)"
            else:
                out[key] = MASK
        else:
            out[key] = value
    return out


def masked_text(content, other_values=None):
    """Env-file text with secret values replaced, comments and order kept (for ``diff``)."""
    if content is None:
        return ""
    own = parse(content)
    shown = masked(own, other_values)
    out = []
    for raw in content.splitlines(True):
        line = raw.strip()
        key = line.split("=", 1)[0].strip()
        if key.startswith("export "):
            key = key[len("export "):].strip()
        if "=" in line and not line.startswith("#") and key in SECRET_KEYS:
            out.append("%s=%s\n" % (key, shown.get(key, MASK)))
        else:
            out.append(raw)
    return "".join(out)


def _fail(module, msg, **kw):
    module.fail_json(msg=msg, **kw)


def run_db_env(module):
    """Body of wabiz.cluster.db_env: returns the result dict (fails through ``module``)."""
    p = module.params
    path = p["path"]
    result = {"changed": False, "path": path, "changed_keys": [], "variables": {}}
    if os.path.isdir(path):
        _fail(module, "path: %s is a directory; give the path of the db.env file." % path, **result)
    # In check mode a missing directory is what an earlier (also unrun) task would create: report
    # the file as to be written instead of failing a dry run on a fresh host.
    if not os.path.isdir(os.path.dirname(os.path.abspath(path))) and not module.check_mode:
        _fail(module, "path: the directory of %s does not exist; create it first (ansible.builtin.file "
                      "state=directory)." % path, **result)
    try:
        current_text = _files.read_text(path)
    except (IOError, OSError, UnicodeError) as exc:
        _fail(module, "cannot read %s: %s" % (path, exc), **result)
    current = parse(current_text)

    if p["state"] == "absent":
        result["variables"] = masked(current)
        if current_text is None:
            return result
        result["changed"] = True
        result["changed_keys"] = sorted(current)
        if module._diff:
            result["diff"] = {"before": masked_text(current_text), "after": "",
                              "before_header": path, "after_header": path}
        if not module.check_mode:
            os.unlink(path)
        return result

    try:
        desired = build_variables(p["engine"], p["hostname"], p["port"], p["username"], p["password"],
                                  p["name_prefix"], p["connection_idle_timeout"])
    except DbEnvError as exc:
        _fail(module, str(exc), **result)
    mode = p["mode"]
    if mode is not None and not isinstance(mode, int):
        mode = str(mode)
        if not re.match(r"^0?[0-7]{3,4}$", mode):
            _fail(module, "mode: %r is not an octal mode such as '0600' (a symbolic mode is not "
                          "supported for a file holding a password)." % (p["mode"],), **result)
        mode = int(mode, 8)

    for option, lookup in (("owner", pwd.getpwnam), ("group", grp.getgrnam)):
        value = p[option]
        if value is not None and not value.isdigit():
            try:
                lookup(value)
            except KeyError:
                _fail(module, "%s: %r does not exist on this host." % (option, value), **result)

    if p["validate_connection"]:
        missing = _dbcheck.missing_library(p["engine"])
        if missing:
            from ansible.module_utils.basic import missing_required_lib
            _fail(module, missing_required_lib(missing[0], reason="for validate_connection"),
                  exception=missing[1], **result)
        port = int(desired["WA_DB_PORT"])
        try:
            result["connection"] = _dbcheck.validate_connection(
                p["engine"], p["hostname"], port, p["username"], p["password"], p["name_prefix"],
                p["connect_timeout"])
        except _dbcheck.DbCheckError as exc:
            if exc.details:
                result["connection"] = exc.details
            _fail(module, exc.msg, failure_kind=exc.kind, **result)

    content = render(desired)
    result["variables"] = masked(desired)
    result["changed_keys"] = changed_keys(current, desired)
    content_changed = content != current_text
    if module._diff and content_changed:
        result["diff"] = {"before": masked_text(current_text, desired),
                          "after": masked_text(content, current),
                          "before_header": path, "after_header": path}
    if content_changed and not module.check_mode:
        try:
            _files.write_atomic(module, path, content, mode=mode)
        except (IOError, OSError) as exc:
            _fail(module, "cannot write %s: %s" % (path, exc), **result)
    file_args = {"path": path, "owner": p["owner"], "group": p["group"], "mode": mode,
                 "attributes": None, "secontext": [None, None, None]}
    if current_text is None and module.check_mode:
        attrs_changed = False  # the file does not exist yet: nothing to compare
    else:
        attrs_changed = module.set_fs_attributes_if_different(file_args, False)
    result["changed"] = content_changed or attrs_changed
    return result
