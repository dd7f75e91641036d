"""The RQ entry point of compare jobs (``contract.comparisons.COMPARE_TASK``), one per layer and chunk of
neurons of a comparison: parse the payload's two one-layer requests against this worker's registry, compare
(workers/process/compare_job.py), store each NeuronComparison in the artifact store
(`comparison_key`), and return the typed result. LLM calls (re-scoring, fresh explanations) are metered
against the comparison's budget; a refused call fails the job with `BudgetExhausted`."""

from __future__ import annotations

from collections import Counter
from typing import Any

from service.contract import EXPLAIN_QUEUE, NeuronReport
from service.contract.comparisons import (
    CompareJobPayload,
    CompareJobResult,
    comparison_exemplars_key,
    comparison_key,
)
from workers.errors import InvalidRequest
from workers.llm.usage import UsageMeter, metering
from workers.process.payloads import parse_explain_job, read_payload
from workers.process.progress import JobProgress, job_run
from workers.process.report_writer import store_report
from workers.process.request_budget import BudgetSpec, RedisBudget
from workers.process.runtime import current_runtime

JSON = dict[str, Any]


def run_compare_job(*, payload: JSON) -> JSON:
    """Compare the payload's neurons of one layer between its base and target; store each comparison
    (its exemplars first, so a stored comparison always has them) and each fresh target report, and
    return the counts."""
    with job_run(EXPLAIN_QUEUE) as job:
        runtime = current_runtime()
        typed = read_payload(CompareJobPayload, payload, "compare")
        base = parse_explain_job(runtime.registry, runtime.config.llm, typed.base)
        target = parse_explain_job(runtime.registry, runtime.config.llm, typed.target)
        if base.neurons != target.neurons or base.request.only_layer() != target.request.only_layer():
            raise InvalidRequest("a compare payload's base and target must name the same layer and neurons")
        from workers.process import compare_job  # torch comes with the job module, after the cheap checks

        keys = runtime.config.redis_keys
        progress = JobProgress(job, runtime.config.progress_interval_s, total=len(base.neurons))
        progress.update(stage="simulating", force=True)
        budget = BudgetSpec.of(typed.comparison_id, typed.budget)
        meter = UsageMeter(gate=RedisBudget(job.connection, keys, budget) if budget is not None else None)
        explained = []

        def store(key: str, report: NeuronReport) -> None:
            store_report(
                job.connection, keys, runtime.reports, key, target.variant, report, target.llm_endpoint
            )
            explained.append(report.neuron)

        with metering(meter):
            compared = compare_job.compare_neurons(runtime, base, target, typed.reexplain, typed.rule, store)
        comparisons = [done.comparison for done in compared]
        for done in compared:
            item, where = (
                done.comparison,
                (typed.comparison_id, done.comparison.layer, done.comparison.neuron),
            )
            runtime.reports.write(comparison_exemplars_key(*where), done.exemplars.model_dump_json().encode())
            runtime.reports.write(comparison_key(*where), item.model_dump_json().encode())
        progress.on_usage(meter.usage(), force=True)
        progress.update(done=len(comparisons), force=True)
        return CompareJobResult(
            compared=len(comparisons),
            explained=len(explained),
            verdicts=dict(Counter(item.verdict for item in comparisons)),
            usage=meter.usage(),
        ).model_dump(mode="json")
