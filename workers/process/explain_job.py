"""The explain job's entry point, called by the RQ task (workers/process/tasks.py) with a resolved job.

`explain_neurons` turns a scanned layer into NeuronReports: type, exemplars, explanation, simulation score;
`write_prompt_profile` stores the layer's prompt profile for the API's dry runs first. Both take the
process's WorkerRuntime (store, models, caches, LLM callers) and specs the caller resolved and checked
(workers/process/payloads.py); they raise named errors from workers/errors.py. The scanned layer is
opened by workers/process/scan_job.py (`open_context`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextvars import copy_context

from service.contract import (
    BinaryScore,
    DatasetSpec,
    ExplanationRequest,
    HookPoint,
    LLMUsage,
    ModelSpec,
    NeuronReport,
    PipelineOptions,
    chance_donors,
    prompt_profile_key,
)
from workers.analysis.assemble import (
    PreparedNeuron,
    ReportContext,
    build_report,
    prepare_neuron,
    score_neuron,
)
from workers.analysis.chance import (
    NeuronNull,
    NullRun,
    donor_explanations,
    neuron_chance,
    null_simulations,
    with_chance,
)
from workers.analysis.exemplar_images import ExemplarImageWriter
from workers.explain.base import Explainer, ExplainerResult
from workers.llm.pool import map_concurrently
from workers.llm.usage import BudgetExhausted, UsageMeter, add_usage, current_meter, metering
from workers.process.backends import make_explainer, make_judge, make_simulator
from workers.process.binary_scores import binary_scores as _binary_scores
from workers.process.prompt_profile import write_profiles
from workers.process.runtime import WorkerRuntime
from workers.process.scan_job import ProgressFn, open_context
from workers.simulate.base import Simulator, SimulatorResult
from workers.simulate.binary import Judge

CHUNK_NEURONS = 64
"""Neurons handed to the offline explainer and simulator at once (vectorised; nothing to repay)."""

__all__ = ["explain_neurons", "write_prompt_profile"]


def write_prompt_profile(
    runtime: WorkerRuntime,
    model: ModelSpec,
    dataset: DatasetSpec,
    hook: str,
    layer: int,
    options: PipelineOptions,
) -> bool:
    """Write the prompt profile of a scanned layer (and its probe set's) for the API's dry runs, unless
    stored; True when written now."""
    key = prompt_profile_key(model.id, model.key_revision, hook, layer, dataset, options.n_top, options.seed)
    if runtime.reports.exists(key):
        return False
    context = open_context(runtime, model, dataset, hook, layer, options)
    return write_profiles(runtime.reports, model, dataset, hook, layer, context.scan, context.probe, options)


def explain_neurons(
    runtime: WorkerRuntime,
    model: ModelSpec,
    dataset: DatasetSpec,
    point: HookPoint,
    request: ExplanationRequest,
    neurons: list[int],
    progress: ProgressFn | None = None,
    *,
    variant: str | None = None,
) -> Iterator[NeuronReport]:
    """Yield one NeuronReport per neuron of a scanned layer: in the order given for the offline baseline, in
    completion order for LLM backends (each report as soon as its neuron is done). ``request`` is resolved
    (explainer and simulator set); ``variant`` is its report variant, under which the shaded exemplar
    images of a vision-language probe set are stored (required for those)."""
    if request.explainer is None or request.simulator is None:
        raise ValueError(
            "explain_neurons takes a resolved request (workers.process.payloads sets both backends)"
        )
    images = runtime.probe_images(dataset)
    explainer = make_explainer(
        request.explainer,
        runtime.llm,
        endpoint=request.endpoint,
        candidates=request.candidates,
        images=images,
        seed=request.options.seed,
    )
    options = request.options
    batch = options.batch_records if "simulation-batched" in options.scorers else None
    simulator = make_simulator(
        request.simulator, runtime.llm, endpoint=request.endpoint, images=images, batch_records=batch
    )
    judge = None
    if {"detection", "fuzzing"} & set(options.scorers):
        judge = make_judge(
            request.simulator, runtime.llm, endpoint=request.endpoint, batch=options.batch_records
        )
    context = open_context(runtime, model, dataset, point.id, request.only_layer(), request.options)
    k = options.chance_explanations
    null = NullRun(chance_donors(model.neurons_per_layer, k, options.seed, context.layer), k)
    writer = None
    if images is not None:
        if variant is None:
            raise ValueError(
                f"explaining on the vision-language probe set {dataset.id} needs the report variant"
            )
        writer = ExemplarImageWriter(runtime.store, images, variant)
    # Everything above runs at call time; the reports are produced lazily. LLM backends run neuron by
    # neuron, as many at once as the endpoint serves, so each report is stored (a checkpoint) the moment it
    # is done and a crash repays only the neurons in flight.
    if "openai" in (request.explainer, request.simulator):
        in_flight = runtime.llm.endpoints.resolve(request.endpoint).concurrency
        return _with_all_images(
            writer,
            _explain_each(context, list(neurons), explainer, (simulator, judge), null, progress, in_flight),
        )
    return _explain_all(context, list(neurons), explainer, (simulator, judge), null, progress, writer)


def _explain_all(
    context: ReportContext,
    neurons: list[int],
    explainer: Explainer,
    scorers: tuple[Simulator, Judge | None],
    null: NullRun,
    progress: ProgressFn | None,
    writer: ExemplarImageWriter | None = None,
) -> Iterator[NeuronReport]:
    # The donors' explanations first (k + 1 at most, once for the job part): every neuron's null needs them.
    null.texts = donor_explanations(context, explainer, null.donors)
    for begin in range(0, len(neurons), CHUNK_NEURONS):
        chunk = neurons[begin : begin + CHUNK_NEURONS]
        for report in _explain_chunk(
            context, chunk, explainer, scorers, null, (begin, len(neurons)), progress
        ):
            yield report if writer is None else _with_images(writer, report)


def _with_all_images(
    writer: ExemplarImageWriter | None, reports: Iterator[NeuronReport]
) -> Iterator[NeuronReport]:
    for report in reports:
        yield report if writer is None else _with_images(writer, report)


def _explain_each(
    context: ReportContext,
    neurons: list[int],
    explainer: Explainer,
    scorers: tuple[Simulator, Judge | None],
    null: NullRun,
    progress: ProgressFn | None,
    in_flight: int,
) -> Iterator[NeuronReport]:
    """Each neuron explained, simulated and scored on its own, ``in_flight`` neurons at once; reports are
    yielded as they complete (not in request order). The donors of the chance null are explained first
    (a donor among ``neurons`` keeps that explanation, with its usage). When the request's budget refuses
    a call (BudgetExhausted), no further neuron starts, the neurons in flight finish or are abandoned, every
    finished report is still yielded, and BudgetExhausted is raised at the end."""
    pending: set[Future[NeuronReport]] = set()
    upcoming = iter(neurons)
    done = 0
    exhausted: BudgetExhausted | None = None
    if progress is not None:
        progress("explaining", 0, len(neurons))
    explained = _explain_donors(context, explainer, null, in_flight)

    def submit(pool: ThreadPoolExecutor, neuron: int) -> None:
        # The neuron thread runs in a copy of this context: the job's usage meter goes along.
        job = (explainer, explained.get(neuron))
        pending.add(pool.submit(copy_context().run, _explain_one, context, neuron, job, scorers, null))

    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="neuron") as pool:
        for neuron in upcoming:
            submit(pool, neuron)
            if len(pending) >= in_flight:
                break
        while pending:
            finished, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in finished:
                if isinstance(future.exception(), BudgetExhausted):
                    exhausted = exhausted or future.exception()  # type: ignore[assignment]
                    continue
                done += 1
                if progress is not None:
                    progress("simulating", done, len(neurons))
                yield future.result()
                following = next(upcoming, None) if exhausted is None else None
                if following is not None:
                    submit(pool, following)
    if exhausted is not None:
        raise exhausted


def _explain_donors(
    context: ReportContext, explainer: Explainer, null: NullRun, in_flight: int
) -> dict[int, tuple[ExplainerResult, LLMUsage]]:
    """Explain the donors of the chance null, each under a meter of its own (a child of the job's),
    ``in_flight`` at once; set ``null.texts`` and return each donor's result and usage."""
    job_meter = current_meter()

    def one(donor: int) -> tuple[ExplainerResult, LLMUsage]:
        meter = job_meter.child() if job_meter is not None else UsageMeter()
        with metering(meter):
            (result,) = explainer.explain([prepare_neuron(context, donor).explainer_input(context.layer)])
        return result, meter.usage()

    results = map_concurrently(one, null.donors, in_flight)
    null.texts = {donor: result.text for donor, (result, _) in zip(null.donors, results, strict=True)}
    return dict(zip(null.donors, results, strict=True))


def _explain_one(
    context: ReportContext,
    neuron: int,
    explaining: tuple[Explainer, tuple[ExplainerResult, LLMUsage] | None],
    scorers: tuple[Simulator, Judge | None],
    null: NullRun,
) -> NeuronReport:
    """One neuron's report; its LLM calls are counted by a meter of its own (a child of the job's, when
    the job meters them), whose usage goes into the report's provenance. ``explaining`` is the explainer
    and, for a donor of the chance null, its explanation already made (and what that spent)."""
    simulator, judge = scorers
    explainer, explained = explaining
    job_meter = current_meter()
    meter = job_meter.child() if job_meter is not None else UsageMeter()
    with metering(meter):
        started = time.perf_counter()
        item = prepare_neuron(context, neuron)
        item.timings_s["prepare"] = time.perf_counter() - started
        started = time.perf_counter()
        if explained is None:
            (explanation,) = explainer.explain([item.explainer_input(context.layer)])
        else:
            explanation = explained[0]
        explain_s = time.perf_counter() - started
        started = time.perf_counter()
        (simulation,) = simulator.simulate([item.simulation_input(explanation.text)])
        (binaries,) = _binary_scores(context, [item], [explanation.text], judge, simulator)
        simulate_s = time.perf_counter() - started
        started = time.perf_counter()
        (neuron_null,) = null_simulations([item], null, simulator)
        item.timings_s["chance"] = time.perf_counter() - started
    usage = meter.usage() if explained is None else add_usage(meter.usage(), explained[1])
    return _report(
        context,
        item,
        (explainer, explanation),
        (simulator, simulation, neuron_null),
        (explain_s, simulate_s),
        binaries,
        usage,
    )


def _with_images(writer: ExemplarImageWriter, report: NeuronReport) -> NeuronReport:
    started = time.perf_counter()
    writer.store_images(report)
    timings = dict(report.provenance.timings_s, images=round(time.perf_counter() - started, 6))
    return report.model_copy(
        update={"provenance": report.provenance.model_copy(update={"timings_s": timings})}
    )


def _explain_chunk(
    context: ReportContext,
    chunk: Sequence[int],
    explainer: Explainer,
    scorers: tuple[Simulator, Judge | None],
    null: NullRun,
    position: tuple[int, int],
    progress: ProgressFn | None,
) -> Iterator[NeuronReport]:
    done, total = position
    prepared: list[PreparedNeuron] = []
    for neuron in chunk:
        started = time.perf_counter()
        item = prepare_neuron(context, neuron)
        item.timings_s["prepare"] = time.perf_counter() - started
        prepared.append(item)
    if progress is not None:
        progress("explaining", done, total)
    started = time.perf_counter()
    explanations = explainer.explain([item.explainer_input(context.layer) for item in prepared])
    explain_s = (time.perf_counter() - started) / len(prepared)
    if progress is not None:
        progress("simulating", done, total)
    started = time.perf_counter()
    simulator, judge = scorers
    inputs = [item.simulation_input(result.text) for item, result in zip(prepared, explanations, strict=True)]
    simulations = simulator.simulate(inputs)
    binaries = _binary_scores(context, prepared, [e.text for e in explanations], judge, simulator)
    simulate_s = (time.perf_counter() - started) / len(prepared)
    started = time.perf_counter()
    nulls = null_simulations(prepared, null, simulator)
    for item in prepared:
        item.timings_s["chance"] = (time.perf_counter() - started) / len(prepared)
    for index, (item, explanation, simulation) in enumerate(
        zip(prepared, explanations, simulations, strict=True)
    ):
        report = _report(
            context,
            item,
            (explainer, explanation),
            (simulator, simulation, nulls[index]),
            (explain_s, simulate_s),
            binaries[index],
        )
        if progress is not None:
            progress("simulating", done + index + 1, total)
        yield report


def _report(
    context: ReportContext,
    item: PreparedNeuron,
    explained: tuple[Explainer, ExplainerResult],
    simulated: tuple[Simulator, SimulatorResult, NeuronNull | None],
    seconds: tuple[float, float],
    binaries: dict[str, BinaryScore],
    usage: LLMUsage | None = None,
) -> NeuronReport:
    """Score the simulation and build the report; ``explained`` is the explainer and its result,
    ``simulated`` the simulator, its result and the neuron's null simulations (None without a chance
    null), ``seconds`` this neuron's explain and simulate time, ``binaries`` its detection/fuzzing scores
    (as requested), ``usage`` what its LLM calls spent when they were metered."""
    explainer, explanation = explained
    simulator, simulation, null = simulated
    started = time.perf_counter()
    score = score_neuron(item, simulation, context.options.seed)
    chance = None if null is None else neuron_chance(item, score, null, context.options.chance_alpha)
    item.timings_s.update(explain=seconds[0], simulate=seconds[1], score=time.perf_counter() - started)
    explainer_id = (
        explainer.backend,
        explainer.model,
        explanation.prompt_version or explainer.prompt_version,
    )
    report = build_report(
        context,
        item,
        explanation,
        explainer_id,
        simulation,
        (simulator.backend, simulator.model),
        score,
        binaries,
        usage,
    )
    return report if null is None or chance is None else with_chance(report, chance, null.llm_calls)
