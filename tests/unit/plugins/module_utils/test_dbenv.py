"""db.env: validation, rendering, parsing, and diffs that never show the password."""

from __future__ import annotations

import errno
import os
import stat

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _dbenv as dbenv
from ansible_collections.wabiz.cluster.plugins.module_utils import _dbenv_file as dbenv_file
from ansible_collections.wabiz.cluster.plugins.module_utils import _dbenv_mask as dbenv_mask
from ansible_collections.wabiz.cluster.plugins.module_utils import _dbenv_validate as dbenv_validate

GOOD = dict(engine="mysql", hostname="db.example.internal", port=None, username="whatsapp",
            password="s3cret-pw", name_prefix="wa_prod_", connection_idle_timeout=None)


def build(**over):
    args = dict(GOOD)
    args.update(over)
    return dbenv_validate.build_variables(**args)


def test_mysql_defaults_match_metas_db_env():
    v = build()
    assert v == {
        "WA_DB_ENGINE": "MYSQL",
        "WA_DB_HOSTNAME": "db.example.internal",
        "WA_DB_PORT": "3306",
        "WA_DB_USERNAME": "whatsapp",
        "WA_DB_PASSWORD": "s3cret-pw",
        "WA_DB_NAME_PREFIX": "wa_prod_",
        "WA_DB_CONNECTION_IDLE_TIMEOUT": "180000",
    }


def test_postgresql_is_pgsql_without_idle_timeout():
    v = build(engine="postgresql")
    assert v["WA_DB_ENGINE"] == "PGSQL"
    assert v["WA_DB_PORT"] == "5432"
    assert "WA_DB_CONNECTION_IDLE_TIMEOUT" not in v


def test_idle_timeout_with_postgresql_is_an_error_that_says_why():
    with pytest.raises(dbenv_validate.DbEnvError) as err:
        build(engine="postgresql", connection_idle_timeout=60000)
    assert "MySQL-only" in str(err.value)
    assert "postgresql" in str(err.value)


def test_prefix_is_optional_and_omitted():
    assert "WA_DB_NAME_PREFIX" not in build(name_prefix=None)


@pytest.mark.parametrize(
    "over, fragment",
    [
        (dict(port=0), "port: 0 is not a TCP port"),
        (dict(port=65536), "port: 65536"),
        (dict(hostname="db host"), "hostname"),
        (dict(hostname="999.1.1.1"), "hostname"),
        (dict(hostname="-db"), "hostname"),
        (dict(hostname=""), "hostname"),
        (dict(username=""), "username: must not be empty"),
        (dict(username="a" * 64), "longer than 63"),
        (dict(password=""), "password: must not be empty"),
        (dict(password="pa$$word"), "'$'"),
        (dict(password='pa"ss'), "'\"'"),
        (dict(password="line\nbreak"), "'\\n'"),
        (dict(password=" padded"), "whitespace"),
        (dict(name_prefix="1wa"), "name_prefix"),
        (dict(name_prefix="wa-prod"), "name_prefix"),
        (dict(name_prefix="w" * 33), "longer than 32"),
        (dict(connection_idle_timeout=999), "at least 1000"),
        (dict(engine="oracle"), "neither 'mysql' nor 'postgresql'"),
    ],
)
def test_bad_input_is_refused_with_a_message_naming_the_option(over, fragment):
    with pytest.raises(dbenv_validate.DbEnvError) as err:
        build(**over)
    assert fragment in str(err.value)


def test_password_never_appears_in_a_refusal():
    with pytest.raises(dbenv_validate.DbEnvError) as err:
        build(password="top$ecret")
    assert "top$ecret" not in str(err.value)


@pytest.mark.parametrize("host", ["10.0.3.10", "db", "db-1.example.internal", "fd00::10", "::1"])
def test_accepted_hostnames(host):
    assert build(hostname=host)["WA_DB_HOSTNAME"] == host


