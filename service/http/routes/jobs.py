"""`GET /v1/jobs`: the explanation jobs, filtered and paged by cursor with `Link` headers;
`GET /v1/jobs/{job_id}`: where an explanation job stands, and its reports once finished;
`GET /v1/jobs/{job_id}/reports`: a finished job's reports as one table (NDJSON, CSV or Parquet)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlencode

import redis
from litestar import Request, delete, get
from litestar.di import NamedDependency
from litestar.params import Parameter
from litestar.response import Response, Stream

from service.access.auth import calling_key
from service.contract import EXPLAIN_JOB_ID_PATTERN, JobState, JobStatus
from service.contract.job_list import MAX_JOBS_PAGE, JobList
from service.http.conventions import REPORT_CACHE_CONTROL, cache_control, chosen_format
from service.http.error_responses import problem_specs
from service.http.openapi_docs import DocumentedOperation
from service.http.routes.query import EXPORT_FIELDS_PARAMETER, EXPORT_FORMAT_PARAMETER
from service.jobs.cancel import cancel_job
from service.jobs.job_export import job_export_pages
from service.jobs.job_list import JobFilter, list_jobs
from service.jobs.state import job_status
from service.problems import NotFound
from service.reports.exports import export_response
from service.reports.reading import ReportReader
from service.reports.tables import MEDIA_TYPES, ExportFields, ExportFormat

MAX_PAGE = 1000
"""Most reports one status answer carries; page with `offset`."""

JobId = Annotated[
    str,
    Parameter(
        pattern=EXPLAIN_JOB_ID_PATTERN,
        description="Job id from `POST /v1/explanations` (`exp-` and 24 hex digits); "
        "any other form is a 404.",
    ),
]


@get(
    "/v1/jobs",
    operation_id="listJobs",
    operation_class=DocumentedOperation,
    summary="List explanation jobs",
    tags=["jobs"],
    sync_to_thread=True,
    responses=problem_specs(400, 422, 503),
)
def list_explanation_jobs(
    request: Request[Any, Any, Any],
    redis_client: NamedDependency[redis.Redis],
    reports: NamedDependency[ReportReader],
    status: Annotated[JobState | None, Parameter(description="Only jobs in this state.")] = None,
    model: Annotated[str | None, Parameter(description="Only jobs of this model (registry id).")] = None,
    created_after: Annotated[
        datetime | None, Parameter(description="Only jobs created at or after this instant (ISO 8601).")
    ] = None,
    created_before: Annotated[
        datetime | None, Parameter(description="Only jobs created before this instant (ISO 8601).")
    ] = None,
    limit: int = Parameter(
        default=100, ge=1, le=MAX_JOBS_PAGE, description=f"Jobs per page, at most {MAX_JOBS_PAGE}."
    ),
    cursor: Annotated[
        str | None, Parameter(max_length=200, description="`next_cursor` of the previous page (opaque).")
    ] = None,
) -> Response[JobList]:
    """Explanation jobs, newest first (by `created_at`, then job id), read from their durable records (they
    outlive Redis), with their state as `GET /v1/jobs/{job_id}` derives it. Filter by `status`, `model` and
    a `created_after`/`created_before` range; page with `cursor` (the previous page's `next_cursor`, also
    given as a `Link: <…>; rel="next"` header). With API keys on, a key without `admin` lists only the
    jobs it posted."""
    key = calling_key(request)
    owner = key.key_id if key is not None and "admin" not in key.scopes else None
    wanted = JobFilter(status, model, created_after, created_before, owner)
    page = list_jobs(redis_client, reports.redis_keys, reports.store, wanted, limit, cursor)
    headers = {}
    if page.next_cursor is not None:
        query = {k: v for k, v in request.query_params.items() if k != "cursor"}
        headers["Link"] = (
            f'<{request.url.path}?{urlencode({**query, "cursor": page.next_cursor})}>; rel="next"'
        )
    return Response(page, headers=headers)


@get(
    "/v1/jobs/{job_id:str}",
    operation_id="getJob",
    operation_class=DocumentedOperation,
    summary="Get a job's status and reports",
    tags=["jobs"],
    sync_to_thread=True,
    responses=problem_specs(400, 404, 422, 503),
)
def get_job(
    job_id: JobId,
    redis_client: NamedDependency[redis.Redis],
    reports: NamedDependency[ReportReader],
    offset: int = Parameter(default=0, ge=0, description="First report of the page (finished jobs)."),
    limit: int = Parameter(
        default=100, ge=1, le=MAX_PAGE, description=f"Reports per page, at most {MAX_PAGE}."
    ),
) -> JobStatus:
    """Status of an explanation job: `queued` (with its queue position), `scanning`, `explaining`,
    `simulating`, `finished` (with a page of reports) or `failed` (with an error that says why).
    Progress counts neurons whose report is stored."""
    status = job_status(redis_client, reports.redis_keys, reports.store, job_id, offset=offset, limit=limit)
    if status is None:
        raise NotFound(f"job '{job_id}' not found: no such job, or its record expired")
    return status


@delete(
    "/v1/jobs/{job_id:str}",
    operation_id="cancelJob",
    operation_class=DocumentedOperation,
    summary="Cancel a job",
    tags=["jobs"],
    sync_to_thread=True,
    status_code=200,
    opt={"scope": "submit"},
    responses=problem_specs(400, 404, 422, 503),
)
def cancel_explanation_job(
    request: Request[Any, Any, Any],
    job_id: JobId,
    redis_client: NamedDependency[redis.Redis],
    reports: NamedDependency[ReportReader],
) -> JobStatus:
    """Cancel an explanation job: its queued parts are taken off their queues, its running parts stop after
    their current neuron (the neurons left are listed in `not_done`), every stored report is kept, and the
    job reads `cancelled` from then on (posting the request again runs what is left, under the same id).
    A job already over (finished, failed, cancelled) is left as it is. Answers the job's status. With API
    keys on, a key without `admin` cancels only the jobs it posted (another's is a 404)."""
    key = calling_key(request)
    owner = key.key_id if key is not None and "admin" not in key.scopes else None
    status = cancel_job(redis_client, reports.redis_keys, reports.store, job_id, owner)
    if status is None:
        raise NotFound(f"job '{job_id}' not found: no such job, or its record expired")
    return status


@get(
    "/v1/jobs/{job_id:str}/reports",
    operation_id="exportJobReports",
    operation_class=DocumentedOperation,
    summary="Export a finished job's reports as a table",
    tags=["jobs"],
    sync_to_thread=True,
    opt={"media_types": list(MEDIA_TYPES.values())},
    responses=problem_specs(400, 404, 409, 422, 503),
)
def export_job_reports(
    request: Request[Any, Any, Any],
    job_id: JobId,
    redis_client: NamedDependency[redis.Redis],
    reports: NamedDependency[ReportReader],
    export_format: Annotated[ExportFormat, EXPORT_FORMAT_PARAMETER] = "ndjson",
    fields: Annotated[ExportFields, EXPORT_FIELDS_PARAMETER] = "summary",
) -> Stream:
    """Every stored report of a finished job in one streamed answer, one row per neuron by ascending layer
    and neuron: NDJSON (`application/x-ndjson`), CSV (`text/csv`) or Parquet
    (`application/vnd.apache.parquet`, one row group per 256 reports), with a `Content-Disposition` file
    name; gzip when the client accepts it. 409 while the job is not finished (or when it failed); a job
    its budget stopped is finished and exports the reports it completed. Rows are complete reports only.
    Without `format`, `Accept` chooses the format (NDJSON when it has no preference); 406 when `Accept`
    admits neither the named format nor any."""
    export_format = chosen_format(request, MEDIA_TYPES, "ndjson")  # type: ignore[assignment]
    pages = job_export_pages(
        redis_client, reports.redis_keys, reports.store, reports.registry, job_id, fields
    )
    cache = cache_control(reports.settings, REPORT_CACHE_CONTROL)
    return export_response(pages, export_format, fields, job_id, cache)
