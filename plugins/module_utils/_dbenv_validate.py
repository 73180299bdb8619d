# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The checks of db_env's options: each value the ``db.env`` file is to hold, the mode and the timeout.

Private to the collection. Pure functions, unit-tested directly; each raises DbEnvError naming the
option and saying what is wrong.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
import unicodedata

from ansible_collections.wabiz.cluster.plugins.module_utils._dbconnect import DEFAULT_PORTS

# engine option value -> what the client expects in WA_DB_ENGINE
ENGINES = {"mysql": "MYSQL", "postgresql": "PGSQL"}
# Meta's default db.env sets 180000 ms for MySQL; PostgreSQL has no such setting.
DEFAULT_IDLE_TIMEOUT_MS = 180000
TLS_OPTIONS = (("ssl_ca", "WA_DB_SSL_CA"), ("ssl_cert", "WA_DB_SSL_CERT"), ("ssl_key", "WA_DB_SSL_KEY"))
TLS_PATH_MAX = 4096

# Host names (RFC 1123 labels, ASCII only); used with fullmatch, so no anchors and no trailing newline.
_HOSTNAME_RE = re.compile(r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                          r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?")
_DIGITS_AND_DOTS_RE = re.compile(r"[0-9.]+")
# MySQL and PostgreSQL identifiers: the prefix starts every database name the client creates.
_PREFIX_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
PREFIX_MAX = 32  # leaves room for the client's own suffix within MySQL's 64-character limit
USERNAME_MAX = 63  # PostgreSQL's NAMEDATALEN - 1 (MySQL/MariaDB allow 80 / 128)
# Characters that the two compose versions read differently in an env_file (interpolation,
# quoting): refusing them keeps the file meaning the same everywhere.
_UNSAFE_VALUE_CHARS = frozenset("$\"'`\\")
# Everything str.splitlines() splits on. The file is read and written with "\n" lines only, but
# tools (ansible's diff output among them) split on all of these, so no value may hold one.
LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")
# Octal file modes, as a string: 3 digits, or 4 with a leading 0 (no setuid, setgid or sticky bit).
_MODE_RE = re.compile(r"0?[0-7]{3}")
DEFAULT_MODE = 0o600
# The file holds the database password: the owner may do anything, the group may at most read it
# (only when asked for explicitly), others get nothing.
_MODE_ALLOWED_BITS = 0o740
CONNECT_TIMEOUT_MAX = 3600


class DbEnvError(ValueError):
    """Bad input: the message names the option and what is wrong with it."""


def valid_hostname(value):
    """A host name (RFC 1123) or an IPv4 / IPv6 address (no zone index, no brackets)."""
    if not isinstance(value, str) or not value:
        return False
    if ":" in value:
        if "%" in value:
            return False  # a zone index ('fe80::1%eth0') means nothing inside a container
        try:
            ipaddress.IPv6Address(value)
        except ValueError:  # '::::', '1:2', '[::1]'
            return False
        return True
    if _DIGITS_AND_DOTS_RE.fullmatch(value):
        # Only a dotted quad without leading zeros: '010.0.0.1' or '10.1' mean other addresses to
        # inet_aton (octal, short forms) than they seem to, and are no host names either.
        parts = value.split(".")
        if len(parts) != 4 or any(p != "0" and (not p or p.startswith("0")) for p in parts):
            return False
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            return False
        return True
    return bool(_HOSTNAME_RE.fullmatch(value))


def value_problem(value):
    """Why ``value`` cannot be written as an env-file value that compose v1 and v2 read the same,
    or None. The sentence describes the characters, never shows the value."""
    bad = sorted(set(value) & _UNSAFE_VALUE_CHARS)
    if bad:
        return ("contains %s; compose v1 and v2 read these differently in an env file (interpolation, "
                "quoting), so the client could see another value. Choose one without them"
                % ", ".join(repr(c) for c in bad))
    breaks = sorted(set(value) & LINE_BREAKS)
    if breaks:
        return ("contains a line break (%s; str.splitlines and so ansible's diff split on it too); an env "
                "file holds one variable per line, so the value would be cut there. Choose one without line "
                "breaks" % ", ".join(repr(c) for c in breaks))
    controls = sorted(set(c for c in value if unicodedata.category(c) in ("Cc", "Zl", "Zp")))
    if controls:
        return ("contains control characters (%s), which an env file cannot carry reliably. Choose one "
                "without them" % ", ".join(repr(c) for c in controls))
    for i, c in enumerate(value):
        if c == "#" and i > 0 and value[i - 1].isspace():
            return ("contains '#' after whitespace, which compose v1 and v2 read as the start of an inline "
                    "comment, cutting the value there. Choose one without whitespace before '#'")
    if value != value.strip():
        return "starts or ends with whitespace, which env files drop. Remove it"
    return None


def _check_value(option, value, secret=False):
    problem = value_problem(value)
    if problem:
        shown = "the value" if secret else repr(value)
        hint = " (and set the same on the database server)" if secret else ""
        raise DbEnvError("%s: %s %s%s." % (option, shown, problem, hint))


def parse_mode(value):
    """The ``mode`` option as an int, or DbEnvError. Only an octal string is accepted: a YAML
    number (``mode: 644`` or ``mode: 0600`` unquoted) is already some other number by the time the
    module sees it, and modes that let others read or write the password file are refused."""
    if value is None:
        return DEFAULT_MODE
    if isinstance(value, (bool, int, float)):
        raise DbEnvError(
            "mode: %r was given as a number, not as an octal string; YAML reads 644 as decimal (octal 1204) "
            "and an unquoted 0600 as octal, so the mode meant is unclear. Quote it, e.g. mode: '0600'."
            % (value,))
    text = str(value)
    if not _MODE_RE.fullmatch(text):
        raise DbEnvError(
            "mode: %r is not an octal mode such as '0600' (three octal digits, optionally with a leading 0; "
            "symbolic modes and setuid, setgid or sticky bits are not supported for a file holding a "
            "password)." % (text,))
    mode = int(text, 8)
    if mode & ~_MODE_ALLOWED_BITS:
        raise DbEnvError(
            "mode: %r lets %s the file that holds the database password; use '0600' (or '0640' to let the "
            "file's group read it)." % (text, "others read or write" if mode & 0o007 else "the group write or execute"))
    return mode


def check_connect_timeout(value):
    if (not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= CONNECT_TIMEOUT_MAX):
        raise DbEnvError(
            "connect_timeout: %r is not a number of seconds from 1 to %d; give how long to wait for the "
            "database server, e.g. 10." % (value, CONNECT_TIMEOUT_MAX))
    return value


def check_tls_paths(ssl_ca=None, ssl_cert=None, ssl_key=None):
    """The ``{WA_DB_SSL_*: path}`` for the TLS options given, or DbEnvError. Each is the absolute path
    of a PEM file as the client containers see it (so it is not looked for on the managed host);
    a client certificate and its key go together."""
    given = {"ssl_ca": ssl_ca, "ssl_cert": ssl_cert, "ssl_key": ssl_key}
    out = {}
    for option, key in TLS_OPTIONS:
        value = given[option]
        if value is None:
            continue
        if not isinstance(value, str) or not value.startswith("/") or len(value) > TLS_PATH_MAX:
            raise DbEnvError(
                "%s: %r is not an absolute path of at most %d characters; give the path of the PEM file "
                "inside the client containers (mount it there), e.g. /opt/whatsapp/certs/db-ca.pem."
                % (option, value, TLS_PATH_MAX))
        _check_value(option, value)
        out[key] = value
    if ("WA_DB_SSL_CERT" in out) != ("WA_DB_SSL_KEY" in out):
        raise DbEnvError(
            "ssl_cert, ssl_key: a client certificate and its private key go together; give both or neither "
            "(ssl_ca alone verifies the server without a client certificate).")
    return out


def build_variables(engine, hostname, port, username, password, name_prefix=None,
                    connection_idle_timeout=None, ssl_ca=None, ssl_cert=None, ssl_key=None):
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
        raise DbEnvError("hostname: %r is not a valid host name (letters, digits, '-' and '.') or IPv4 or IPv6 "
                         "address; give the name or address the client containers reach the server at."
                         % (hostname,))
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
        if not isinstance(name_prefix, str) or not _PREFIX_RE.fullmatch(name_prefix):
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
    values.update(check_tls_paths(ssl_ca, ssl_cert, ssl_key))
    return values


def validate_params(params):
    """Check every option of ``state=present`` (the one place where input is validated) and return
    ``(variables the file must hold, mode as an int)``. Raises DbEnvError naming the option."""
    desired = build_variables(params["engine"], params["hostname"], params["port"], params["username"],
                              params["password"], params.get("name_prefix"), params.get("connection_idle_timeout"),
                              params.get("ssl_ca"), params.get("ssl_cert"), params.get("ssl_key"))
    mode = parse_mode(params.get("mode", "0600"))
    check_connect_timeout(params.get("connect_timeout", 10))
    return desired, mode
