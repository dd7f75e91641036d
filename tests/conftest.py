"""Shared fixtures: a real Redis server (a private one unless REDIS_URL is set), settings, artifacts."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from service.commands.embedded_redis import EmbeddedRedis
from service.contract import JOB_RECORD_ROOT, REPORT_ROOT
from service.settings import Settings, load_settings


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """URL of a real Redis server for the whole session: REDIS_URL if given, else a private one."""
    given = os.environ.get("REDIS_URL")
    if given:
        yield given
        return
    with EmbeddedRedis() as server:
        yield server.url


@pytest.fixture()
def redis_url(redis_server_url: str, shared_artifact_dir: Path) -> Iterator[str]:
    """The session server, flushed before each test so tests never see each other's jobs; the stored
    reports and job records of the session artifact store go with it (they outlive Redis by design;
    scans are kept)."""
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    client.close()
    shutil.rmtree(shared_artifact_dir / REPORT_ROOT, ignore_errors=True)
    shutil.rmtree(shared_artifact_dir / JOB_RECORD_ROOT, ignore_errors=True)
    yield redis_server_url


@pytest.fixture()
def redis_conn(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def shared_artifact_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One artifact store per test session, so a model scanned by one test is reused by the next."""
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture()
def settings(redis_url: str, shared_artifact_dir: Path) -> Settings:
    return load_settings(redis_url=redis_url, artifact_url=str(shared_artifact_dir))
