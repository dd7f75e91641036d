"""Job-state mapping against a real Redis and real RQ jobs (no worker needed)."""

from __future__ import annotations

import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from service.jobs.part_state import part_state
from service.jobs.record import Part


def _queues(connection: redis.Redis) -> tuple[Queue, Queue]:
    return (
        Queue("scan", connection=connection, serializer=JSONSerializer),
        Queue("explain", connection=connection, serializer=JSONSerializer),
    )


def _deferred_explain_job(connection: redis.Redis) -> tuple[Job, Queue]:
    scan_queue, explain_queue = _queues(connection)
    scan = scan_queue.enqueue_call(func="workers.process.tasks.run_scan_job", kwargs={}, job_id="scan-race")
    explain_queue.enqueue_call(
        func="workers.process.tasks.run_explain_job",
        kwargs={},
        job_id="exp-race",
        depends_on=scan,
        meta={"scan_job_id": scan.id},
    )
    return scan, scan_queue


PART = Part("exp-race", layer=0, start=0, stop=1, enqueued=True)


def test_a_job_released_after_its_status_was_read_is_not_reported_lost(redis_conn: redis.Redis) -> None:
    scan, scan_queue = _deferred_explain_job(redis_conn)
    stale = Job.fetch("exp-race", connection=redis_conn, serializer=JSONSerializer)
    assert stale.get_status(refresh=False) == "deferred"
    # The scan finishes between the API's two reads: RQ moves the dependent to its queue in one MULTI.
    scan_queue.enqueue_dependents(scan)

    state = part_state(redis_conn, PART, stale)

    assert state.status == "queued" and state.error is None
    assert state.queue_position == 0


def test_a_deferred_job_its_scan_no_longer_lists_is_reported_lost(redis_conn: redis.Redis) -> None:
    scan, _ = _deferred_explain_job(redis_conn)
    redis_conn.srem(scan.dependents_key, "exp-race")  # the scan was replaced without its dependents
    job = Job.fetch("exp-race", connection=redis_conn, serializer=JSONSerializer)

    state = part_state(redis_conn, PART, job)

    assert state.status == "failed"
    assert state.error is not None and state.error.type == "ScanLost"
