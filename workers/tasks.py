"""Thin RQ entry points, enqueued by dotted path: ``workers.tasks.scan_layer``, ``…explain_neurons``.

Each validates its JSON payload with the contract models, loads settings and the registry, calls the
worker domain (workers/pipeline.py), reports progress in the job's ``JobMeta`` (stage, done, total) and
returns JSON. A failure records a ``JobError{type, message}`` there (what the API shows) and re-raises
the named error; errors that a retry cannot fix (unknown model, missing weights, bad payload) use up the job's
retries so RQ does not run it again.

Worker-side metrics go to the Redis hash ``contract.METRICS_KEY``, one field per series, named by
``contract.series_name`` (``jobs_total{outcome=finished,queue=explain}``); the API exports them at /metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import pydantic
import redis
from rq import get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException

from service.contract import (
    DURATION_BUCKETS_S,
    ERROR_INVALID_REQUEST,
    ERROR_JOB_TIMEOUT,
    EXPLAIN_QUEUE,
    METRICS_KEY,
    SCAN_QUEUE,
    DatasetSpec,
    ExplanationRequest,
    JobError,
    JobMeta,
    JobStage,
    LLMModels,
    ModelSpec,
    NeuronReport,
    PipelineOptions,
    Registry,
    load_registry,
    report_key,
    report_variant,
    series_name,
)
from service.settings import Settings, load_settings
from workers.errors import (
    ArtifactCorrupt,
    DatasetUnavailable,
    InvalidRequest,
    ModelWeightsMissing,
    ScanMissing,
    UnknownBackend,
    UnknownModel,
)
from workers.llm.endpoints import resolve_endpoint
from workers.llm.errors import LLMEndpointError, LLMError

log = logging.getLogger("neuronlens.tasks")

META_SAVE_INTERVAL_S = 0.25
"""Least seconds between two progress writes to job.meta (at most 4 writes a second)."""

PERMANENT_ERRORS: tuple[type[Exception], ...] = (
    InvalidRequest,
    UnknownModel,
    ModelWeightsMissing,
    DatasetUnavailable,
    UnknownBackend,
    ScanMissing,
    ArtifactCorrupt,
    LLMError,
)
"""Errors a retry of the same job cannot fix: the job fails at once instead of being retried. LLM errors
are among them: the LLM caller already retried every call (LLMEndpointError names the endpoint and its
last answer), and an unknown endpoint or unusable replies stay so; repeating the request re-runs the job."""


# --------------------------------------------------------------------------- job bookkeeping


class JobProgress:
    """Writes (stage, done, total) into the running job's JobMeta, throttled; a no-op outside RQ."""

    def __init__(self, job: Job | None, total: int = 0) -> None:
        self.job = job
        self.meta = JobMeta.from_meta(job.meta) if job is not None else JobMeta()
        self.meta.total = total
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
        if self.job is None or not (force or changed_stage or now - self._saved_at >= META_SAVE_INTERVAL_S):
            return
        self.job.meta = self.meta.to_meta()
        self.job.save_meta()
        self._saved_at = now

    def on_pipeline(self, stage: JobStage, done: int, total: int) -> None:
        """The pipeline's ProgressFn; only the stage is taken (done counts stored reports)."""
        self.update(stage=stage)


def _connection(job: Job | None, settings: Settings) -> redis.Redis:
    if job is not None:
        return job.connection
    if not settings.redis_url:
        raise InvalidRequest("no Redis to store reports in: set NEURONLENS_REDIS_URL")
    return redis.Redis.from_url(settings.redis_url)


