"""Fixtures of the stand-in tests: a loopback cluster factory on each database engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.standin.harness import Cluster, wait_for


@pytest.fixture
def make_cluster(db_server, tmp_path: Path, request) -> Iterator[Callable[..., Cluster]]:
    """Build clusters of processes on loopback against ``db_server``; all are stopped and their
    databases dropped at the end. Node logs are printed when the test fails."""
    clusters: list[Cluster] = []

    def factory(**timers: str) -> Cluster:
        c = Cluster(db_server, tmp_path / f"c{len(clusters)}")
        c.workdir.mkdir(parents=True, exist_ok=True)
        c.timers.update({k: str(v) for k, v in timers.items()})
        clusters.append(c)
        return c

    yield factory
    failed = getattr(request.node, "rep_call", None) is not None and request.node.rep_call.failed
    for c in clusters:
        if failed:
            print(c.dump_logs())
        c.close()


@pytest.fixture(scope="module")
def api_cluster(db_server, tmp_path_factory, request) -> Iterator[Cluster]:
    """One logged-in cluster per engine (2 masters, 3 coreapps, webapp1) shared by a module's
    contract tests; each test leaves the settings and the shard count as it found them. Node
    logs are printed when any of the module's tests failed."""
    c = Cluster(db_server, tmp_path_factory.mktemp("api"))
    failed_before = request.session.testsfailed
    try:
        c.start(masters=2, coreapps=3, webapps=1)
        wait_for(c.primary_master, 20, what="a primary master")
        wait_for(c.connected_coreapps, 20, what="a connected coreapp")
        wait_for(c.webapp_up, 20, what="webapp1 up")
        c.login()
        yield c
    finally:
        if request.session.testsfailed > failed_before:
            print(c.dump_logs())
        c.close()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
