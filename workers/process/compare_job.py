"""The compare job's domain function: one layer and chunk of neurons of a comparison of two checkpoints.

Both layers are scanned already (the job depends on the base's explain part and the target's scan): each
neuron's agreement numbers and verdict come from the two scans (workers/analysis/compare.py); the base's
stored explanation is re-scored on the target's activations (workers/analysis/rescore.py, simulation
only); the target's neurons are explained afresh only where `reexplain` asks (their reports stored as an
explain job stores them, under the target's variant).

LLM calls draw on the comparison's budget: the `openai` simulator re-scores neuron by neuron, so a budget
that runs out keeps what was scored; a refused call stops the chunk's LLM work, never the comparison: every
neuron still gets its agreement numbers and verdict, and those whose LLM work was refused are marked
`budget_exhausted` (as are those the base's explanations left without a report, which only a budget does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

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
from workers.llm.usage import BudgetExhausted
from workers.process.backends import make_simulator
from workers.process.explain_job import explain_neurons
from workers.process.payloads import ExplainJob
from workers.process.runtime import WorkerRuntime
from workers.process.scan_job import open_context

StoreReport = Callable[[str, NeuronReport], None]
"""Stores a fresh target report under its key (the object, then the Redis index)."""
OnDone = Callable[[int], None]
"""Told how many neurons of the chunk are compared so far (progress)."""


@dataclass
class _Work:
    """What the chunk still owes: neurons whose LLM work is pending, those done, those the budget refused."""

    pending: set[int]
    on_done: OnDone | None
    budgeted: bool
    """The comparison has a budget: a base report missing means its budget ran out."""
    done: int = 0
    refused: set[int] = field(default_factory=set)
    stopped: bool = False
    """The budget refused a call of this chunk."""

    def finish(self, neurons: Sequence[int]) -> None:
        for neuron in neurons:
            if neuron in self.pending:
                self.pending.discard(neuron)
                self.done += 1
        if self.on_done is not None:
            self.on_done(self.done)


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
    work: _Work,
    wanted: set[int],
) -> dict[int, _Side]:
    """The target's type and density of each pending neuron, with the base's explanation re-scored on it
    (one call for the offline baseline, neuron by neuron for an LLM, until the budget refuses one);
    neurons not `wanted` for a fresh explanation are done once re-scored."""
    neurons = sorted(work.pending)
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
    groups = [explained] if request.simulator == "baseline" else [[n] for n in explained]
    sides = {}
    for group in groups if explained else []:
        try:
            scored = rescore(context, group, [str(base[n].explanation) for n in group], simulator)
        except BudgetExhausted:
            work.refused.update(n for n in explained if n not in sides)
            work.stopped = True
            break
        for item in scored:
            prepared = item.prepared
            sides[prepared.neuron] = _Side(
                neuron_type=prepared.neuron_type.neuron_type,
                density=prepared.density.sample_fraction if prepared.density is not None else None,
                score=item.score.correlation,
                exemplars=_top_exemplars(context, prepared),
            )
        work.finish([n for n in group if n not in wanted])
    if work.budgeted:  # a base part finishes without a report only when the budget stopped it
        work.refused.update(n for n in neurons if n not in base)
    work.finish([n for n in neurons if n not in wanted and n not in explained])
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
    runtime: WorkerRuntime, target: ExplainJob, neurons: list[int], store: StoreReport, work: _Work
) -> dict[int, NeuronReport]:
    """Target reports of `neurons`: the stored ones read, the others explained now and stored (until the
    budget refuses a call: the neurons left are `work.refused`)."""
    reports: dict[int, NeuronReport] = {}
    missing = []
    for neuron in neurons:
        stored = _stored_report(runtime, target.report_keys[neuron])
        if stored is not None:
            reports[neuron] = stored
        else:
            missing.append(neuron)
    work.finish(list(reports))
    if work.stopped:  # the budget already refused a call: no explanation would start
        work.refused.update(missing)
        return reports
    request = target.request.model_copy(update={"neurons": missing})
    try:
        for report in (
            explain_neurons(
                runtime, target.model, target.dataset, target.point, request, missing, variant=target.variant
            )
            if missing
            else []
        ):
            store(target.report_keys[report.neuron], report)
            reports[report.neuron] = report
            work.finish([report.neuron])
    except BudgetExhausted:
        work.refused.update(n for n in missing if n not in reports)
        work.stopped = True
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
        units=base.request.units,
        layer=base.request.only_layer(),
        neuron=neuron,
        verdict="unchanged",  # set by the caller
        pearson_max=numbers.pearson_max,
        pearson_tokens=numbers.pearson_tokens,
        n_tokens=numbers.n_tokens,
        jaccard_top=numbers.jaccard_top,
        top_overlap=numbers.top_overlap,
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


@dataclass(frozen=True)
class CompareWork:
    """What a compare job asks of :func:`compare_neurons`."""

    reexplain: Reexplain
    rule: VerdictRule
    store: StoreReport
    """Where fresh target reports go."""
    budgeted: bool = False
    on_done: OnDone | None = None


def compare_neurons(
    runtime: WorkerRuntime, base: ExplainJob, target: ExplainJob, neurons: Sequence[int], job: CompareWork
) -> list[Compared]:
    """Compare `neurons` (of the chunk's layer), each with both sides' top exemplars; those whose LLM work
    the budget refused are marked."""
    base_ctx, target_ctx = _contexts(runtime, base, target)
    lengths = base_ctx.probe.lengths
    rule = job.rule
    numbers = {n: agreement(base_ctx.scan, target_ctx.scan, n, lengths, rule.top_tolerance) for n in neurons}
    verdicts = {n: verdict(numbers[n], rule) for n in neurons}
    wanted = [
        n
        for n in neurons
        if job.reexplain == "all" or (job.reexplain == "changed" and verdicts[n] in ("changed", "born"))
    ]
    work = _Work(pending=set(neurons), on_done=job.on_done, budgeted=job.budgeted)
    before = _base_sides(runtime, base, neurons)
    after = _rescored(runtime, target, target_ctx, before, work, set(wanted))
    fresh = _fresh_reports(runtime, target, wanted, job.store, work) if wanted else {}
    n_ids = base.request.options.n_exemplars
    result = []
    for neuron in neurons:
        item = _comparison(base, target, neuron, numbers[neuron], (before.get(neuron), after[neuron]))
        update: dict[str, object] = {
            "verdict": verdicts[neuron],
            "budget_exhausted": neuron in work.refused,
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
