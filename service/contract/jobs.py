"""The job contract between the API and the workers: queues, task paths, job ids, each task's typed
arguments (its payload) and result, the typed metadata both sides read and write on an RQ job, and how a
failure is recorded (its error type and message, as data).

Nothing here touches Redis or RQ: the API (service/jobs/) builds the payloads and reads the metadata; the
workers (workers/process/tasks.py, workers/process/payloads.py and the worker class) validate the payloads,
return the results and write the metadata. RQ serialises with JSON, so a payload travels as ONE keyword
argument, ``payload=<model>.model_dump(mode="json")``, and a result as its JSON dump.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import pydantic
from pydantic import Field, StrictInt, model_validator

from service.contract.base import ContractModel
from service.contract.report import NeuronReport
from service.contract.requests import MAX_SHARDS, Budget, ExplanationRequest, LLMModels, PipelineOptions
from service.contract.webhooks import WEBHOOK_QUEUE, WebhookDelivery

SCAN_QUEUE = "scan"
"""Queue of scan jobs (GPU workers); each deployment names it with ``RedisKeys.queue``."""

EXPLAIN_QUEUE = "explain"
"""Queue of explain jobs (explainer + simulator, LLM I/O); prefixed like :data:`SCAN_QUEUE`."""

QUEUE_NAMES = (SCAN_QUEUE, EXPLAIN_QUEUE, WEBHOOK_QUEUE)
"""Every queue a worker may listen on, in the default priority order."""

SCAN_TASK = "workers.process.tasks.run_scan_job"
"""Dotted path of the RQ entry point of a scan job (the API enqueues by path, never importing workers)."""

EXPLAIN_TASK = "workers.process.tasks.run_explain_job"
"""Dotted path of the RQ entry point of an explain job."""

SCAN_SHARD_TASK = "workers.process.tasks.run_scan_shard_job"
"""Dotted path of the RQ entry point of one shard of a sharded scan (its part of the probe set)."""

MERGE_SCAN_TASK = "workers.process.tasks.run_merge_scan_job"
"""Dotted path of the RQ entry point that merges a sharded scan's shards into its layer artifacts."""

SCAN_JOB_PREFIX = "scan-"
"""Every scan job id starts with this (then a hash of what determines the scan artifact)."""

EXPLAIN_JOB_PREFIX = "exp-"
"""Every explain job id starts with this (then a hash of the canonical resolved request)."""

EXPLAIN_JOB_ID_PATTERN = r"^exp-[0-9a-f]{24}$"
"""What an explain job id looks like: anything else names no job (a 404)."""

EXPLAIN_PART_PREFIX = "part-"
"""Every explain job of one (layer, neuron chunk) of a request starts with this; the request's own id
(:data:`EXPLAIN_JOB_PREFIX`) names the whole, as clients see it."""

JobState = Literal["queued", "scanning", "explaining", "simulating", "finished", "failed", "cancelled"]
"""Where a job stands, as `GET /v1/jobs/{id}` reports it."""

JobStage = Literal["scanning", "explaining", "simulating"]
"""What a running job is doing, as its worker records it in :attr:`JobMeta.stage`."""


# --------------------------------------------------------------------------- error types

ERROR_INVALID_REQUEST = "InvalidRequest"
"""The job payload failed validation (a client of the queue bypassed the API)."""
ERROR_JOB_TIMEOUT = "JobTimeout"
"""The job ran past its RQ timeout."""
ERROR_WORKER_DIED = "WorkerDied"
"""The worker running the job stopped beating (killed, crashed) and no retries were left."""
WORKER_DIED_MESSAGE = "the worker running this job stopped (killed or crashed) and no retries were left"
"""The message of a :data:`ERROR_WORKER_DIED` error."""
ERROR_JOB_STOPPED = "JobStopped"
"""An operator stopped the running job."""
ERROR_JOB_CANCELED = "JobCanceled"
"""An operator canceled the job before it ran."""
ERROR_JOB_FAILED = "JobFailed"
"""The job failed without recording why (the fallback, never expected)."""
ERROR_SCAN_LOST = "ScanLost"
"""An explain job's scan job is no longer recorded, so nothing will release it."""
ERROR_SCAN_MISSING = "ScanMissing"
"""The explain job found no scan artifact: repeating the request re-runs its scan."""
ERROR_PART_LOST = "JobLost"
"""An explain part of a request is no longer recorded and its reports are not all stored."""


