"""Webhooks of explanation jobs: the queue and task that deliver them, the hook job's id and payload, and
one delivery attempt as a job's status lists it (service/jobs/webhooks.py delivers them)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from service.contract.base import ContractModel

WEBHOOK_QUEUE = "webhooks"
"""Queue of webhook deliveries (no model, no GPU: any worker, or one of its own for prompt delivery)."""

WEBHOOK_TASK = "service.jobs.webhooks.deliver_webhooks"
"""Dotted path of the RQ entry point that delivers a job's webhooks (the API's own code, run by a worker
listening on :data:`WEBHOOK_QUEUE`: the job's state is the API's to derive)."""

WEBHOOK_EVENT_TYPES = ("job.finished", "job.failed", "job.cancelled")
"""Event types a webhook carries: one per terminal state of a job."""


def hook_job_id(job_id: str) -> str:
    """Id of the RQ job that delivers the webhooks of the request ``job_id`` (`exp-…`)."""
    return f"hook-{job_id}"


class WebhookJobPayload(ContractModel):
    """Arguments of a webhook delivery job (:data:`WEBHOOK_TASK`): which request, and where the API that
    enqueued it keeps its records (the delivery settings, secret included, come from the worker's own
    environment, never from Redis)."""

    job_id: str = Field(description="The request (`exp-…`) whose terminal state is delivered.")
    redis_prefix: str = Field(description="The deployment's Redis key prefix.")
    artifact_url: str = Field(description="The artifact store holding the request's durable record.")


class WebhookDelivery(ContractModel):
    """One attempt to deliver a job's webhook to one `callback_url`."""

    event_id: str = Field(
        description="The event's `webhook-id` (the same on every attempt of one event: receivers "
        "deduplicate on it)."
    )
    type: str = Field(description="Event type: `job.finished`, `job.failed` or `job.cancelled`.")
    url: str = Field(description="The callback URL the attempt was sent to.")
    attempt: int = Field(ge=1, description="1 for the first attempt of the event to this URL, then 2, 3 …")
    at: datetime = Field(description="When the attempt was sent (UTC).")
    status_code: int | None = Field(
        default=None, description="The receiver's HTTP status; null when no answer came (see `error`)."
    )
    delivered: bool = Field(description="True when the receiver answered 2xx: no attempt follows.")
    error: str | None = Field(
        default=None,
        description="Why the attempt failed without an answer (connection refused, timeout, a host the "
        "deployment no longer allows); null otherwise.",
    )
    seconds: float = Field(ge=0, description="How long the attempt took, seconds.")
