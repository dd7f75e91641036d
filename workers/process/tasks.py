"""Thin RQ entry points, enqueued by dotted path (``contract.SCAN_TASK``, ``contract.SCAN_SHARD_TASK``,
``contract.MERGE_SCAN_TASK``, ``contract.EXPLAIN_TASK``, ``contract.CHECK_TASK``).

Each takes its typed payload (``contract.ScanJobPayload`` …, as the JSON dump of its one ``payload``
keyword argument), parses it once into a resolved job against the process's WorkerRuntime
(workers/process/payloads.py), calls one domain function (workers/process/scan_job.py or explain_job.py)
and returns its typed result's JSON dump (``contract.ScanJobResult`` …). Progress and failures go to the
job's typed metadata (workers/process/progress.py), counters to the worker metrics
(workers/process/counters.py), reports to the artifact store with their index in Redis
(workers/process/report_writer.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rq.job import Job

from service.contract import (
    EXPLAIN_QUEUE,
    SCAN_QUEUE,
    CheckJobPayload,
    CheckJobResult,
    ExplainJobPayload,
    ExplainJobResult,
    LayerScanResult,
    MergeScanJobPayload,
    MergeScanJobResult,
    ScanJobPayload,
    ScanJobResult,
    ScanShardJobPayload,
    ScanShardJobResult,
    ScanState,
)
from workers.llm.errors import LLMEndpointError
from workers.llm.usage import BudgetExhausted, UsageMeter, metering
from workers.process.counters import record_llm_error, record_scan
from workers.process.payloads import (
    ExplainJob,
    parse_check_job,
    parse_explain_job,
    parse_scan_job,
    read_payload,
)
from workers.process.progress import JobProgress, job_run
from workers.process.report_writer import missing_reports, store_report
from workers.process.request_budget import BudgetSpec, RedisBudget
from workers.process.runtime import WorkerRuntime, current_runtime

if TYPE_CHECKING:
    from workers.scan.run import ScanInfo  # torch comes with the scan, after the cheap checks

JSON = dict[str, Any]


def _layer_results(
    job: Job, runtime: WorkerRuntime, infos: Mapping[int, ScanInfo]
) -> dict[int, LayerScanResult]:
    """Each scanned layer's result; the scans that ran (not reused) are counted in the worker metrics."""
    for info in infos.values():
        if not info.reused:
            record_scan(job.connection, runtime.config.redis_keys, info)
    return {
        layer: LayerScanResult(
            scan_id=info.scan_id,
            reused=bool(info.reused),
            seconds=float(info.seconds),
            n_samples=int(info.n_samples),
            n_tokens=int(info.n_tokens),
        )
        for layer, info in sorted(infos.items())
    }


def run_scan_job(*, payload: JSON) -> JSON:
    """Scan the payload's layers of its model at its hook over its probe set (one pass when their recorder
    state fits the scan memory budget), reusing every layer whose artifact already exists. The job's meta
    carries the scan's passes and samples (``JobMeta.scan``) while it runs."""
    with job_run(SCAN_QUEUE) as job:
        runtime = current_runtime()
        scan = parse_scan_job(runtime.registry, read_payload(ScanJobPayload, payload, "scan"))
        from workers.process import scan_job  # torch comes with the job module, after the cheap checks

        progress = JobProgress(job, runtime.config.progress_interval_s)
        progress.update(stage="scanning", force=True)
        infos = scan_job.scan_layers(
            runtime,
            scan.model,
            scan.dataset,
            scan.point,
            scan.layers,
            scan.options,
            progress.update,
            progress.on_scan,
        )
        layers = _layer_results(job, runtime, infos)
        progress.finish_scan(len(scan.layers))
        return ScanJobResult(layers=layers).model_dump(mode="json")