def test_render_is_in_metas_order_and_parses_back():
    v = build()
    text = dbenv_file.render(v)
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert [ln.split("=")[0] for ln in lines] == list(dbenv_file.KEYS)
    assert dbenv_file.parse(text) == v
    assert text.startswith("# Managed by wabiz.cluster.db_env")


@pytest.mark.parametrize(
    "text, expected",
    [
        # Meta's default db.env (MySQL), as published
        ("WA_DB_ENGINE=MYSQL\nWA_DB_HOSTNAME=db\nWA_DB_PORT=3306\nWA_DB_USERNAME=root\n"
         "WA_DB_PASSWORD=testpass\nWA_DB_CONNECTION_IDLE_TIMEOUT=180000\n",
         {"WA_DB_ENGINE": "MYSQL", "WA_DB_HOSTNAME": "db", "WA_DB_PORT": "3306", "WA_DB_USERNAME": "root",
          "WA_DB_PASSWORD": "testpass", "WA_DB_CONNECTION_IDLE_TIMEOUT": "180000"}),
        ("# comment\n\nexport WA_DB_ENGINE=PGSQL\nWA_DB_PASSWORD='a=b'\nnot a line\n",
         {"WA_DB_ENGINE": "PGSQL", "WA_DB_PASSWORD": "a=b"}),
        ("", {}),
        (None, {}),
    ],
)
def test_parse(text, expected):
    assert dbenv_file.parse(text) == expected


def test_changed_keys_counts_additions_removals_and_changes():
    before = {"A": "1", "B": "2", "C": "3"}
    after = {"A": "1", "B": "20", "D": "4"}
    assert dbenv_file.changed_keys(before, after) == ["B", "C", "D"]


def test_masked_hides_password_and_marks_a_changed_one():
    before = build(password="old-pw")
    after = build(password="new-pw")
    assert dbenv_mask.masked(after)["WA_DB_PASSWORD"] == dbenv_mask.MASK
    assert dbenv_mask.masked(after, before)["WA_DB_PASSWORD"] == dbenv_mask.MASK + " (changed)"
    assert dbenv_mask.masked(after, after)["WA_DB_PASSWORD"] == dbenv_mask.MASK
    assert dbenv_mask.masked(after)["WA_DB_HOSTNAME"] == "db.example.internal"


def test_masked_text_diff_shows_the_change_but_not_the_secret():
    old = dbenv_file.render(build(password="old-pw", hostname="db1"))
    new = dbenv_file.render(build(password="new-pw", hostname="db2"))
    before = dbenv_mask.masked_text(old, dbenv_file.parse(new))
    after = dbenv_mask.masked_text(new, dbenv_file.parse(old))
    for shown in (before, after):
        assert "old-pw" not in shown and "new-pw" not in shown
    assert "WA_DB_HOSTNAME=db1" in before and "WA_DB_HOSTNAME=db2" in after
    assert "WA_DB_PASSWORD=******** (changed)" in after
    # same password on both sides: the masked lines are equal, so the diff shows no change there
    same = dbenv_mask.masked_text(new, dbenv_file.parse(new))
    assert "WA_DB_PASSWORD=********\n" in same


def test_masked_text_of_a_hand_written_file_hides_comments_and_masks_export_lines():
    text = "# hand written hunter1\nexport WA_DB_PASSWORD=hunter2\nWA_DB_PORT=3306\n"
    out = dbenv_mask.masked_text(text)
    assert "hunter" not in out
    assert out.startswith(dbenv_mask.HIDDEN_LINE + "\n")  # a comment may hold anything: never shown
    assert "WA_DB_PASSWORD=********\n" in out
    assert "WA_DB_PORT=3306" in out


# --- bad input refused at the root, and nothing secret shown --------------------------

SPLITLINES_BREAKS = sorted(c for c in map(chr, range(0x110000)) if len(("a" + c + "b").splitlines()) > 1)


def test_line_breaks_are_exactly_what_splitlines_splits_on():
    assert sorted(dbenv_validate.LINE_BREAKS) == SPLITLINES_BREAKS


