"""Operability: a job says when no worker listens on its queues (the CLI's warning on it is tested in
tests/sdk/test_cli_pipeline.py); a retried
(abandoned) job goes back to the FRONT of its queue."""

from __future__ import annotations

import httpx
import redis
from rq import Queue
from rq.job import JobStatus as RqStatus
from rq.serializers import JSONSerializer

from service.contract import SCAN_TASK
from service.jobs.queues import JobQueues
from service.jobs.rq_jobs import retry_policy
from service.settings import Settings
from workers.process.worker import build_worker

REQUEST = {"model": "minilm-l6", "layer": 1, "neurons": [4]}


def test_a_queued_job_counts_the_workers_listening(
    http: httpx.Client, redis_conn: redis.Redis, settings: Settings
) -> None:
    job_id = http.post("/v1/explanations", json=REQUEST).json()["job_id"]
    alone = http.get(f"/v1/jobs/{job_id}").json()
    assert alone["status"] == "queued" and alone["workers"] == 0

    scan_only = build_worker(settings, ["scan"], name="scan-only", connection=redis_conn)
    scan_only.register_birth()
    # It waits for its scan, then needs an explain worker too: none listens there yet.
    assert http.get(f"/v1/jobs/{job_id}").json()["workers"] == 0
    both = build_worker(settings, ["scan", "explain"], name="both", connection=redis_conn)
    both.register_birth()
    listened = http.get(f"/v1/jobs/{job_id}").json()
    assert listened["workers"] == 1


def test_a_retried_job_goes_to_the_front_of_its_queue(redis_conn: redis.Redis, settings: Settings) -> None:
    queue = JobQueues.connect(redis_conn, settings).scan
    first, second = (
        queue.enqueue_call(func=SCAN_TASK, kwargs={}, retry=retry_policy(settings)) for _ in range(2)
    )
    # What RQ's abandoned-job cleanup does with a job whose worker died: take it, then retry it.
    taken = Queue.dequeue_any([queue], None, connection=redis_conn, serializer=JSONSerializer)
    assert taken is not None and taken[0].id == first.id
    third = queue.enqueue_call(func=SCAN_TASK, kwargs={}, retry=retry_policy(settings))
    first.set_status(RqStatus.STARTED)
    with redis_conn.pipeline() as pipe:
        first.retry(queue, pipe)
        pipe.execute()
    assert queue.job_ids == [first.id, second.id, third.id]