class Progress(ContractModel):
    """How far a job got, in neurons."""

    done: int = Field(ge=0, description="Neurons finished.")
    total: int = Field(ge=0, description="Neurons requested.")


class JobError(ContractModel):
    """Why a job failed, as data: the worker records it; the API shows it."""

    type: str = Field(description="Error class, e.g. `ModelWeightsMissing`, `WorkerDied`, `JobTimeout`.")
    message: str = Field(description="What went wrong, in words; never a traceback.")


class ScanState(ContractModel):
    """Where the scan of a job stands (`scan` of `GET /v1/jobs/{id}`), updated while it runs."""

    passes_planned: int = Field(ge=0, description="Forward passes over the probe set the scan planned.")
    passes_done: int = Field(ge=0, description="Passes finished.")
    samples_done: int = Field(ge=0, description="Samples of the current pass done (restarts with each pass).")
    samples_total: int = Field(ge=0, description="Samples one pass covers.")
    shards: int = Field(default=1, ge=1, description="Shards the probe set was split into (one job each).")
    shards_done: int = Field(default=0, ge=0, description="Shards finished.")


class LLMUsage(ContractModel):
    """LLM requests made and what they cost: per report, per job, and as a dry run's estimate."""

    calls: int = Field(default=0, ge=0, description="LLM requests (retries included).")
    prompt_tokens: int = Field(default=0, ge=0, description="Prompt tokens, as the endpoint reported them.")
    completion_tokens: int = Field(default=0, ge=0, description="Completion tokens, as reported.")
    cost_usd: float | None = Field(
        default=None, ge=0, description="USD at the endpoint's configured prices; null when it has none."
    )
    calls_unanswered: int = Field(
        default=0,
        ge=0,
        description="Of `calls`, those whose answer no worker recorded: in flight while the job runs, or "
        "lost with a worker that died mid-call. Counted when reserved, their cost at the reservation's "
        "estimate (prompt characters ÷ 4, the request's max_tokens); their tokens are unknown.",
    )


class LayerProgress(ContractModel):
    """One layer of a job: its state and how many of its neurons are done."""

    layer: int = Field(ge=0, description="Layer index.")
    status: JobState = Field(description="Where this layer's work stands.")
    done: int = Field(ge=0, description="Neurons of this layer whose report is stored.")
    total: int = Field(ge=0, description="Neurons of this layer requested.")


class LayerNeurons(ContractModel):
    """Neurons of one layer (e.g. those a budget left not done)."""

    layer: int = Field(ge=0, description="Layer index.")
    neurons: list[int] = Field(description="Neuron indices, ascending.")


class JobMeta(ContractModel):
    """What the API and the workers keep in an RQ job's ``meta``: the API writes `scan_job_id`,
    `model_revision` and the initial `total` when it enqueues; the worker writes `stage`, `done`, `total`
    and, on failure, `error`. Stored as its JSON dump without nulls (:meth:`to_meta`)."""

    stage: JobStage | None = Field(default=None, description="What the running job is doing now.")
    done: int = Field(default=0, ge=0, description="Neurons whose report is stored (explain jobs).")
    total: int = Field(default=0, ge=0, description="Neurons the job was asked for (explain jobs).")
    error: JobError | None = Field(default=None, description="Why the last attempt failed; null otherwise.")
    scan_job_id: str | None = Field(default=None, description="Id of the scan job an explain job depends on.")
    model_revision: str | None = Field(
        default=None, description="Weights revision the API resolved for the request."
    )
    request_id: str | None = Field(
        default=None, description="X-Request-ID of the HTTP request that enqueued (or re-ran) the job."
    )
    traceparent: str | None = Field(
        default=None,
        description="W3C trace context (`traceparent`) of the HTTP request that enqueued (or re-ran) the "
        "job, as the API's span saw it: the worker's span of the job is its child.",
    )
    group: str | None = Field(
        default=None,
        description="Id (`exp-…`) of the request an explain part was enqueued for (the whole job clients "
        "see); a part shared by several requests names the first.",
    )
    scan: ScanState | None = Field(
        default=None, description="A scan job's passes and samples, while it runs."
    )
    usage: LLMUsage | None = Field(default=None, description="LLM usage of an explain job so far.")
    budget_exhausted: bool = Field(
        default=False,
        description="The request's budget stopped this explain job before every neuron was done.",
    )
    not_done: list[int] | None = Field(
        default=None, description="Neurons an explain job left without a report because the budget ran out."
    )

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any]) -> JobMeta:
        """The typed view of ``job.meta``; unknown keys (another RQ user's) are ignored, and a meta that
        does not validate reads as empty rather than failing a status request."""
        known = {name: meta[name] for name in cls.model_fields if name in meta}
        try:
            return cls.model_validate(known)
        except pydantic.ValidationError:
            return cls()

    def to_meta(self) -> dict[str, Any]:
        """The dict to put in ``job.meta`` (JSON types; unset fields left out)."""
        return self.model_dump(mode="json", exclude_none=True)


