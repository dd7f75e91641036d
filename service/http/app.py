"""Builds the NeuronLens API: ``create_app(settings)``; ``uvicorn --factory
service.http.app:app_from_env``."""

from __future__ import annotations

import os
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import redis
import redis.asyncio
import redis.asyncio.retry
import redis.retry
from litestar import Litestar, Request
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi.spec import Link, OpenAPIResponse
from litestar.plugins.pydantic import PydanticPlugin
from redis.backoff import ExponentialBackoff

from service.access.auth import SECURITY_COMPONENTS, api_router, key_store
from service.access.ratelimit import RateLimits
from service.contract import Registry, load_registry
from service.contract.objects import ObjectStore
from service.http.api_docs import docs_assets_router, openapi_config
from service.http.body_timeout import BodyTimeoutMiddleware
from service.http.conventions import COMPRESSION, HeadMiddleware, check_accept, cors_config
from service.http.error_responses import EXCEPTION_HANDLERS
from service.http.guards import MAX_BODY_BYTES, check_request
from service.http.logs import configure_logging
from service.http.prometheus import ApiMetrics, RequestMetricsMiddleware
from service.http.request_id import RequestIdMiddleware
from service.http.routes import API_ROUTE_HANDLERS, OPEN_ROUTE_HANDLERS
from service.jobs.queues import JobQueues
from service.reports.reading import ReportReader
from service.settings import Settings, load_settings

REDIS_CONNECT_TIMEOUT_S = 5
"""Seconds to wait for a TCP connection to Redis before answering 503."""
REDIS_SOCKET_TIMEOUT_S = 30
"""Seconds to wait for one Redis reply (the API issues no blocking commands)."""
REDIS_RETRIES = 2
"""Times a Redis command is retried on a new connection after a connection error (Redis restarted)."""

API_DESCRIPTION = (
    "Neuron explanation as a service: name a model, a layer and neurons; NeuronLens records what each "
    "neuron responds to, explains it in words, scores the explanation by simulation and returns typed "
    "reports. Errors are RFC 9457 problem details."
)


def package_version() -> str:
    """The version in the source tree's pyproject.toml, else the installed package's."""
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    if pyproject.is_file():
        return str(tomllib.loads(pyproject.read_text())["project"]["version"])
    return metadata.version("neuronlens")


# --------------------------------------------------------------------------- lifespan and dependencies


@asynccontextmanager
async def redis_lifespan(app: Litestar) -> AsyncIterator[None]:
    """Open the Redis clients and read the registry at startup; close the clients at shutdown."""
    settings: Settings = app.state.settings
    if not settings.redis_url:
        raise RuntimeError(
            "no Redis configured: set NEURONLENS_REDIS_URL (or REDIS_URL) to redis://host:port/db, "
            "or run `neuronlens up`, which starts Redis, the API and workers together"
        )
    registry = load_registry(settings.registry_path)
    # A pooled connection to a Redis that restarted fails once: each command is retried on a fresh one.
    retry_on = [redis.ConnectionError, redis.TimeoutError]
    client = redis.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        retry=redis.retry.Retry(ExponentialBackoff(cap=1.0, base=0.05), REDIS_RETRIES),
        retry_on_error=retry_on,
    )
    async_client = redis.asyncio.Redis.from_url(
        settings.redis_url,
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        socket_timeout=REDIS_SOCKET_TIMEOUT_S,
        retry=redis.asyncio.retry.Retry(ExponentialBackoff(cap=1.0, base=0.05), REDIS_RETRIES),
        retry_on_error=retry_on,
    )
    app.state.registry = registry
    app.state.redis = client
    app.state.redis_async = async_client
    app.state.queues = JobQueues.connect(client, settings)
    app.state.reports = ReportReader(registry, async_client, ObjectStore(settings.artifact_url), settings)
    app.state.key_store = key_store(settings)
    app.state.rate_limits = RateLimits(settings)
    try:
        yield
    finally:
        client.close()
        await async_client.aclose()


def provide_redis(state: State) -> redis.Redis:
    return state.redis  # type: ignore[no-any-return]


