"""site.yml's preflight on throwaway inventories (no host is touched: it only reads the inventory),
and the scheduled message-GC script's secrets and TLS against a local HTTPS stand-in of the API."""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _bin(name: str) -> str:
    found = BIN / name
    return str(found) if found.exists() else (shutil.which(name) or name)


@pytest.fixture(scope="module")
def env(tmp_path_factory) -> dict[str, str]:
    """The working tree as the collection wabiz.cluster, away from any other ANSIBLE_* setting."""
    link = tmp_path_factory.mktemp("collections")
    (link / "ansible_collections" / "wabiz").mkdir(parents=True)
    (link / "ansible_collections" / "wabiz" / "cluster").symlink_to(ROOT)
    out = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    out.update(ANSIBLE_COLLECTIONS_PATH=str(link), ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_CALLBACK_RESULT_FORMAT="json", ANSIBLE_HOST_KEY_CHECKING="0")
    return out


def inventory(**changes) -> dict:
    """A sound production-like layout on fake hosts (local connection; preflight only reads it)."""
    inv = {"all": {
        "vars": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
                 "wabiz_db_host": "10.0.2.10", "wabiz_db_password": "db-secret-value",
                 "wabiz_admin_password": "Admin-secret-value-1", "wabiz_media_source": "nfs",
                 "wabiz_media_nfs_server": "10.0.2.20", "wabiz_account_cc": "1",
                 "wabiz_account_phone_number": "6505550100"},
        "children": {
            "wabiz_nodes": {"children": {
                "wabiz_master": {"hosts": {"m1": {"ansible_host": "10.0.1.11"}, "m2": {"ansible_host": "10.0.1.12"}}},
                "wabiz_coreapp": {"hosts": {"c1": {"ansible_host": "10.0.1.21"}, "c2": {"ansible_host": "10.0.1.22"}}},
                "wabiz_webapp": {"hosts": {"w1": {"ansible_host": "10.0.1.31"}}}}},
            "wabiz_database": {"hosts": {"db": {"ansible_host": "10.0.2.10"}}},
            "wabiz_nfs": {"hosts": {"nfs": {"ansible_host": "10.0.2.20"}}}}}}
    inv["all"]["vars"].update(changes)
    return inv