def _observe(pipe: redis.client.Pipeline, name: str, labels: Mapping[str, str], seconds: float) -> None:
    """Count one duration into the histogram ``name``: its sum, count and cumulative buckets."""
    pipe.hincrbyfloat(METRICS_KEY, series_name(name + "_sum", labels), seconds)
    pipe.hincrby(METRICS_KEY, series_name(name + "_count", labels), 1)
    for bound in DURATION_BUCKETS_S:
        if seconds <= bound:
            pipe.hincrby(METRICS_KEY, series_name(name + "_bucket", {**labels, "le": repr(bound)}), 1)
    pipe.hincrby(METRICS_KEY, series_name(name + "_bucket", {**labels, "le": "+Inf"}), 1)


def _describe(exc: BaseException) -> JobError:
    if isinstance(exc, JobTimeoutException):
        return JobError(type=ERROR_JOB_TIMEOUT, message=f"the job ran past its timeout: {exc}")
    if isinstance(exc, pydantic.ValidationError):
        return JobError(type=ERROR_INVALID_REQUEST, message=f"invalid job payload: {exc.errors()[0]['msg']}")
    return JobError(type=type(exc).__name__, message=str(exc) or type(exc).__name__)


@contextmanager
def _job_run(queue: str) -> Iterator[Job | None]:
    """Around a task body: clear a previous attempt's error, time the job, record outcome and failure."""
    job = get_current_job()
    if job is not None and JobMeta.from_meta(job.meta).error is not None:
        job.meta = JobMeta.from_meta(job.meta).model_copy(update={"error": None}).to_meta()
        job.save_meta()
    started = time.monotonic()
    outcome = "failed"
    try:
        yield job
        outcome = "finished"
    except BaseException as exc:
        error = _describe(exc)
        log.warning("%s job %s failed: %s: %s", queue, job.id if job else "-", error.type, error.message)
        if job is not None:
            job.meta = JobMeta.from_meta(job.meta).model_copy(update={"error": error}).to_meta()
            job.save_meta()
            if isinstance(exc, (*PERMANENT_ERRORS, pydantic.ValidationError)):
                job.retries_left = 0  # RQ reads this right after the task raises
        raise
    finally:
        if job is not None:
            _record_job(job.connection, queue, outcome, time.monotonic() - started)


def _record_job(connection: redis.Redis, queue: str, outcome: str, seconds: float) -> None:
    labels = {"queue": queue}
    try:
        with connection.pipeline(transaction=False) as pipe:
            pipe.hincrby(METRICS_KEY, series_name("jobs_total", {**labels, "outcome": outcome}), 1)
            _observe(pipe, "job_seconds", labels, seconds)
            pipe.execute()
    except redis.RedisError as exc:
        # Metrics must never hide the job's own outcome (or its exception).
        log.warning("could not record job metrics: %s", exc)


# --------------------------------------------------------------------------- lookups


def _lookup(settings: Settings, model_id: str, dataset_id: str) -> tuple[Registry, ModelSpec, DatasetSpec]:
    registry = load_registry(settings.registry_path)
    try:
        model = registry.model(model_id)
    except KeyError:
        served = ", ".join(m.id for m in registry.models)
        raise UnknownModel(f"model '{model_id}' is not in this worker's registry: it has {served}") from None
    try:
        dataset = registry.dataset(dataset_id)
    except KeyError:
        known = ", ".join(d.id for d in registry.datasets)
        raise DatasetUnavailable(
            f"dataset '{dataset_id}' is not in this worker's registry: it has {known}"
        ) from None
    return registry, model, dataset


def _check_layer(model: ModelSpec, layer: int) -> None:
    if not 0 <= layer < model.layers:
        raise InvalidRequest(f"layer {layer} is out of range: {model.id} has layers 0–{model.layers - 1}")


# --------------------------------------------------------------------------- tasks


