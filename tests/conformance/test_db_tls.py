"""TLS to the database as the real client reads it: WA_DB_SSL_CA / WA_DB_SSL_CERT / WA_DB_SSL_KEY.

mysql:8.0.33 (with --require-secure-transport=ON) and postgres:13.8 (ssl=on) run with a certificate
of a throwaway CA; the coreapp image's wait_on_mysql.sh / wait_on_postgres.sh and the stand-in's own
connection code log in over TLS with the server's certificate and host name verified, and refuse a
server whose certificate does not match (wrong host name, other CA)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conformance import support as s

pytestmark = [pytest.mark.docker, pytest.mark.slow]

NETWORK = f"{s.PREFIX}-tls"
NAMES = {"mysql": ("db-mysql", 3306), "postgres": ("db-pgsql", 5432)}
IMAGE = f"docker.whatsapp.biz/coreapp:v{s.VERSION}"

PROBE = r"""
import sys
from wabiz_standin import config
from wabiz_standin.storage import StorageError, make_storage
cfg = config.load()
st = make_storage(cfg.engine, cfg.db_host, cfg.db_port, cfg.db_user, cfg.db_password, cfg.db_name, 5.0)
try:
    conn = st._connect(None)
except StorageError as exc:
    print("REFUSED", exc)
    sys.exit(3)
cur = conn.cursor()
if cfg.engine == "MYSQL":
    cur.execute("SHOW SESSION STATUS LIKE 'Ssl_version'")
    print("TLS" if cur.fetchone()[1] else "PLAIN")
else:
    cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
    print("TLS" if cur.fetchone()[0] else "PLAIN")
