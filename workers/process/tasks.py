"""Thin RQ entry points, enqueued by dotted path (``contract.SCAN_TASK``, ``contract.SCAN_SHARD_TASK``,
``contract.MERGE_SCAN_TASK``, ``contract.EXPLAIN_TASK``).

Each parses its JSON payload once into a resolved job against the process's WorkerRuntime
(workers/process/payloads.py), calls one domain function (workers/process/scan_job.py or explain_job.py)
and returns JSON. Progress and failures go to the job's typed metadata (workers/process/progress.py),
counters to the worker metrics (workers/process/counters.py), reports to the artifact store with their
index in Redis (workers/process/report_writer.py).
"""

from __future__ import annotations

from typing import Any

from service.contract import EXPLAIN_QUEUE, SCAN_QUEUE, ScanState
from workers.llm.errors import LLMEndpointError
from workers.llm.usage import BudgetExhausted, UsageMeter, metering
from workers.process.counters import record_llm_error, record_scan
from workers.process.payloads import parse_explain_job, parse_scan_job, parse_scan_part
from workers.process.progress import JobProgress, job_run
from workers.process.report_writer import missing_reports, store_report
from workers.process.request_budget import BudgetSpec, RedisBudget
from workers.process.runtime import current_runtime


def run_scan_job(
    *, model: str, hook: str, layers: list[int], dataset: str, options: dict[str, Any]
) -> dict[str, Any]:
    """Scan ``layers`` of ``model`` at ``hook`` over ``dataset`` (one pass when their recorder state fits
    the scan memory budget), reusing every layer whose artifact already exists. The job's meta carries
    the scan's passes and samples (``JobMeta.scan``) while it runs."""
    with job_run(SCAN_QUEUE) as job:
        runtime = current_runtime()
        scan = parse_scan_job(runtime.registry, model, hook, layers, dataset, options)
        from workers.process import scan_job  # torch comes with the scan, after the cheap checks

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
        for info in infos.values():
            if not info.reused:
                record_scan(job.connection, runtime.config.redis_keys, info)
        progress.finish_scan(len(scan.layers))
        return {
            "layers": {
                str(layer): {
                    "scan_id": info.scan_id,
                    "reused": bool(info.reused),
                    "seconds": float(info.seconds),
                    "n_samples": int(info.n_samples),
                    "n_tokens": int(info.n_tokens),
                }
                for layer, info in sorted(infos.items())
            }
        }


def run_scan_shard_job(
    *,
    model: str,
    hook: str,
    layers: list[int],
    dataset: str,
    options: dict[str, Any],
    shard: int,
    n_shards: int,
    batch_size: int,
) -> dict[str, Any]:
    """Record shard ``shard`` (0-based) of ``n_shards`` of the probe set for ``layers`` with the payload's
    ``batch_size`` (the API's, the same for every shard and the merge), into shard artifacts; layers
    already scanned or already holding this shard are reused. The job's meta carries the shard's passes
    and samples (``JobMeta.scan``, with ``shards`` and, once done, ``shards_done`` 1)."""
    with job_run(SCAN_QUEUE) as job:
        runtime = current_runtime()
        scan = parse_scan_job(runtime.registry, model, hook, layers, dataset, options)
        part = parse_scan_part(shard, n_shards, batch_size)
        from workers.process import scan_job  # torch comes with the scan, after the cheap checks

        progress = JobProgress(job, runtime.config.progress_interval_s)
        progress.update(stage="scanning", force=True)
        info = scan_job.scan_layer_shard(
            runtime,
            scan.model,
            scan.dataset,
            scan.point,
            scan.layers,
            scan.options,
            shard,
            part.n_shards,
            part.batch_size,
            progress.on_scan,
        )
        progress.finish_scan(len(scan.layers), shards_done=1)
        return {
            "shard": part.shard,
            "n_shards": part.n_shards,
            "batch_size": part.batch_size,
            "passes": int(info.passes),
            "n_samples": int(info.n_samples),
            "seconds": float(info.seconds),
            "keys": {str(layer): key for layer, key in sorted(info.keys.items())},
        }


