"""The RQ entry point of compare jobs (``contract.comparisons.COMPARE_TASK``), one per layer and chunk of
neurons of a comparison: parse the payload's two one-layer requests against this worker's registry, compare
(workers/process/compare_job.py), store each NeuronComparison in the artifact store
(`comparison_key`), and return the typed result. LLM calls (re-scoring, fresh explanations) are metered
against the comparison's budget (one pool, keyed on the comparison's id, with the base's explanations); a
refused call stops the chunk's LLM work, and the job still FINISHES with `JobMeta.budget_exhausted` and
`not_done`: every neuron stored, those refused marked. A re-run (the comparison posted again) keeps the
neurons stored complete and redoes the others."""

from __future__ import annotations

from collections import Counter
from typing import Any

from service.contract import EXPLAIN_QUEUE, NeuronReport
from service.contract.comparisons import (
    CompareJobPayload,
    CompareJobResult,
    NeuronComparison,
    comparison_exemplars_key,
    comparison_key,
)
from workers.errors import InvalidRequest
from workers.llm.usage import UsageMeter, metering
from workers.process.payloads import parse_explain_job, read_payload
from workers.process.progress import JobProgress, job_run
from workers.process.report_writer import store_report
from workers.process.request_budget import BudgetSpec, RedisBudget
from workers.process.runtime import WorkerRuntime, current_runtime

JSON = dict[str, Any]


def run_compare_job(*, payload: JSON) -> JSON:
    """Compare the payload's neurons of one layer between its base and target; store each comparison
    (and each fresh target report) and return the counts."""
    with job_run(EXPLAIN_QUEUE) as job:
        runtime = current_runtime()
        typed = read_payload(CompareJobPayload, payload, "compare")
        base = parse_explain_job(runtime.registry, runtime.config.llm, typed.base)
        target = parse_explain_job(runtime.registry, runtime.config.llm, typed.target)
        if base.neurons != target.neurons or base.request.only_layer() != target.request.only_layer():
            raise InvalidRequest("a compare payload's base and target must name the same layer and neurons")
        from workers.process import compare_job  # torch comes with the job module, after the cheap checks

        keys = runtime.config.redis_keys
        kept = _complete(runtime, typed.comparison_id, base.request.only_layer(), base.neurons)
        todo = [n for n in base.neurons if n not in kept]
        progress = JobProgress(job, runtime.config.progress_interval_s, total=len(base.neurons))
        progress.update(stage="simulating", done=len(kept), force=True)
        budget = BudgetSpec.of(typed.comparison_id, typed.budget)
        meter = UsageMeter(gate=RedisBudget(job.connection, keys, budget, job.id))
        explained = []

        def store(key: str, report: NeuronReport) -> None:
            store_report(
                job.connection, keys, runtime.reports, key, target.variant, report, target.llm_endpoint
            )
            explained.append(report.neuron)

        work = compare_job.CompareWork(
            reexplain=typed.reexplain,
            rule=typed.rule,
            store=store,
            budgeted=budget is not None,
            on_done=lambda done: progress.update(done=len(kept) + done),
        )
        with metering(meter):
            fresh = compare_job.compare_neurons(runtime, base, target, todo, work) if todo else []
        for done in fresh:
            where = (typed.comparison_id, done.comparison.layer, done.comparison.neuron)
            runtime.reports.write(comparison_exemplars_key(*where), done.exemplars.model_dump_json().encode())
            runtime.reports.write(comparison_key(*where), done.comparison.model_dump_json().encode())
        comparisons = [*kept.values(), *(done.comparison for done in fresh)]
        refused = [done.comparison.neuron for done in fresh if done.comparison.budget_exhausted]
        progress.on_usage(meter.usage(), force=True)
        if refused:
            progress.stop_for_budget(refused)
        progress.update(done=len(comparisons), force=True)
        return CompareJobResult(
            compared=len(comparisons),
            explained=len(explained),
            verdicts=dict(Counter(item.verdict for item in comparisons)),
            usage=meter.usage(),
            budget_exhausted=bool(refused),
        ).model_dump(mode="json")


def _complete(
    runtime: WorkerRuntime, comparison_id: str, layer: int, neurons: list[int]
) -> dict[int, NeuronComparison]:
    """The chunk's neurons already stored complete by an earlier run (none the budget cut short)."""
    found = runtime.reports.read_many([comparison_key(comparison_id, layer, n) for n in neurons])
    items = [NeuronComparison.model_validate_json(raw) for raw in found if raw is not None]
    return {item.neuron: item for item in items if not item.budget_exhausted}
