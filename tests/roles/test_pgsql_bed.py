"""The database role with PostgreSQL on a testbed: one cluster host (p1), one host outside the
cluster (pout), a PostgreSQL 15 host. Converge, second run and check mode change nothing; the
cluster's role logs in over TCP from p1 only and has exactly LOGIN and CREATEDB."""

from __future__ import annotations

import json
import textwrap

import pytest

from tests.roles.conftest import Bed, bed_session, tail

NAME = "roles-pgsql"
SUBNET = "172.28.21.0/24"
DB, P1, POUT = "172.28.21.5", "172.28.21.11", "172.28.21.12"
USER, PASSWORD = "wabiz_test", "roles-test-secret-1"
pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def bed(docker_client, collections_path):
    hosts = ["p1:wabiz_master,wabiz_coreapp,wabiz_webapp,wabiz_nodes", "pout:outsiders"]
    with bed_session(NAME, collections_path, hosts, "postgres", False, SUBNET, {"wabiz_db_engine": "postgresql"}) as b:
        yield b


@pytest.fixture(scope="module")
def fresh_check(bed):
    """Check mode on the untouched machines, every infrastructure role (before anything else)."""
    return bed.play("infra.yml", "--check", label="check-fresh")


@pytest.fixture(scope="module")
def runs(bed, fresh_check):
    first = bed.play("database.yml", label="converge")
    assert first.ok(), tail(first.output)
    return {"converge": first, "again": bed.play("database.yml", label="idempotence"),
            "check": bed.play("database.yml", "--check", label="check")}


def _pg(bed: Bed, host: str, sql: str, dbname: str = "postgres") -> tuple[bool, str]:
    script = textwrap.dedent(f"""\
        import psycopg2
        try:
            c = psycopg2.connect(host={DB!r}, user={USER!r}, password={PASSWORD!r}, dbname={dbname!r},
                                 connect_timeout=5, sslmode="disable")
        except psycopg2.OperationalError as e:
            print("REFUSED", str(e).strip()); raise SystemExit(3)
        c.autocommit = True
        cur = c.cursor(); cur.execute({sql!r})
        if cur.description:
            for row in cur.fetchall():
                print("\\t".join(str(x) for x in row))
        """)
    res = bed.sh(host, f"python3 - <<'EOF'\n{script}EOF")
    return res.returncode == 0, res.stdout + res.stderr


def test_check_mode_on_fresh_machines_predicts_changes_and_makes_none(bed, fresh_check):
    assert fresh_check.ok(), tail(fresh_check.output)
    changed = fresh_check.changed()
    assert changed["db"] > 0 and changed["p1"] > 0, changed
    # Nothing happened: no cron entry, no firewall chain, no database role, no pg_hba line.
    assert "wabiz" not in bed.sh("p1", "crontab -l 2>&1").stdout
    assert "WABIZ" not in bed.sh("p1", "iptables -w -S").stdout
    assert bed.sh("p1", "test -e /usr/local/sbin/wabiz-log-cleanup").returncode != 0
    roles = bed.sh("db", f"runuser -u postgres -- psql -Atc \"SELECT count(*) FROM pg_roles WHERE rolname = '{USER}'\"")
    assert roles.stdout.strip() == "0", roles.stdout + roles.stderr
    assert USER not in bed.sh("db", "cat /etc/postgresql/15/main/pg_hba.conf").stdout


def test_converge_then_nothing_to_change(runs):
    assert runs["converge"].changed()["db"] > 0
    assert runs["again"].ok() and runs["again"].changed() == {"db": 0}, tail(runs["again"].output)


def test_check_mode_on_converged_state_changes_nothing(runs):
    assert runs["check"].ok() and runs["check"].changed() == {"db": 0}, tail(runs["check"].output)


