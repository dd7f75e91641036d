"""Job-state mapping against a real Redis and real RQ jobs (no worker needed): one part's job, and a whole
request derived from its record."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import redis
from rq import Queue
from rq.job import Job
from rq.job import JobStatus as RqStatus
from rq.serializers import JSONSerializer

from service.contract import (
    EXPLAIN_QUEUE,
    EXPLAIN_TASK,
    ExplanationRequest,
    JobError,
    JobMeta,
    LayerNeurons,
    RedisKeys,
)
from service.contract.objects import ObjectStore
from service.jobs.part_state import part_state
from service.jobs.record import JobRecord, Part, write_record
from service.jobs.state import job_status, part_states


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


# --------------------------------------------------------------------------- a request from its record


def _part_job(queue: Queue, part: Part, status: RqStatus, meta: JobMeta) -> None:
    """An explain job of ``part`` in RQ status ``status`` with ``meta``, as a worker would leave it."""
    job = queue.enqueue_call(func=EXPLAIN_TASK, kwargs={}, job_id=part.id, meta=meta.to_meta())
    job.set_status(status)


def test_a_request_stands_where_its_record_and_its_parts_jobs_say(
    redis_conn: redis.Redis, tmp_path: Path
) -> None:
    keys = RedisKeys("state-")
    request = ExplanationRequest(model="minilm-l6", layers=[1, 2], neurons=[0, 1, 2, 3, 4, 5])
    parts = [
        Part("part-stored-1", layer=1, start=0, stop=2, enqueued=False),  # stored when the request came
        Part("part-budget", layer=1, start=2, stop=4, enqueued=True),  # finished, a budget left neuron 3
        Part("part-running", layer=1, start=4, stop=6, enqueued=True),  # simulating, one neuron done
        Part("part-broken", layer=2, start=0, stop=2, enqueued=True),  # failed
        Part("part-lost", layer=2, start=2, stop=4, enqueued=True),  # no job, reports not stored
        Part("part-stored-2", layer=2, start=4, stop=6, enqueued=False),
    ]
    queue = Queue(keys.queue(EXPLAIN_QUEUE), connection=redis_conn, serializer=JSONSerializer)
    _part_job(queue, parts[1], RqStatus.FINISHED, JobMeta(done=1, not_done=[3], budget_exhausted=True))
    _part_job(queue, parts[2], RqStatus.STARTED, JobMeta(stage="simulating", done=1))
    boom = JobError(type="Boom", message="it broke")
    _part_job(queue, parts[3], RqStatus.FAILED, JobMeta(error=boom))
    created = datetime(2024, 1, 2, tzinfo=UTC)
    record = JobRecord("exp-state", request, "v1", None, parts, created, ttl_s=60)
    write_record(redis_conn, keys, record)
    store = ObjectStore(str(tmp_path))

    states = part_states(redis_conn, keys, store, record)
    assert [(s.status, s.done) for s in states] == [
        ("finished", 2),
        ("finished", 1),
        ("simulating", 1),
        ("failed", 0),
        ("failed", 0),
        ("finished", 2),
    ]
    assert states[4].error is not None and states[4].error.type == "JobLost"

    status = job_status(redis_conn, keys, store, "exp-state")
    assert status is not None and status.status == "failed"
    assert status.error == JobError(type="Boom", message="layer 2: it broke")  # the first failed part's
    assert (status.progress.done, status.progress.total) == (6, 12)
    assert status.layers is not None
    assert [(e.layer, e.status, e.done, e.total) for e in status.layers] == [
        (1, "simulating", 4, 6),
        (2, "failed", 2, 6),
    ]
    assert status.budget_exhausted and status.not_done == [LayerNeurons(layer=1, neurons=[3])]
    assert status.created_at == created and status.reports is None and status.workers is None

    # Without the failed and lost parts the request runs: it simulates while every running part does.
    running = JobRecord("exp-state", request, "v1", None, [*parts[:3], parts[5]], created, ttl_s=60)
    write_record(redis_conn, keys, running)
    status = job_status(redis_conn, keys, store, "exp-state")
    assert status is not None and status.status == "simulating" and status.error is None
    assert status.layers is not None and [e.status for e in status.layers] == ["simulating", "finished"]