# --------------------------------------------------------------------------- payloads and results

MAX_SCAN_BATCH = 65536
"""Largest scan batch size a sharded scan's payload may name."""


class ScanJobPayload(ContractModel):
    """Arguments of a scan job (:data:`SCAN_TASK`): ``layers`` of ``model`` at ``hook`` over ``dataset``."""

    model: str = Field(description="Model id of the registry.")
    hook: str = Field(description="Hook point the layers are recorded at.")
    units: str | None = Field(
        default=None,
        description="Dictionary id whose latents are recorded (encoded from the hook's activations in the "
        "same pass); null: the hook's neurons.",
    )
    layers: list[StrictInt] = Field(min_length=1, description="Layers to scan, sorted, without repeats.")
    dataset: str = Field(description="Probe set id of the registry.")
    options: PipelineOptions = Field(description="The request's pipeline options.")


class MergeScanJobPayload(ScanJobPayload):
    """Arguments of the merge job of a sharded scan (:data:`MERGE_SCAN_TASK`)."""

    n_shards: StrictInt = Field(ge=1, le=MAX_SHARDS, description="Shards the probe set is split into.")
    batch_size: StrictInt = Field(
        ge=1,
        le=MAX_SCAN_BATCH,
        description="Samples per forward pass: the API's, the same for every shard and the merge (it fixes "
        "the batches the probe set is cut into, so a worker's own setting must not replace it).",
    )


class ScanShardJobPayload(MergeScanJobPayload):
    """Arguments of one shard job of a sharded scan (:data:`SCAN_SHARD_TASK`)."""

    shard: StrictInt = Field(ge=0, description="Which shard, 0-based.")

    @model_validator(mode="after")
    def _shard_in_range(self) -> ScanShardJobPayload:
        if self.shard >= self.n_shards:
            raise ValueError(f"shard must be below n_shards ({self.n_shards}), got {self.shard}")
        return self


class ExplainJobPayload(ContractModel):
    """Arguments of an explain job (:data:`EXPLAIN_TASK`): one layer and one chunk of neurons of a request."""

    request: ExplanationRequest = Field(description="The one-layer request the API resolved.")
    llm_models: LLMModels | None = Field(
        default=None, description="The endpoint's model names the API resolved (the worker must agree)."
    )
    variant: str | None = Field(default=None, description="The report variant the API resolved.")
    group: str | None = Field(default=None, description="Id (`exp-…`) of the request this part belongs to.")
    budget: Budget | None = Field(
        default=None, description="The request's budget, shared by every part of `group`; null: none."
    )
    budget_group: str | None = Field(
        default=None,
        description="Whose counters `budget` draws on when not `group`'s: a comparison's (`cmp-…`), so its "
        "base's explanations and its own calls share one pool; null: `group`.",
    )


class LayerScanResult(ContractModel):
    """One scanned layer of a scan or merge job's result."""

    scan_id: str
    reused: bool = Field(description="The layer's artifact was stored already.")
    seconds: float
    n_samples: int
    n_tokens: int


