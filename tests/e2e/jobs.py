"""Jobs the e2e tests enqueue by dotted path (``tests.e2e.jobs.…``): worker processes import them from the
repository root, their working directory."""

from __future__ import annotations

import redis


def block_until_released(redis_url: str, key: str, timeout_s: float) -> str:
    """Block until the test pushes to the Redis list `key` (see `release`); fail after `timeout_s`."""
    connection = redis.Redis.from_url(redis_url)
    try:
        popped = connection.blpop([key], timeout=timeout_s)
    finally:
        connection.close()
    if popped is None:
        raise TimeoutError(f"nobody released {key!r} within {timeout_s} s")
    return "released"


def release(connection: redis.Redis, key: str) -> None:
    """Let the job blocked on `key` return."""
    connection.rpush(key, "go")
