"""Entry point: ``python -m wabiz_standin [run | check-env | wait-db]``.

``run`` (default) starts the node whose kind the environment names; ``check-env`` only
validates the environment; ``wait-db`` waits until the database server accepts the configured
login (used by wait_on_mysql.sh / wait_on_postgres.sh).
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from typing import Any

from . import config, logs


def _fail(msg: str) -> int:
    print(f"wabiz-standin: invalid environment: {msg}", file=sys.stderr, flush=True)
    return 2


def wait_db(cfg: config.Config, timeout: float) -> int:
    from .storage import StorageError, make_storage

    st = make_storage(cfg.engine, cfg.db_host, cfg.db_port, cfg.db_user, cfg.db_password, cfg.db_name, 3.0)
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            conn = st._connect(None)
            conn.close()
            print(f"wabiz-standin: {cfg.engine} at {cfg.db_host}:{cfg.db_port} is up", flush=True)
            return 0
        except StorageError as exc:
            if str(exc) != last:
                print(f"wabiz-standin: waiting for the database: {exc}", flush=True)
                last = str(exc)
            time.sleep(1)
    print(f"wabiz-standin: the database at {cfg.db_host}:{cfg.db_port} did not answer within {timeout:.0f}s",
          file=sys.stderr, flush=True)
    return 1


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "run"
    try:
        cfg = config.load()
    except config.ConfigError as exc:
        return _fail(str(exc))
    if cmd == "check-env":
        print(f"wabiz-standin: environment OK ({cfg.kind} {cfg.node_id}, {cfg.engine})")
        for w in cfg.warnings:
            print(f"wabiz-standin: warning: {w}")
        return 0
    if cmd == "wait-db":
        return wait_db(cfg, float(argv[1]) if len(argv) > 1 else 300.0)
    if cmd != "run":
        print("usage: python -m wabiz_standin [run|check-env|wait-db [SECONDS]]", file=sys.stderr)
        return 2
    log = logs.setup(cfg.kind, cfg.node_id, cfg.log_dir, cfg.log_rotate_bytes)
    log.info("starting %s %s version %s (schema %d) on %s %s:%d/%s", cfg.kind, cfg.node_id, cfg.version,
             cfg.schema_version, cfg.engine, cfg.db_host, cfg.db_port, cfg.db_name)
    if cfg.kind == config.COREAPP and not cfg.multiconnect:
        return asyncio.run(run_single_connect(cfg))
    if cfg.kind == config.MASTER:
        from .master import Master as cls
    elif cfg.kind == config.COREAPP:
        from .coreapp import Coreapp as cls  # type: ignore[assignment]
    else:
        from .webapp import Webapp as cls  # type: ignore[assignment]
    node = cls(cfg)
    return asyncio.run(node.run())


async def run_single_connect(cfg: config.Config) -> int:
    """A single-connect client's coreapp: the coreapp and, in the same process, the master that
    gives it the account's one shard. A signal stops both; when one ends, so does the other."""
    from .coreapp import Coreapp
    from .master import Master

    nodes = [Master(cfg.single_connect_master()), Coreapp(cfg)]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: [n.stopping.set() for n in nodes])

    async def one(node: Any) -> int:
        try:
            return await node.run(handle_signals=False)
        finally:
            for n in nodes:
                n.stopping.set()

    return max(await asyncio.gather(*(one(n) for n in nodes)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