@pytest.mark.parametrize("char", SPLITLINES_BREAKS)
@pytest.mark.parametrize("option", ["password", "username"])
def test_every_line_break_is_refused_in_every_value(option, char):
    value = "Hidden" + char + "Tail"
    with pytest.raises(dbenv_validate.DbEnvError) as err:
        build(**{option: value})
    msg = str(err.value)
    assert msg.startswith(option + ": ")
    assert "line break" in msg and repr(char) in msg
    if option == "password":
        assert "Hidden" not in msg and "Tail" not in msg


def test_other_values_refuse_line_breaks_too():
    for over in (dict(hostname="db\u2028x"), dict(hostname="db\x85"), dict(name_prefix="wa\u2029")):
        with pytest.raises(dbenv_validate.DbEnvError):
            build(**over)


@pytest.mark.parametrize("char", ["\x7f", "\x9f", "\x01", "\t"])
def test_control_characters_are_refused(char):
    with pytest.raises(dbenv_validate.DbEnvError) as err:
        build(password="pw" + char + "x")
    assert "control characters" in str(err.value)


def test_parse_and_mask_split_on_newline_only():
    text = "WA_DB_PASSWORD=Hidden\u2028Tail\nWA_DB_PORT=3306\x0b3307\n"
    assert dbenv_file.parse(text) == {"WA_DB_PASSWORD": "Hidden\u2028Tail", "WA_DB_PORT": "3306\x0b3307"}
    shown = dbenv_mask.masked_text(text)
    assert "Hidden" not in shown and "Tail" not in shown
    # what the diff callback does with the text: no line of it may carry a piece of the password
    assert shown.splitlines() == ["WA_DB_PASSWORD=" + dbenv_mask.MASK, "WA_DB_PORT=" + dbenv_mask.HIDDEN_VALUE]


def test_crlf_file_parses_and_a_rewritten_file_is_stable():
    v = build()
    crlf = dbenv_file.render(v).replace("\n", "\r\n")
    assert dbenv_file.parse(crlf) == v
    assert dbenv_mask.masked_text(crlf, v) == dbenv_mask.masked_text(dbenv_file.render(v), v)


@pytest.mark.parametrize("value", ["pw #tail", "pw\t#tail", "pw\u00a0#tail", "pw  ##"])
@pytest.mark.parametrize("option", ["password", "username"])
def test_hash_after_whitespace_is_refused(option, value):
    with pytest.raises(dbenv_validate.DbEnvError) as err:
        build(**{option: value})
    msg = str(err.value)
    assert msg.startswith(option + ":")
    # a tab is a control character: refused either way, with its own sentence
    assert "inline comment" in msg or "control characters" in msg
    if option == "password":
        assert "tail" not in msg


@pytest.mark.parametrize("value", ["pa#ss", "#start", "end#", "a#b#c"])
def test_hash_without_whitespace_before_it_is_fine(value):
    assert build(password=value)["WA_DB_PASSWORD"] == value
    assert build(username=value)["WA_DB_USERNAME"] == value


def test_secret_like_names():
    for key in ("WA_DB_PASSWORD", "MYSQL_ROOT_PASSWORD", "PGPASS", "api_token", "SECRET", "SSH_KEY"):
        assert dbenv_mask.is_secret_key(key)
    for key in dbenv_file.KEYS:
        assert dbenv_mask.is_secret_key(key) == (key in dbenv_mask.SECRET_KEYS)


HAND_WRITTEN = (
    "# WA_DB_PASSWORD=OldHidden1\n"
    "MYSQL_ROOT_PASSWORD=RootHidden2\n"
    "API_TOKEN=TokHidden3\n"
    "OTHER=PlainHidden4\n"
    "just some words Hidden5\n"
    "\n"
    "export WA_DB_PASSWORD=CurHidden6\n"
    "WA_DB_USERNAME=bob # note Hidden7\n"
    "WA_DB_HOSTNAME=db1\n"
)


