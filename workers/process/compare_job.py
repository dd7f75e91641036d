"""The compare job's domain function: one layer and chunk of neurons of a comparison of two checkpoints.

Both layers are scanned already (the job depends on the base's explain part and the target's scan): each
neuron's agreement numbers and verdict come from the two scans (workers/analysis/compare.py); the base's
stored explanation is re-scored on the target's activations (workers/analysis/rescore.py, simulation
only); the target's neurons are explained afresh only where `reexplain` asks (their reports stored as an
explain job stores them, under the target's variant).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from service.contract import Exemplar, NeuronReport
from service.contract.comparisons import (
    COMPARISON_EXEMPLARS,
    ComparisonExemplars,
    NeuronComparison,
    Reexplain,
    VerdictRule,
)
from workers.analysis.assemble import PreparedNeuron, ReportContext, exemplar, prepare_neuron
from workers.analysis.compare import Agreement, agreement, verdict
from workers.analysis.rescore import rescore
from workers.errors import InvalidRequest
from workers.process.backends import make_simulator
from workers.process.explain_job import explain_neurons
from workers.process.payloads import ExplainJob
from workers.process.runtime import WorkerRuntime
from workers.process.scan_job import open_context

StoreReport = Callable[[str, NeuronReport], None]
"""Stores a fresh target report under its key (the object, then the Redis index)."""


@dataclass(frozen=True, slots=True)
class _Side:
    """What one side says about a neuron: type, density, and (base) its stored explanation and score."""

    neuron_type: str | None
    density: float | None
    explanation: str | None = None
    score: float | None = None
    exemplars: tuple[Exemplar, ...] = ()
    """Its top exemplars (at most COMPARISON_EXEMPLARS), highest first."""


@dataclass(frozen=True, slots=True)
class Compared:
    """One neuron's comparison and both sides' exemplars (stored beside it)."""

    comparison: NeuronComparison
    exemplars: ComparisonExemplars


def _top_exemplars(context: ReportContext, prepared: PreparedNeuron) -> tuple[Exemplar, ...]:
    """The first COMPARISON_EXEMPLARS top records of a prepared neuron as exemplars (as a report has them)."""
    top_max = context.scan.top_max[prepared.neuron]
    ranks = [rank for rank in range(min(COMPARISON_EXEMPLARS, len(top_max))) if rank in prepared.top]
    return tuple(
        exemplar(prepared.top[rank], rank, float(top_max[rank]), prepared.scale_value) for rank in ranks
    )


def _stored_report(runtime: WorkerRuntime, key: str) -> NeuronReport | None:
    raw = runtime.reports.read(key)
    return NeuronReport.model_validate_json(raw) if raw is not None else None


def _contexts(
    runtime: WorkerRuntime, base: ExplainJob, target: ExplainJob
) -> tuple[ReportContext, ReportContext]:
    layer = base.request.only_layer()
    options = base.request.options
    base_ctx = open_context(runtime, base.model, base.dataset, base.point.id, layer, options)
    target_ctx = open_context(runtime, target.model, target.dataset, target.point.id, layer, options)
    if (
        base_ctx.probe.n_samples != target_ctx.probe.n_samples
        or not (base_ctx.probe.lengths == target_ctx.probe.lengths).all()
    ):
        raise InvalidRequest(
            f"{base.model.id} and {target.model.id} tokenise the probe set {base.dataset.id} differently: "
            "a comparison needs models that share a tokenizer"
        )
    return base_ctx, target_ctx


def _base_sides(runtime: WorkerRuntime, base: ExplainJob, neurons: Sequence[int]) -> dict[int, _Side]:
    """The base's stored report of each neuron (neurons without one are left out)."""
    sides = {}
    for neuron in neurons:
        report = _stored_report(runtime, base.report_keys[neuron])
        if report is not None:
            sides[neuron] = _Side(
                neuron_type=report.neuron_type,
                density=report.density.sample_fraction if report.density is not None else None,
                explanation=report.explanation.text,
                score=report.simulation.correlation,
                exemplars=tuple(report.exemplars[:COMPARISON_EXEMPLARS]),
            )
    return sides


def _rescored(
    runtime: WorkerRuntime,
    target: ExplainJob,
    context: ReportContext,
    base: dict[int, _Side],
    neurons: Sequence[int],
) -> dict[int, _Side]:
    """The target's type and density of each neuron, with the base's explanation re-scored on it."""
    request = target.request
    assert request.simulator is not None  # resolved by the API
    options = request.options
    simulator = make_simulator(
        request.simulator,
        runtime.llm,
        endpoint=request.endpoint,
        images=runtime.probe_images(target.dataset),
        batch_records=options.batch_records if "simulation-batched" in options.scorers else None,
    )
    explained = [n for n in neurons if base.get(n) is not None and base[n].explanation]
    texts = [str(base[n].explanation) for n in explained]
    sides = {}
    for item in rescore(context, explained, texts, simulator) if explained else []:
        prepared = item.prepared
        sides[prepared.neuron] = _Side(
            neuron_type=prepared.neuron_type.neuron_type,
            density=prepared.density.sample_fraction if prepared.density is not None else None,
            score=item.score.correlation,
            exemplars=_top_exemplars(context, prepared),
        )
    for neuron in neurons:
        if neuron not in sides:
            prepared = prepare_neuron(context, neuron)
            density = prepared.density.sample_fraction if prepared.density is not None else None
            sides[neuron] = _Side(
                neuron_type=prepared.neuron_type.neuron_type,
                density=density,
                exemplars=_top_exemplars(context, prepared),
            )
    return sides


