"""`GET /v1/models`: what this deployment serves."""

from __future__ import annotations

from litestar import get
from litestar.di import NamedDependency

from service.contract import ModelSpec, Registry
from service.http.error_responses import problem_specs
from service.http.openapi_docs import DocumentedOperation


@get(
    "/v1/models",
    operation_id="listModels",
    operation_class=DocumentedOperation,
    summary="List served models",
    tags=["models"],
    sync_to_thread=False,
    responses=problem_specs(503),
)
def list_models(registry: NamedDependency[Registry]) -> list[ModelSpec]:
    """List the served models: layers, neurons per layer, hook points (the first is the default), weights
    revision, and the probe sets each can be scanned on (the first is the default)."""
    return registry.models
