"""The viewer's HTML pages: home (`/`), a layer (`/view/{model}/{layer}`), a neuron
(`/v1/neurons/{model}/{layer}/{neuron}/page`) and a job (`/view/jobs/{job_id}`). Pages read what the JSON
routes read and link to them; nothing on them is loaded from another host."""

from __future__ import annotations

from functools import partial

import anyio.to_thread
import redis
from litestar import Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath, Parameter

from service.contract import EXPLAIN_JOB_PREFIX, NeuronReport, Registry
from service.errors import NotFound, problem_specs
from service.job_group import read_record
from service.jobs import JobQueues, job_status
from service.listing import list_layer_reports, summarize
from service.openapi_docs import DocumentedOperation
from service.report_page import NeuronPageLinks, render_report_page
from service.reports import Query, ReportReader
from service.routes.query import REPORT_QUERY
from service.viewer.home import recent_jobs, render_home_page
from service.viewer.job import render_job_page
from service.viewer.layer import render_layer_page

LAYER_PAGE_ROWS = 1000
"""Neurons one layer page lists at most (page with `offset`)."""


def _html(content: str) -> Response[str]:
    return Response(content=content, media_type=MediaType.HTML)


@get(
    "/",
    operation_id="getHomePage",
    operation_class=DocumentedOperation,
    summary="Viewer: home page",
    tags=["viewer"],
    sync_to_thread=True,
    media_type=MediaType.HTML,
    responses=problem_specs(503),
)
def get_home_page(
    registry: NamedDependency[Registry],
    redis_client: NamedDependency[redis.Redis],
    queues: NamedDependency[JobQueues],
    reports: NamedDependency[ReportReader],
) -> Response[str]:
    """The served models (layers linked to their layer pages, planted neurons to their pages) and the
    newest explain jobs with their status, linked to their job pages."""
    return _html(render_home_page(registry, recent_jobs(redis_client, queues.explain, reports.store)))


@get(
    "/view/{model:str}/{layer:int}",
    operation_id="getLayerPage",
    operation_class=DocumentedOperation,
    summary="Viewer: a layer's stored neurons",
    tags=["viewer"],
    dependencies=REPORT_QUERY,
    sync_to_thread=True,
    media_type=MediaType.HTML,
    responses=problem_specs(400, 404, 422, 503),
)
def get_layer_page(
    model: FromPath[str],
    layer: FromPath[int],
    registry: NamedDependency[Registry],
    redis_client: NamedDependency[redis.Redis],
    reports: NamedDependency[ReportReader],
    report_query: NamedDependency[Query],
    offset: int = Parameter(default=0, ge=0, description="First neuron listed, in ascending index order."),
) -> Response[str]:
    """The stored neurons of a layer (the report variant the query selects, as for
    `GET /v1/neurons/{model}/{layer}`): type distribution, score histogram and a sortable table
    (neuron, type, type evidence, explanation, score and its interval) linking to each neuron's page."""
    variant, request = reports.layer_variant(model, layer, report_query)
    found = list_layer_reports(
        redis_client, reports.store, model, layer, variant, offset=offset, limit=LAYER_PAGE_ROWS
    )
    rows = [summarize(raw) for raw in found.reports]
    spec = registry.model(model)
    return _html(
        render_layer_page(
            spec, layer, request, rows, len(found.neurons), offset, LAYER_PAGE_ROWS, report_query
        )
    )


def _neighbours(neurons: list[int], neuron: int) -> tuple[int | None, int | None]:
    lower = [n for n in neurons if n < neuron]
    higher = [n for n in neurons if n > neuron]
    return (lower[-1] if lower else None), (higher[0] if higher else None)


@get(
    "/v1/neurons/{model:str}/{layer:int}/{neuron:int}/page",
    operation_id="getNeuronPage",
    operation_class=DocumentedOperation,
    summary="Viewer: a stored neuron report as an HTML page",
    tags=["neurons", "viewer"],
    dependencies=REPORT_QUERY,
    media_type=MediaType.HTML,
    responses=problem_specs(400, 404, 422, 503),
)
async def get_neuron_page(
    model: FromPath[str],
    layer: FromPath[int],
    neuron: FromPath[int],
    reports: NamedDependency[ReportReader],
    redis_client: NamedDependency[redis.Redis],
    report_query: NamedDependency[Query],
) -> Response[str]:
    """The report `GET /v1/neurons/{model}/{layer}/{neuron}` returns (same query), as a page: links to the
    previous and next stored neurons, the layer page, the same neuron in the neighbouring layers and the
    JSON; type with its evidence; explanation and candidates; score with simulated against true
    activations; an activation histogram; top and random exemplars (tokens shaded by activation, raw,
    normalised and simulated values on hover; images unshaded beside shaded, with a colour-scale legend);
    domains by share. 404 (problem details) when none is stored."""
    report = NeuronReport.model_validate_json(await reports.read(model, layer, neuron, report_query))
    variant, _ = reports.layer_variant(model, layer, report_query)
    found = await anyio.to_thread.run_sync(
        partial(list_layer_reports, redis_client, reports.store, model, layer, variant)
    )
    previous, following = _neighbours(found.neurons, neuron)
    n_layers = reports.registry.model(model).layers
    links = NeuronPageLinks(query=report_query, previous=previous, next=following, n_layers=n_layers)
    return _html(render_report_page(report, links))


@get(
    "/view/jobs/{job_id:str}",
    operation_id="getJobPage",
    operation_class=DocumentedOperation,
    summary="Viewer: an explain job's live progress",
    tags=["viewer"],
    sync_to_thread=True,
    media_type=MediaType.HTML,
    responses=problem_specs(400, 404, 503),
)
def get_job_page(
    job_id: FromPath[str], redis_client: NamedDependency[redis.Redis], reports: NamedDependency[ReportReader]
) -> Response[str]:
    """What the job asked for, its status and progress (kept current by polling `GET /v1/jobs/{job_id}`
    from the page), its error when it failed, and links to its neurons' pages once finished."""
    is_explain = job_id.startswith(EXPLAIN_JOB_PREFIX)
    status = job_status(redis_client, reports.store, job_id, limit=1) if is_explain else None
    record = read_record(redis_client, job_id) if status is not None else None
    if status is None or record is None:
        raise NotFound(f"job '{job_id}' not found: no such job, or its record expired")
    return _html(render_job_page(status, record.request, record.variant))
