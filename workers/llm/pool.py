"""Run LLM calls of a batch concurrently, in order, and stop early when one fails for good."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextvars import copy_context
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")

THREADS_PER_SLOT = 2
"""Worker threads per concurrency slot: while one thread builds a prompt or parses a reply outside the
endpoint's semaphore, another waits at it, so the endpoint's bound stays saturated."""


def map_concurrently(fn: Callable[[Item], Result], items: Sequence[Item], concurrency: int) -> list[Result]:
    """[fn(item) for item in items] on up to THREADS_PER_SLOT × concurrency threads, results in order.

    Each call runs in a copy of the calling context (context variables, e.g. the LLM usage meter, carry
    over). When a call raises (an endpoint that keeps failing), the calls not yet started are cancelled
    and the error is raised at once, instead of every remaining call retrying against a dead endpoint.
    """
    if not items:
        return []
    workers = max(1, min(THREADS_PER_SLOT * concurrency, len(items)))
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm")
    try:
        # Each call runs in a copy of the caller's context: the LLM usage meter of the neuron goes along.
        futures = [pool.submit(copy_context().run, fn, item) for item in items]
        return [future.result() for future in futures]
    finally:
        # On success every future is done; on an error the queued calls are dropped, running ones finish.
        pool.shutdown(wait=True, cancel_futures=True)
