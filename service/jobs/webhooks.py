"""Webhooks of explanation jobs: scheduled by the API, delivered by a worker on the `webhooks` queue.

A request posted with a `callback_url` keeps its URLs in its record (`JobRecord.callbacks`). Each
submission that runs something (and each that adds a URL) schedules the request's hook job
(`hook_job_id`): an RQ job on the `webhooks` queue that depends on every part in flight, failures allowed,
so RQ enqueues it when the last part ended, finished or failed, whether or not any client polls. A
request with nothing in flight (every report stored) gets it at once, and so does a cancelled one
(service/jobs/cancel.py); a scan that fails leaves its parts deferred, so the worker releases their
hook jobs itself (workers/process/hooks.py).

The hook job (:func:`deliver_webhooks`, the API's own code run by any worker on that queue) derives the
request's state as `GET /v1/jobs/{id}` does; when it is terminal it sends the event `job.<state>` to each
URL (service/jobs/webhook_send.py: signed, retried with backoff), recording every attempt in the job
record (`JobStatus.webhooks`, durable). An event is identified by the job, its state and when it ended:
a URL that already took it is not sent it again (a hook job run twice, a repeat that adds a URL).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import redis
from rq import Queue
from rq.job import Dependency, get_current_job
from rq.serializers import JSONSerializer

from service.contract import (
    WEBHOOK_QUEUE,
    WEBHOOK_TASK,
    JobStatus,
    WebhookDelivery,
    WebhookJobPayload,
    hook_job_id,
)
from service.contract.objects import ObjectStore
from service.jobs.record import read_record, write_record
from service.jobs.rq_jobs import delete_job, enqueue_lock, fetch_job
from service.jobs.state import FINAL, job_status
from service.jobs.webhook_send import send_event
from service.settings import Settings, load_settings

HOOK_TIMEOUT_S = 600
"""RQ timeout of one hook job, seconds (every URL's attempts and backoff)."""


def schedule_webhooks(
    connection: redis.Redis, settings: Settings, job_id: str, waits_for: Sequence[str]
) -> None:
    """(Re)place the hook job of the request ``job_id``: waiting for the RQ jobs ``waits_for`` to end
    (finished or failed), or enqueued at once when there are none."""
    queue = Queue(settings.redis_keys.queue(WEBHOOK_QUEUE), connection=connection, serializer=JSONSerializer)
    old = fetch_job(connection, hook_job_id(job_id))
    if old is not None:
        delete_job(connection, old)
    payload = WebhookJobPayload(
        job_id=job_id, redis_prefix=settings.redis_prefix, artifact_url=settings.artifact_url
    )
    queue.enqueue_call(
        func=WEBHOOK_TASK,
        kwargs={"payload": payload.model_dump(mode="json")},
        timeout=HOOK_TIMEOUT_S,
        result_ttl=settings.result_ttl_s,
        failure_ttl=settings.failure_ttl_s,
        job_id=hook_job_id(job_id),
        depends_on=Dependency(jobs=list(waits_for), allow_failure=True) if waits_for else None,
        description=f"webhooks of {job_id}",
    )


def event_id(status: JobStatus) -> str:
    """The `webhook-id` of a job's terminal state: the same for every attempt and every URL."""
    ended = status.ended_at.isoformat() if status.ended_at is not None else ""
    return "msg_" + hashlib.sha256(f"{status.job_id}|{status.status}|{ended}".encode()).hexdigest()[:32]


def event_body(status: JobStatus) -> str:
    """The event a webhook carries: its type, when it was made, and the job's status (without reports)."""
    data = status.model_dump(mode="json", exclude={"reports", "workers", "webhooks"}, exclude_none=True)
    made = datetime.now(UTC).isoformat()
    return json.dumps(
        {"type": f"job.{status.status}", "timestamp": made, "data": data}, separators=(",", ":")
    )


def _recorder(connection: redis.Redis, settings: Settings, store: ObjectStore, job_id: str) -> Any:
    keys = settings.redis_keys

    def record(delivery: WebhookDelivery) -> None:
        with enqueue_lock(connection, keys, job_id):
            record = read_record(connection, keys, job_id, store)
            if record is not None:
                write_record(
                    connection, keys, replace(record, deliveries=(*record.deliveries, delivery)), store
                )

    return record


def deliver(connection: redis.Redis, settings: Settings, store: ObjectStore, job_id: str) -> dict[str, int]:
    """Send the request's terminal state to every callback URL that has not taken it yet (module
    docstring); how many URLs took it, and how many did not."""
    keys = settings.redis_keys
    record = read_record(connection, keys, job_id, store)
    status = job_status(connection, keys, store, job_id, limit=0) if record is not None else None
    if record is None or status is None or status.status not in FINAL:
        return {"delivered": 0, "undelivered": 0}
    kind, msg_id, body = f"job.{status.status}", event_id(status), event_body(status)
    record_attempt = _recorder(connection, settings, store, job_id)
    counts = {"delivered": 0, "undelivered": 0}
    for url in record.callbacks:
        before = [d for d in record.deliveries if d.event_id == msg_id and d.url == url]
        if any(d.delivered for d in before):
            continue
        ok = send_event(settings, url, msg_id, kind, body, record_attempt, first_attempt=len(before) + 1)
        counts["delivered" if ok else "undelivered"] += 1
    return counts


def deliver_webhooks(*, payload: dict[str, Any]) -> dict[str, int]:
    """RQ entry point of a hook job (``contract.WEBHOOK_TASK``): deliver the request's webhooks. The
    request's Redis prefix and artifact store come from the payload (the API's), the delivery settings
    (secret, allowed hosts, retries) from this worker's environment."""
    typed = WebhookJobPayload.model_validate(payload)
    job = get_current_job()
    assert job is not None, "deliver_webhooks runs as an RQ job"
    settings = load_settings(redis_prefix=typed.redis_prefix, artifact_url=typed.artifact_url)
    return deliver(job.connection, settings, ObjectStore(typed.artifact_url), typed.job_id)
