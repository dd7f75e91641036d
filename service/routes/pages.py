"""`GET /v1/neurons/{model}/{layer}/{neuron}/page`: a stored report as an HTML page for people."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath

from service.contract import NeuronReport
from service.errors import problem_specs
from service.openapi_docs import DocumentedOperation
from service.report_page import render_report_page
from service.reports import Query, ReportReader
from service.routes.query import REPORT_QUERY


@get(
    "/v1/neurons/{model:str}/{layer:int}/{neuron:int}/page",
    operation_id="getNeuronPage",
    operation_class=DocumentedOperation,
    summary="Get a stored neuron report as an HTML page",
    tags=["neurons"],
    dependencies=REPORT_QUERY,
    media_type=MediaType.HTML,
    responses=problem_specs(400, 404, 422, 503),
)
async def get_neuron_page(
    model: FromPath[str],
    layer: FromPath[int],
    neuron: FromPath[int],
    reports: NamedDependency[ReportReader],
    report_query: NamedDependency[Query],
) -> Response[str]:
    """The report `GET /v1/neurons/{model}/{layer}/{neuron}` returns (same query), as a page: type with
    its evidence, explanation, simulation score, per-domain shares, and the top exemplars with their
    tokens shaded by activation beside their shaded images. 404 (problem details) when none is stored."""
    report = NeuronReport.model_validate_json(await reports.read(model, layer, neuron, report_query))
    return Response(content=render_report_page(report), media_type=MediaType.HTML)
