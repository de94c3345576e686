"""Shared fixtures: real PostGIS and mosquitto services, and the store backends to parametrize over."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.services import MosquittoBroker, PostgisCluster

DATA = Path(__file__).parent / "data"
_schema_ids = itertools.count()


@pytest.fixture(scope="session")
def postgis_cluster():
    """A throwaway PostGIS cluster for the whole session. It must start: a failure fails the suite, never skips."""
    cluster = PostgisCluster().start()
    yield cluster
    cluster.stop()


@pytest.fixture
def postgis_url(postgis_cluster) -> str:
    """URL of a fresh, empty database schema in the throwaway cluster (one per test)."""
    return postgis_cluster.url(schema=f"t{next(_schema_ids)}")


@pytest.fixture(params=["embedded", pytest.param("postgis", marks=pytest.mark.postgis)])
def store_url(request, tmp_path) -> str:
    """Parametrize a test over both store backends: an embedded path and a PostGIS URL."""
    if request.param == "embedded":
        return str(tmp_path / "scene.cim")
    return request.getfixturevalue("postgis_url")


@pytest.fixture(scope="session")
def mqtt_broker():
    """A mosquitto broker on a free loopback port for the session (tests may restart it)."""
    broker = MosquittoBroker().start()
    yield broker
    broker.cleanup()


def pytest_collection_modifyitems(config, items):
    """Mark tests by the real services they use, so the summary can count them."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & {"postgis_cluster", "postgis_url"}:
            item.add_marker(pytest.mark.postgis)
        if "mqtt_broker" in names:
            item.add_marker(pytest.mark.mqtt)


_service_outcomes: dict[str, dict[str, int]] = {}


def pytest_runtest_logreport(report):
    if report.when != "call" and not (report.when == "setup" and report.outcome != "passed"):
        return
    for service in ("postgis", "mqtt", "browser"):
        if service in report.keywords:
            counts = _service_outcomes.setdefault(service, {})
            counts[report.outcome] = counts.get(report.outcome, 0) + 1


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Say how many tests ran against each real service; on CI a skipped service test fails the run."""
    import os

    for service, counts in sorted(_service_outcomes.items()):
        text = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
        terminalreporter.write_line(f"{service}-backed tests: {text}")
        if os.environ.get("CI") and counts.get("skipped"):
            terminalreporter.write_line(f"ERROR: {service} tests were skipped on CI; the service must start")
            terminalreporter._session.exitstatus = 1
