"""A job's progress and outcome in its RQ metadata (``contract.JobMeta``): stage, done, total, and on
failure a ``JobError{type, message}`` that the API shows (from the task body, or from the worker's RQ
exception handler :func:`record_failure`). Also counts each job's outcome and duration."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import pydantic
from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from service.contract import (
    ERROR_INVALID_REQUEST,
    ERROR_JOB_TIMEOUT,
    ERROR_WORKER_DIED,
    WORKER_DIED_MESSAGE,
    JobError,
    JobMeta,
    JobStage,
    LLMUsage,
    ScanState,
)
from workers.errors import (
    ArtifactCorrupt,
    DatasetUnavailable,
    DeploymentMismatch,
    DeviceUnavailable,
    InvalidRequest,
    ModelWeightsMissing,
    ScanMissing,
    UnknownBackend,
    UnknownModel,
)
from workers.llm.errors import LLMError
from workers.process.counters import record_job
from workers.process.runtime import current_runtime

if TYPE_CHECKING:  # the scan stack (torch) is imported by scan jobs only
    from workers.scan.passes import ScanProgress

log = logging.getLogger("neuronlens.tasks")

PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    InvalidRequest,
    UnknownModel,
    ModelWeightsMissing,
    DatasetUnavailable,
    DeploymentMismatch,
    DeviceUnavailable,
    UnknownBackend,
    ScanMissing,
    ArtifactCorrupt,
    LLMError,
)
"""Errors a retry of the same job cannot fix: the job fails at once instead of being retried. LLM errors
are among them: the LLM caller already retried every call (LLMEndpointError names the endpoint and its
last answer), and an unknown endpoint or unusable replies stay so; repeating the request re-runs the job."""


def _save_meta(job: Job, meta: JobMeta) -> None:
    job.meta = meta.to_meta()
    job.save_meta()


class JobProgress:
    """Writes (stage, done, total) into the running job's JobMeta, at most once every ``interval_s``
    seconds (a new stage and forced updates at once)."""

    def __init__(self, job: Job, interval_s: float, total: int = 0) -> None:
        self.job = job
        self.interval_s = interval_s
        self.meta = JobMeta.from_meta(job.meta).model_copy(update={"total": total})
        self._saved_at = 0.0

    @property
    def done(self) -> int:
        return self.meta.done

    def update(
        self,
        stage: JobStage | None = None,
        done: int | None = None,
        total: int | None = None,
        force: bool = False,
    ) -> None:
        changed_stage = stage is not None and stage != self.meta.stage
        changes = {"stage": stage, "done": done, "total": total}
        self.meta = self.meta.model_copy(update={k: v for k, v in changes.items() if v is not None})
        now = time.monotonic()
        if force or changed_stage or now - self._saved_at >= self.interval_s:
            _save_meta(self.job, self.meta)
            self._saved_at = now

    def on_scan(self, state: ScanProgress) -> None:
        """The scan's PassProgress: passes and samples into ``JobMeta.scan`` (throttled like the rest); a
        shard job keeps the shard counts its meta was enqueued with."""
        previous = self.meta.scan
        shards = {"shards": previous.shards, "shards_done": previous.shards_done} if previous else {}
        # The plan (a pass begun, its sample count) is written at once; samples within a pass throttled.
        new_pass = (
            previous is None or previous.samples_total == 0 or previous.passes_done != state.passes_done
        )
        self.meta = self.meta.model_copy(
            update={
                "scan": ScanState(
                    passes_planned=state.passes_planned,
                    passes_done=state.passes_done,
                    samples_done=state.samples_done,
                    samples_total=state.samples_total,
                    **shards,
                )
            }
        )
        self.update(force=new_pass)

    def set_scan(self, state: ScanState) -> None:
        """Write a whole ScanState (a merge job's, summed over its shards) at once."""
        self.meta = self.meta.model_copy(update={"scan": state})
        self.update(force=True)

    def finish_scan(self, layers: int, shards_done: int | None = None) -> None:
        """Mark a scan job done: every planned pass ran (or nothing needed scanning); a shard job also
        counts itself done (``shards_done``)."""
        scan = self.meta.scan
        if scan is not None:
            update: dict[str, int] = {"passes_done": scan.passes_planned, "samples_done": 0}
            if shards_done is not None:
                update["shards_done"] = shards_done
            scan = scan.model_copy(update=update)
        self.meta = self.meta.model_copy(update={"scan": scan})
        self.update(done=layers, total=layers, force=True)

    def on_usage(self, usage: LLMUsage, force: bool = False) -> None:
        """The LLM usage of an explain job so far into ``JobMeta.usage`` (throttled unless forced)."""
        self.meta = self.meta.model_copy(update={"usage": usage})
        self.update(force=force)

    def stop_for_budget(self, not_done: list[int]) -> None:
        """Mark an explain job that its request's budget stopped: the neurons left without a report."""
        self.meta = self.meta.model_copy(update={"budget_exhausted": True, "not_done": sorted(not_done)})
        self.update(force=True)

    def stop_for_cancel(self, not_done: list[int]) -> None:
        """Mark an explain job that stopped because its request was cancelled: the neurons left without a
        report."""
        self.meta = self.meta.model_copy(update={"not_done": sorted(not_done)})
        self.update(force=True)

    def on_pipeline(self, stage: JobStage, done: int, total: int) -> None:
        """The pipeline's ProgressFn for explain jobs: only the stage is taken (done counts stored
        reports)."""
        self.update(stage=stage)


def describe_failure(exc: BaseException) -> JobError:
    """The JobError a failure records: the named error's class and message, never a traceback."""
    if isinstance(exc, JobTimeoutException):
        return JobError(type=ERROR_JOB_TIMEOUT, message=f"the job ran past its timeout: {exc}")
    if isinstance(exc, pydantic.ValidationError):
        return JobError(type=ERROR_INVALID_REQUEST, message=f"invalid job payload: {exc.errors()[0]['msg']}")
    return JobError(type=type(exc).__name__, message=str(exc) or type(exc).__name__)


@contextmanager
def job_run(queue: str) -> Iterator[Job]:
    """Around a task body: clear a previous attempt's error, time the job, record its outcome and, on
    failure, its JobError (a permanent error also uses up the job's retries)."""
    job = get_current_job()
    if job is None:
        raise RuntimeError(
            "NeuronLens tasks run inside an RQ worker (workers.process.worker), not called directly"
        )
    keys = current_runtime().config.redis_keys
    meta = JobMeta.from_meta(job.meta)
    if meta.error is not None:
        _save_meta(job, meta.model_copy(update={"error": None}))
    started = time.monotonic()
    outcome = "failed"
    try:
        yield job
        outcome = "finished"
    except BaseException as exc:
        error = describe_failure(exc)
        log.warning("%s job %s failed: %s: %s", queue, job.id, error.type, error.message)
        _save_meta(job, JobMeta.from_meta(job.meta).model_copy(update={"error": error}))
        if isinstance(exc, (*PERMANENT_ERRORS, pydantic.ValidationError)):
            job.retries_left = 0  # RQ reads this right after the task raises
        raise
    finally:
        record_job(job.connection, keys, queue, outcome, time.monotonic() - started)


def record_failure(job: Job, exc_type: type[BaseException], exc_value: BaseException, *_: object) -> bool:
    """RQ exception handler: record why a job failed as a JobError in its meta, by exception class, unless
    the task already recorded it. It sees what tasks cannot: RQ's abandoned-job cleanup (a dead worker's
    job), a timeout outside the task body, a task path that does not import. Returns True (fall through)."""
    meta = JobMeta.from_meta(job.get_meta(refresh=True))
    if meta.error is not None:
        return True
    if issubclass(exc_type, AbandonedJobError):
        error = JobError(type=ERROR_WORKER_DIED, message=WORKER_DIED_MESSAGE)
    elif issubclass(exc_type, JobTimeoutException):
        error = JobError(
            type=ERROR_JOB_TIMEOUT, message=f"the job ran longer than its timeout of {job.timeout}s"
        )
    else:
        error = JobError(type=exc_type.__name__, message=str(exc_value) or exc_type.__name__)
    job.meta = meta.model_copy(update={"error": error}).to_meta()
    job.save_meta()
    return True
