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
