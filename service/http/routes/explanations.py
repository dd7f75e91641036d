"""`POST /v1/explanations`: explain neurons of one or more layers (202 with a job, 200 when all are
stored, or 200 with a cost estimate for a dry run)."""

from __future__ import annotations

from functools import partial
from typing import Any

import redis
from litestar import Request, Response, post
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import JSONBody

from service.access.auth import calling_key
from service.access.ratelimit import RateLimits
from service.contract import CostEstimate, ExplanationAccepted, ExplanationRequest, JobStatus, Registry
from service.estimates.estimate import estimate_calls, estimate_cost
from service.estimates.validate import resolve_request
from service.http.error_responses import problem_specs
from service.http.openapi_docs import DocumentedOperation
from service.http.request_id import current_request_id
from service.jobs.queues import JobQueues
from service.jobs.state import job_status
from service.jobs.submit import submit_explanation
from service.reports.reading import ReportReader
from service.settings import Settings

FIRST_PAGE = 100
"""Reports a 200 answer carries (the default page of `GET /v1/jobs/{id}`)."""


@post(
    "/v1/explanations",
    operation_id="createExplanation",
    operation_class=DocumentedOperation,
    summary="Explain neurons",
    tags=["explanations"],
    status_code=202,
    sync_to_thread=True,
    responses={
        202: ResponseSpec(
            data_container=ExplanationAccepted,
            description="Accepted: poll `status_url` (also in the Location header).",
            generate_examples=False,
        ),
        200: ResponseSpec(
            data_container=JobStatus | CostEstimate,  # type: ignore[arg-type]
            description="Every requested report was already stored: the job's finished status (`JobStatus`) "
            "with the first page of its reports (100, in (layer, neuron) order; `reports_total` counts them "
            'all; page on with `GET /v1/jobs/{job_id}?offset=…&limit=…`). Or, for `"dry_run": true`, the '
            "cost estimate (`CostEstimate`): scan passes and tokens, neurons, LLM calls, prompt and "
            "completion tokens and USD; nothing is enqueued.",
            generate_examples=False,
        ),
        **problem_specs(400, 413, 415, 422, 431, 503),
    },
)
def create_explanation(
    request: Request[Any, Any, Any],
    data: JSONBody[ExplanationRequest],
    redis_client: NamedDependency[redis.Redis],
    queues: NamedDependency[JobQueues],
    registry: NamedDependency[Registry],
    settings: NamedDependency[Settings],
    reports: NamedDependency[ReportReader],
) -> Response[ExplanationAccepted | JobStatus | CostEstimate]:
    """Explain neurons of one or several layers (`layer`, or `layers`: a list or `"all"`; at most
    `NEURONLENS_MAX_NEURONS_PER_REQUEST` neurons per layer). The request is checked against the registry
    first (unknown model, hook or dataset, layer or neuron out of range, too many neurons, an LLM endpoint
    name the deployment does not configure → 422 naming the field) and nothing is enqueued unless it is
    valid. Explainer and simulator default to `openai` when an LLM endpoint is configured, else to the
    offline `baseline`. The job id is a hash of the canonical resolved request (layers, backends,
    endpoint, its model names, k) and the pipeline version, so repeating a request joins the job in
    flight. The layers' scans run as one job (one forward pass); the explain work is split into jobs per
    (layer, neuron chunk) that workers share, and the job id names them all. Answers 202 with the job to
    poll, or 200 with the finished job and the first page of its reports when every one is stored. With
    `"dry_run": true` it answers 200 with the cost estimate and enqueues nothing (no job, no quota spent).
    A `budget` stops the job cleanly when reached (`finished` with `budget_exhausted`); it needs an
    `openai` backend, and `max_cost_usd` needs the endpoint's prices (else 422)."""
    resolved = resolve_request(registry, data, settings.max_neurons_per_request, settings)
    if data.dry_run:
        return Response(estimate_cost(resolved, reports.store, settings), status_code=200)
    key = calling_key(request)
    limits: RateLimits = request.app.state.rate_limits
    admit = (
        None
        if key is None
        else partial(limits.admit, key, estimate_calls(resolved, settings.explain_chunk_neurons))
    )
    submission = submit_explanation(
        redis_client,
        reports.store,
        queues,
        settings,
        resolved,
        current_request_id(),
        admit,
        owner=key.key_id if key is not None else None,
    )
    if submission.stored:
        done = job_status(
            redis_client, settings.redis_keys, reports.store, submission.job_id, limit=FIRST_PAGE
        )
        if done is not None:
            return Response(done, status_code=200)
    status_url = f"/v1/jobs/{submission.job_id}"
    accepted = ExplanationAccepted(job_id=submission.job_id, status_url=status_url)
    return Response(accepted, status_code=202, headers={"Location": status_url})