def _fresh_reports(
    runtime: WorkerRuntime, target: ExplainJob, neurons: list[int], store: StoreReport
) -> dict[int, NeuronReport]:
    """Target reports of `neurons`: the stored ones read, the others explained now and stored."""
    reports: dict[int, NeuronReport] = {}
    missing = []
    for neuron in neurons:
        stored = _stored_report(runtime, target.report_keys[neuron])
        if stored is not None:
            reports[neuron] = stored
        else:
            missing.append(neuron)
    if missing:
        request = target.request.model_copy(update={"neurons": missing})
        for report in explain_neurons(
            runtime, target.model, target.dataset, target.point, request, missing, variant=target.variant
        ):
            store(target.report_keys[report.neuron], report)
            reports[report.neuron] = report
    return reports


def _comparison(
    base: ExplainJob, target: ExplainJob, neuron: int, numbers: Agreement, sides: tuple[_Side | None, _Side]
) -> NeuronComparison:
    before, after = sides
    base_side = before or _Side(neuron_type=None, density=None)
    drop = None
    if base_side.score is not None and after.score is not None:
        drop = base_side.score - after.score
    density_change = None
    if base_side.density is not None and after.density is not None:
        density_change = after.density - base_side.density
    return NeuronComparison(
        base_model=base.model.id,
        target_model=target.model.id,
        layer=base.request.only_layer(),
        neuron=neuron,
        verdict="unchanged",  # set by the caller
        pearson_max=numbers.pearson_max,
        pearson_tokens=numbers.pearson_tokens,
        n_tokens=numbers.n_tokens,
        jaccard_top=numbers.jaccard_top,
        base_max=numbers.base_max,
        target_max=numbers.target_max,
        max_ratio=numbers.max_ratio,
        base_density=base_side.density,
        target_density=after.density,
        density_change=density_change,
        base_type=base_side.neuron_type,  # type: ignore[arg-type]
        target_type=after.neuron_type,  # type: ignore[arg-type]
        type_changed=base_side.neuron_type is not None and base_side.neuron_type != after.neuron_type,
        base_explanation=base_side.explanation,
        base_score=base_side.score,
        base_score_on_target=after.score if base_side.explanation else None,
        score_drop=drop,
    )


def compare_neurons(
    runtime: WorkerRuntime,
    base: ExplainJob,
    target: ExplainJob,
    reexplain: Reexplain,
    rule: VerdictRule,
    store: StoreReport,
) -> list[Compared]:
    """Compare every neuron of the chunk (base's neuron list); fresh target reports go to `store`."""
    neurons = base.neurons
    base_ctx, target_ctx = _contexts(runtime, base, target)
    lengths = base_ctx.probe.lengths
    numbers = {n: agreement(base_ctx.scan, target_ctx.scan, n, lengths) for n in neurons}
    verdicts = {n: verdict(numbers[n], rule) for n in neurons}
    before = _base_sides(runtime, base, neurons)
    after = _rescored(runtime, target, target_ctx, before, neurons)
    wanted = [
        n
        for n in neurons
        if reexplain == "all" or (reexplain == "changed" and verdicts[n] in ("changed", "born"))
    ]
    fresh = _fresh_reports(runtime, target, wanted, store) if wanted else {}
    n_ids = base.request.options.n_exemplars
    result = []
    for neuron in neurons:
        item = _comparison(base, target, neuron, numbers[neuron], (before.get(neuron), after[neuron]))
        update: dict[str, object] = {
            "verdict": verdicts[neuron],
            "base_top_ids": [int(i) for i in base_ctx.scan.top_ids[neuron][:n_ids] if i >= 0],
            "target_top_ids": [int(i) for i in target_ctx.scan.top_ids[neuron][:n_ids] if i >= 0],
        }
        report = fresh.get(neuron)
        if report is not None:
            update |= {
                "target_explanation": report.explanation.text,
                "target_score": report.simulation.correlation,
            }
        base_side = before.get(neuron)
        exemplars = ComparisonExemplars(
            base=list(base_side.exemplars) if base_side is not None else [],
            target=list(after[neuron].exemplars),
        )
        result.append(Compared(item.model_copy(update=update), exemplars))
    return result