def test_diff_of_a_hand_written_file_shows_only_managed_keys_with_secrets_masked():
    desired = build(hostname="db2")
    before = dbenv_mask.masked_text(HAND_WRITTEN, desired)
    after = dbenv_mask.masked_text(dbenv_file.render(desired), dbenv_file.managed(dbenv_file.parse(HAND_WRITTEN)))
    for shown in (before, after):
        assert "Hidden" not in shown and "s3cret-pw" not in shown
    assert before.splitlines() == [dbenv_mask.HIDDEN_LINE] * 5 + [
        "",
        "WA_DB_PASSWORD=******** (changed)",
        "WA_DB_USERNAME=" + dbenv_mask.HIDDEN_VALUE,
        "WA_DB_HOSTNAME=db1",
    ]
    assert "WA_DB_HOSTNAME=db2" in after and "WA_DB_PASSWORD=******** (changed)" in after
    assert after.startswith(dbenv_file.HEADER)


def test_masked_and_managed_never_return_a_secret():
    values = dbenv_file.parse(HAND_WRITTEN)
    shown = dbenv_mask.masked(dbenv_file.managed(values))
    assert shown == {"WA_DB_PASSWORD": dbenv_mask.MASK, "WA_DB_USERNAME": dbenv_mask.HIDDEN_VALUE,
                     "WA_DB_HOSTNAME": "db1"}
    # even without managed(), names that look secret are masked
    everything = dbenv_mask.masked(values)
    assert everything["MYSQL_ROOT_PASSWORD"] == dbenv_mask.MASK and everything["API_TOKEN"] == dbenv_mask.MASK


@pytest.mark.parametrize(
    "host",
    ["::::", ":::", "1:2", "[::1]", "fe80::1%eth0", "db\n", "db.example.internal\n", "10.0.0.1\n",
     "010.0.0.1", "10.1", "1.2.3", "256.1.1.1", "1.2.3.4.5", "\u0661\u0662\u0663", "d\u00e9b", "db_1", "a" * 64,
     ".db", "db..x", 5],
)
def test_refused_hostnames(host):
    with pytest.raises(dbenv_validate.DbEnvError) as err:
        build(hostname=host)
    assert str(err.value).startswith("hostname: ")
    assert not dbenv_validate.valid_hostname(host)


@pytest.mark.parametrize("host", ["::ffff:10.0.0.1", "2001:db8::1", "0.0.0.0", "10.0.0.1", "db.example.internal.",
                                  "a" * 63, "DB-1"])
def test_more_accepted_hostnames(host):
    assert dbenv_validate.valid_hostname(host)


def test_name_prefix_with_a_trailing_newline_is_refused():
    with pytest.raises(dbenv_validate.DbEnvError) as err:
        build(name_prefix="wa_\n")
    assert "name_prefix" in str(err.value)


@pytest.mark.parametrize(
    "value, expected",
    [("0600", 0o600), ("600", 0o600), ("0400", 0o400), ("0640", 0o640), ("0440", 0o440), ("0700", 0o700),
     (None, 0o600)],
)
def test_accepted_modes(value, expected):
    assert dbenv_validate.parse_mode(value) == expected


@pytest.mark.parametrize("value", [644, 384, 0o600, 600, True, 6.0])
def test_a_numeric_mode_is_refused_with_a_hint_to_quote_it(value):
    with pytest.raises(dbenv_validate.DbEnvError) as err:
        dbenv_validate.parse_mode(value)
    msg = str(err.value)
    assert msg.startswith("mode: ") and "as a number" in msg and "Quote it" in msg


@pytest.mark.parametrize(
    "value, fragment",
    [("0644", "others read or write"), ("0604", "others read or write"), ("0602", "others read or write"),
     ("0601", "others read or write"), ("0660", "group write"), ("0610", "group write"),
     ("1600", "not an octal mode"), ("4600", "not an octal mode"), ("0600\n", "not an octal mode"),
     ("u=rw", "not an octal mode"), ("0o600", "not an octal mode"), ("06000", "not an octal mode"),
     ("", "not an octal mode"), ("0800", "not an octal mode")],
)
def test_modes_that_open_the_file_are_refused(value, fragment):
    with pytest.raises(dbenv_validate.DbEnvError) as err:
        dbenv_validate.parse_mode(value)
    assert str(err.value).startswith("mode: ") and fragment in str(err.value)


