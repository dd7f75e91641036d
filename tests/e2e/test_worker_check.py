"""`neuronlens-worker --check`, the workers' liveness probe in deploy/k8s, against real worker processes.

An idle worker keeps beating (so an idle pod is not restarted), a frozen one (SIGSTOP: a hung process)
goes stale and the check fails, and it passes again once the process runs.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import redis
from rq import SimpleWorker

from tests.e2e.helpers import Processes, process_env, wait_for

HEARTBEAT_S = 1


def _check(env: dict[str, str], *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "workers.process.worker", "--check", *extra],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _last_heartbeat(conn: redis.Redis, name: str) -> bytes | None:
    value = conn.hget(SimpleWorker.redis_worker_namespace_prefix + name, "last_heartbeat")
    return value if isinstance(value, bytes) else None


def test_check_follows_the_heartbeat_of_an_idle_then_frozen_worker(
    redis_conn: redis.Redis, redis_url: str, processes: Processes
) -> None:
    env = process_env(NEURONLENS_REDIS_URL=redis_url, NEURONLENS_WORKER_HEARTBEAT_S=str(HEARTBEAT_S))
    before = _check(env)
    assert before.returncode == 1 and "not registered" in before.stderr, before

    worker = processes.start_worker(env, "probed")
    wait_for(lambda: _last_heartbeat(redis_conn, "probed"), 30, "the worker to register")
    first = _last_heartbeat(redis_conn, "probed")
    # Idle, with no job to run: the beat thread alone moves last_heartbeat (RQ would wait minutes).
    wait_for(lambda: _last_heartbeat(redis_conn, "probed") != first, 30, "an idle heartbeat")
    passed = _check(env)
    assert passed.returncode == 0, passed
    assert "probed" in passed.stdout and "fresh" in passed.stdout
    assert _check(env, "--name", "probed").returncode == 0
    # Another deployment on the same host and Redis (its own prefix) has no worker of its own here.
    other = _check({**env, "NEURONLENS_REDIS_PREFIX": "other:"})
    assert other.returncode == 1 and "not registered" in other.stderr, other

    worker.send_signal(signal.SIGSTOP)
    try:
        stale = wait_for(
            lambda: (r := _check(env)).returncode == 1 and r, 60, "the frozen worker's check to fail"
        )
        assert isinstance(stale, subprocess.CompletedProcess) and "stale" in stale.stderr
    finally:
        worker.send_signal(signal.SIGCONT)
    wait_for(lambda: _check(env).returncode == 0, 60, "the resumed worker to beat again")
    assert worker.poll() is None, processes.log(worker)


def test_check_does_not_judge_a_worker_when_redis_is_unreachable() -> None:
    env = process_env(NEURONLENS_REDIS_URL="redis://127.0.0.1:1/0")
    result = _check(env)
    assert result.returncode == 0, result
    assert "cannot reach Redis" in result.stderr
