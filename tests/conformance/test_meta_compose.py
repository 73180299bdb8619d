"""The stand-in behaves as the real client under Meta's unchanged compose files (see conftest.py for
the three layouts): the databases those files name come up with their official variables and
flags, the nodes take their kind from the image, and the API answers as the contract says: first
login, health, a message, shards, settings, message GC."""

from __future__ import annotations

import re

import pytest

from tests.conformance import support as s

pytestmark = [pytest.mark.docker, pytest.mark.slow]


def test_meta_files_are_found_and_unchanged(meta) -> None:
    found = s.tree_hashes(meta)
    for name, digest in s.recorded_hashes().items():
        assert found.get(name) == digest, f"{meta / name} differs from what Meta publishes"
    assert "WA_API_VERSION" in (meta / "installation" / "prod-multiconnect-compose.yml").read_text()


def test_a_missing_meta_folder_is_a_clear_failure(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(s.META_ENV, str(tmp_path / "nowhere"))
    with pytest.raises(s.MetaFilesMissing, match=f"{s.META_ENV}=.*nowhere.*Point {s.META_ENV} at"):
        s.locate_meta()
    monkeypatch.delenv(s.META_ENV)
    assert s.meta_candidates()[0] == s.ROOT.parent / "shared" / "reference" / "meta-setup-scripts"


def test_the_database_image_honours_the_official_variables_and_flags(cluster) -> None:
    """mysql:8.0.33 (root and MYSQL_USER from the file, started with
    --default-authentication-plugin=mysql_native_password) and postgres:13.8 (POSTGRES_USER root, a
    superuser, on port 3306 with 500 connections from "-p 3306 -N 500"), reached on the published port."""
    if cluster.engine == "postgres":
        import psycopg2

        conn = psycopg2.connect(host=cluster.db_host, port=cluster.db_port, user="root", password="testpass",
                                dbname="root", connect_timeout=5)
        try:
            cur = conn.cursor()
            cur.execute("SELECT current_setting('port'), current_setting('max_connections'), "
                        "(SELECT rolsuper FROM pg_roles WHERE rolname = 'root')")
            assert cur.fetchone() == ("3306", "500", True)
        finally:
            conn.close()
        return
    import pymysql

    users = [("root", "testpass")] + ([("testuser", "testpass")] if cluster.name == "mysql" else [])
    for user, password in users:
        conn = pymysql.connect(host=cluster.db_host, port=cluster.db_port, user=user, password=password, connect_timeout=5)
        try:
            cur = conn.cursor()
            cur.execute("SELECT CURRENT_USER()")
            assert cur.fetchone()[0] == f"{user}@%"
        finally:
            conn.close()


def test_first_login_asks_for_a_new_password_then_the_new_one_works_everywhere(cluster) -> None:
    status, body = cluster.logins["first"]
    assert (status, s.error_code(body)) == (401, 1024), body
    assert body["errors"][0]["title"] == "Password change required"
    status, body = cluster.logins["weak"]
    assert (status, s.error_code(body)) == (400, 1009), body
    status, body = cluster.logins["new"]
    user = body["users"][0]
    assert user["token"] and re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\+00:00", user["expires_after"]), body
    # The old default password no longer works.
    status, body = s.api(cluster.port, "POST", "/v1/users/login", s.basic("admin", "secret"))
    assert status == 401, body


def test_health_lists_every_master_and_coreapp_by_the_kind_its_image_gives(cluster) -> None:
    for port in cluster.webapp_ports:
        status, body = cluster.health(port)
        assert status == 200, body
        health = body["health"]
        by_role: dict[str, list[str]] = {}
        for key, node in health.items():
            assert re.fullmatch(r"[^:]+:[0-9a-f]{12}", key), f"not HOST:CONTAINER_ID: {key}"
            by_role.setdefault(node["role"], []).append(key.split(":")[0])
        # The web image ran the webapps (not listed), the coreapp image the masters (WA_MASTER_NODE=1)
        # and the coreapps: no host names or ports decided it.
        assert len(by_role.get("primary_master", [])) == 1 and \
            len(by_role.get("secondary_master", [])) == cluster.masters - 1, health
        assert set(by_role["primary_master"] + by_role.get("secondary_master", [])) <= cluster.master_hosts
        assert len(by_role["coreapp"]) == cluster.coreapps and set(by_role["coreapp"]) <= cluster.coreapp_hosts
        assert all(n["gateway_status"] in {"connected", "connecting", "disconnected", "uninitialized",
                                           "unregistered"} for n in health.values())
    for p in cluster.projects:
        out = s.run("docker", "compose", "-p", p.name, "-f", p.compose_file, "ps", "--format",
                    "{{.Service}} {{.Image}}", env=p.env, cwd=p.workdir).stdout
        images = dict(line.split() for line in out.splitlines() if line.strip())
        assert all(img == f"docker.whatsapp.biz/web:v{s.VERSION}" for svc, img in images.items() if svc == "waweb")
        assert all(img == f"docker.whatsapp.biz/coreapp:v{s.VERSION}" for svc, img in images.items()
                   if svc not in ("waweb", "db"))


def test_send_a_message(cluster) -> None:
    for port in cluster.webapp_ports:
        status, body = cluster.call("POST", "/v1/messages", {"to": "16505550100", "recipient_type": "individual",
                                                             "type": "text", "text": {"body": "conformance"}},
                                    port=port)
        assert status == 201 and body["messages"][0]["id"], body
    status, body = cluster.call("POST", "/v1/messages", {"type": "text", "text": {"body": "no recipient"}})
    assert (status, s.error_code(body)) == (400, 1008), body


def test_shards_need_cc_phone_number_and_shards_then_two_coreapps_connect(cluster) -> None:
    status, body = cluster.call("POST", "/v1/account/shards", {"shards": 2})
    assert (status, s.error_code(body)) == (400, 1008), body
    status, body = cluster.call("POST", "/v1/account/shards", {"cc": "1", "phone_number": "6505550100", "shards": 2})
    assert status == 201, body
    status, body = cluster.call("GET", "/v1/account/shards", port=cluster.webapp_ports[-1])
    assert status == 200 and body["account"]["shards"] == 2, body

    def two_connected(h: dict) -> bool:
        connected = [v for v in h.values() if v.get("gateway_status") == "connected"]
        return (sum(v.get("role") == "coreapp" for v in connected) == 2
                and sum(v.get("role") == "primary_master" for v in connected) == 1)

    # Multiconnect with 2 shards: 2 coreapps and the primary master are connected.
    cluster.wait_health(two_connected, "2 connected coreapps and a connected primary master", timeout=60)


def test_settings_get_and_patch(cluster) -> None:
    status, body = cluster.call("GET", "/v1/settings/application")
    assert status == 200, body
    app = body["settings"]["application"]
    assert (app["heartbeat_interval"], app["unhealthy_interval"]) == (5, 30), app
    status, body = cluster.call("PATCH", "/v1/settings/application", {"unhealthy_interval": 45})
    assert status == 200, body
    status, body = cluster.call("GET", "/v1/settings/application", port=cluster.webapp_ports[-1])
    assert status == 200 and body["settings"]["application"]["unhealthy_interval"] == 45, body
    status, body = cluster.call("PATCH", "/v1/settings/application", {"no_such_setting": 1})
    assert status == 400, body


def test_message_gc_put_starts_processing_on_the_coreapps(cluster) -> None:
    status, body = cluster.call("PUT", "/v1/services/message/gc")
    assert 200 <= status < 300, body
    gc = body["services"]["message"]["gc"]
    assert gc and all(re.fullmatch(r"[^:]+:[0-9a-f]{12}", k) for k in gc), body
    assert {v["status"] for v in gc.values()} == {"processing"}, body
