"""db_env: a bad or borderline value of any one option (the others valid) fails cleanly or is
accepted; never a traceback or a hang, never the password outside db.env, nothing touched when it
fails, and a documented-invalid value is refused."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.properties import strategies as S
from tests.properties.conftest import examples
from tests.properties.harness import MARKER, Listener, assert_clean, judge, run_module, secret, snapshot
from tests.support import dbservers

OLD = "# an older db.env\nWA_DB_ENGINE=MYSQL\nWA_DB_HOSTNAME=old.example\nWA_DB_PORT=3306\n" \
      f"WA_DB_USERNAME=old\nWA_DB_PASSWORD=old-{MARKER}\n"
UNSAFE = set("$\"'`\\\n\r\x00")


def _int_value(v):
    """What Ansible's int conversion would make of ``v``, or None when it refuses it."""
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return int(v) if v.is_integer() else None
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            return None
    return None


def invalid_reason(option, value, args):
    """Why DOCUMENTATION rules ``value`` out for ``option`` (None: valid or borderline)."""
    if option == "port":
        n = _int_value(value)
        if n is not None and not 1 <= n <= 65535:
            return "port outside 1-65535"
    if option == "connection_idle_timeout":
        n = _int_value(value)
        if n is not None and n < 1000:
            return "idle timeout below 1000 ms"
    if option in ("password", "username") and isinstance(value, str):
        if value == "" or (set(value) & UNSAFE) or value != value.strip() or any(ord(c) < 32 for c in value):
            return "empty, unsafe characters or surrounding whitespace"
    if option == "name_prefix" and isinstance(value, str):
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*\Z", value) or len(value) > 32:
            return "not letters, digits and underscores (at most 32)"
    if option == "hostname" and isinstance(value, str):
        if not value or any(c.isspace() or ord(c) < 32 for c in value) or set(value) & set("$\"'`\\#=/"):
            return "not a host name or IP address"
    if option == "mode":
        if isinstance(value, int) and not isinstance(value, bool) and not 0 <= value <= 0o7777:
            return "mode outside 0-07777"
        if isinstance(value, str) and not re.match(r"^0?[0-7]{3,4}\Z", value):
            return "not an octal mode string"
    if option == "engine" and value not in ("mysql", "postgresql"):
        return "engine not in choices"
    if option == "state" and value not in ("present", "absent"):
        return "state not in choices"
    return None


def path_cases(w: Path):
    """Kinds of ``path`` values, each set up inside the throwaway dir ``w``."""
    def regular():
        return str(w / "db.env")

    def directory():
        (w / "adir").mkdir()
        return str(w / "adir")

    def missing_dir():
        return str(w / "missing" / "db.env")

    def symlink():
        (w / "target.env").write_text(OLD)
        (w / "link.env").symlink_to(w / "target.env")
        return str(w / "link.env")

    def dangling():
        (w / "dangle.env").symlink_to(w / "nowhere" / "x.env")
        return str(w / "dangle.env")

    def fifo():
        os.mkfifo(w / "fifo.env")
        return str(w / "fifo.env")

    def long_name():
        return str(w / ("n" * 300))

    def odd_name():
        return str(w / "d b\n.env")

    def relative():
        return "relative-db.env"

    return [regular, directory, missing_dir, symlink, dangling, fifo, long_name, odd_name, relative]


OPTIONS = {
    "path": None,  # special
    "state": S.bad_str(["present", "absent", "Present", "mounted"]),
    "engine": S.bad_str(["mysql", "postgresql", "MYSQL", "pgsql", "mariadb", "postgres"]),
    "hostname": S.bad_str(["db.example.internal", "127.0.0.1", "::1", "[::1]", "999.1.1.1", "1.2.3", "-db", "db-",
                           "a" * 64, ("a" * 63 + ".") * 5, "db_1", "db.example.internal.", "localhost:3306",
                           "db#x", "fe80::1%eth0", "http://db"]),
    "port": S.bad_int(),
    "username": S.bad_str(["whatsapp", "u" * 63, "u" * 64, "wa user", "wa#1", "root@%"]),
    "password": S.bad_secret(),
    "name_prefix": S.bad_str(["wa_", "_", "1wa", "wa-", "a" * 32, "a" * 33, "wa$", "WA_Prod_9"]),
    "connection_idle_timeout": S.bad_int([999, 1000, 180000]),
    "owner": S.bad_str(["root", "0", "nosuchuser", "-1", "4294967295", "65534"]),
    "group": S.bad_str(["root", "0", "nosuchgroup", "-1", "4294967295"]),
    "mode": st.one_of(S.bad_str(["0600", "600", "0o600", "u=rw", "0777", "06000", "7777", "0800", "+x"]),
                      S.bad_int([-1, 384, 0o7777, 0o10000, 600, 0o4755])),
    "validate_connection": S.bad_bool(),
    "connect_timeout": S.bad_int([0, -1, 1, 2**31]),
}


def _base(w: Path, refused_port: int) -> dict:
    # 127.0.0.1 on a port where nothing listens: an accidental validate_connection fails fast.
    return {"path": str(w / "db.env"), "engine": "mysql", "hostname": "127.0.0.1", "port": refused_port,
            "username": "whatsapp", "password": secret("pw"), "name_prefix": "wa_", "mode": "0600",
            "connect_timeout": 3}