def run_scan_shard_job(*, payload: JSON) -> JSON:
    """Record the payload's shard (0-based, of ``n_shards``) of the probe set for its layers with its
    ``batch_size`` (the API's, the same for every shard and the merge), into shard artifacts; layers
    already scanned or already holding this shard are reused. The job's meta carries the shard's passes
    and samples (``JobMeta.scan``, with ``shards`` and, once done, ``shards_done`` 1)."""
    with job_run(SCAN_QUEUE) as job:
        runtime = current_runtime()
        part = read_payload(ScanShardJobPayload, payload, "scan shard")
        scan = parse_scan_job(runtime.registry, part)
        from workers.process import scan_job  # torch comes with the job module, after the cheap checks

        progress = JobProgress(job, runtime.config.progress_interval_s)
        progress.update(stage="scanning", force=True)
        info = scan_job.scan_layer_shard(
            runtime,
            scan.model,
            scan.dataset,
            scan.point,
            scan.layers,
            scan.options,
            part.shard,
            part.n_shards,
            part.batch_size,
            progress.on_scan,
        )
        progress.finish_scan(len(scan.layers), shards_done=1)
        return ScanShardJobResult(
            shard=part.shard,
            n_shards=part.n_shards,
            batch_size=part.batch_size,
            passes=int(info.passes),
            n_samples=int(info.n_samples),
            seconds=float(info.seconds),
            keys=dict(sorted(info.keys.items())),
        ).model_dump(mode="json")


def _merged_scan_state(job: Job, n_shards: int) -> ScanState:
    """The merged scan's passes and samples, from its shards' results (every pass and shard done; a shard
    whose result is gone counts nothing)."""
    returned = [dep.return_value() for dep in job.fetch_dependencies()]
    results = [ScanShardJobResult.model_validate(value) for value in returned if value is not None]
    passes = max((r.passes for r in results), default=0)
    samples = sum(r.n_samples for r in results)
    return ScanState(
        passes_planned=passes,
        passes_done=passes,
        samples_done=0,
        samples_total=samples,
        shards=n_shards,
        shards_done=n_shards,
    )


def run_merge_scan_job(*, payload: JSON) -> JSON:
    """Merge the ``n_shards`` shards of the scan of the payload's layers (its dependencies) into the layer
    artifacts a one-shard scan writes, byte for byte, and delete the shard artifacts; layers already
    scanned are reused. Its meta's ``JobMeta.scan`` sums the shards' (all passes and shards done)."""
    with job_run(SCAN_QUEUE) as job:
        runtime = current_runtime()
        merge = read_payload(MergeScanJobPayload, payload, "merge scan")
        scan = parse_scan_job(runtime.registry, merge)
        from workers.process import scan_job  # torch comes with the job module, after the cheap checks

        progress = JobProgress(job, runtime.config.progress_interval_s)
        progress.update(stage="scanning", force=True)
        merged = _merged_scan_state(job, merge.n_shards)
        infos = scan_job.merge_layer_shards(
            runtime,
            scan.model,
            scan.dataset,
            scan.point,
            scan.layers,
            scan.options,
            merge.n_shards,
            merge.batch_size,
        )
        layers = _layer_results(job, runtime, infos)
        progress.set_scan(merged)
        progress.finish_scan(len(scan.layers))
        result = MergeScanJobResult(n_shards=merge.n_shards, batch_size=merge.batch_size, layers=layers)
        return result.model_dump(mode="json")


def _explain_missing(
    job: Job,
    runtime: WorkerRuntime,
    explain: ExplainJob,
    budget: BudgetSpec | None,
    progress: JobProgress,
    group: str | None,
) -> tuple[list[int], set[int], UsageMeter]:
    """Write the report of every neuron of ``explain`` without one stored; the neurons that had none, those
    written, and the LLM usage. A refused budget stops it cleanly (``progress.stop_for_budget``), and so
    does a cancelled request (``group``'s `RedisKeys.job_cancel`), after the neuron that finished last."""
    from workers.process import explain_job  # torch comes with the job module, after the cheap checks

    keys = runtime.config.redis_keys
    model, layer, variant = explain.model.id, explain.request.only_layer(), explain.variant
    # A retried job (worker died, timeout) only redoes the neurons without a stored report.
    missing = missing_reports(job.connection, keys, runtime.reports, model, layer, variant, explain.neurons)
    progress.update(stage="explaining", done=len(explain.neurons) - len(missing), force=True)
    if "openai" in (explain.request.explainer, explain.request.simulator):
        # The layer's prompt profile (the dry runs' per-neuron prompt sizes), once per scanned layer, by its
        # first LLM explain job: not in the scan job, which stays a forward pass, nor for the offline
        # baseline (about 1.5 s per 1,536 neurons on one core).
        explain_job.write_prompt_profile(
            runtime, explain.model, explain.dataset, explain.point.id, layer, explain.request.options
        )
    meter = UsageMeter(gate=RedisBudget(job.connection, keys, budget) if budget is not None else None)
    stored: set[int] = set()
    try:
        with metering(meter):
            for report in explain_job.explain_neurons(
                runtime,
                explain.model,
                explain.dataset,
                explain.point,
                explain.request,
                missing,
                variant=variant,
                progress=progress.on_pipeline,
            ):
                key = explain.report_keys[report.neuron]
                store_report(
                    job.connection, keys, runtime.reports, key, variant, report, explain.llm_endpoint
                )
                stored.add(report.neuron)
                progress.update(done=progress.done + 1)
                progress.on_usage(meter.usage())
                if group is not None and job.connection.exists(keys.job_cancel(group)):  # cancelled
                    progress.stop_for_cancel([n for n in missing if n not in stored])
                    break
    except BudgetExhausted:
        progress.stop_for_budget([n for n in missing if n not in stored])
    except LLMEndpointError:
        record_llm_error(job.connection, keys, explain.llm_endpoint or "unknown")
        raise
    finally:
        if meter.calls:
            progress.on_usage(meter.usage(), force=True)
    return missing, stored, meter


