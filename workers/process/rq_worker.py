"""The NeuronLens RQ worker class, run by ``neuronlens-worker`` (workers/process/worker.py).

An RQ ``SimpleWorker`` runs every job in this process, so a model loaded by one job stays loaded for the
next and nothing forks after CUDA is initialised. RQ's SimpleWorker has no monitor process, so nothing
refreshes a running job's heartbeat and its entry in the started registry lives for the whole job timeout
plus a minute: a worker killed mid-job would hold its job for up to an hour. This worker instead

- keeps the job's started-registry entry (and the worker key) only ``ABANDON_AFTER_BEATS`` heartbeats
  long, and refreshes it every ``settings.worker_heartbeat_s`` from a background thread while the job runs;
- cleans the started registries of its queues from that same thread every heartbeat, so a job whose
  worker stopped beating (SIGKILL, OOM kill, lost node) is found within a few heartbeats by any live
  worker — busy or idle — and RQ's ``StartedJobRegistry.cleanup`` re-enqueues it while it has retries left
  (jobs are enqueued with ``Retry(max=settings.job_retries)``).

Redis outages are ridden out: wherever RQ's work loop would give up on a ``ConnectionError`` or
``TimeoutError`` (RQ itself only retries while dequeueing), the worker logs it and waits for Redis with a
backoff (1 s doubling to ``REDIS_WAIT_MAX_S``), registers itself again if its key was lost, and goes on.
A job whose end could not be recorded stays in the started registry without beats, so the abandoned-job
path above retries it.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import redis
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.registry import StartedJobRegistry
from rq.serializers import JSONSerializer
from rq.timeouts import UnixSignalDeathPenalty

from service.contract import WEIGHTS_REPUBLISH_S
from workers.models.availability import publish_weights
from workers.process.hooks import release_hooks
from workers.process.liveness import ABANDON_AFTER_BEATS
from workers.process.progress import record_failure
from workers.process.runtime import WorkerRuntime, runtime_in_use

REDIS_WAIT_MAX_S = 5.0
"""Longest wait between two tries to reach Redis again during an outage, seconds: a worker goes on at most
this long after Redis is back (at 30 s, a 20 s outage held workers 11 s more); a PING this often is free."""

PUBSUB_POLL_S = 1.0
"""Longest wait of the worker's command-channel thread for a message, seconds: also how long stopping the
thread can take (RQ polls every 60 s, and redis-py 8 joins the thread on stop, so each teardown took 60 s)."""

REDIS_OUTAGE = (redis.ConnectionError, redis.TimeoutError)
"""Errors that mean Redis is (for now) unreachable; BusyLoadingError (loading its AOF) is one of them."""

log = logging.getLogger("neuronlens.worker")

_T = TypeVar("_T")


TIMEOUT_REPEAT_S = 1
"""Seconds between the alarms of a job past its timeout, after the first (see :class:`PersistentTimeout`)."""


class PersistentTimeout(UnixSignalDeathPenalty):
    """RQ's job timeout (an alarm that raises in the running code), repeated every ``TIMEOUT_REPEAT_S``
    until the job ends: an alarm that lands in a finalizer (garbage collection of the scan's objects, say)
    is swallowed by Python, and a single alarm would then let the job run to its end."""

    def handle_death_penalty(self, signum: int, frame: object) -> None:
        signal.alarm(TIMEOUT_REPEAT_S)  # cancelled with the penalty when the job ends, however it ends
        super().handle_death_penalty(signum, frame)


class NeuronLensWorker(SimpleWorker):
    """A SimpleWorker whose running job is kept alive by heartbeats and whose dead peers are noticed fast.

    ``heartbeat_s`` is the beat period in seconds; a job is abandoned after ``ABANDON_AFTER_BEATS`` missed
    beats. The beat thread starts in :meth:`work` and stops when the work loop ends.
    """

    death_penalty_class = PersistentTimeout

    def __init__(
        self,
        queues: Sequence[Queue],
        *,
        connection: redis.Redis,
        heartbeat_s: int,
        runtime: WorkerRuntime,
        **kwargs: object,
    ):
        super().__init__(
            queues,
            connection=connection,
            serializer=JSONSerializer,
            job_monitoring_interval=heartbeat_s,
            maintenance_interval=heartbeat_s,
            exception_handlers=[record_failure],
            **kwargs,  # type: ignore[arg-type]
        )
        self.heartbeat_s = heartbeat_s
        self.runtime = runtime
        """What every job this worker runs shares (tasks reach it through ``current_runtime()``)."""
        # The beat thread and the work loop share the running job; the lock makes sure no beat lands
        # after the job's execution record was removed (a late beat would re-create it).
        self._beat_lock = threading.Lock()
        self._beat_job: Job | None = None
        self._beats_stopped = threading.Event()
        self._beat_thread: threading.Thread | None = None
        self._weights_published_at = 0.0

    @property
    def abandon_after_s(self) -> int:
        """Seconds without a heartbeat after which this worker's running job counts as abandoned."""
        return ABANDON_AFTER_BEATS * self.heartbeat_s

    def subscribe(self) -> None:
        self.pubsub = self.connection.pubsub()
        self.pubsub.subscribe(**{self.pubsub_channel_name: self.handle_payload})
        self.pubsub_thread = self.pubsub.run_in_thread(  # type: ignore[assignment]
            sleep_time=PUBSUB_POLL_S, daemon=True, exception_handler=self._pubsub_exception_handler
        )

    def get_heartbeat_ttl(self, job: Job) -> int:
        # RQ's SimpleWorker uses job.timeout + 60 s here; the beat thread refreshes it, so it can be short.
        return self.abandon_after_s

    def execute_job(self, job: Job, queue: Queue) -> None:
        with self._beat_lock:
            self._beat_job = job
        try:
            with runtime_in_use(self.runtime):
                super().execute_job(job, queue)
        except REDIS_OUTAGE as exc:
            # The job's outcome could not be recorded: its started-registry entry stops beating, so the
            # abandoned-job path retries it once Redis is back.
            self._wait_for_redis(f"job {job.id}", exc)
        finally:
            with self._beat_lock:
                self._beat_job = None

    # RQ's work loop quits on a Redis error anywhere but in its dequeue; these ride the outage out.

    def check_for_suspension(self, burst: bool) -> None:
        self._riding_out("the suspension check", super().check_for_suspension, burst)

    def run_maintenance_tasks(self) -> None:
        self._riding_out("maintenance", super().run_maintenance_tasks)

    def clean_registries(self) -> None:
        """RQ's own registry cleaning (at start and every maintenance interval) requeues abandoned jobs
        through :meth:`requeue_abandoned_jobs` first, so every requeue is logged, whichever path finds it."""
        self.requeue_abandoned_jobs()
        super().clean_registries()

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:
        if pipeline is not None:  # queued on a pipeline: nothing is sent here
            super().heartbeat(timeout, pipeline)
            return
        self._riding_out("a heartbeat", super().heartbeat, timeout)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        while True:
            try:
                return super().dequeue_job_and_maintain_ttl(timeout, max_idle_time)
            except REDIS_OUTAGE as exc:
                self._wait_for_redis("dequeueing", exc)
                if self._stop_requested:
                    return None

    def teardown(self) -> None:
        try:
            super().teardown()
        except REDIS_OUTAGE as exc:
            log.warning("could not record this worker's exit in Redis: %s", exc)

    def _riding_out(self, what: str, call: Callable[..., _T], *args: Any) -> _T | None:
        try:
            return call(*args)
        except REDIS_OUTAGE as exc:
            self._wait_for_redis(what, exc)
            return None

    def _wait_for_redis(self, what: str, exc: Exception) -> None:
        """Log the outage and wait (backoff) until Redis answers a PING, or a stop is requested."""
        log.warning("Redis unreachable during %s (%s: %s); waiting for it", what, type(exc).__name__, exc)
        wait_s, started = 1.0, time.monotonic()
        while not self._stop_requested:
            time.sleep(wait_s)
            try:
                self.connection.ping()
                if not self.connection.exists(self.key):
                    self.register_birth()  # the outage outlived this worker's key (or lost it)
            except REDIS_OUTAGE as again:
                wait_s = min(wait_s * 2, REDIS_WAIT_MAX_S)
                log.warning("Redis still unreachable (%s); next try in %gs", again, wait_s)
                continue
            log.warning("Redis reachable again after %.1fs; going on", time.monotonic() - started)
            return

    def handle_job_failure(self, job: Job, queue: Queue, *args: Any, **kwargs: Any) -> None:
        """RQ's failure handling, then the webhooks of requests a failed scan leaves waiting
        (workers/process/hooks.py)."""
        super().handle_job_failure(job, queue, *args, **kwargs)
        release_hooks(job)

    def cleanup_execution(self, job: Job, pipeline: redis.client.Pipeline) -> None:
        with self._beat_lock:
            self._beat_job = None
        super().cleanup_execution(job, pipeline)

    def work(self, *args: object, **kwargs: object) -> bool:  # type: ignore[override]
        self.publish_weights()
        self._start_beats()
        try:
            return super().work(*args, **kwargs)  # type: ignore[arg-type]
        finally:
            self._beats_stopped.set()
            if self._beat_thread is not None:
                self._beat_thread.join(timeout=self.heartbeat_s + 5)

    def _start_beats(self) -> None:
        self._beats_stopped.clear()
        self._beat_thread = threading.Thread(target=self._beat_loop, name="neuronlens-heartbeat", daemon=True)
        self._beat_thread.start()

    def publish_weights(self) -> None:
        """Tell the API which registered models' weights this host has (the home page marks the others);
        a Redis outage only postpones it to the next round."""
        try:
            publish_weights(self.connection, self.runtime.config.redis_keys, self.runtime.registry.models)
        except REDIS_OUTAGE as exc:
            log.warning("could not publish the weights check: %s", exc)
        self._weights_published_at = time.monotonic()

    def _beat_loop(self) -> None:
        while not self._beats_stopped.wait(self.heartbeat_s):
            try:
                if time.monotonic() - self._weights_published_at >= WEIGHTS_REPUBLISH_S:
                    self.publish_weights()
                self.beat_running_job()
                self.requeue_abandoned_jobs()
            except redis.RedisError as exc:
                # Redis may be restarting; the next beat tries again, and the work loop reports the outage.
                log.warning("heartbeat failed: %s", exc)

    def beat_running_job(self) -> None:
        """Refresh the running job's started-registry entry, execution record and the worker key.

        An idle worker refreshes its worker key alone: RQ beats only between blocking dequeues (every
        ``worker_ttl - 15`` s, minutes), and ``--check`` (the liveness probe) reads ``last_heartbeat``.
        """
        with self._beat_lock:
            job = self._beat_job
            if job is not None and self.execution is not None:
                self.maintain_heartbeats(job)
            elif self.birth_date is not None and not self._stop_requested:
                # birth_date: registered (a beat before register_birth would make it refuse our name).
                self.heartbeat()

    def requeue_abandoned_jobs(self) -> int:
        """Clean the started registry of each queue; RQ retries (or fails) the jobs whose beats stopped.

        RQ's maintenance lock keeps two workers from cleaning one queue at once, so an abandoned job is
        re-enqueued once. Returns the number of abandoned jobs found.
        """
        found = 0
        for queue in self.queues:
            registry = StartedJobRegistry(
                queue.name, connection=self.connection, job_class=self.job_class, serializer=self.serializer
            )
            if not registry.get_expired_job_ids():
                continue
            if not queue.acquire_maintenance_lock():
                continue
            try:
                expired = registry.get_expired_job_ids()
                if expired:
                    log.warning("queue %s: requeueing abandoned jobs %s", queue.name, ", ".join(expired))
                    registry.cleanup(exception_handlers=self._exc_handlers)
                    found += len(expired)
            finally:
                queue.release_maintenance_lock()
        return found
