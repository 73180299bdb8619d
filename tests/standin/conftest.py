"""Fixtures of the stand-in tests: a loopback cluster factory on each database engine."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.standin.harness import Cluster


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


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)