@pytest.mark.parametrize("value", [-1, 0, 3601, True, None, "10"])
def test_bad_connect_timeout_is_refused(value):
    with pytest.raises(dbenv_validate.DbEnvError) as err:
        dbenv_validate.check_connect_timeout(value)
    assert str(err.value).startswith("connect_timeout: ") and "seconds" in str(err.value)


@pytest.mark.parametrize("value", [1, 10, 3600])
def test_good_connect_timeout(value):
    assert dbenv_validate.check_connect_timeout(value) == value


def test_validate_params_checks_everything_in_one_place():
    params = dict(GOOD, mode="0600", connect_timeout=10)
    desired, mode = dbenv_validate.validate_params(params)
    assert desired == build() and mode == 0o600
    for over, option in ((dict(mode=644), "mode"), (dict(connect_timeout=-5), "connect_timeout"),
                         (dict(password="a #b"), "password"), (dict(hostname="::::"), "hostname")):
        with pytest.raises(dbenv_validate.DbEnvError) as err:
            dbenv_validate.validate_params(dict(params, **over))
        assert str(err.value).startswith(option + ": ")


# --- run_db_env with a stand-in for AnsibleModule ---------------------------------------------------

class Failed(Exception):
    pass


class FakeModule:
    def __init__(self, **params):
        self.params = dict(path=None, state="present", engine="mysql", hostname="db", port=None, username="u",
                           password="NewHidden9", name_prefix=None, connection_idle_timeout=None, owner=None,
                           group=None, mode="0600", validate_connection=False, connect_timeout=10)
        self.check_mode = params.pop("check_mode", False)
        self._diff = True
        self.params.update(params)

    def fail_json(self, **kw):
        raise Failed(kw)

    def atomic_move(self, src, dest, unsafe_writes=False):
        os.rename(src, dest)

    def set_fs_attributes_if_different(self, file_args, changed):
        if file_args["mode"] is not None and stat.S_IMODE(os.lstat(file_args["path"]).st_mode) != file_args["mode"]:
            if not self.check_mode:
                os.chmod(file_args["path"], file_args["mode"])
            return True
        return changed


def _snapshot(directory):
    return sorted((p.name, os.path.islink(p), os.readlink(p) if os.path.islink(p) else None,
                   stat.S_IMODE(os.lstat(p).st_mode), None if p.is_dir() or p.is_symlink() else p.read_text())
                  for p in directory.iterdir())


@pytest.mark.parametrize("state", ["present", "absent"])
@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("dangling", [False, True])
def test_a_symlink_at_path_is_refused_and_nothing_changes(tmp_path, state, check_mode, dangling):
    target = tmp_path / "elsewhere.env"
    if not dangling:
        target.write_text("WA_DB_PASSWORD=TargetHidden1\nOTHER=x\n")
        target.chmod(0o644)
    link = tmp_path / "db.env"
    link.symlink_to(target)
    before = _snapshot(tmp_path)
    with pytest.raises(Failed) as err:
        dbenv.run_db_env(FakeModule(path=str(link), state=state, check_mode=check_mode))
    msg = err.value.args[0]["msg"]
    assert msg.startswith("path: ") and "symbolic link" in msg and "remove the link" in msg
    assert "Hidden" not in repr(err.value.args[0])
    assert _snapshot(tmp_path) == before


def test_write_atomic_without_follow_refuses_a_symlink(tmp_path):
    from ansible_collections.wabiz.cluster.plugins.module_utils import _files

    target = tmp_path / "t"
    target.write_text("old")
    target.chmod(0o644)
    link = tmp_path / "l"
    link.symlink_to(target)
    with pytest.raises(OSError) as err:
        _files.write_atomic(FakeModule(), str(link), "new", mode=0o600, follow=False)
    assert err.value.errno == errno.ELOOP
    assert target.read_text() == "old" and stat.S_IMODE(target.stat().st_mode) == 0o644 and link.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l", "t"]


