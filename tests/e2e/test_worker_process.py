"""The worker process on its own: abandoned jobs are retried after SIGKILL, SIGTERM is a warm shutdown.

The workload is the standard library's ``time.sleep``, or a job that blocks until the test releases it
(tests/e2e/jobs.py), enqueued by dotted path, so these tests exercise only the worker's own mechanics
(heartbeats, abandoned-job detection, shutdown) with real processes and a real Redis; tests/e2e/test_stack.py
does the same with real explain jobs.
"""

from __future__ import annotations

import signal
import time
import uuid

import redis
from rq import Queue, Retry, Worker
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer

from tests.e2e.helpers import Processes, process_env, wait_for
from tests.e2e.jobs import release
from workers.process.liveness import ABANDON_AFTER_BEATS

HEARTBEAT_S = 1


def _enqueue_sleep(conn: redis.Redis, seconds: float, retries: int) -> Job:
    queue = Queue("scan", connection=conn, serializer=JSONSerializer)
    return queue.enqueue_call(
        func="time.sleep",
        args=(seconds,),
        timeout=60,
        result_ttl=600,
        retry=Retry(max=retries) if retries else None,
    )


def _status(conn: redis.Redis, job_id: str) -> JobStatus | None:
    return Job.fetch(job_id, connection=conn, serializer=JSONSerializer).get_status(refresh=True)


def test_job_of_a_killed_worker_is_retried_by_another(
    redis_conn: redis.Redis, redis_url: str, processes: Processes
) -> None:
    env = process_env(NEURONLENS_REDIS_URL=redis_url, NEURONLENS_WORKER_HEARTBEAT_S=str(HEARTBEAT_S))
    job = _enqueue_sleep(redis_conn, 4, retries=1)
    first = processes.start_worker(env, "first")
    wait_for(
        lambda: _status(redis_conn, job.id) == JobStatus.STARTED, 30, "the first worker to start the job"
    )
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    # Killed mid-job: the job is still "started", owned by a worker that will never finish it.
    assert _status(redis_conn, job.id) == JobStatus.STARTED
    assert job.id in StartedJobRegistry("scan", connection=redis_conn).get_job_ids(cleanup=False)

    # Past the abandon window before the second worker starts: RQ's own registry cleaning at its start
    # finds the job (under load the heartbeat path might not get there first), and it must log the
    # requeue like the heartbeat path does.
    started = StartedJobRegistry("scan", connection=redis_conn)
    wait_for(lambda: job.id in started.get_expired_job_ids(), 60, "the killed worker's job to be abandoned")
    second = processes.start_worker(env, "second")
    wait_for(lambda: _status(redis_conn, job.id) == JobStatus.FINISHED, 60, "the retried job to finish")
    finished = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer)
    assert finished.retries_left == 0, "the abandoned run should have used the one retry"
    assert finished.worker_name == "second"
    assert "requeueing abandoned jobs" in processes.log(second)
    assert second.poll() is None, "the second worker keeps serving"


def _started_entry(conn: redis.Redis, job_id: str) -> tuple[bytes, float]:
    """The job's one started-registry entry (``job_id:execution_id``) and when it expires (Unix seconds):
    what heartbeats push forward."""
    registry = StartedJobRegistry("scan", connection=conn)
    entries = [
        (member, score)
        for member, score in conn.zrange(registry.key, 0, -1, withscores=True)
        if member.decode().split(":")[0] == job_id
    ]
    assert len(entries) == 1, entries
    return entries[0]