def _holds_old(p: Path) -> bool:
    try:
        return p.is_file() and not p.is_symlink() and OLD.encode() == p.read_bytes()
    except OSError:  # a name too long, a FIFO's neighbour...
        return False


def _judge_db_env(run, w, args, option, value, before):
    after = snapshot(w)
    intended = (w / args["path"]) if isinstance(args.get("path"), str) else None  # relative: the module's cwd is w
    allowed = tuple(p for p in (w / "db.env", w / "target.env", w / "link.env", intended) if p is not None)
    if run.failed:  # on failure only the earlier content may hold a secret, and it did not change
        allowed = tuple(p for p in allowed if _holds_old(p))
    return judge(run, before=before, after=after, secrets_root=w, allowed_secret_files=allowed,
                 invalid=invalid_reason(option, value, args))


# The classic bad values of each option run first (explicit examples, in every profile).
EXPLICIT = {
    "path": list(range(9)),
    "state": ["", "mounted", None],
    "engine": ["MYSQL", "", 5],
    "hostname": ["", "db host", "db\nWA_DB_PORT=1", "$HOST", "999.1.1.1", "x" * 300],
    "port": [0, -1, 65536, "abc", 2**63],
    "username": ["", "wa user ", "wa'x", "u" * 64, "a\nWA_DB_ENGINE=PGSQL"],
    "password": ["", " " + MARKER, MARKER + "$HOME", MARKER + "\nWA_DB_PORT=1", "'" + MARKER + "'", MARKER + " #x"],
    "name_prefix": ["", "1wa", "wa-", "a" * 33, "wa`id`"],
    "connection_idle_timeout": [999, 0, -1, "abc"],
    "owner": ["nosuchuser", "-1", "4294967295", ""],
    "group": ["nosuchgroup", "-1", ""],
    "mode": [-1, 600, "u=rw", "0800", 0o10000, "", "06777"],
    "validate_connection": ["maybe", 2],
    "connect_timeout": [0, -1, 2**40],
}


@pytest.mark.parametrize("option", sorted(OPTIONS))
def test_db_env_bad_value_fails_cleanly_no_traceback_no_hang_no_leak_no_change(option, workdir, listeners):
    refused = listeners["refused"].port
    value_strategy = st.integers(0, 8) if option == "path" else OPTIONS[option]

    @settings(max_examples=examples(3))
    @given(value=value_strategy, existing=st.booleans(), check=st.booleans(), diff=st.booleans(),
           pg=st.booleans())
    def prop(value, existing, check, diff, pg):
        w = workdir()
        args = _base(w, refused)
        if existing:
            (w / "db.env").write_text(OLD)
            (w / "db.env").chmod(0o600)
        if option == "path":
            value = path_cases(w)[value]()
        args[option] = value
        if option == "connection_idle_timeout" and pg:
            args["engine"] = "postgresql"
        before = snapshot(w)
        budget = 15.0 if option != "validate_connection" else 20.0
        run = run_module("db_env", args, w, check=check, diff=diff, budget=budget)
        _judge_db_env(run, w, args, option, value, before)
        assert_clean(run)

    for i, v in enumerate(EXPLICIT[option]):
        prop = example(value=v, existing=bool(i % 2 == 0), check=False, diff=True, pg=bool(i % 2))(prop)
    prop()


@pytest.mark.parametrize("kind", Listener.KINDS)
@pytest.mark.parametrize("engine", ["mysql", "postgresql"])
def test_db_env_validate_against_broken_server_fails_within_connect_timeout(kind, engine, workdir, listeners):
    """validate_connection against a listener that accepts and never answers, answers garbage,
    closes at once or serves HTML: a clean failure within connect_timeout, the file untouched."""

    @settings(max_examples=examples(1))
    @given(timeout=st.integers(1, 3), existing=st.booleans(), check=st.booleans())
    def prop(timeout, existing, check):
        w = workdir()
        args = _base(w, listeners[kind].port)
        args.update(engine=engine, validate_connection=True, connect_timeout=timeout)
        if engine == "postgresql":
            args.pop("name_prefix")
        if existing:
            (w / "db.env").write_text(OLD)
        before = snapshot(w)
        run = run_module("db_env", args, w, check=check, budget=2 * timeout + 2)
        _judge_db_env(run, w, args, "validate_connection", True, before)
        if not run.failed:
            run.problems.append(f"validate_connection passed against a {kind} listener")
        assert_clean(run)

    prop()


@pytest.mark.parametrize("engine", ["mysql", "postgresql"])
def test_db_env_validate_wrong_password_on_real_server_refused_without_leak(engine, workdir):
    """A refused login on the real server: failure_kind login_refused, the marker nowhere."""
    ep = dbservers.start_mariadb() if engine == "mysql" else dbservers.start_postgres()

    @settings(max_examples=examples(2))
    @given(pw=S.bad_secret(), user=st.sampled_from([ep.admin_user, "nosuchuser", "wa'x"]))
    def prop(pw, user):
        w = workdir()
        (w / "db.env").write_text(OLD)
        args = {"path": str(w / "db.env"), "engine": engine, "hostname": ep.host, "port": ep.port,
                "username": user, "password": pw, "validate_connection": True, "connect_timeout": 3}
        before = snapshot(w)
        run = run_module("db_env", args, w, budget=10)
        _judge_db_env(run, w, args, "password", pw, before)
        if not run.failed:
            run.problems.append("a wrong password passed validate_connection")
        assert_clean(run)

    prop()