def preflight(env, tmp_path, inv, playbook: str = "site.yml") -> subprocess.CompletedProcess:
    path = tmp_path / "hosts.yml"
    path.write_text(yaml.safe_dump(inv))
    return subprocess.run([_bin("ansible-playbook"), "-i", str(path), str(ROOT / "playbooks" / playbook),
                           "--tags", "preflight"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)


def test_a_sound_inventory_passes(env, tmp_path):
    res = preflight(env, tmp_path, inventory())
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("changes, expected", [
    ({"wabiz_db_host": ""}, "wabiz_db_host is empty on every node host"),
    ({"wabiz_db_password": ""}, "wabiz_db_password is empty on every node host"),
    ({"wabiz_admin_password": ""}, "wabiz_admin_password is empty on w1"),
    ({"wabiz_admin_password": "admin-secret-value"},
     "wabiz_admin_password on w1 breaks the API's password rules (it has no upper-case letter; it has no digit)"),
    ({"wabiz_account_cc": ""}, "wabiz_account_cc and wabiz_account_phone_number must be set"),
    ({"wabiz_account_phone_number": "+1 650"}, "wabiz_account_phone_number is '+1 650'"),
    ({"wabiz_master_instances": 0}, "wabiz_master_instances is 0 on every master host (m1, m2)"),
    ({"wabiz_node_base_port": 70000}, "wabiz_node_base_port is 70000"),
    ({"wabiz_node_base_port": 65534}, "set wabiz_node_base_port to at most 65532"),
    ({"wabiz_webapp_port": 70000}, "wabiz_webapp_port is 70000 on w1"),
    ({"wabiz_heartbeat_interval": 30, "wabiz_unhealthy_interval": 30},
     "wabiz_unhealthy_interval (30 s) must be greater than wabiz_heartbeat_interval (30 s)"),
    ({"wabiz_media_nfs_server": ""}, "wabiz_media_nfs_server is empty"),
])
def test_each_bad_setting_is_refused_by_name(env, tmp_path, changes, expected):
    res = preflight(env, tmp_path, inventory(**changes))
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0 and expected in out, out
    assert "secret-value" not in out


def test_the_database_on_a_coreapp_host_is_refused(env, tmp_path):
    inv = inventory()
    inv["all"]["children"]["wabiz_database"]["hosts"] = {"c1": None}
    res = preflight(env, tmp_path, inv)
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0 and "c1 is in both wabiz_database and wabiz_coreapp" in out, out


@pytest.mark.parametrize("inv", [
    {"all": {"hosts": {}}},
    {"all": {"children": {"wabiz_database": {"hosts": {"db": {"ansible_connection": "local"}}}}}},
    # a typo in a group name: the cluster's hosts are not where the playbooks look
    {"all": {"children": {"wabiz_masters": {"hosts": {"m1": {"ansible_connection": "local"}}}}}},
], ids=["empty", "database-only", "typo"])
def test_an_inventory_without_node_hosts_is_refused(env, tmp_path, inv):
    res = preflight(env, tmp_path, inv)
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0 and "The inventory has no cluster node host" in out, out


@pytest.mark.parametrize("playbook", ["upgrade.yml", "preflight.yml"])
def test_upgrade_and_the_preflight_alone_refuse_what_site_refuses(env, tmp_path, playbook):
    empty = preflight(env, tmp_path, {"all": {"hosts": {}}}, playbook)
    assert empty.returncode != 0 and "The inventory has no cluster node host" in empty.stdout + empty.stderr
    bad = preflight(env, tmp_path, inventory(wabiz_master_instances=0), playbook)
    out = " ".join((bad.stdout + bad.stderr).split())
    assert bad.returncode != 0 and "wabiz_master_instances is 0 on every master host (m1, m2)" in out, out


def test_a_development_inventory_passes(env, tmp_path):
    inv = {"all": {"children": {"wabiz_dev": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
        "dev_cluster_db_password": "dev-secret"}}}}}}
    res = preflight(env, tmp_path, inv)
    assert res.returncode == 0, res.stdout + res.stderr


# -- the scheduled message GC --------------------------------------------------------------------------

