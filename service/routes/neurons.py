"""`GET /v1/neurons/{model}/{layer}/{neuron}`: the stored report of one neuron."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath

from service.contract import NeuronReport
from service.errors import problem_specs
from service.http_conventions import REPORT_CACHE_CONTROL, cache_control, conditional_response
from service.openapi_docs import DocumentedOperation
from service.reports import Query, ReportReader
from service.routes.query import REPORT_QUERY


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