@pytest.mark.parametrize("check_mode", [False, True])
def test_an_int_mode_is_refused_and_nothing_changes(tmp_path, check_mode):
    path = tmp_path / "db.env"
    with pytest.raises(Failed) as err:
        dbenv.run_db_env(FakeModule(path=str(path), mode=644, check_mode=check_mode))
    assert err.value.args[0]["msg"].startswith("mode: 644 was given as a number")
    assert not path.exists()


def test_bad_input_against_an_existing_file_changes_nothing(tmp_path):
    path = tmp_path / "db.env"
    path.write_text(HAND_WRITTEN)
    path.chmod(0o600)
    before = _snapshot(tmp_path)
    for over in (dict(mode="0644"), dict(connect_timeout=-1), dict(password="a\u2028b"), dict(password="a #b"),
                 dict(hostname="::::"), dict(hostname="db\n"), dict(username="u\x85")):
        with pytest.raises(Failed) as err:
            dbenv.run_db_env(FakeModule(path=str(path), **over))
        assert "Hidden" not in repr(err.value.args[0])
        assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("check_mode", [False, True])
def test_absent_returns_and_diffs_no_secret(tmp_path, check_mode):
    path = tmp_path / "db.env"
    path.write_text(HAND_WRITTEN)
    result = dbenv.run_db_env(FakeModule(path=str(path), state="absent", check_mode=check_mode))
    assert "Hidden" not in repr(result)
    assert result["variables"] == {"WA_DB_PASSWORD": dbenv_mask.MASK, "WA_DB_USERNAME": dbenv_mask.HIDDEN_VALUE,
                                   "WA_DB_HOSTNAME": "db1"}
    assert result["changed_keys"] == ["WA_DB_HOSTNAME", "WA_DB_PASSWORD", "WA_DB_USERNAME"]
    assert path.exists() == check_mode


def test_present_over_a_hand_written_file_then_idempotent(tmp_path):
    path = tmp_path / "db.env"
    path.write_text(HAND_WRITTEN)
    path.chmod(0o644)
    first = dbenv.run_db_env(FakeModule(path=str(path)))
    assert first["changed"] and "Hidden" not in repr(first)
    assert "MYSQL_ROOT_PASSWORD" not in first["changed_keys"] and "OTHER" not in first["changed_keys"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert dbenv_file.parse(path.read_text())["WA_DB_PASSWORD"] == "NewHidden9"
    second = dbenv.run_db_env(FakeModule(path=str(path)))
    assert not second["changed"] and "diff" not in second and second["changed_keys"] == []


class WarningModule(FakeModule):
    def __init__(self, **params):
        super().__init__(**params)
        self.warnings = []

    def warn(self, msg):
        self.warnings.append(msg)


def test_check_mode_without_the_driver_reports_the_file_and_warns_instead_of_failing(tmp_path, monkeypatch):
    """A dry run on a fresh host: the driver is still to be installed by an earlier task."""
    monkeypatch.setattr(dbenv._dbconnect, "missing_library", lambda engine: ("PyMySQL", "No module named pymysql"))
    path = tmp_path / "db.env"
    module = WarningModule(path=str(path), validate_connection=True, check_mode=True)
    result = dbenv.run_db_env(module)
    assert result["changed"] and result["connection"] == {"checked": False, "reason": "PyMySQL is not installed yet"}
    assert module.warnings and "not checked in check mode: PyMySQL is not installed" in module.warnings[0]
    assert not path.exists()


def test_a_real_run_without_the_driver_still_fails_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(dbenv._dbconnect, "missing_library", lambda engine: ("PyMySQL", "No module named pymysql"))
    path = tmp_path / "db.env"
    module = WarningModule(path=str(path), validate_connection=True)
    with pytest.raises(Failed) as err:
        dbenv.run_db_env(module)
    assert "PyMySQL" in err.value.args[0]["msg"] and not module.warnings
    assert not path.exists()
