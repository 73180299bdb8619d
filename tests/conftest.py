"""Shared pytest fixtures: real database servers on loopback, and the Docker engine.

A fixture that starts a server stops it at the end of the session; a server that was already
running (for example started by ``make integration``) is reused and left running.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import dbservers


def _server(start, stop, endpoint: dbservers.Endpoint) -> Iterator[dbservers.Endpoint]:
    was_running = dbservers._answers(endpoint.port)
    ep = start()
    yield ep
    if not was_running:
        stop()


@pytest.fixture(scope="session")
def mysql_server() -> Iterator[dbservers.Endpoint]:
    """A real MariaDB server on 127.0.0.1 with an administrative account."""
    yield from _server(dbservers.start_mariadb, dbservers.stop_mariadb, dbservers.MARIADB)


@pytest.fixture(scope="session")
def pgsql_server() -> Iterator[dbservers.Endpoint]:
    """A real PostgreSQL server on 127.0.0.1 with an administrative account."""
    yield from _server(dbservers.start_postgres, dbservers.stop_postgres, dbservers.POSTGRES)


@pytest.fixture(scope="session", params=["mysql", "postgresql"])
def db_server(request) -> dbservers.Endpoint:
    """Each engine in turn: tests that must hold on both take this fixture."""
    name = "mysql_server" if request.param == "mysql" else "pgsql_server"
    return request.getfixturevalue(name)


@pytest.fixture(scope="session")
def docker_client():
    """The Docker SDK client of the local engine; the test fails plainly when none answers."""
    import docker

    client = docker.from_env()
    try:
        client.ping()
    except Exception as exc:  # any failure here means "no engine"
        pytest.fail(f"no Docker engine answers ({exc}); run 'make deps' to start one")
    return client