def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """An HTTPS stand-in of the three calls the script makes, with a certificate for 127.0.0.1
    signed by a private CA; yields (port, ca file, calls)."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make the test CA")
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
             "-subj", "/CN=wabiz test CA", cwd=d)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=127.0.0.1",
             cwd=d)
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out",
             "srv.pem", "-days", "2", "-extfile", "ext.cnf", cwd=d)
    calls: list[tuple[str, str]] = []
    expected = "Basic " + base64.b64encode(b"admin:gc-secret").decode()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            calls.append((self.command, self.path))
            if self.path == "/v1/users/login":
                ok = self.headers.get("Authorization") == expected
                self._reply(200 if ok else 401, {"users": [{"token": "tok"}]} if ok else {"errors": [{}]})
            elif self.headers.get("Authorization") != "Bearer tok":
                self._reply(401, {})
            elif self.command == "PUT" and self.path == "/v1/services/message/gc":
                # the real answer; completion goes to the webhook, there is no GET
                self._reply(200, {"services": {"message": {"gc": {"10.0.1.21:c0ffee": {"status": "processing"}}}},
                                  "meta": {"api_status": "stable", "version": "2.53.2"}})
            else:
                self._reply(404, {"errors": [{"code": 1006, "title": "Resource not found",
                                              "details": "URL path not found"}]})

        do_GET = do_POST = do_PUT = _handle

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(d / "srv.pem", d / "srv.key")
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1], d / "ca.pem", calls
    server.shutdown()


def render_gc_script(env, tmp_path, port: int, validate: bool, ca: str, secret: Path) -> Path:
    dest = tmp_path / "wabiz-message-gc"
    extra = {"wabiz_webapp_port": port, "wabiz_api_validate_certs": validate, "wabiz_api_ca_path": ca,
             "message_gc_secret_path": str(secret)}
    res = subprocess.run([_bin("ansible"), "localhost", "-m", "ansible.builtin.template", "-a",
                          f"src={ROOT / 'playbooks' / 'templates' / 'wabiz-message-gc.j2'} dest={dest} mode=0600",
                          "-e", json.dumps(extra)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    return dest


def secret_file(tmp_path: Path, mode: int = 0o600) -> Path:
    path = tmp_path / "gc.secret"
    path.write_text("gc-secret\n")
    path.chmod(mode)
    return path


def run_script(script: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the script accepts only a root-owned secret file")


@needs_root
def test_gc_script_verifies_the_webapp_with_the_clusters_ca(env, tmp_path, api):
    port, ca, calls = api
    script = render_gc_script(env, tmp_path, port, True, str(ca), secret_file(tmp_path))
    text = script.read_text()
    assert "gc-secret" not in text and "_create_unverified_context()\n" not in text.split("def tls_context")[0]
    res = run_script(script)
    assert res.returncode == 0 and "message gc started on 1 node(s)" in res.stdout, res.stdout + res.stderr
    assert "10.0.1.21:c0ffee" in res.stdout and "processing" in res.stdout
    assert [c for c in calls if c[1] != "/v1/users/login"] == [("PUT", "/v1/services/message/gc")]


@needs_root
def test_gc_script_refuses_a_certificate_its_ca_did_not_sign(env, tmp_path, api):
    port, _ca, _calls = api
    res = run_script(render_gc_script(env, tmp_path, port, True, "", secret_file(tmp_path)))
    assert res.returncode != 0 and "CERTIFICATE_VERIFY_FAILED" in res.stderr, res.stdout + res.stderr


@needs_root
def test_gc_script_skips_verification_only_when_the_inventory_says_so(env, tmp_path, api):
    port, _ca, _calls = api
    res = run_script(render_gc_script(env, tmp_path, port, False, "", secret_file(tmp_path)))
    assert res.returncode == 0 and "message gc started" in res.stdout, res.stdout + res.stderr


@needs_root
@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604])
def test_gc_script_refuses_a_secret_file_others_can_read(env, tmp_path, api, mode):
    port, ca, _calls = api
    res = run_script(render_gc_script(env, tmp_path, port, True, str(ca), secret_file(tmp_path, mode)))
    assert res.returncode != 0 and "readable by root only" in res.stderr, res.stdout + res.stderr


def _example(env, tmp_path, playbook: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([_bin("ansible-playbook"), "-i", str(ROOT / "inventories" / "production.example"),
                           str(ROOT / "playbooks" / playbook), *args], capture_output=True, text=True, timeout=300,
                          env=env, cwd=tmp_path)


def test_the_production_example_passes_the_preflight(env, tmp_path):
    res = _example(env, tmp_path, "preflight.yml")
    assert res.returncode == 0, res.stdout + res.stderr


def test_upgrade_with_a_limit_without_the_planning_host_is_refused_in_a_sentence(env, tmp_path):
    """Every play after the plan reads the plan from the first webapp host: a --limit without it
    is refused before anything is touched (no host of the example is reachable: nothing connects)."""
    res = _example(env, tmp_path, "upgrade.yml", "--limit", "wa-core-1")
    out = " ".join((res.stdout + res.stderr).split())
    assert res.returncode != 0, out
    assert "upgrade.yml plans the order from the first webapp host, wa-web-1, which --limit leaves out" in out, out
    assert "--limit 'wa-core-1,wa-web-1'" in out and "UNREACHABLE" not in out and "template error" not in out.lower()
