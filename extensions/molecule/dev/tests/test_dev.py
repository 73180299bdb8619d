"""The single-server layout: database, 2 masters, 2 coreapps and 1 webapp on one machine."""

from __future__ import annotations

import json
from pathlib import Path

import testinfra

HERE = Path(__file__).resolve().parent.parent
HOST = testinfra.get_host("docker://wabiz-tb-dev-dev")


def test_six_containers_of_one_project_run():
    out = HOST.check_output("docker ps --filter label=com.docker.compose.project=wabiz-dev "
                            "--format '{{.Label \"com.docker.compose.service\"}}'")
    assert sorted(out.split()) == ["db", "wacore1", "wacore2", "wamaster1", "wamaster2", "waweb"]


def test_only_the_webapp_port_is_published_and_the_database_on_loopback():
    out = HOST.check_output("docker ps --filter label=com.docker.compose.project=wabiz-dev --format '{{.Ports}}'")
    published = sorted(p for p in out.replace(",", " ").split() if "->" in p)
    assert published == ["0.0.0.0:9090->443/tcp", "127.0.0.1:13306->3306/tcp"]


def test_secret_files_are_private():
    for name in ("db.env", "db-container.env", "waweb.env"):
        f = HOST.file(f"/opt/whatsapp-dev/{name}")
        assert f.exists and f.mode == 0o600, name


def test_health_one_primary_master_and_one_connected_coreapp():
    key = (HERE / "inventory" / ".secrets" / "api_key").read_text().split()[0]
    out = HOST.check_output(f"curl -sk -H 'Authorization: Apikey {key}' https://127.0.0.1:9090/v1/health")
    health = json.loads(out)["health"]
    roles = sorted(n["role"] for n in health.values())
    assert roles.count("primary_master") == 1 and roles.count("secondary_master") == 1
    assert [n for n in health.values() if n["role"] == "coreapp" and n.get("gateway_status") == "connected"]
