"""`GET /v1/neurons/{model}/{layer}/{neuron}`: the stored report of one neuron;
`GET /v1/neurons/{model}/{layer}`: a page of a layer's stored reports as summary rows, or all of them as a
table (NDJSON, CSV, Parquet)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import redis
from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.enums import MediaType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, Parameter, QueryParameter

from service.contract import NeuronListing, NeuronReport
from service.http.conventions import (
    REPORT_CACHE_CONTROL,
    cache_control,
    chosen_format,
    conditional_response,
)
from service.http.error_responses import problem_specs
from service.http.openapi_docs import DocumentedOperation
from service.http.routes.query import EXPORT_FIELDS_PARAMETER, REPORT_QUERY
from service.problems import InvalidInput
from service.reports.exports import export_response, layer_export_pages
from service.reports.listing import list_layer_reports, summarize
from service.reports.reading import Query, ReportReader
from service.reports.tables import MEDIA_TYPES, ExportFields

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
    model names as configured now are part of the variant), or for the `variant` the query names (a
    report made with non-default options: the job's variant). 404 when none is stored yet:
    `POST /v1/explanations` creates it."""
    # Workers write reports through the NeuronReport schema; the stored bytes are passed through.
    content = await reports.read(model, layer, neuron, report_query)
    cache = cache_control(reports.settings, REPORT_CACHE_CONTROL)
    return conditional_response(request, content, "application/json", cache)


ListingFormat = Literal["json", "ndjson", "csv", "parquet"]
"""`json`: a NeuronListing page; the others: every stored report of the layer as one table."""
LISTING_MEDIA_TYPES = {"json": "application/json", **MEDIA_TYPES}
"""Media type of each listing format."""
DEFAULTS: dict[str, object] = {"offset": 0, "limit": 100, "fields": "summary"}
"""Declared defaults of the listing's parameters: accepted when sent (a generated client sends them) with
any format, though only some formats use them."""


@get(
    "/v1/neurons/{model:str}/{layer:int}",
    operation_id="listLayerNeurons",
    operation_class=DocumentedOperation,
    summary="List a layer's stored neuron reports",
    tags=["neurons"],
    dependencies=REPORT_QUERY,
    sync_to_thread=True,
    opt={"media_types": list(LISTING_MEDIA_TYPES.values())},
    responses={
        200: ResponseSpec(
            data_container=NeuronListing,
            description="A page of summary rows (`format=json`).",
            generate_examples=False,
        ),
        **problem_specs(400, 404, 422, 503),
    },
)
def list_layer_neurons(
    request: Request[Any, Any, Any],
    model: FromPath[str],
    layer: FromPath[int],
    redis_client: NamedDependency[redis.Redis],
    reports: NamedDependency[ReportReader],
    report_query: NamedDependency[Query],
    offset: int = Parameter(default=0, ge=0, description="First row, in ascending neuron order (`json`)."),
    limit: int = Parameter(
        default=100,
        ge=1,
        le=MAX_LISTING_PAGE,
        description=f"Rows per page, at most {MAX_LISTING_PAGE} (`json`).",
    ),
    listing_format: Annotated[
        ListingFormat,
        QueryParameter(
            name="format",
            description="`json` (default): a page of summary rows; `ndjson`, `csv`, `parquet`: every stored "
            "report of the layer as one streamed table (no paging).",
        ),
    ] = "json",
    fields: Annotated[ExportFields, EXPORT_FIELDS_PARAMETER] = "summary",
) -> Response[Any]:
    """The neurons of one layer that have a stored report, by ascending index, as summary rows (type and
    its evidence, explanation, score and its interval), for the report variant that
    `GET /v1/neurons/{model}/{layer}/{neuron}` with the same query reads. `total` counts them all; page
    with `offset` and `limit`. An empty page when none is stored; 404 for an unknown model or layer.
    `format=ndjson|csv|parquet` streams all of them instead, as `GET /v1/jobs/{job_id}/reports` does
    (`fields=summary|full`; `offset` and `limit` other than their defaults are refused there). Without
    `format`, `Accept` chooses (JSON when it has no preference); 406 when it admits none."""
    listing_format = chosen_format(request, LISTING_MEDIA_TYPES, "json")  # type: ignore[assignment]
    variant, lookup = reports.layer_variant(model, layer, report_query)
    if listing_format != "json":
        paging = [name for name, value in (("offset", offset), ("limit", limit)) if value != DEFAULTS[name]]
        if paging:
            raise InvalidInput.for_field(
                paging[0], f"pages `format=json` only; `{listing_format}` is every row"
            )
        pinned = report_query.get("variant") is not None
        pages = layer_export_pages(
            redis_client, reports.redis_keys, reports.store, reports.registry, lookup, variant, fields, pinned
        )
        cache = cache_control(reports.settings, REPORT_CACHE_CONTROL)
        return export_response(pages, listing_format, fields, f"{model}-L{layer}", cache)
    if fields != DEFAULTS["fields"]:
        raise InvalidInput.for_field("fields", "applies to the table formats (ndjson, csv, parquet) only")
    keys = reports.redis_keys
    found = list_layer_reports(
        redis_client, keys, reports.store, model, layer, variant, offset=offset, limit=limit
    )
    listing = NeuronListing(
        model=model,
        layer=layer,
        variant=variant,
        total=len(found.neurons),
        offset=offset,
        neurons=[summarize(raw) for raw in found.reports],
    )
    return Response(listing, media_type=MediaType.JSON)