def run_merge_scan_job(
    *,
    model: str,
    hook: str,
    layers: list[int],
    dataset: str,
    options: dict[str, Any],
    n_shards: int,
    batch_size: int,
) -> dict[str, Any]:
    """Merge the ``n_shards`` shards of the scan of ``layers`` (its dependencies) into the layer artifacts
    a one-shard scan writes, byte for byte, and delete the shard artifacts; layers already scanned are
    reused. Its meta's ``JobMeta.scan`` sums the shards' (all passes and shards done)."""
    with job_run(SCAN_QUEUE) as job:
        runtime = current_runtime()
        scan = parse_scan_job(runtime.registry, model, hook, layers, dataset, options)
        part = parse_scan_part(None, n_shards, batch_size, merge=True)
        from workers.process import scan_job  # torch comes with the scan, after the cheap checks

        progress = JobProgress(job, runtime.config.progress_interval_s)
        progress.update(stage="scanning", force=True)
        results = [dep.return_value() or {} for dep in job.fetch_dependencies()]
        passes = max((int(r.get("passes", 0)) for r in results), default=0)
        infos = scan_job.merge_layer_shards(
            runtime,
            scan.model,
            scan.dataset,
            scan.point,
            scan.layers,
            scan.options,
            part.n_shards,
            part.batch_size,
        )
        for info in infos.values():
            if not info.reused:
                record_scan(job.connection, runtime.config.redis_keys, info)
        samples = sum(int(r.get("n_samples", 0)) for r in results)
        progress.set_scan(
            ScanState(
                passes_planned=passes,
                passes_done=passes,
                samples_done=0,
                samples_total=samples,
                shards=part.n_shards,
                shards_done=part.n_shards,
            )
        )
        progress.finish_scan(len(scan.layers))
        return {
            "n_shards": part.n_shards,
            "batch_size": part.batch_size,
            "layers": {
                str(layer): {
                    "scan_id": info.scan_id,
                    "reused": bool(info.reused),
                    "seconds": float(info.seconds),
                    "n_samples": int(info.n_samples),
                    "n_tokens": int(info.n_tokens),
                }
                for layer, info in sorted(infos.items())
            },
        }


def run_explain_job(
    *,
    request: dict[str, Any],
    llm_models: dict[str, Any] | None = None,
    variant: str | None = None,
    group: str | None = None,
    budget: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write a NeuronReport for every requested neuron (one layer, one chunk of a request) that has none
    stored yet; return all their keys.

    ``llm_models`` and ``variant`` are what the API resolved (the endpoint's model names and the report
    variant); the worker checks that its own settings and registry agree before it writes anything.
    ``group`` is the id of the request this part belongs to; ``budget`` ({"max_llm_calls",
    "max_cost_usd"}, None: none) is the request's budget, shared by every explain job of the request (keyed
    on ``group``): when it refuses a call the job stops and FINISHES with ``JobMeta.budget_exhausted`` and
    ``not_done``, every completed report kept. ``JobMeta.usage`` carries this job's LLM calls, tokens and
    cost while it runs."""
    with job_run(EXPLAIN_QUEUE) as job:
        runtime = current_runtime()
        explain = parse_explain_job(runtime.registry, runtime.config.llm, request, llm_models, variant)
        keys = runtime.config.redis_keys
        spec = BudgetSpec.from_payload(budget)
        from workers.process import explain_job  # torch comes with it, after the cheap checks

        # A retried job (worker died, timeout) only redoes the neurons without a stored report.
        model, layer, variant = explain.model.id, explain.request.only_layer(), explain.variant
        missing = missing_reports(
            job.connection, keys, runtime.reports, model, layer, variant, explain.neurons
        )
        progress = JobProgress(job, runtime.config.progress_interval_s, total=len(explain.neurons))
        progress.update(stage="explaining", done=len(explain.neurons) - len(missing), force=True)
        if "openai" in (explain.request.explainer, explain.request.simulator):
            # The layer's prompt profile (the dry runs' per-neuron prompt sizes), once per scanned layer,
            # by its first LLM explain job: not in the scan job, which stays a forward pass, nor for the
            # offline baseline (about 1.5 s per 1,536 neurons on one core).
            explain_job.write_prompt_profile(
                runtime, explain.model, explain.dataset, explain.point.id, layer, explain.request.options
            )
        meter = UsageMeter(gate=RedisBudget(job.connection, keys, spec) if spec is not None else None)
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
                    variant=explain.variant,
                    progress=progress.on_pipeline,
                ):
                    key = explain.report_keys[report.neuron]
                    store_report(
                        job.connection, keys, runtime.reports, key, variant, report, explain.llm_endpoint
                    )
                    stored.add(report.neuron)
                    progress.update(done=progress.done + 1)
                    progress.on_usage(meter.usage())
        except BudgetExhausted:
            progress.stop_for_budget([n for n in missing if n not in stored])
        except LLMEndpointError:
            record_llm_error(job.connection, keys, explain.llm_endpoint or "unknown")
            raise
        finally:
            if meter.calls:
                progress.on_usage(meter.usage(), force=True)
        progress.update(force=True)
        return {
            "report_keys": list(explain.report_keys.values()),
            "explained": len(stored),
            "reused": len(explain.neurons) - len(missing),
            "model_revision": explain.model.revision,
            "budget_exhausted": progress.meta.budget_exhausted,
            "usage": meter.usage().model_dump(mode="json"),
        }
