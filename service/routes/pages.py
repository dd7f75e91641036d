"""`GET /v1/neurons/{model}/{layer}/{neuron}/page`: a stored report as an HTML page for people."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath, Parameter

from service.errors import problem_specs
from service.report_page import render_report_page
from service.reports import Query, ReportReader
from service.schemas import NeuronReport


@get(
    "/v1/neurons/{model:str}/{layer:int}/{neuron:int}/page",
    operation_id="getNeuronPage",
    summary="Get a stored neuron report as an HTML page",
    tags=["neurons"],
    media_type=MediaType.HTML,
    responses=problem_specs(400, 404, 422, 503),
)
async def get_neuron_page(
    model: FromPath[str],
    layer: FromPath[int],
    neuron: FromPath[int],
    reports: NamedDependency[ReportReader],
    hook: str | None = Parameter(default=None, description="Hook point id; default: the model's first."),
    dataset: str | None = Parameter(default=None, description="Probe set id; default: the model's first."),
    explainer: str | None = Parameter(
        default=None, description="Explainer backend (default as in requests)."
    ),
    simulator: str | None = Parameter(
        default=None, description="Simulator backend (default as in requests)."
    ),
    endpoint: str | None = Parameter(default=None, description="LLM endpoint name for `openai` backends."),
    candidates: int | None = Parameter(default=None, description="Candidate explanations k (`openai`)."),
) -> Response[str]:
    """The report `GET /v1/neurons/{model}/{layer}/{neuron}` returns (same query), as a page: type with
    its evidence, explanation, simulation score, per-domain shares, and the top exemplars with their
    tokens shaded by activation beside their shaded images. 404 (problem details) when none is stored."""
    query: Query = {
        "hook": hook,
        "dataset": dataset,
        "explainer": explainer,
        "simulator": simulator,
        "endpoint": endpoint,
        "candidates": candidates,
    }
    report = NeuronReport.model_validate_json(await reports.read(model, layer, neuron, query))
    return Response(content=render_report_page(report), media_type=MediaType.HTML)
