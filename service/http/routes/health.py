"""Operations: liveness, readiness (Redis reachable) and Prometheus metrics."""

from __future__ import annotations

import redis
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from redis.asyncio import Redis as AsyncRedis

from service.http.error_responses import problem_specs
from service.http.openapi_docs import DocumentedOperation
from service.http.prometheus import ApiMetrics
from service.problems import RedisUnavailable

PROMETHEUS_MEDIA_TYPE = "text/plain; version=0.0.4"
"""Prometheus text format 0.0.4; Litestar appends `; charset=utf-8` to text types itself."""


@get(
    "/healthz",
    operation_id="healthz",
    operation_class=DocumentedOperation,
    summary="Liveness",
    tags=["operations"],
    sync_to_thread=False,
)
def healthz() -> dict[str, str]:
    """Liveness: the process is up and serving HTTP (does not touch Redis)."""
    return {"status": "ok"}


@get(
    "/readyz",
    operation_id="readyz",
    operation_class=DocumentedOperation,
    summary="Readiness",
    tags=["operations"],
    responses=problem_specs(503),
)
async def readyz(redis_async: NamedDependency[AsyncRedis]) -> dict[str, str]:
    """Readiness: Redis answers a PING. 503 (problem details) when it does not."""
    try:
        await redis_async.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise RedisUnavailable(
            f"Redis is unreachable ({type(exc).__name__}): jobs cannot be queued"
        ) from None
    return {"status": "ready"}


@get(
    "/metrics",
    operation_id="metrics",
    operation_class=DocumentedOperation,
    summary="Prometheus metrics",
    tags=["operations"],
    sync_to_thread=True,
    media_type=MediaType.TEXT,
)
def metrics(api_metrics: NamedDependency[ApiMetrics]) -> Response[bytes]:
    """Prometheus metrics (text format): HTTP latency by route and status, jobs by queue and outcome,
    stage durations, neurons explained, queue depth per state, and LLM calls, tokens, parse failures
    and endpoint errors by endpoint."""
    return Response(content=api_metrics.render(), media_type=PROMETHEUS_MEDIA_TYPE)