def run_explain_job(*, payload: JSON) -> JSON:
    """Write a NeuronReport for every requested neuron (one layer, one chunk of a request) that has none
    stored yet; return all their keys.

    The payload's ``llm_models`` and ``variant`` are what the API resolved (the endpoint's model names and
    the report variant); the worker checks that its own settings and registry agree before it writes
    anything. ``group`` is the id of the request this part belongs to; ``budget`` (None: none) is the
    request's budget, shared by every explain job of the request (keyed on ``group``): when it refuses a
    call the job stops and FINISHES with ``JobMeta.budget_exhausted`` and ``not_done``, every completed
    report kept. ``JobMeta.usage`` carries this job's LLM calls, tokens and cost while it runs."""
    with job_run(EXPLAIN_QUEUE) as job:
        runtime = current_runtime()
        typed = read_payload(ExplainJobPayload, payload, "explain")
        explain = parse_explain_job(runtime.registry, runtime.config.llm, typed)
        budget = BudgetSpec.of(typed.group, typed.budget)
        progress = JobProgress(job, runtime.config.progress_interval_s, total=len(explain.neurons))
        missing, stored, meter = _explain_missing(job, runtime, explain, budget, progress, typed.group)
        progress.update(force=True)
        return ExplainJobResult(
            report_keys=list(explain.report_keys.values()),
            explained=len(stored),
            reused=len(explain.neurons) - len(missing),
            model_revision=explain.model.revision,
            budget_exhausted=progress.meta.budget_exhausted,
            usage=meter.usage(),
        ).model_dump(mode="json")


def run_check_job(*, payload: JSON) -> JSON:
    """Re-score every pin of a check (``contract.CheckJobPayload``) on its model's scanned layers and
    check it; return the ``contract.CheckJobResult`` (per pin pass or fail with the numbers). A
    ``budget`` (keyed on the check id) stops the re-scoring cleanly: the job FINISHES, the pins not
    scored fail. ``JobMeta.done`` counts the pins checked."""
    with job_run(EXPLAIN_QUEUE) as job:
        runtime = current_runtime()
        typed = read_payload(CheckJobPayload, payload, "check")
        check = parse_check_job(runtime.registry, runtime.config.llm, typed)
        from workers.process import check_job  # torch comes with the job module, after the cheap checks

        budget = BudgetSpec.of(typed.check_id, check.request.budget)
        progress = JobProgress(job, runtime.config.progress_interval_s, total=len(check.request.pins))
        progress.update(stage="simulating", force=True)
        keys = runtime.config.redis_keys
        meter = UsageMeter(gate=RedisBudget(job.connection, keys, budget) if budget is not None else None)
        try:
            with metering(meter):
                outcome = check_job.check_pins(runtime, check, lambda done: progress.update(done=done))
        except LLMEndpointError:
            record_llm_error(job.connection, keys, check.request.endpoint or "unknown")
            raise
        progress.on_usage(meter.usage(), force=True)
        return CheckJobResult(
            results=outcome.results,
            model_revision=check.model.revision,
            usage=meter.usage(),
            budget_exhausted=outcome.budget_exhausted,
        ).model_dump(mode="json")
