"""`GET /v1/jobs/{job_id}`: where an explanation job stands, and its reports once finished."""

from __future__ import annotations

from typing import Annotated

import redis
from litestar import get
from litestar.di import NamedDependency
from litestar.params import Parameter

from service.contract import EXPLAIN_JOB_ID_PATTERN, JobStatus
from service.errors import NotFound, problem_specs
from service.jobs import job_status
from service.openapi_docs import DocumentedOperation
from service.reports import ReportReader

MAX_PAGE = 1000
"""Most reports one status answer carries; page with `offset`."""


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
    job_id: Annotated[
        str,
        Parameter(
            pattern=EXPLAIN_JOB_ID_PATTERN,
            description="Job id from `POST /v1/explanations` (`exp-` and 24 hex digits); "
            "any other form is a 404.",
        ),
    ],
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
    status = job_status(redis_client, reports.store, job_id, offset=offset, limit=limit)
    if status is None:
        raise NotFound(f"job '{job_id}' not found: no such job, or its record expired")
    return status