class ScanJobResult(ContractModel):
    """What a scan job returns."""

    layers: dict[int, LayerScanResult]


class MergeScanJobResult(ScanJobResult):
    """What the merge job of a sharded scan returns."""

    n_shards: int
    batch_size: int


class ScanShardJobResult(ContractModel):
    """What one shard job of a sharded scan returns (its merge reads the passes and samples)."""

    shard: int
    n_shards: int
    batch_size: int
    passes: int
    n_samples: int
    seconds: float
    keys: dict[int, str] = Field(description="Shard artifact key of each layer.")


class ExplainJobResult(ContractModel):
    """What an explain job returns."""

    report_keys: list[str] = Field(description="Artifact-store key of every requested neuron's report.")
    explained: int = Field(description="Reports this run wrote.")
    reused: int = Field(description="Reports stored before this run.")
    model_revision: str
    budget_exhausted: bool
    usage: LLMUsage


# --------------------------------------------------------------------------- status


class JobStatus(ContractModel):
    """`GET /v1/jobs/{job_id}`."""

    job_id: str = Field(description="Job id.")
    status: JobState = Field(description="Current stage.")
    progress: Progress = Field(description="Neurons done out of requested.")
    queue_position: int | None = Field(
        default=None, description="0-based position in its queue while queued; null otherwise."
    )
    workers: int | None = Field(
        default=None,
        ge=0,
        description="Workers listening on the queues this job still needs (its scan's while it waits for "
        "the scan, and its own): 0 means it cannot progress until a worker starts. Null once finished or "
        "failed.",
    )
    created_at: datetime | None = Field(default=None, description="When the job was enqueued (UTC).")
    started_at: datetime | None = Field(default=None, description="When a worker started it (UTC).")
    ended_at: datetime | None = Field(default=None, description="When it finished or failed (UTC).")
    error: JobError | None = Field(default=None, description="Why it failed; only when status is `failed`.")
    reports: list[NeuronReport] | None = Field(
        default=None, description="The reports (a page of them, see `reports_total`) once finished."
    )
    reports_total: int | None = Field(
        default=None, description="Number of reports the finished job produced."
    )
    scan: ScanState | None = Field(
        default=None,
        description="The scan's passes and samples (planned, done) while it runs or once it ran; null when "
        "every layer's scan was already stored.",
    )
    layers: list[LayerProgress] | None = Field(
        default=None, description="Per-layer state and progress (one entry per requested layer)."
    )
    usage: LLMUsage | None = Field(default=None, description="LLM calls, tokens and cost spent so far.")
    budget_exhausted: bool = Field(
        default=False,
        description="True when the request's budget stopped the job: it is `finished`, the reports done "
        "are kept, and `not_done` lists the rest.",
    )
    not_done: list[LayerNeurons] | None = Field(
        default=None, description="Neurons left without a report because the budget ran out."
    )
    webhooks: list[WebhookDelivery] | None = Field(
        default=None,
        description="Delivery attempts of the job's webhooks to its `callback_url`s, oldest first (the "
        "last 100); null when the request named no `callback_url`.",
    )

    def progress_counts(self) -> tuple[int, int, str]:
        """(done, total, unit): samples scanned over every planned pass while the scan runs (unit
        ``samples, pass i/n``), neurons done otherwise (unit ``neurons``)."""
        scan = self.scan
        if self.status == "scanning" and scan is not None and scan.samples_total:
            total = scan.passes_planned * scan.samples_total
            done = min(total, scan.passes_done * scan.samples_total + scan.samples_done)
            current = min(scan.passes_done + 1, scan.passes_planned)
            return done, total, f"samples, pass {current}/{scan.passes_planned}"
        return self.progress.done, self.progress.total, "neurons"

    def __str__(self) -> str:
        """One short line (``exp-… scanning 832/4096 samples, pass 1/1``), so ``progress=print`` prints a
        line per update rather than the whole status with its reports."""
        done, total, unit = self.progress_counts()
        line = f"{self.job_id} {self.status} {done}/{total} {unit}"
        if self.queue_position is not None:
            line += f", queue position {self.queue_position}"
        if self.error is not None:
            line += f": {self.error.type}: {self.error.message}"
        return line
