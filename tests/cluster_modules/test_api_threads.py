"""The API client under parallel calls, as failover_check makes them: HTTPS calls verified with
a CA file mixed with plain-HTTP probes, from 32 threads, against real local servers.

ansible's Request.open installs its opener process-wide, so before every call of a run shared
one TLS context, about 1 % of such HTTPS calls failed certificate verification (went out through
a probe's opener).
"""

from __future__ import annotations

import http.server
import json
import ssl
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.cluster_modules.conftest import ROOT, make_cert

sys.path.insert(0, str(ROOT / ".build" / "link"))
from ansible_collections.wabiz.cluster.plugins.module_utils import _api


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"ok": True}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def _serve(tls: ssl.SSLContext | None) -> tuple[http.server.ThreadingHTTPServer, int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    if tls:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


@pytest.fixture
def servers(tmp_path: Path):
    crt = make_cert(tmp_path)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(str(crt), str(tmp_path / "webapp.key"))
    https, https_port = _serve(tls)
    plain, plain_port = _serve(None)
    yield crt, https_port, plain_port
    https.shutdown()
    plain.shutdown()


def test_parallel_https_calls_with_a_ca_file_never_fail_verification(servers):
    crt, https_port, plain_port = servers
    api = _api.WabizApi({"api_url": f"https://127.0.0.1:{https_port}", "ca_path": str(crt), "validate_certs": True,
                         "api_retries": 0, "api_timeout": 10})

    def https_call(_: int) -> str:
        try:
            status, body = api.raw("GET", "/v1/health")
            return "ok" if status == 200 and body == {"ok": True} else f"answer {status} {body}"
        except _api.ApiError as exc:
            return f"{exc.kind}: {exc.msg}"

    def probe(_: int) -> str:
        status, _body, err, _took = _api.http_json(f"http://127.0.0.1:{plain_port}/health", 10)
        return "ok" if status == 200 else f"probe {status} {err}"

    calls = [https_call if i % 2 else probe for i in range(1200)]
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(lambda ic: ic[1](ic[0]), enumerate(calls)))
    failures = [r for r in results if r != "ok"]
    assert failures == [], f"{len(failures)} of {len(results)} calls failed, e.g. {failures[:3]}"