def scan_layer(*, model: str, hook: str, layer: int, dataset: str, options: dict[str, Any]) -> dict[str, Any]:
    """Scan one layer of ``model`` at ``hook`` over ``dataset`` unless its artifact already exists."""
    with _job_run(SCAN_QUEUE) as job:
        settings = load_settings()
        _, spec, dataset_spec = _lookup(settings, model, dataset)
        _check_layer(spec, layer)
        scan_options = PipelineOptions.model_validate(options)
        from workers import pipeline  # torch comes with the pipeline, after the cheap checks

        progress = JobProgress(job)
        progress.update(stage="scanning", force=True)
        infos = pipeline.scan_layers(
            settings, spec, dataset_spec, hook, [layer], scan_options, progress=progress.update
        )
        info = infos[layer]
        result = {
            "layer": layer,
            "scan_id": info.scan_id,
            "reused": bool(info.reused),
            "seconds": float(info.seconds),
            "n_samples": int(info.n_samples),
            "n_tokens": int(info.n_tokens),
        }
        if job is not None:
            reused = "true" if info.reused else "false"
            with job.connection.pipeline(transaction=False) as pipe:
                pipe.hincrby(METRICS_KEY, series_name("scans_total", {"reused": reused}), 1)
                if not info.reused:
                    _observe(pipe, "stage_seconds", {"stage": "scan"}, info.seconds)
                pipe.execute()
            progress.update(done=1, total=1, force=True)
        return result


def _record_report(pipe: redis.client.Pipeline, report: NeuronReport, endpoint: str | None) -> None:
    pipe.hincrby(METRICS_KEY, "neurons_explained_total", 1)
    for stage, seconds in report.provenance.timings_s.items():
        _observe(pipe, "stage_seconds", {"stage": stage}, seconds)
    if endpoint is None:
        return
    for kind, tokens in report.provenance.llm_tokens.items():
        if tokens:
            pipe.hincrby(
                METRICS_KEY, series_name("llm_tokens_total", {"endpoint": endpoint, "kind": kind}), tokens
            )
    for role, calls in (report.provenance.llm_calls or {}).items():
        if calls:
            pipe.hincrby(
                METRICS_KEY, series_name("llm_calls_total", {"endpoint": endpoint, "role": role}), calls
            )
    failures = _llm_parse_failures(report)
    if failures:
        pipe.hincrby(METRICS_KEY, series_name("llm_parse_failures_total", {"endpoint": endpoint}), failures)


def _llm_parse_failures(report: NeuronReport) -> int:
    """Unparseable LLM simulator replies behind a report: its simulation's and its candidates' scoring."""
    failures = report.simulation.parse_failures if report.simulation.backend == "openai" else 0
    return failures + sum(candidate.parse_failures for candidate in report.explanation.candidates or [])


def _record_llm_error(connection: redis.Redis, endpoint: str) -> None:
    try:
        connection.hincrby(METRICS_KEY, series_name("llm_endpoint_errors_total", {"endpoint": endpoint}), 1)
    except redis.RedisError as exc:
        log.warning("could not record LLM error metrics: %s", exc)


def _llm_models(settings: Settings, request: ExplanationRequest) -> LLMModels | None:
    """This worker's model names for the request's endpoint (UnknownLLMEndpoint when it has no such one)."""
    if "openai" not in (request.explainer, request.simulator):
        return None
    endpoint = resolve_endpoint(settings, request.endpoint)
    return LLMModels(explainer=endpoint.explainer_model, simulator=endpoint.simulator_model)


