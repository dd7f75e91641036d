"""`GET /v1/neurons/{model}/{layer}/{neuron}`: the stored report of one neuron;
`GET /v1/neurons/{model}/{layer}`: a page of a layer's stored reports as summary rows."""

from __future__ import annotations

from typing import Any

import redis
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, Parameter

from service.contract import NeuronListing, NeuronReport
from service.errors import problem_specs
from service.http_conventions import REPORT_CACHE_CONTROL, cache_control, conditional_response
from service.listing import list_layer_reports, summarize
from service.openapi_docs import DocumentedOperation
from service.reports import Query, ReportReader
from service.routes.query import REPORT_QUERY

MAX_LISTING_PAGE = 1000
"""Most summary rows one listing page carries; page with `offset`."""


@get(
    "/v1/neurons/{model:str}/{layer:int}/{neuron:int}",
    operation_id="getNeuronReport",
    operation_class=DocumentedOperation,
    summary="Get a stored neuron report",
    tags=["neurons"],
    dependencies=REPORT_QUERY,
    media_type=MediaType.JSON,
    responses={
        200: ResponseSpec(
            data_container=NeuronReport, description="The stored report.", generate_examples=False
        ),
        **problem_specs(400, 404, 422, 503),
    },
)
async def get_neuron_report(
    request: Request[Any, Any, Any],
    model: FromPath[str],
    layer: FromPath[int],
    neuron: FromPath[int],
    reports: NamedDependency[ReportReader],
    report_query: NamedDependency[Query],
) -> Response[bytes]:
    """The stored NeuronReport of one neuron, for the report variant a request with default options
    produces (hook, dataset, explainer, simulator, endpoint and candidates can be chosen; the endpoint's
    model names as configured now are part of the variant). 404 when none is stored yet:
    `POST /v1/explanations` creates it."""
    # Workers write reports through the NeuronReport schema; the stored bytes are passed through.
    content = await reports.read(model, layer, neuron, report_query)
    cache = cache_control(reports.settings, REPORT_CACHE_CONTROL)
    return conditional_response(request, content, "application/json", cache)


@get(
    "/v1/neurons/{model:str}/{layer:int}",
    operation_id="listLayerNeurons",
    operation_class=DocumentedOperation,
    summary="List a layer's stored neuron reports",
    tags=["neurons"],
    dependencies=REPORT_QUERY,
    sync_to_thread=True,
    responses=problem_specs(400, 404, 422, 503),
)
def list_layer_neurons(
    model: FromPath[str],
    layer: FromPath[int],
    redis_client: NamedDependency[redis.Redis],
    reports: NamedDependency[ReportReader],
    report_query: NamedDependency[Query],
    offset: int = Parameter(default=0, ge=0, description="First row, in ascending neuron order."),
    limit: int = Parameter(
        default=100, ge=1, le=MAX_LISTING_PAGE, description=f"Rows per page, at most {MAX_LISTING_PAGE}."
    ),
) -> NeuronListing:
    """The neurons of one layer that have a stored report, by ascending index, as summary rows (type and
    its evidence, explanation, score and its interval), for the report variant that
    `GET /v1/neurons/{model}/{layer}/{neuron}` with the same query reads. `total` counts them all; page
    with `offset` and `limit`. An empty page when none is stored; 404 for an unknown model or layer."""
    variant, _ = reports.layer_variant(model, layer, report_query)
    found = list_layer_reports(redis_client, reports.store, model, layer, variant, offset=offset, limit=limit)
    return NeuronListing(
        model=model,
        layer=layer,
        variant=variant,
        total=len(found.neurons),
        offset=offset,
        neurons=[summarize(raw) for raw in found.reports],
    )
