"""The viewer's HTML pages: home (`/`), a layer (`/view/{model}/{layer}`), a neuron
(`/v1/neurons/{model}/{layer}/{neuron}/page`), a job (`/view/jobs/{job_id}`), a comparison
(`/view/comparisons/{id}`) and a compared neuron (`/view/comparisons/{id}/{layer}/{neuron}`). Pages read
what the JSON routes read and link to them; nothing on them is loaded from another host."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any, Literal

import anyio.to_thread
import redis
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.params import FromPath, Parameter
from litestar.status_codes import HTTP_404_NOT_FOUND

from service.contract import EXPLAIN_JOB_PREFIX, NeuronReport, Registry
from service.estimates.model_weights import models_weights
from service.http.error_responses import problem_specs
from service.http.openapi_docs import DocumentedOperation
from service.http.routes.query import REPORT_QUERY
from service.jobs.compare import comparison_status
from service.jobs.compared_neuron import compared_neuron
from service.jobs.queues import JobQueues
from service.jobs.record import read_record
from service.jobs.state import job_status
from service.problems import NotFound
from service.reports.exemplar_links import exemplar_query
from service.reports.listing import SortColumn, indexed_neurons, layer_summaries, sort_summaries
from service.reports.reading import Query, ReportReader
from service.viewer.comparison import render_compared_neuron_page, render_comparison_page
from service.viewer.home import recent_jobs, render_home_page
from service.viewer.job import render_job_page
from service.viewer.layer import LayerView, render_layer_page
from service.viewer.missing import render_missing_report_page
from service.viewer.neuron import NeuronPageLinks, render_report_page

LAYER_PAGE_ROWS = 250
"""Rows of the layer page's table by default (page with `offset`, or choose `limit`)."""
MAX_LAYER_PAGE_ROWS = 2000
"""Most rows one layer page's table shows."""


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
    """The served models (layers linked to their layer pages; whether the workers have their weights, as
    the workers published it, and how to add missing ones), the planted neurons (linked to their pages when
    explained) and the newest explain jobs with their status, linked to their job pages."""
    jobs = recent_jobs(redis_client, reports.redis_keys, queues.explain, reports.store)
    weights = models_weights(redis_client, reports.redis_keys, registry.models)
    return _html(render_home_page(registry, jobs, weights, _planted_stored(registry, redis_client, reports)))


def _planted_stored(
    registry: Registry, connection: redis.Redis, reports: ReportReader
) -> dict[tuple[str, int, int], bool]:
    """Which planted neurons have a stored report of default options (the home page links only those)."""
    stored = {}
    for model in registry.models:
        for layer in sorted({p.layer for p in model.planted or []}):
            neurons = _stored_neurons(reports, connection, {}, model.id, layer)
            for p in model.planted or []:
                if p.layer == layer:
                    stored[(model.id, layer, p.neuron)] = p.neuron in neurons
    return stored


def _stored_neurons(
    reports: ReportReader, connection: redis.Redis, query: Query, model: str, layer: int
) -> list[int]:
    """The neurons of ``model`` ``layer`` with a stored report of the variant ``query`` selects, ascending."""
    variant, _ = reports.layer_variant(model, layer, query)
    return indexed_neurons(connection, reports.redis_keys, reports.store, model, layer, variant)


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
    offset: int = Parameter(default=0, ge=0, description="First row of the table, in the chosen order."),
    limit: int = Parameter(
        default=LAYER_PAGE_ROWS, ge=1, le=MAX_LAYER_PAGE_ROWS, description="Rows of the table."
    ),
    sort: Annotated[SortColumn, Parameter(description="Column the whole layer is sorted by.")] = "neuron",
    order: Annotated[Literal["asc", "desc"], Parameter(description="Sort direction.")] = "asc",
) -> Response[str]:
    """The stored neurons of a layer (the report variant the query selects, as for
    `GET /v1/neurons/{model}/{layer}`): type distribution and score histogram over all of them, and a
    table (neuron, type, type evidence, explanation, score and its interval) of one page of them, sorted
    over the whole layer by `sort` and `order`, linking to each neuron's page."""
    variant, request = reports.layer_variant(model, layer, report_query)
    summaries = layer_summaries(redis_client, reports.redis_keys, reports.store, model, layer, variant)
    ordered = sort_summaries(summaries, sort, descending=order == "desc")
    view = LayerView(
        summaries=summaries,
        rows=ordered[offset : offset + limit],
        offset=offset,
        limit=limit,
        sort=sort,
        descending=order == "desc",
        query=report_query,
    )
    return _html(render_layer_page(registry.model(model).through(request.units), layer, request, view))


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
    request: Request[Any, Any, Any],
    model: FromPath[str],
    layer: FromPath[int],
    neuron: FromPath[int],
    reports: NamedDependency[ReportReader],
    redis_client: NamedDependency[redis.Redis],
    report_query: NamedDependency[Query],
) -> Response[str]:
    """The report `GET /v1/neurons/{model}/{layer}/{neuron}` returns (same query), as a page: links to the
    previous and next stored neurons, the layer page, the same neuron in the neighbouring layers (where it
    has a report) and the JSON; type with its evidence; explanation and candidates; score with simulated
    against true activations; an activation histogram; top and random exemplars (tokens shaded by
    activation, raw, normalised and simulated values on hover; images unshaded beside shaded, with a
    colour-scale legend); domains by share. When none is stored: an HTML 404 page saying how to explain
    the neuron (CLI command and API request); problem details for an unknown model, layer or neuron."""
    lookup = reports.resolve(model, layer, neuron, report_query)
    try:
        content = await reports.read(model, layer, neuron, report_query)
    except NotFound:
        html = render_missing_report_page(lookup.request, neuron, report_query, str(request.base_url))
        return Response(content=html, media_type=MediaType.HTML, status_code=HTTP_404_NOT_FOUND)
    report = NeuronReport.model_validate_json(content)
    links = await anyio.to_thread.run_sync(
        partial(_page_links, reports, redis_client, report_query, model, layer, neuron)
    )
    return _html(render_report_page(report, links))


