"""`DELETE /v1/jobs/{job_id}`: cancel an explanation job.

Its queued and waiting parts are cancelled in RQ (taken off their queues, never run); its running parts
are told to stop (`RedisKeys.job_cancel`, read by the explain task after each stored report) and end
after their current neuron with the rest listed in `not_done`; every stored report is kept. The record
notes when (`cancelled_at`) and the job reads `cancelled` from then on. Posting the request again runs
what is left under the same id (service/jobs/submit.py clears the stop). A job already over (finished,
failed or cancelled) is left as it is.
"""

from __future__ import annotations

from dataclasses import replace

import redis
from rq.job import JobStatus as RqStatus

from service.contract import JobStatus, RedisKeys
from service.contract.objects import ObjectStore
from service.jobs.record import now, read_record, write_record
from service.jobs.rq_jobs import enqueue_lock, fetch_jobs
from service.jobs.state import FINAL, job_status

WAITING = frozenset({RqStatus.QUEUED, RqStatus.DEFERRED, RqStatus.SCHEDULED, RqStatus.CREATED})
"""RQ statuses of a part that has not started: it is cancelled in RQ."""


def cancel_job(
    connection: redis.Redis, keys: RedisKeys, store: ObjectStore, job_id: str, owner: str | None = None
) -> JobStatus | None:
    """Cancel the request ``job_id`` (module docstring); its status after; None when there is no such job,
    or ``owner`` (an API key without `admin`) did not post it."""
    with enqueue_lock(connection, keys, job_id):
        record = read_record(connection, keys, job_id, store)
        current = job_status(connection, keys, store, job_id, limit=0) if record is not None else None
        if record is None or current is None or (owner is not None and owner not in record.owners):
            return None
        if current.status in FINAL:
            return current
        connection.set(keys.job_cancel(job_id), 1, ex=record.ttl_s)
        enqueued = [part.id for part in record.parts if part.enqueued]
        for job in fetch_jobs(connection, enqueued):
            if job is not None and job.get_status(refresh=False) in WAITING:
                job.cancel()
        write_record(connection, keys, replace(record, cancelled_at=now()), store)
    return job_status(connection, keys, store, job_id, limit=0)
