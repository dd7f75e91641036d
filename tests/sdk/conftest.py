"""Live stacks for the SDK and CLI tests: real API, worker and Redis processes on loopback."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from service.commands.embedded_redis import EmbeddedRedis, free_port
from tests.e2e.helpers import (
    Processes,
    process_env,
    processes_fixture,  # noqa: F401  (the `processes` fixture)
    running_up,
    wait_ready,
)


@pytest.fixture(scope="session")
def live_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`neuronlens up` (embedded Redis, one worker) for every SDK test, on an artifact store of its own: the
    SDK tests see exactly the reports they made (a 404 stays a 404 whatever other tests stored)."""
    processes = Processes(tmp_path_factory.mktemp("sdk-stack-logs"))
    env = process_env(NEURONLENS_ARTIFACT_URL=str(tmp_path_factory.mktemp("sdk-artifacts")))
    with running_up(processes, env, workers=1) as url:
        yield url


@dataclass
class IdleApi:
    """An API process without workers, on a Redis the test may stop and start again (append-only)."""

    url: str
    redis: EmbeddedRedis


@pytest.fixture()
def idle_api(tmp_path: Path, processes: Processes) -> Iterator[IdleApi]:
    """An API with no worker on an empty store of its own: every request stays queued."""
    server = EmbeddedRedis(data_dir=tmp_path / "redis", append_only=True).start()
    try:
        port = free_port()
        store = str(tmp_path / "artifacts")
        env = process_env(NEURONLENS_REDIS_URL=server.url, NEURONLENS_ARTIFACT_URL=store)
        api = processes.start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "service.http.app:app_from_env",
                "--port",
                str(port),
            ],
            env,
            "api",
        )
        url = f"http://127.0.0.1:{port}"
        wait_ready(processes, api, url, "the API without workers to answer /readyz")
        yield IdleApi(url, server)
    finally:
        processes.stop_all()
        server.stop()
