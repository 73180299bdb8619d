"""db.env: validation, rendering, parsing, and diffs that never show the password."""

from __future__ import annotations

import pytest
from ansible_collections.wabiz.cluster.plugins.module_utils import _dbenv as dbenv

GOOD = dict(engine="mysql", hostname="db.example.internal", port=None, username="whatsapp",
            password="s3cret-pw", name_prefix="wa_prod_", connection_idle_timeout=None)


def build(**over):
    args = dict(GOOD)
    args.update(over)
    return dbenv.build_variables(**args)


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
    with pytest.raises(dbenv.DbEnvError) as err:
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
    with pytest.raises(dbenv.DbEnvError) as err:
        build(**over)
    assert fragment in str(err.value)


def test_password_never_appears_in_a_refusal():
    with pytest.raises(dbenv.DbEnvError) as err:
        build(password="top$ecret")
    assert "top$ecret" not in str(err.value)


@pytest.mark.parametrize("host", ["10.0.3.10", "db", "db-1.example.internal", "fd00::10", "::1"])
def test_accepted_hostnames(host):
    assert build(hostname=host)["WA_DB_HOSTNAME"] == host


def test_render_is_in_metas_order_and_parses_back():
    v = build()
    text = dbenv.render(v)
    lines = [ln for ln in text.splitlines() if not ln.startswith("#")]
    assert [ln.split("=")[0] for ln in lines] == list(dbenv.KEYS)
    assert dbenv.parse(text) == v
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
    assert dbenv.parse(text) == expected


def test_changed_keys_counts_additions_removals_and_changes():
    before = {"A": "1", "B": "2", "C": "3"}
    after = {"A": "1", "B": "20", "D": "4"}
    assert dbenv.changed_keys(before, after) == ["B", "C", "D"]


def test_masked_hides_password_and_marks_a_changed_one():
    before = build(password="old-pw")
    after = build(password="new-pw")
    assert dbenv.masked(after)["WA_DB_PASSWORD"] == dbenv.MASK
    assert dbenv.masked(after, before)["WA_DB_PASSWORD"] == dbenv.MASK + " (changed)"
    assert dbenv.masked(after, after)["WA_DB_PASSWORD"] == dbenv.MASK
    assert dbenv.masked(after)["WA_DB_HOSTNAME"] == "db.example.internal"


def test_masked_text_diff_shows_the_change_but_not_the_secret():
    old = dbenv.render(build(password="old-pw", hostname="db1"))
    new = dbenv.render(build(password="new-pw", hostname="db2"))
    before = dbenv.masked_text(old, dbenv.parse(new))
    after = dbenv.masked_text(new, dbenv.parse(old))
    for shown in (before, after):
        assert "old-pw" not in shown and "new-pw" not in shown
    assert "WA_DB_HOSTNAME=db1" in before and "WA_DB_HOSTNAME=db2" in after
    assert "WA_DB_PASSWORD=******** (changed)" in after
    # same password on both sides: the masked lines are equal, so the diff shows no change there
    same = dbenv.masked_text(new, dbenv.parse(new))
    assert "WA_DB_PASSWORD=********\n" in same


def test_masked_text_of_a_hand_written_file_keeps_comments_and_masks_export_lines():
    text = "# hand written\nexport WA_DB_PASSWORD=hunter2\nWA_DB_PORT=3306\n"
    out = dbenv.masked_text(text)
    assert "hunter2" not in out
    assert out.startswith("# hand written\n")
    assert "WA_DB_PORT=3306" in out
