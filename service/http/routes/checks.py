"""`POST /v1/checks`: re-score pinned explanations on a model (202 with a check, or 200 with the estimate
for a dry run); `GET /v1/checks/{check_id}`: where it stands and, once finished, per pin pass or fail."""

from __future__ import annotations

from functools import partial
from typing import Annotated, Any

import redis
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody, Parameter

from service.access.auth import calling_key
from service.access.ratelimit import RateLimits
from service.contract import (
    CHECK_JOB_ID_PATTERN,
    CheckAccepted,
    CheckEstimate,
    CheckRequest,
    CheckStatus,
    Registry,
)
from service.estimates.checks import check_calls, estimate_check, resolve_check
from service.http.error_responses import problem_specs
from service.http.openapi_docs import DocumentedOperation
from service.http.request_id import current_request_id
from service.jobs.checks import check_status, submit_check
from service.jobs.queues import JobQueues
from service.problems import NotFound
from service.reports.reading import ReportReader
from service.settings import Settings

CheckId = Annotated[
    str,
    Parameter(
        pattern=CHECK_JOB_ID_PATTERN,
        description="Check id from `POST /v1/checks` (`chk-` and 24 hex digits); any other form is a 404.",
    ),
]


@post(
    "/v1/checks",
    operation_id="createCheck",
    operation_class=DocumentedOperation,
    summary="Check pins",
    tags=["checks"],
    status_code=202,
    sync_to_thread=True,
    responses={
        202: ResponseSpec(
            data_container=CheckAccepted,
            description="Accepted: poll `status_url` (also in the Location header).",
            generate_examples=False,
        ),
        200: ResponseSpec(
            data_container=CheckEstimate,
            description='For `"dry_run": true`: the estimate (LLM calls, layers to scan); nothing is '
            "enqueued.",
            generate_examples=False,
        ),
        **problem_specs(400, 413, 415, 422, 431, 503),
    },
)
def create_check(
    request: Request[Any, Any, Any],
    data: JSONBody[CheckRequest],
    redis_client: NamedDependency[redis.Redis],
    queues: NamedDependency[JobQueues],
    registry: NamedDependency[Registry],
    settings: NamedDependency[Settings],
    reports: NamedDependency[ReportReader],
) -> Response[CheckAccepted | CheckEstimate]:
    """Re-score each pin's explanation on the named model (simulation only: the neuron's held-out records
    of the model's own scan, with the request's simulator) and check what the pin asks: the neuron's type,
    a minimum score, a maximum drop from `base_score`. Every pin is checked against the registry first
    (unknown model, hook or probe set, a layer or neuron out of range → 422 naming the field, e.g.
    `pins.0.neuron`). The pinned layers' scan runs first when it is not stored (a stored one is reused).
    The check id is a hash of the canonical resolved check, so a repeat joins the check in flight or
    answers the finished one. Poll `GET /v1/checks/{check_id}`. `"dry_run": true` answers 200 with the
    estimate and enqueues nothing; a `budget` (openai simulator only) stops the re-scoring, and the pins
    not scored fail."""
    resolved = resolve_check(registry, data, settings)
    if data.dry_run:
        return Response(estimate_check(resolved, reports.store), status_code=200)
    key = calling_key(request)
    limits: RateLimits = request.app.state.rate_limits
    admit = None if key is None else partial(limits.admit, key, check_calls(resolved))
    check_id = submit_check(redis_client, queues, settings, resolved, current_request_id(), admit)
    status_url = f"/v1/checks/{check_id}"
    accepted = CheckAccepted(check_id=check_id, status_url=status_url)
    return Response(accepted, status_code=202, headers={"Location": status_url})


@get(
    "/v1/checks/{check_id:str}",
    operation_id="getCheck",
    operation_class=DocumentedOperation,
    summary="Get a check's status and results",
    tags=["checks"],
    sync_to_thread=True,
    responses=problem_specs(400, 404, 422, 503),
)
def get_check(
    check_id: CheckId,
    redis_client: NamedDependency[redis.Redis],
    reports: NamedDependency[ReportReader],
) -> CheckStatus:
    """Status of a check: `queued`, `scanning` (its layers' scan runs), `checking`, `finished` (with
    `passed`, and per pin `passed`, `score`, `score_drop`, `neuron_type` and the `failures` that say why)
    or `failed` (an error that says why: the check could not run, which is not a failed pin)."""
    status = check_status(redis_client, reports.redis_keys, check_id)
    if status is None:
        raise NotFound(f"check '{check_id}' not found: no such check, or its result expired")
    return status