def _report_keys(
    settings: Settings,
    request: ExplanationRequest,
    model: ModelSpec,
    dataset: DatasetSpec,
    expected: tuple[LLMModels | None, str | None],
) -> dict[int, str]:
    """Report keys under this worker's variant, checked against what the API resolved (``expected``:
    its endpoint model names and variant), so a worker configured unlike the API fails instead of
    storing reports that claim another model or probe set."""
    if None in (request.hook, request.dataset, request.explainer, request.simulator):
        raise InvalidRequest(
            "the explain payload must name its hook, dataset, explainer and simulator (the API resolves them)"
        )
    models = _llm_models(settings, request)
    api_models, api_variant = expected
    if api_models is not None and models != api_models:
        raise InvalidRequest(
            f"LLM endpoint '{request.endpoint}' on this worker uses explainer model "
            f"'{models.explainer if models else None}' and simulator model "
            f"'{models.simulator if models else None}', but the API resolved '{api_models.explainer}' and "
            f"'{api_models.simulator}': give the API and the workers the same NEURONLENS_LLM_* settings"
        )
    variant = report_variant(request, revision=model.revision, dataset=dataset, models=models)
    if api_variant is not None and variant != api_variant:
        raise InvalidRequest(
            f"this worker's registry entry for {model.id} (revision {model.revision}) or probe set "
            f"{dataset.id} (revision {dataset.revision}, {dataset.n_samples} samples) differs from the "
            "API's: give the API and the workers the same registry"
        )
    return {n: report_key(model.id, request.layer, n, variant) for n in request.neuron_list()}


def _missing(connection: redis.Redis, neurons: list[int], keys: dict[int, str]) -> list[int]:
    """The neurons whose report is not stored yet, in order."""
    with connection.pipeline(transaction=False) as pipe:
        for neuron in neurons:
            pipe.exists(keys[neuron])
        present = pipe.execute()
    return [neuron for neuron, stored in zip(neurons, present, strict=True) if not stored]


def explain_neurons(
    *, request: dict[str, Any], llm_models: dict[str, Any] | None = None, variant: str | None = None
) -> dict[str, Any]:
    """Write a NeuronReport for every requested neuron that has none stored yet; return all their keys.

    ``llm_models`` and ``variant`` are what the API resolved (the endpoint's model names and the report
    variant); the worker checks that its own settings and registry agree before it writes anything."""
    with _job_run(EXPLAIN_QUEUE) as job:
        parsed = ExplanationRequest.model_validate(request)
        if parsed.hook is None or parsed.dataset is None:
            raise InvalidRequest("the explain payload must name its hook and dataset (the API resolves them)")
        settings = load_settings()
        _, spec, dataset_spec = _lookup(settings, parsed.model, parsed.dataset)
        _check_layer(spec, parsed.layer)
        connection = _connection(job, settings)
        neurons = parsed.neuron_list()
        expected = LLMModels.model_validate(llm_models) if llm_models is not None else None
        keys = _report_keys(settings, parsed, spec, dataset_spec, (expected, variant))
        # A retried job (worker died, timeout) only redoes the neurons without a stored report.
        missing = _missing(connection, neurons, keys)
        progress = JobProgress(job, total=len(neurons))
        done = len(neurons) - len(missing)
        progress.update(stage="explaining", done=done, force=True)
        if missing:
            done = _explain_missing(connection, settings, spec, dataset_spec, parsed, missing, keys, progress)
        progress.update(done=done, force=True)
        return {
            "report_keys": [keys[n] for n in neurons],
            "explained": len(missing),
            "reused": len(neurons) - len(missing),
            "model_revision": spec.revision,
        }


def _explain_missing(
    connection: redis.Redis,
    settings: Settings,
    spec: ModelSpec,
    dataset_spec: DatasetSpec,
    request: ExplanationRequest,
    missing: list[int],
    keys: dict[int, str],
    progress: JobProgress,
) -> int:
    """Explain and store the missing neurons as they come; return how many reports are stored in all."""
    from workers import pipeline  # torch comes with the pipeline, after the cheap checks

    done = progress.done
    llm_endpoint = request.endpoint if "openai" in (request.explainer, request.simulator) else None
    try:
        for report in pipeline.explain_neurons(
            settings, spec, dataset_spec, request, missing, progress=progress.on_pipeline
        ):
            with connection.pipeline(transaction=False) as pipe:
                pipe.set(keys[report.neuron], report.model_dump_json())
                _record_report(pipe, report, llm_endpoint)
                pipe.execute()
            done += 1
            progress.update(done=done)
    except LLMEndpointError:
        _record_llm_error(connection, llm_endpoint or "unknown")
        raise
    return done
