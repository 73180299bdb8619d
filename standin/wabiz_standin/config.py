"""The environment contract of a stand-in node, validated once at start-up.

A bad environment ends the process with exit code 2 and one line on stderr that starts with
``wabiz-standin: invalid environment:``.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from dataclasses import dataclass, field

from .schema import S

MASTER = "master"
COREAPP = "coreapp"
WEBAPP = "webapp"

DEFAULT_COREAPP_PORTS = (6250, 6251, 6252, 6253)  # messaging, contacts, control, healthcheck
DEFAULT_WEBAPP_PORT = 443
SINGLE_MASTER_PORT_OFFSET = 10  # 6260-6263 beside the coreapp's 6250-6253


class ConfigError(Exception):
    """One clear sentence about what is wrong with the environment."""


def _port(name: str, value: str) -> int:
    try:
        p = int(value.strip())
    except ValueError:
        raise ConfigError(f"{name}: {value!r} is not a port number") from None
    if not 1 <= p <= 65535:
        raise ConfigError(f"{name}: {p} is not a port number (1-65535)")
    return p


def _ports(name: str, value: str, count: int) -> tuple[int, ...]:
    parts = [p for p in value.replace(" ", "").split(",") if p]
    if len(parts) != count:
        raise ConfigError(f"{name}: expected {count} comma-separated ports, got {value!r}")
    return tuple(_port(name, p) for p in parts)


def _num(env: dict[str, str], name: str, default: float, minimum: float = 0.001) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        v = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: {raw!r} is not a number") from None
    if v < minimum:
        raise ConfigError(f"{name}: {v} is below the minimum {minimum}")
    return v


API_KEY_LENGTH = (12, 128)
HEALTH_RATE_LIMIT = 10  # calls to /v1/health per 60 s per webapp, as the real webapp


def _api_key(env: dict[str, str], warnings: list[str]) -> str | None:
    """WA_API_KEY of 12 to 128 characters; any other length disables API-key authentication."""
    key = env.get("WA_API_KEY") or None
    if key is not None and not API_KEY_LENGTH[0] <= len(key) <= API_KEY_LENGTH[1]:
        warnings.append(f"WA_API_KEY must be {API_KEY_LENGTH[0]} to {API_KEY_LENGTH[1]} characters "
                        f"(got {len(key)}): API-key authentication is disabled")
        return None
    return key


def _health_rate_limit(env: dict[str, str]) -> int:
    """WA_STANDIN_HEALTH_RATE_LIMIT (stand-in only): calls per 60 s, 0 = off; unset = 10."""
    raw = env.get("WA_STANDIN_HEALTH_RATE_LIMIT", "").strip()
    if not raw:
        return HEALTH_RATE_LIMIT
    if not raw.isdigit():
        raise ConfigError(f"WA_STANDIN_HEALTH_RATE_LIMIT: {raw!r} is not a whole number of calls (0 = off)")
    return int(raw)


def _required(env: dict[str, str], name: str) -> str:
    v = env.get(name)
    if v is None or v.strip() == "":
        raise ConfigError(f"{name} is not set")
    return v.strip()


def _node_kind(env: dict[str, str]) -> str:
    """The node kind, from the image as the real client: the web image (``WA_IMAGE_KIND=web``)
    runs a webapp, the coreapp image (``WA_IMAGE_KIND=coreapp``) a coreapp, or a master with
    ``WA_MASTER_NODE=1``. A process started without an image (the loopback test harness) may
    set WA_IMAGE_KIND itself, or is told apart as before: WA_MASTER_NODE=1 -> master,
    WEBAPP_HOSTNAME -> webapp, COREAPP_HOSTNAME -> coreapp."""
    master = env.get("WA_MASTER_NODE", "").strip() == "1"
    image = env.get("WA_IMAGE_KIND", "").strip().lower()
    if image == "web":
        return WEBAPP  # WA_MASTER_NODE means nothing to the web image (load() warns)
    if image == "coreapp":
        return MASTER if master else COREAPP
    if image:
        raise ConfigError(f"WA_IMAGE_KIND: unknown image kind {image!r} (expected web or coreapp)")
    if master:
        return MASTER
    if env.get("WEBAPP_HOSTNAME", "").strip():
        return WEBAPP
    if env.get("COREAPP_HOSTNAME", "").strip():
        return COREAPP
    raise ConfigError("cannot tell the node kind: run the web or the coreapp image (WA_IMAGE_KIND=web|coreapp), "
                      "or set WA_MASTER_NODE=1 (master), WEBAPP_HOSTNAME (webapp) or COREAPP_HOSTNAME (coreapp)")


@dataclass
class Config:
    kind: str
    node_id: str
    version: str
    engine: str
    db_host: str
    db_port: int
    db_user: str
    db_password: str
    db_prefix: str
    db_idle_timeout_ms: int | None
    external_host: str
    external_ports: tuple[int, ...]
    listen_address: str
    listen_ports: tuple[int, ...]
    api_key: str | None
    log_dir: str
    media_dir: str
    data_dir: str
    db_heartbeat: float
    db_dead_after: float
    lease_ttl: float
    renew_deadline: float
    fence_seconds: float
    db_timeout: float
    route_refresh: float
    token_ttl: float
    delivery_delay: float
    log_rotate_bytes: int
    health_rate_limit: int = HEALTH_RATE_LIMIT
    default_settings: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    multiconnect: bool = True
    wacore_host: str = ""  # a single-connect webapp's coreapp (WACORE_HOSTNAME)
    single_master_ports: tuple[int, ...] = ()  # a single-connect coreapp's embedded master

    def single_connect_master(self) -> Config:
        """A single-connect coreapp's shard keeper: a master in the same process, on its own
        ports, so that the one coreapp gets the one shard by the same election, lease and fencing
        as in a cluster."""
        ports = self.single_master_ports
        return dataclasses.replace(self, kind=MASTER, node_id=f"{self.node_id}/master", listen_ports=ports,
                                   external_ports=ports, warnings=[])

    @property
    def db_name(self) -> str:
        return S.database_name(self.db_prefix)

    @property
    def schema_version(self) -> int:
        return S.schema_version_for(self.version)


def load(env: dict[str, str] | None = None) -> Config:
    """Read and check the environment; raise ConfigError with one clear sentence."""
    env = dict(os.environ if env is None else env)
    warnings: list[str] = []
    try:
        engine = S.normalize_engine(_required(env, "WA_DB_ENGINE"))
    except ValueError:
        raise ConfigError(f"WA_DB_ENGINE: unknown engine {env.get('WA_DB_ENGINE')!r} (expected MYSQL or PGSQL)") \
            from None
    db_host = _required(env, "WA_DB_HOSTNAME")
    db_port = _port("WA_DB_PORT", _required(env, "WA_DB_PORT"))
    db_user = _required(env, "WA_DB_USERNAME")
    if "WA_DB_PASSWORD" not in env:
        raise ConfigError("WA_DB_PASSWORD is not set")
    db_password = env["WA_DB_PASSWORD"]
    db_prefix = env.get("WA_DB_NAME_PREFIX", "")
    if db_prefix and not all(c.isalnum() or c == "_" for c in db_prefix):
        raise ConfigError(f"WA_DB_NAME_PREFIX: {db_prefix!r} may hold only letters, digits and _")
    idle_ms: int | None = None
    raw_idle = env.get("WA_DB_CONNECTION_IDLE_TIMEOUT", "").strip()
    if raw_idle:
        if engine == S.PGSQL:
            # Documented choice: PostgreSQL has no such setting; warn and ignore.
            warnings.append("WA_DB_CONNECTION_IDLE_TIMEOUT is MySQL-only and is ignored with WA_DB_ENGINE=PGSQL")
        else:
            try:
                idle_ms = int(raw_idle)
            except ValueError:
                raise ConfigError(f"WA_DB_CONNECTION_IDLE_TIMEOUT: {raw_idle!r} is not milliseconds") from None
            if idle_ms < 1000:
                raise ConfigError(f"WA_DB_CONNECTION_IDLE_TIMEOUT: {idle_ms} ms is below 1000 ms")
    # Without WA_APP_MULTICONNECT=1 the images run a single-connect client (Meta's
    # docker-compose.yml): one coreapp holds the account's one connection, with no masters.
    multiconnect = env.get("WA_APP_MULTICONNECT", "").strip() == "1"
    kind = _node_kind(env)
    if not multiconnect and kind == MASTER:
        raise ConfigError("WA_MASTER_NODE=1 needs WA_APP_MULTICONNECT=1: a single-connect client has no masters")
    wacore_host = env.get("WACORE_HOSTNAME", "").strip()
    if not multiconnect and kind == WEBAPP and not wacore_host:
        raise ConfigError("WACORE_HOSTNAME is not set: a single-connect webapp reaches its coreapp there "
                          "(or set WA_APP_MULTICONNECT=1 for the HA/multiconnect layouts)")
    if kind == WEBAPP and env.get("WA_MASTER_NODE", "").strip() == "1":
        warnings.append("WA_MASTER_NODE=1 is ignored by the web image (masters run the coreapp image)")
    if kind == WEBAPP:
        # The real client falls back to the container's host name (Meta's AWS tasks set none).
        external_host = env.get("WEBAPP_HOSTNAME", "").strip() or socket.gethostname()
        external_ports = _ports("WEBAPP_EXTERNAL_PORTS", env.get("WEBAPP_EXTERNAL_PORTS", "9090"), 1)
        listen_ports = _ports("WA_LISTEN_PORTS", env.get("WA_LISTEN_PORTS", str(DEFAULT_WEBAPP_PORT)), 1)
    else:
        external_host = env.get("COREAPP_HOSTNAME", "").strip() or socket.gethostname()
        listen_ports = _ports("WA_LISTEN_PORTS", env.get("WA_LISTEN_PORTS", ",".join(map(str, DEFAULT_COREAPP_PORTS))),
                              4)
        # Unset: the ports the node listens on (6250-6253 in the image), as the real client.
        raw_ports = env.get("COREAPP_EXTERNAL_PORTS", "").strip()
        external_ports = _ports("COREAPP_EXTERNAL_PORTS", raw_ports, 4) if raw_ports else listen_ports
    single_master_ports: tuple[int, ...] = ()
    if not multiconnect and kind == COREAPP:
        # Stand-in extension: the single-connect coreapp's own shard keeper listens here.
        raw = env.get("WA_STANDIN_SINGLE_MASTER_PORTS", "").strip()
        single_master_ports = _ports("WA_STANDIN_SINGLE_MASTER_PORTS", raw, 4) if raw else \
            tuple(p + SINGLE_MASTER_PORT_OFFSET for p in listen_ports)
    node_id = env.get("WA_NODE_ID", "").strip() or f"{external_host}:{socket.gethostname()[:12]}"

    db_heartbeat = _num(env, "WA_DB_HEARTBEAT_SECONDS", 60.0)
    db_dead_after = _num(env, "WA_DB_DEAD_AFTER_SECONDS", 120.0)
    if db_dead_after <= db_heartbeat:
        raise ConfigError("WA_DB_DEAD_AFTER_SECONDS must be longer than WA_DB_HEARTBEAT_SECONDS")
    lease_ttl = _num(env, "WA_LEASE_TTL_SECONDS", 30.0)
    renew_deadline = _num(env, "WA_LEASE_RENEW_DEADLINE_SECONDS", round(lease_ttl * 2 / 3, 3))
    if renew_deadline >= lease_ttl:
        raise ConfigError("WA_LEASE_RENEW_DEADLINE_SECONDS must be shorter than WA_LEASE_TTL_SECONDS")
    defaults = {
        "heartbeat_interval": int(_num(env, "WA_DEFAULT_HEARTBEAT_INTERVAL", 5, 1)),
        "unhealthy_interval": int(_num(env, "WA_DEFAULT_UNHEALTHY_INTERVAL", 30, 2)),
    }
    if defaults["unhealthy_interval"] <= defaults["heartbeat_interval"]:
        raise ConfigError("WA_DEFAULT_UNHEALTHY_INTERVAL must be longer than WA_DEFAULT_HEARTBEAT_INTERVAL")
    return Config(
        kind=kind, node_id=node_id,
        version=env.get("WA_VERSION", "").strip() or "2.53.2",
        engine=engine, db_host=db_host, db_port=db_port, db_user=db_user, db_password=db_password,
        db_prefix=db_prefix, db_idle_timeout_ms=idle_ms,
        external_host=external_host, external_ports=external_ports,
        listen_address=env.get("WA_LISTEN_ADDRESS", "").strip() or "0.0.0.0",
        listen_ports=listen_ports,
        api_key=_api_key(env, warnings),
        health_rate_limit=_health_rate_limit(env),
        log_dir=env.get("WA_LOG_DIR", "/var/log/whatsapp"),
        media_dir=env.get("WA_MEDIA_DIR", "/usr/local/wamedia"),
        data_dir=env.get("WA_DATA_DIR", "/usr/local/waent/data"),
        db_heartbeat=db_heartbeat, db_dead_after=db_dead_after,
        lease_ttl=lease_ttl, renew_deadline=renew_deadline,
        fence_seconds=_num(env, "WA_COREAPP_FENCE_SECONDS", 5.0),
        db_timeout=_num(env, "WA_DB_TIMEOUT_SECONDS", 5.0),
        route_refresh=min(1.0, _num(env, "WA_ROUTE_REFRESH_SECONDS", 1.0)),
        token_ttl=_num(env, "WA_TOKEN_TTL_SECONDS", 7 * 86400.0),
        delivery_delay=_num(env, "WA_DELIVERY_DELAY_SECONDS", 1.0, 0.0),
        log_rotate_bytes=int(_num(env, "WA_LOG_ROTATE_BYTES", 15 * 1024 * 1024 if kind != WEBAPP else 0, 0)),
        default_settings=defaults,
        warnings=warnings,
        multiconnect=multiconnect, wacore_host=wacore_host, single_master_ports=single_master_ports,
    )
