# -*- coding: utf-8 -*-
# Copyright: wabiz.cluster maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The option groups of the cluster modules and the one validator of them and of each module's
own numbers.

- The API group (``api_argument_spec``, doc fragment ``wabiz.cluster.api``): every cluster module
  works with the API URL and its credentials alone, against the public REST contract.
- The database group (``cluster_db_argument_spec``, doc fragment ``wabiz.cluster.cluster_db``):
  only the modules that offer the opt-in database cross-check (``db_cross_check``, stand-in
  clusters only) have it; they are the action group ``cluster_db`` of meta/runtime.yml.

``check_options(module, rules)`` runs right after AnsibleModule is built, before anything is
contacted: a bad value fails with the option's name, what is wrong and what to do.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import os
import ssl
import unicodedata

from ansible.module_utils.six.moves.urllib.parse import urlsplit

MAX_RETRIES = 10  # api_retries: each retry waits at most 2 s plus api_timeout, so a call is always bounded
MAX_TIMEOUT = 3600.0  # api_timeout, db_connect_timeout: an hour at most (and never NaN or infinite)
MAX_RATE_LIMIT_WAIT = 600.0  # api_rate_limit_wait: the most one run waits out 429 answers


def api_argument_spec():
    """The REST API login options every cluster module shares (doc fragment wabiz.cluster.api)."""
    return dict(
        api_url=dict(type="str", required=True),
        api_username=dict(type="str", default="admin"),
        api_password=dict(type="str", no_log=True),
        api_new_password=dict(type="str", no_log=True),
        api_key=dict(type="str", no_log=True),
        api_token=dict(type="str", no_log=True),
        api_token_cache=dict(type="path"),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        api_timeout=dict(type="float", default=10.0),
        api_retries=dict(type="int", default=2),
        api_rate_limit_wait=dict(type="float", default=30.0),
    )


def cluster_db_argument_spec():
    """The cluster database options of the opt-in cross-check (doc fragment wabiz.cluster.cluster_db)."""
    return dict(
        db_cross_check=dict(type="bool", default=False),
        db_engine=dict(type="str", choices=["mysql", "postgresql"]),
        db_host=dict(type="str", default="127.0.0.1"),
        db_port=dict(type="int"),
        db_user=dict(type="str"),
        db_password=dict(type="str", no_log=True),
        db_name_prefix=dict(type="str", default=""),
        db_connect_timeout=dict(type="float", default=5.0),
    )


def cluster_argument_spec(extra, db=False):
    """The API group, the database group when ``db`` (a module with the opt-in cross-check), and
    the module's own options ``extra``."""
    spec = api_argument_spec()
    if db:
        spec.update(cluster_db_argument_spec())
    spec.update(extra)
    return spec


# With db_cross_check the database must be named (AnsibleModule's required_if).
DB_REQUIRED_IF = [("db_cross_check", True, ("db_engine", "db_user"))]


def option_rule(name, low, high, hint, low_open=False, whole=False):
    """One rule of check_options: ``low <= value <= high`` (``low < value`` with ``low_open``; ``high``
    None for no ceiling); ``hint`` says what the option is for, ending the message."""
    return {"name": name, "low": low, "high": high, "hint": hint, "low_open": low_open, "whole": whole}


def seconds_rule(name, high, hint):
    """More than 0 and at most ``high`` seconds."""
    return option_rule(name, 0, high, hint, low_open=True)


# The shared options, checked whenever the module has them (every cluster module has both groups).
COMMON_RULES = (
    seconds_rule("api_timeout", MAX_TIMEOUT, "the seconds to wait for each API answer, for example 10"),
    option_rule("api_retries", 0, MAX_RETRIES, "how many times a failed request is tried again, for example 2",
                whole=True),
    option_rule("api_rate_limit_wait", 0, MAX_RATE_LIMIT_WAIT, "the most seconds one run waits out the API's rate "
                "limit (HTTP 429), for example 30"),
    seconds_rule("db_connect_timeout", MAX_TIMEOUT, "the seconds to wait for the database connection, for example 5"),
    option_rule("db_port", 1, 65535, "the database server's TCP port, or leave it unset for the engine's default",
                whole=True),
)


# The options sent in an HTTP header (Basic or Apikey or Bearer) or to the database server, where a line
# break or another control character cannot go: refused by name, never shown (most are secrets).
HEADER_SAFE_OPTIONS = ("api_username", "api_password", "api_new_password", "api_key", "api_token", "db_password")
# Every character str.splitlines splits on; with the other control characters (category Cc) refused.
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def has_control_character(value):
    """True when the text ``value`` holds a line break (anything str.splitlines splits on) or another
    control character (Unicode category Cc: NUL, tab, escape, DEL, ...)."""
    return any(c in LINE_BREAKS or unicodedata.category(c) == "Cc" for c in value)


def _control_problem(name):
    """The sentence for an option holding a control character; the value is never shown."""
    return ("%s holds a line break or another control character (such as a tab or NUL), which cannot be sent "
            "in an HTTP header or to the database: set it without them (a value read from a file or a vault often "
            "ends with a newline; strip it, for example with | trim). The value is not shown." % name)


