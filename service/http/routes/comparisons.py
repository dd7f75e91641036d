"""`POST /v1/comparisons`: compare the neurons of two checkpoints (202 with a comparison, or 200 with a
cost estimate for a dry run); `GET /v1/comparisons/{id}`: where it stands and a page of its neurons;
`GET /v1/comparisons/{id}/rows`: a finished comparison as one table (NDJSON, CSV or Parquet)."""

from __future__ import annotations

from typing import Annotated, Any

import redis
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, Parameter
from litestar.response import Stream

from service.contract import Registry
from service.contract.comparisons import (
    ComparisonAccepted,
    ComparisonEstimate,
    ComparisonRequest,
    ComparisonStatus,
)
from service.estimates.compare_check import resolve_comparison
from service.estimates.estimate import estimate_calls, estimate_cost
from service.http.conventions import chosen_format
from service.http.error_responses import problem_specs
from service.http.openapi_docs import DocumentedOperation
from service.http.request_id import current_request_id
from service.http.routes.query import EXPORT_FORMAT_PARAMETER
from service.jobs.compare import comparison_status, submit_comparison
from service.jobs.queues import JobQueues
from service.problems import JobNotFinished, NotFound
from service.reports.comparison_tables import comparison_export
from service.reports.reading import ReportReader
from service.reports.tables import MEDIA_TYPES, ExportFormat
from service.settings import Settings

MAX_PAGE = 1000
"""Most neurons one status answer carries; page with `offset`."""
ComparisonId = Annotated[
    str,
    Parameter(
        pattern=r"^cmp-[0-9a-f]{24}$",
        description="Comparison id from `POST /v1/comparisons` (`cmp-` and 24 hex digits).",
    ),
]


def _estimate(resolved: Any, reports: ReportReader, settings: Settings) -> ComparisonEstimate:
    base = estimate_cost(resolved.base, reports.store, settings)
    target = estimate_cost(resolved.target, reports.store, settings)
    calls = estimate_calls(resolved.target)
    request = resolved.request
    rescore = calls.neurons * 2 * request.options.n_holdout if request.simulator == "openai" else 0
    explain = calls.neurons if request.explainer == "openai" and request.reexplain != "none" else 0
    return ComparisonEstimate(
        base=base,
        target_scan=target.scan,
        neurons=calls.neurons,
        rescore_llm_calls=rescore,
        explanation_calls_max=explain,
        llm_calls_max=base.llm.calls + rescore + explain,
    )


@post(
    "/v1/comparisons",
    operation_id="createComparison",
    operation_class=DocumentedOperation,
    summary="Compare two checkpoints",
    tags=["comparisons"],
    status_code=202,
    sync_to_thread=True,
    responses={
        202: ResponseSpec(
            data_container=ComparisonAccepted,
            description="Accepted: poll `status_url` (also in the Location header).",
            generate_examples=False,
        ),
        200: ResponseSpec(
            data_container=ComparisonEstimate,
            description='For `"dry_run": true`: the cost estimate; nothing is enqueued.',
            generate_examples=False,
        ),
        **problem_specs(400, 413, 415, 422, 431, 503),
    },
)
def create_comparison(
    request: Request[Any, Any, Any],
    data: JSONBody[ComparisonRequest],
    redis_client: NamedDependency[redis.Redis],
    queues: NamedDependency[JobQueues],
    registry: NamedDependency[Registry],
    settings: NamedDependency[Settings],
    reports: NamedDependency[ReportReader],
) -> Response[ComparisonAccepted | ComparisonEstimate]:
    """Compare the neurons of a base and a target model on one probe set (docs: Compare and pin). Both
    must share the tokenizer, hook point, layer count and widths (else 422 saying what differs). The
    base's neurons are explained (stored reports reused), both models scanned (stored scans reused), and
    each neuron gets agreement numbers, both types, the base's explanation re-scored on the target, and a
    verdict; `reexplain` chooses which target neurons are explained afresh (default: the changed ones)."""
    resolved = resolve_comparison(registry, data, settings.max_neurons_per_request, settings)
    if data.dry_run:
        return Response(_estimate(resolved, reports, settings), status_code=200)
    cmp_id = submit_comparison(redis_client, reports.store, queues, settings, resolved, current_request_id())
    status_url = f"/v1/comparisons/{cmp_id}"
    accepted = ComparisonAccepted(comparison_id=cmp_id, status_url=status_url)
    return Response(accepted, status_code=202, headers={"Location": status_url})


@get(
    "/v1/comparisons/{comparison_id:str}",
    operation_id="getComparison",
    operation_class=DocumentedOperation,
    summary="Get a comparison's status and neurons",
    tags=["comparisons"],
    sync_to_thread=True,
    responses=problem_specs(400, 404, 422, 503),
)
def get_comparison(
    comparison_id: ComparisonId,
    redis_client: NamedDependency[redis.Redis],
    reports: NamedDependency[ReportReader],
    offset: int = Parameter(default=0, ge=0, description="First neuron of the page (finished comparisons)."),
    limit: int = Parameter(
        default=100, ge=1, le=MAX_PAGE, description=f"Neurons per page, at most {MAX_PAGE}."
    ),
) -> ComparisonStatus:
    """Where a comparison stands (`queued`, `scanning`, `explaining`, `comparing`, `finished`, `failed`),
    its verdict counts, and once finished a page of its NeuronComparisons in (layer, neuron) order."""
    status = comparison_status(redis_client, reports.redis_keys, reports.store, comparison_id, offset, limit)
    if status is None:
        raise NotFound(f"comparison '{comparison_id}' not found: no such comparison, or its record expired")
    return status


@get(
    "/v1/comparisons/{comparison_id:str}/rows",
    operation_id="exportComparison",
    operation_class=DocumentedOperation,
    summary="Export a finished comparison as a table",
    tags=["comparisons"],
    sync_to_thread=True,
    opt={"media_types": list(MEDIA_TYPES.values())},
    responses=problem_specs(400, 404, 409, 422, 503),
)
def export_comparison(
    request: Request[Any, Any, Any],
    comparison_id: ComparisonId,
    redis_client: NamedDependency[redis.Redis],
    reports: NamedDependency[ReportReader],
    export_format: Annotated[ExportFormat, EXPORT_FORMAT_PARAMETER] = "ndjson",
) -> Stream:
    """Every neuron of a finished comparison, one row each by ascending layer and neuron: NDJSON, CSV or
    Parquet, with both sides' summary columns (`base_…`, `target_…`) and the comparison's columns. 409
    while it is not finished. Without `format`, `Accept` chooses the format (NDJSON when it has no
    preference); 406 when `Accept` admits neither the named format nor any."""
    export_format = chosen_format(request, MEDIA_TYPES, "ndjson")  # type: ignore[assignment]
    status = comparison_status(redis_client, reports.redis_keys, reports.store, comparison_id, 0, 10**9)
    if status is None:
        raise NotFound(f"comparison '{comparison_id}' not found: no such comparison, or its record expired")
    if status.status != "finished" or status.comparisons is None:
        raise JobNotFinished(
            f"comparison '{comparison_id}' is {status.status}: its table is ready once it finishes"
        )
    return comparison_export(status.comparisons, export_format, comparison_id)