def test_running_job_is_kept_alive_by_heartbeats(
    redis_conn: redis.Redis, redis_url: str, processes: Processes
) -> None:
    """A job that runs until the test releases it, past the abandon window, is kept by heartbeats: its
    started-registry entry is pushed forward while both the runner and a peer clean the registry, and it
    is never retried."""
    env = process_env(NEURONLENS_REDIS_URL=redis_url, NEURONLENS_WORKER_HEARTBEAT_S=str(HEARTBEAT_S))
    key = f"test:release:{uuid.uuid4().hex}"
    queue = Queue("scan", connection=redis_conn, serializer=JSONSerializer)
    job = queue.enqueue_call(
        func="tests.e2e.jobs.block_until_released",
        args=(redis_url, key, 120),
        timeout=180,
        result_ttl=600,
        retry=Retry(max=1),
    )
    processes.start_worker(env, "runner")
    wait_for(lambda: _status(redis_conn, job.id) == JobStatus.STARTED, 30, "the worker to start the job")
    entry, first_deadline = _started_entry(redis_conn, job.id)
    assert first_deadline <= time.time() + ABANDON_AFTER_BEATS * HEARTBEAT_S
    processes.start_worker(env, "peer")  # cleans the started registry every beat
    wait_for(lambda: Worker.find_by_key("rq:worker:peer", connection=redis_conn), 30, "the peer to start")
    # Past the first deadline by two beats, with both workers cleaning: only heartbeats keep the job.
    beyond = first_deadline + 2 * HEARTBEAT_S
    wait_for(lambda: time.time() > beyond, 60, "the first abandon deadline to pass")
    registry_key = StartedJobRegistry("scan", connection=redis_conn).key
    deadline = redis_conn.zscore(registry_key, entry)
    assert deadline is not None and deadline > beyond, "heartbeats must push the same entry's deadline on"
    running = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer)
    assert (running.get_status(), running.worker_name) == (JobStatus.STARTED, "runner")
    assert running.retries_left == 1
    release(redis_conn, key)
    wait_for(lambda: _status(redis_conn, job.id) == JobStatus.FINISHED, 60, "the job to finish")
    finished = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer)
    assert finished.retries_left == 1, "a job with a live worker must never be declared abandoned"
    assert finished.worker_name == "runner" and finished.return_value() == "released"


def test_sigterm_finishes_the_running_job_then_exits(
    redis_conn: redis.Redis, redis_url: str, processes: Processes
) -> None:
    env = process_env(NEURONLENS_REDIS_URL=redis_url, NEURONLENS_WORKER_HEARTBEAT_S=str(HEARTBEAT_S))
    job = _enqueue_sleep(redis_conn, 2, retries=0)
    waiting = _enqueue_sleep(redis_conn, 1, retries=0)
    worker = processes.start_worker(env, "graceful")
    wait_for(lambda: _status(redis_conn, job.id) == JobStatus.STARTED, 30, "the worker to start the job")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=30) == 0, processes.log(worker)
    assert _status(redis_conn, job.id) == JobStatus.FINISHED, "warm shutdown lets the running job finish"
    assert _status(redis_conn, waiting.id) == JobStatus.QUEUED, "and takes no new job"


def test_a_timeout_that_lands_in_a_finalizer_still_ends_the_job(
    redis_conn: redis.Redis, redis_url: str, processes: Processes
) -> None:
    """RQ's job timeout is an alarm that raises in whatever code runs; in a finalizer (garbage collection)
    Python swallows it. The worker's alarm fires again each second until the job ends, so the job still
    fails as timed out instead of running to the end (under load the first alarm can land in a finalizer
    of the scan's own objects)."""
    queue = Queue("scan", connection=redis_conn, serializer=JSONSerializer)
    job = queue.enqueue_call(
        func="tests.e2e.jobs.timeout_inside_a_finalizer", args=(2.0, 6.0), timeout=1, result_ttl=600
    )
    env = process_env(NEURONLENS_REDIS_URL=redis_url, NEURONLENS_WORKER_HEARTBEAT_S=str(HEARTBEAT_S))
    worker = processes.start_worker(env, "timeouts", "--burst")
    worker.wait(timeout=60)
    assert _status(redis_conn, job.id) == JobStatus.FAILED, processes.log(worker)
    result = Job.fetch(job.id, connection=redis_conn, serializer=JSONSerializer).latest_result()
    assert result is not None and "JobTimeoutException" in (result.exc_string or "")