def _number_problem(rule, value):
    """The sentence of what is wrong with ``value`` under ``rule``, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "must be a number, not %r" % (value,)
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return "must be a finite number (got %s)" % value
    low, high = rule["low"], rule["high"]
    if rule["low_open"] and not value > low:
        return "must be more than %s (got %s)" % (_num(low), _num(value))
    if not rule["low_open"] and not value >= low:
        return "must be %s or more (got %s)" % (_num(low), _num(value))
    if high is not None and value > high:
        return "must be at most %s (got %s)" % (_num(high), _num(value))
    return None


def _num(v):
    return ("%d" % v) if isinstance(v, int) or float(v).is_integer() and abs(v) < 1e15 else ("%g" % v)


def _url_problem(url):
    """What is wrong with api_url (None when it is usable); never echoes a password held in it."""
    if not url or not url.strip():
        return "api_url is empty: set the webapp's URL, for example https://wa.example.internal:9090."
    base = url.strip()
    if "://" not in base:
        base = "https://" + base
    try:
        parts = urlsplit(base)
        port = parts.port
    except ValueError as exc:
        return "api_url is not a valid URL (%s): use https://HOST:PORT, for example https://wa.example.internal:9090." \
            % exc
    if parts.scheme not in ("http", "https"):
        return "api_url must start with https:// (or http://), not %s://: use https://HOST:PORT." % parts.scheme
    if "@" in parts.netloc:
        return ("api_url must not hold a user name or password: remove them from the URL and set api_username and "
                "api_password instead.")
    if not parts.hostname:
        return "api_url names no host: use https://HOST:PORT, for example https://wa.example.internal:9090."
    if port is not None and port == 0:
        return "api_url's port must be 1 to 65535 (got 0): use the webapp's port, for example 9090."
    return None


def _ca_path_problem(path):
    if not os.path.exists(path):
        return ("ca_path %s: file not found. Set ca_path to the PEM file of the CA that signed the webapp's "
                "certificate (or leave it unset to use the system's CAs)." % path)
    if not os.path.isfile(path):
        return "ca_path %s is not a file (a directory?): set it to a PEM file of the CA certificate." % path
    if not os.access(path, os.R_OK):
        return "ca_path %s cannot be read by this user: make it readable, or copy the CA where it can be read." % path
    try:
        ssl.create_default_context(cafile=path)
    except (ssl.SSLError, ValueError, OSError) as exc:
        return ("ca_path %s holds no PEM CA certificate (%s): set it to the CA certificate in PEM form "
                "(-----BEGIN CERTIFICATE-----)." % (path, str(exc) or type(exc).__name__))
    return None


def _token_cache_problem(path):
    if os.path.isdir(path):
        return ("api_token_cache %s is a directory: it must name a file, for example %s." % (
            path, os.path.join(path, "tokens.json")))
    if os.path.exists(path) and not os.path.isfile(path):
        return "api_token_cache %s is not a regular file: name a file, for example ~/.cache/wabiz/tokens.json." % path
    if os.path.exists(path) and not os.access(path, os.R_OK | os.W_OK):
        return "api_token_cache %s cannot be read and written by this user: fix its owner, or name another file." % path
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(folder):  # the folders that do not exist yet are created at the first write
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    if not os.path.isdir(folder):
        return "api_token_cache %s cannot be created: %s is not a directory. Name a file in a directory." % (
            path, folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        return "api_token_cache %s cannot be created: this user may not write in %s. Name a file in a writable " \
            "directory." % (path, folder)
    return None


def option_problems(params, rules=()):
    """Every problem with the shared API and DB options and with ``rules`` (option_rule()s of the
    module's own numbers) as sentences; pure apart from looking at the named files."""
    problems = []
    for name in HEADER_SAFE_OPTIONS:
        value = params.get(name)
        if isinstance(value, str) and has_control_character(value):
            problems.append(_control_problem(name))
    for rule in tuple(COMMON_RULES) + tuple(rules):
        if rule["name"] not in params or params[rule["name"]] is None:
            continue
        problem = _number_problem(rule, params[rule["name"]])
        if problem is None and rule["whole"] and params[rule["name"]] != int(params[rule["name"]]):
            problem = "must be a whole number (got %s)" % params[rule["name"]]
        if problem:
            problems.append("%s %s: set %s." % (rule["name"], problem, rule["hint"]))
    if "api_url" in params:
        url = _url_problem(params["api_url"])
        if url:
            problems.append(url)
    if params.get("ca_path"):
        ca = _ca_path_problem(params["ca_path"])
        if ca:
            problems.append(ca)
    if params.get("api_token_cache"):
        cache = _token_cache_problem(params["api_token_cache"])
        if cache:
            problems.append(cache)
    return problems


def check_options(module, rules=()):
    """The one validator every cluster module calls right after AnsibleModule is built: fails the
    task, before anything is contacted or changed, naming each bad option, what is wrong with it
    and what to set instead (``failure_kind=invalid_option``). Never echoes a secret."""
    problems = option_problems(module.params, rules)
    if problems:
        module.fail_json(msg=" ".join(problems), failure_kind="invalid_option")
