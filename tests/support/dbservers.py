"""Real MariaDB and PostgreSQL servers on loopback for the project's tests.

The servers are the ones from Debian's packages, run as plain processes in a private data
directory (no systemd, no Docker), so the fast tests use a real database engine and nothing
else. Starting is idempotent: a server that already answers is reused.

    python -m tests.support.dbservers start    # start both, print their endpoints
    python -m tests.support.dbservers stop     # stop the servers this module started
    python -m tests.support.dbservers env      # print WABIZ_TEST_* shell variables

Both servers get an administrative account that the tests use to create their own users:
MariaDB ``wabiz_admin`` / PostgreSQL ``postgres``, password ``ADMIN_PASSWORD``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

BASE_DIR = Path(os.environ.get("WABIZ_DBSERVERS_DIR", "/tmp/wabiz-dbservers"))
ADMIN_PASSWORD = "wabiz-admin-pw"  # test-only credential for throwaway loopback servers
MARIADB_PORT = int(os.environ.get("WABIZ_TEST_MYSQL_PORT", "33306"))
POSTGRES_PORT = int(os.environ.get("WABIZ_TEST_PGSQL_PORT", "35432"))
HOST = "127.0.0.1"


@dataclass(frozen=True)
class Endpoint:
    """How to reach one test server as its administrator."""

    engine: str  # "mysql" | "postgresql"
    host: str
    port: int
    admin_user: str
    admin_password: str

    def as_env(self) -> dict[str, str]:
        prefix = "WABIZ_TEST_MYSQL" if self.engine == "mysql" else "WABIZ_TEST_PGSQL"
        return {
            f"{prefix}_HOST": self.host,
            f"{prefix}_PORT": str(self.port),
            f"{prefix}_USER": self.admin_user,
            f"{prefix}_PASSWORD": self.admin_password,
        }


MARIADB = Endpoint("mysql", HOST, MARIADB_PORT, "wabiz_admin", ADMIN_PASSWORD)
POSTGRES = Endpoint("postgresql", HOST, POSTGRES_PORT, "postgres", ADMIN_PASSWORD)


def _answers(port: int, host: str = HOST) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_for(port: int, what: str, log: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _answers(port):
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else "(no log)"
    raise RuntimeError(f"{what} did not answer on {HOST}:{port} within {timeout:.0f}s; log tail:\n{tail}")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw)


# --- MariaDB -------------------------------------------------------------------------------

def _mariadb_dir() -> Path:
    return BASE_DIR / "mariadb"


def start_mariadb() -> Endpoint:
    """Start a MariaDB server on loopback unless one already answers on its port."""
    if _answers(MARIADB.port):
        return MARIADB
    if not shutil.which("mariadbd", path="/usr/sbin:/usr/bin"):
        raise RuntimeError("mariadbd not found: install Debian's mariadb-server (make deps does)")
    d = _mariadb_dir()
    data = d / "data"
    sock = d / "mysqld.sock"
    fresh = not (data / "mysql").is_dir()
    d.mkdir(parents=True, exist_ok=True)
    if fresh:
        _run(["mariadb-install-db", "--user=root", f"--datadir={data}",
              "--auth-root-authentication-method=socket", "--skip-test-db"])
    log = d / "server.log"
    subprocess.Popen(
        ["/usr/sbin/mariadbd", "--no-defaults", "--user=root", f"--datadir={data}",
         f"--port={MARIADB.port}", f"--bind-address={HOST}", f"--socket={sock}",
         f"--pid-file={d / 'server.pid'}", f"--log-error={log}",
         "--innodb-buffer-pool-size=64M", "--max-connections=500",
         "--innodb-flush-log-at-trx-commit=2", "--skip-name-resolve"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    _wait_for(MARIADB.port, "MariaDB", log)
    if fresh:
        sql = (
            f"CREATE USER IF NOT EXISTS '{MARIADB.admin_user}'@'%' IDENTIFIED BY '{ADMIN_PASSWORD}';"
            f"GRANT ALL PRIVILEGES ON *.* TO '{MARIADB.admin_user}'@'%' WITH GRANT OPTION;"
            "FLUSH PRIVILEGES;"
        )
        _run(["mariadb", f"--socket={sock}", "-uroot", "-e", sql])
    return MARIADB


def stop_mariadb() -> None:
    _stop_pidfile(_mariadb_dir() / "server.pid")


# --- PostgreSQL ----------------------------------------------------------------------------

def _pg_bin(name: str) -> str:
    for ver in sorted(Path("/usr/lib/postgresql").glob("*"), reverse=True):
        cand = ver / "bin" / name
        if cand.exists():
            return str(cand)
    raise RuntimeError(f"{name} not found: install Debian's postgresql package (make deps does)")


def _pg_dir() -> Path:
    return BASE_DIR / "postgres"


def _as_postgres(cmd: list[str]) -> list[str]:
    # The server refuses to run as root; Debian's package creates the postgres user.
    return cmd if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *cmd]


def start_postgres() -> Endpoint:
    """Start a PostgreSQL server on loopback unless one already answers on its port."""
    if _answers(POSTGRES.port):
        return POSTGRES
    d = _pg_dir()
    data = d / "data"
    d.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        pw = pwd.getpwnam("postgres")
        os.chown(BASE_DIR, 0, 0)
        BASE_DIR.chmod(0o755)
        os.chown(d, pw.pw_uid, pw.pw_gid)
    if not (data / "PG_VERSION").exists():
        pwfile = d / "pwfile"
        pwfile.write_text(ADMIN_PASSWORD + "\n")
        if os.geteuid() == 0:
            os.chown(pwfile, pw.pw_uid, pw.pw_gid)
        _run(_as_postgres([_pg_bin("initdb"), "-D", str(data), "-U", "postgres",
                           "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8",
                           "--locale=C.UTF-8"]))
        pwfile.unlink()
        with open(data / "pg_hba.conf", "w") as hba:
            hba.write("local all all scram-sha-256\nhost all all 127.0.0.1/32 scram-sha-256\n")
    log = d / "server.log"
    _run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-l", str(log), "-w", "-t", "60",
                       "-o", f"-p {POSTGRES.port} -k {d} -c listen_addresses={HOST} "
                             "-c max_connections=500 -c fsync=off -c shared_buffers=64MB",
                       "start"]))
    _wait_for(POSTGRES.port, "PostgreSQL", log)
    return POSTGRES


def stop_postgres() -> None:
    data = _pg_dir() / "data"
    if (data / "postmaster.pid").exists():
        subprocess.run(_as_postgres([_pg_bin("pg_ctl"), "-D", str(data), "-m", "fast", "-w",
                                     "stop"]), capture_output=True, check=False)


def _stop_pidfile(pidfile: Path) -> None:
    if not pidfile.exists():
        return
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 15)
    except (ValueError, ProcessLookupError):
        return
    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def start_all() -> list[Endpoint]:
    return [start_mariadb(), start_postgres()]


def stop_all() -> None:
    stop_mariadb()
    stop_postgres()


def main(argv: list[str]) -> int:
    cmd = argv[1] if len(argv) > 1 else "start"
    if cmd == "start":
        for ep in start_all():
            print(f"{ep.engine}: {ep.host}:{ep.port} (admin {ep.admin_user})")
    elif cmd == "stop":
        stop_all()
    elif cmd == "env":
        for ep in (MARIADB, POSTGRES):
            for k, v in ep.as_env().items():
                print(f"export {k}={v}")
    else:
        print(f"usage: {argv[0]} start|stop|env", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