def test_cluster_host_logs_in_as_login_createdb_role_only(bed, runs):
    ok, out = _pg(bed, "p1", "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin "
                             "FROM pg_roles WHERE rolname = current_user")
    assert ok, out
    assert out.strip() == "False\tTrue\tFalse\tFalse\tFalse\tTrue"
    # The client creates its own databases, named with the prefix.
    ok, out = _pg(bed, "p1", "CREATE DATABASE rt_probe")
    assert ok, out
    ok, out = _pg(bed, "p1", "DROP DATABASE rt_probe")
    assert ok, out


def test_password_is_stored_as_scram(bed, runs):
    res = bed.sh("db", f"runuser -u postgres -- psql -Atc \"SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = '{USER}'\"")
    assert res.stdout.strip() == "SCRAM-SHA-256$", res.stdout + res.stderr


def test_non_cluster_host_is_refused(bed, runs):
    ok, out = _pg(bed, "pout", "SELECT 1")
    assert not ok
    assert "no pg_hba.conf entry" in out and POUT in out, out


def test_pg_hba_has_one_scram_line_per_cluster_host(bed, runs):
    hba = bed.sh("db", "grep -v '^#' /etc/postgresql/15/main/pg_hba.conf").stdout
    lines = [line.split() for line in hba.splitlines() if USER in line]
    assert [line[:5] for line in lines] == [["host", "all", USER, f"{P1}/32", "scram-sha-256"]]


def test_settings_are_saved_and_wait_for_a_restart(bed, runs):
    """max_connections (64 x 1 node + 32) and listen_addresses need a restart, which the
    container cannot have: saved with ALTER SYSTEM, reported as pending."""
    auto = bed.sh("db", "cat /var/lib/postgresql/15/main/postgresql.auto.conf").stdout
    assert "max_connections = '96'" in auto
    assert f"listen_addresses = '127.0.0.1, {DB}'" in auto or f"listen_addresses = '127.0.0.1,{DB}'" in auto
    pending = bed.sh("db", "runuser -u postgres -- psql -Atc \"SELECT name FROM pg_settings WHERE pending_restart ORDER BY 1\"")
    assert pending.stdout.split() == ["listen_addresses", "max_connections"]
    said = " ".join(runs["converge"].output.split())  # the callback wraps long messages
    assert "has no service manager (runuser): the new listen address/port and max_connections are saved" in said


def test_hosts_leaving_the_cluster_lose_their_pg_hba_line(bed, runs):
    """Another address instead of p1: p1's line goes (and p1 is refused); the default list brings it back."""
    other = "172.28.21.99"
    moved = bed.play("database.yml", "-e", json.dumps({"database_client_hosts": [other]}), label="hba-moved")
    assert moved.ok(), tail(moved.output)
    try:
        hba = bed.sh("db", "cat /etc/postgresql/15/main/pg_hba.conf").stdout
        assert f"{other}/32" in hba and f"{P1}/32" not in hba
        ok, out = _pg(bed, "p1", "SELECT 1")
        assert not ok and "no pg_hba.conf entry" in out, out
    finally:
        back = bed.play("database.yml", label="hba-restored")
        assert back.ok(), tail(back.output)
    hba = bed.sh("db", "cat /etc/postgresql/15/main/pg_hba.conf").stdout
    assert f"{P1}/32" in hba and other not in hba
    ok, out = _pg(bed, "p1", "SELECT 1")
    assert ok, out


def test_existing_server_is_left_alone(bed, runs):
    """database_manage_server=false (the user points at an existing server): nothing is done."""
    before = bed.sh("db", "md5sum /etc/postgresql/15/main/pg_hba.conf /var/lib/postgresql/15/main/postgresql.auto.conf").stdout
    run = bed.play("database.yml", "-e", json.dumps({"database_manage_server": False,
                                                     "database_client_hosts": ["172.28.21.77"]}), label="unmanaged")
    assert run.ok() and run.changed() == {"db": 0}, tail(run.output)
    # Only fact gathering and the role's argument validation: every role task is skipped.
    assert run.recap["db"]["ok"] == 2, tail(run.output)
    after = bed.sh("db", "md5sum /etc/postgresql/15/main/pg_hba.conf /var/lib/postgresql/15/main/postgresql.auto.conf").stdout
    assert before == after
