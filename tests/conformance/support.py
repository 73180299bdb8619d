"""Helpers of the conformance stage: where Meta's files are, Docker and compose calls, cleanup by
name, and the API over HTTPS (self-signed: no verification) with the standard library.

Everything this stage creates is named ``wabiz-conformance-*`` (compose projects, their containers,
volumes and networks, and the plain containers and networks of the TLS tests); cleanup only ever
touches those exact names."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "wabiz-conformance"
VERSION = "2.53.2"  # the stand-in's newest version: docker.whatsapp.biz/{web,coreapp}:v2.53.2
META_ENV = "WABIZ_META_SETUP_SCRIPTS"
HASHES = Path(__file__).with_name("meta-files.sha256")


class MetaFilesMissing(Exception):
    """Meta's setup scripts are not where this stage looks: one sentence saying where it looked."""


def meta_candidates() -> list[Path]:
    """Where Meta's files may be: $WABIZ_META_SETUP_SCRIPTS alone when set; else ../shared beside
    the repository (the shared reference folder of this workplace), else /work/shared, else the
    copy kept in this folder (MIT, with its licence) for machines without the shared folder. Each
    is checked against meta-files.sha256, so every one of them is Meta's files unchanged."""
    env = os.environ.get(META_ENV, "").strip()
    if env:
        return [Path(env)]
    return [ROOT.parent / "shared" / "reference" / "meta-setup-scripts",
            Path("/work/shared/reference/meta-setup-scripts"),
            Path(__file__).with_name("meta-setup-scripts")]


def locate_meta() -> Path:
    """The folder that holds Meta's ``installation/`` (never written to), or MetaFilesMissing."""
    tried = meta_candidates()
    for path in tried:
        if (path / "installation" / "multiconnect-compose.yml").is_file():
            return path.resolve()
    how = (f"{META_ENV}={tried[0]}" if os.environ.get(META_ENV, "").strip()
           else f"{META_ENV} is not set, and neither " + " nor ".join(str(p) for p in tried) + " holds them")
    raise MetaFilesMissing(
        "Meta's setup scripts (installation/multiconnect-compose.yml, postgres/, prod-multiconnect-compose.yml; "
        f"github.com/WhatsApp/WhatsApp-Business-API-Setup-Scripts) were not found: {how}. Point {META_ENV} at the "
        "folder that holds their installation/ directory.")


def recorded_hashes() -> dict[str, str]:
    out = {}
    for line in HASHES.read_text().splitlines():
        if line.strip():
            digest, name = line.split(None, 1)
            out[name.strip()] = digest
    return out


def tree_hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def run(*args: str, check: bool = True, timeout: float = 180, env: dict[str, str] | None = None,
        cwd: Path | None = None) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), capture_output=True, text=True, check=False, timeout=timeout,
                         env={**os.environ, **env} if env else None, cwd=cwd)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def remove_project(project: str) -> None:
    """Remove a compose project's containers, volumes and networks, by its exact label."""
    assert project.startswith(PREFIX + "-")
    label = f"label=com.docker.compose.project={project}"
    for kind, rm in (("ps", ["rm", "-f", "-v"]), ("volume", ["volume", "rm", "-f"]),
                     ("network", ["network", "rm"])):
        ls = ["ps", "-aq"] if kind == "ps" else [kind, "ls", "-q"]
        ids = run("docker", *ls, "--filter", label, check=False).stdout.split()
        if ids:
            run("docker", *rm, *ids, check=False)


def remove_named(*names: str) -> None:
    """Remove containers (and then networks) of these exact names, if they exist."""
    for name in names:
        assert name.startswith(PREFIX + "-")
        run("docker", "rm", "-f", "-v", name, check=False)
        run("docker", "network", "rm", name, check=False)


def docker_bridge_gateway() -> str:
    """The host's address on Docker's default bridge: every container reaches the host's published
    ports there, so it serves as the machines' EXTERNAL_HOSTNAME."""
    res = run("docker", "network", "inspect", "bridge", "--format", "{{(index .IPAM.Config 0).Gateway}}")
    return res.stdout.strip()


# -- the API ----------------------------------------------------------------------------------------
_CTX = ssl.create_default_context()
_CTX.check_hostname = False
_CTX.verify_mode = ssl.CERT_NONE


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def api(port: int, method: str, path: str, auth: str | None = None, body: Any = None,
        timeout: float = 10) -> tuple[int, dict]:
    """One HTTPS call to the webapp on 127.0.0.1:port: (status, JSON body or {})."""
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if auth:
        headers["Authorization"] = auth
    req = urllib.request.Request(f"https://127.0.0.1:{port}{path}", data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=_CTX) as r:
            raw = r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        raw, status = e.read(), e.code
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, {"raw": raw[:200].decode(errors="replace")}


def wait_api(port: int, timeout: float) -> None:
    """Until the webapp answers HTTPS at all (any status)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            api(port, "GET", "/", timeout=3)
            return
        except OSError as exc:  # refused, reset, TLS not up yet
            last = exc
            time.sleep(0.5)
    raise AssertionError(f"the webapp on port {port} did not answer HTTPS within {timeout:.0f}s: {last}")


def error_code(body: dict) -> int | None:
    errors = body.get("errors") or [{}]
    return errors[0].get("code")