"""


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=d)


def _signed(d: Path, name: str, cn: str, san: str | None) -> None:
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={cn}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=d)
    ext = d / f"{name}.ext"
    ext.write_text(f"subjectAltName={san}\n" if san else "basicConstraints=CA:FALSE\n")
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
             "-days", "2", "-out", f"{name}.pem", "-extfile", ext.name, cwd=d)


@pytest.fixture(scope="module")
def certs(tmp_path_factory) -> dict[str, Path]:
    if shutil.which("openssl") is None:
        pytest.fail("the TLS tests need the openssl command (Debian's openssl package)")
    d = tmp_path_factory.mktemp("tls")
    _ca(d, "ca")
    _ca(d, "other-ca")
    _signed(d, "server", "db", "DNS:db-mysql,DNS:db-pgsql")
    _signed(d, "client", "root", None)
    # Each side gets only its files, with the modes its program insists on.
    dirs = {k: d / k for k in ("mysql", "postgres", "client")}
    for k, dd in dirs.items():
        dd.mkdir()
        names = ("ca.pem", "client.pem", "client.key", "other-ca.pem") if k == "client" else \
            ("ca.pem", "server.pem", "server.key")
        for n in names:
            shutil.copy(d / n, dd / n)
    (dirs["mysql"] / "server.key").chmod(0o644)  # read by the server's mysql user
    gid = int(s.run("docker", "run", "--rm", "--entrypoint", "id", "postgres:13.8", "-g", "postgres").stdout)
    key = dirs["postgres"] / "server.key"
    os.chown(key, 0, gid)
    key.chmod(0o640)  # PostgreSQL: owned by root, readable by its group at most
    (dirs["client"] / "client.key").chmod(0o600)  # libpq refuses a client key others may read
    for dd in dirs.values():
        dd.chmod(0o755)
    return dirs


@pytest.fixture(scope="module")
def network(images) -> Iterator[str]:
    s.remove_named(*(f"{s.PREFIX}-tls-{e}" for e in NAMES), NETWORK)
    s.run("docker", "network", "create", "--label", "wabiz.conformance=1", NETWORK)
    try:
        yield NETWORK
    finally:
        s.remove_named(*(f"{s.PREFIX}-tls-{e}" for e in NAMES), NETWORK)


@pytest.fixture(params=sorted(NAMES))
def server(request, network, certs) -> Iterator[tuple[str, str, int]]:
    engine = request.param
    alias, port = NAMES[engine]
    name = f"{s.PREFIX}-tls-{engine}"
    common = ["docker", "run", "-d", "--name", name, "--network", network, "--network-alias", alias,
              "-v", f"{certs[engine]}:/certs:ro"]
    if engine == "mysql":
        s.run(*common, "-e", "MYSQL_ROOT_PASSWORD=testpass", "mysql:8.0.33",
              "--default-authentication-plugin=mysql_native_password", "--ssl-ca=/certs/ca.pem",
              "--ssl-cert=/certs/server.pem", "--ssl-key=/certs/server.key", "--require-secure-transport=ON")
    else:
        s.run(*common, "-e", "POSTGRES_USER=root", "-e", "POSTGRES_PASSWORD=testpass", "postgres:13.8",
              "-c", "ssl=on", "-c", "ssl_cert_file=/certs/server.pem", "-c", "ssl_key_file=/certs/server.key")
    try:
        yield engine, alias, port
    finally:
        s.remove_named(name)


def _client(server: tuple[str, str, int], certs: dict[str, Path], tls: dict[str, str], host: str | None = None,
            wait: bool = False) -> subprocess.CompletedProcess:
    engine, alias, port = server
    env = {"WA_DB_ENGINE": "MYSQL" if engine == "mysql" else "PGSQL", "WA_DB_HOSTNAME": host or alias,
           "WA_DB_PORT": str(port), "WA_DB_USERNAME": "root", "WA_DB_PASSWORD": "testpass",
           "WA_APP_MULTICONNECT": "1", "WA_DB_WAIT_SECONDS": "90", "PROBE": PROBE, **tls}
    wait_script = "wait_on_mysql.sh" if engine == "mysql" else "wait_on_postgres.sh"
    cmd = (f'exec /opt/whatsapp/bin/{wait_script} python3 -c "$PROBE"' if wait else 'exec python3 -c "$PROBE"')
    args = ["docker", "run", "--rm", "--network", NETWORK, "-v", f"{certs['client']}:/certs:ro"]
    for k, v in env.items():
        args += ["-e", f"{k}={v}"]
    return s.run(*args, IMAGE, "sh", "-c", cmd, check=False, timeout=150)


FULL = {"WA_DB_SSL_CA": "/certs/ca.pem", "WA_DB_SSL_CERT": "/certs/client.pem", "WA_DB_SSL_KEY": "/certs/client.key"}


def test_the_client_logs_in_over_verified_tls_and_refuses_a_certificate_that_does_not_match(server, certs) -> None:
    engine = server[0]
    res = _client(server, certs, FULL, wait=True)
    assert res.returncode == 0 and res.stdout.strip().endswith("TLS"), res.stdout + res.stderr
    assert "is up" in res.stdout, "the image's wait script logged in over TLS first"
    res = _client(server, certs, {"WA_DB_SSL_CA": "/certs/ca.pem"})
    assert res.returncode == 0 and res.stdout.strip() == "TLS", res.stdout + res.stderr
    # The server's certificate names db-mysql and db-pgsql, not its address: refused (verify-full).
    ip = s.run("docker", "inspect", "--format", f"{{{{(index .NetworkSettings.Networks \"{NETWORK}\").IPAddress}}}}",
               f"{s.PREFIX}-tls-{engine}").stdout.strip()
    res = _client(server, certs, FULL, host=ip)
    assert res.returncode == 3 and "REFUSED" in res.stdout and "certificate" in res.stdout, res.stdout + res.stderr
    # Signed by another CA than the one named: refused.
    res = _client(server, certs, {"WA_DB_SSL_CA": "/certs/other-ca.pem"})
    assert res.returncode == 3 and "certificate verify failed" in res.stdout, res.stdout + res.stderr
    if engine == "mysql":
        # The server takes TLS logins only, so the logins above were TLS ones.
        res = _client(server, certs, {})
        assert res.returncode == 3 and "REFUSED" in res.stdout, res.stdout + res.stderr
