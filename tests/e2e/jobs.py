"""Jobs the e2e tests enqueue by dotted path (``tests.e2e.jobs.…``): worker processes import them from the
repository root, their working directory."""

from __future__ import annotations

import time

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


class _SlowFinalizer:
    """An object whose finalizer takes ``seconds``: an exception raised while it runs (a job timeout's
    alarm, say) is printed and ignored by Python, never propagated."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __del__(self) -> None:
        busy_until(self.seconds)


def busy_until(seconds: float) -> None:
    """Compute (not sleep) for ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        sum(range(1000))


def timeout_inside_a_finalizer(finalizer_s: float, then_s: float) -> str:
    """Spend ``finalizer_s`` in a finalizer (where a timeout that lands is swallowed), then ``then_s`` in
    ordinary code; returns "finished" if no timeout stopped it."""
    _SlowFinalizer(finalizer_s)  # dropped at once: its finalizer runs here
    busy_until(then_s)
    return "finished"