def _page_links(
    reports: ReportReader, connection: redis.Redis, query: Query, model: str, layer: int, neuron: int
) -> NeuronPageLinks:
    """Where a neuron page links: its stored neighbours in the layer, and which neighbouring layers have a
    report of the same neuron (same query)."""
    previous, following = _neighbours(_stored_neurons(reports, connection, query, model, layer), neuron)
    units = query.get("units")
    seen = reports.registry.model(model).through(None if units is None else str(units))
    n_layers = seen.layers
    stored = {
        other: neuron in _stored_neurons(reports, connection, query, model, other)
        for other in (layer - 1, layer + 1)
        if other in seen.layer_ids  # a dictionary may cover only some layers
    }
    return NeuronPageLinks(
        query=query, previous=previous, next=following, n_layers=n_layers, same_neuron_stored=stored
    )


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
    keys = reports.redis_keys
    status = job_status(redis_client, keys, reports.store, job_id, limit=1) if is_explain else None
    record = read_record(redis_client, keys, job_id) if status is not None else None
    if status is None or record is None:
        raise NotFound(f"job '{job_id}' not found: no such job, or its record expired")
    return _html(render_job_page(status, record.request, record.variant))


@get(
    "/view/comparisons/{comparison_id:str}",
    operation_id="getComparisonPage",
    operation_class=DocumentedOperation,
    summary="Viewer: a comparison's verdicts",
    tags=["viewer", "comparisons"],
    sync_to_thread=True,
    media_type=MediaType.HTML,
    responses=problem_specs(400, 404, 503),
)
def get_comparison_page(
    comparison_id: FromPath[str],
    redis_client: NamedDependency[redis.Redis],
    reports: NamedDependency[ReportReader],
) -> Response[str]:
    """A comparison (`GET /v1/comparisons/{id}`) as a page: where it stands (reloading until it ends),
    the verdict counts, downloads of its table, and once finished a table per layer of its neurons sorted
    by score drop (verdict, both types, agreement, Jaccard, max ratio, base score → score on the target),
    each linked to its compared-neuron page."""
    store, keys = reports.store, reports.redis_keys
    status = comparison_status(redis_client, keys, store, comparison_id, 0, 10**9)
    if status is None:
        raise NotFound(f"comparison '{comparison_id}' not found: no such comparison, or its record expired")
    return _html(render_comparison_page(status))


@get(
    "/view/comparisons/{comparison_id:str}/{layer:int}/{neuron:int}",
    operation_id="getComparedNeuronPage",
    operation_class=DocumentedOperation,
    summary="Viewer: one compared neuron, base and target side by side",
    tags=["viewer", "comparisons"],
    sync_to_thread=True,
    media_type=MediaType.HTML,
    responses=problem_specs(400, 404, 503),
)
def get_compared_neuron_page(
    comparison_id: FromPath[str],
    layer: FromPath[int],
    neuron: FromPath[int],
    redis_client: NamedDependency[redis.Redis],
    reports: NamedDependency[ReportReader],
) -> Response[str]:
    """One neuron of a comparison: its agreement numbers and verdict, the base's explanation with its
    score on the base and on the target, and both sides' top exemplars side by side (tokens shaded by
    each side's activations); links to the base's neuron page. 404 until the neuron is compared."""
    keys = reports.redis_keys
    found = compared_neuron(redis_client, keys, reports.store, comparison_id, layer, neuron)
    if found is None:
        raise NotFound(f"comparison '{comparison_id}' has no compared neuron {layer}/{neuron} (yet)")
    base_job = read_record(redis_client, keys, found.record.base_job_id)
    query = exemplar_query(base_job.request, base_job.variant) if base_job is not None else {}
    return _html(render_compared_neuron_page(comparison_id, found.comparison, found.exemplars, query))