def provide_redis_async(state: State) -> redis.asyncio.Redis:
    return state.redis_async  # type: ignore[no-any-return]


def provide_queues(state: State) -> JobQueues:
    return state.queues  # type: ignore[no-any-return]


def provide_registry(state: State) -> Registry:
    return state.registry  # type: ignore[no-any-return]


def provide_settings(state: State) -> Settings:
    return state.settings  # type: ignore[no-any-return]


def provide_reports(state: State) -> ReportReader:
    return state.reports  # type: ignore[no-any-return]


def provide_metrics(state: State) -> ApiMetrics:
    return state.api_metrics  # type: ignore[no-any-return]


def _metrics_source(state: State) -> tuple[redis.Redis, JobQueues] | None:
    if "redis" not in state or "queues" not in state:
        return None
    return state.redis, state.queues


# --------------------------------------------------------------------------- app


async def check_api_request(request: Request[Any, Any, Any]) -> None:
    """`before_request` of the /v1 router, which replaces the app's: the input checks every route gets
    (service/http/guards.py), then content negotiation (`Accept`)."""
    await check_request(request)
    check_accept(request)


def create_app(settings: Settings | None = None) -> Litestar:
    """The API for ``settings`` (read from the environment when None). Nothing connects until startup."""
    settings = settings or load_settings()
    state = State({"settings": settings})
    api_metrics = ApiMetrics(lambda: _metrics_source(state), settings.redis_keys, version=package_version())
    state.api_metrics = api_metrics
    app = Litestar(
        route_handlers=[
            api_router(API_ROUTE_HANDLERS, settings, check_api_request),
            *OPEN_ROUTE_HANDLERS,
            docs_assets_router(),
        ],
        lifespan=[redis_lifespan],
        dependencies={
            "redis_client": Provide(provide_redis, sync_to_thread=False),
            "redis_async": Provide(provide_redis_async, sync_to_thread=False),
            "queues": Provide(provide_queues, sync_to_thread=False),
            "registry": Provide(provide_registry, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "api_metrics": Provide(provide_metrics, sync_to_thread=False),
            "reports": Provide(provide_reports, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        before_request=check_request,
        # Strict: a JSON `true` or `"3"` is not an integer (Litestar validates in lax mode otherwise).
        plugins=[PydanticPlugin(validate_strict=True)],
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=openapi_config("NeuronLens", package_version(), API_DESCRIPTION, SECURITY_COMPONENTS),
        compression_config=COMPRESSION,
        cors_config=cors_config(settings),
        state=state,
    )
    _link_job_status(app)
    # Around the whole handler rather than as route middleware, so unmatched routes are measured too;
    # the request id outermost, so every log line and answer of the request carries it.
    app.asgi_handler = RequestIdMiddleware(
        RequestMetricsMiddleware(
            BodyTimeoutMiddleware(HeadMiddleware(app.asgi_handler), settings.request_body_timeout_s),
            api_metrics,
        )
    )
    return app


def _link_job_status(app: Litestar) -> None:
    """OpenAPI link from a 202 answer to `GET /v1/jobs/{job_id}` (clients and schemathesis follow it)."""
    explanations = (app.openapi_schema.paths or {}).get("/v1/explanations")
    accepted = (explanations.post.responses or {}).get("202") if explanations and explanations.post else None
    if isinstance(accepted, OpenAPIResponse):
        accepted.links = {
            "GetJob": Link(
                operation_id="getJob",
                parameters={"job_id": "$response.body#/job_id"},
                description="The job's status and, once finished, its reports.",
            )
        }


def app_from_env() -> Litestar:
    """Factory for ``uvicorn --factory service.http.app:app_from_env``: settings from ``NEURONLENS_*``,
    with plain ``REDIS_URL`` accepted when ``NEURONLENS_REDIS_URL`` is unset."""
    settings = load_settings()
    if not settings.redis_url and os.environ.get("REDIS_URL"):
        settings = load_settings(redis_url=os.environ["REDIS_URL"])
    configure_logging(settings.log_format)
    return create_app(settings)
