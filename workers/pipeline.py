"""The worker domain's two entry points, called by the RQ tasks (workers/tasks.py) with resolved jobs.

`scan_layers` records layers over the probe set (one pass, artifacts reused); `explain_neurons` turns a
scanned layer into NeuronReports: type, exemplars, explanation, simulation score. Both take the process's
WorkerRuntime (store, models, caches, LLM callers) and specs the caller resolved and checked
(workers/payloads.py); they raise named errors from workers/errors.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence

from service.contract import (
    DatasetSpec,
    ExplanationRequest,
    HookPoint,
    JobStage,
    ModelSpec,
    NeuronReport,
    PipelineOptions,
)
from workers.backends import make_explainer, make_simulator
from workers.errors import ScanMissing
from workers.exemplar_images import ExemplarImageWriter
from workers.explain.base import Explainer
from workers.report import PreparedNeuron, ReportContext, build_report, prepare_neuron, score_neuron
from workers.runtime import WorkerRuntime
from workers.scan.keys import scan_key
from workers.scan.run import ScanInfo, layer_scan_id, scan_model_layers
from workers.simulate.base import Simulator

ProgressFn = Callable[[JobStage, int, int], None]
"""(stage, done, total); stage is "scanning" (samples), "explaining" or "simulating" (neurons)."""

CHUNK_NEURONS = 64
"""Neurons handed to the explainer and simulator at once (LLM backends run a chunk concurrently)."""

__all__ = ["ProgressFn", "ScanInfo", "explain_neurons", "open_context", "scan_layers"]


def scan_layers(
    runtime: WorkerRuntime,
    model: ModelSpec,
    dataset: DatasetSpec,
    point: HookPoint,
    layers: list[int],
    options: PipelineOptions,
    progress: ProgressFn | None = None,
) -> dict[int, ScanInfo]:
    """Scan `layers` in ONE pass over the probe set unless their artifacts already exist (reused)."""

    def report(done: int, total: int) -> None:
        if progress is not None:
            progress("scanning", done, total)

    return scan_model_layers(runtime.scan_setup, model, dataset, point, layers, options, report)


def open_context(
    runtime: WorkerRuntime,
    model: ModelSpec,
    dataset: DatasetSpec,
    hook: str,
    layer: int,
    options: PipelineOptions,
) -> ReportContext:
    """Open the layer's scan and tokenised probe set (kept open by the runtime's scan cache)."""
    scan = layer_scan_id(model, dataset, hook, layer, options)
    if not runtime.store.exists(scan_key(scan)):
        raise ScanMissing(
            f"layer {layer} of {model.id} (hook {hook}, probe set {dataset.id}, n_top {options.n_top}, "
            f"seed {options.seed}) has not been scanned: run its scan job first"
        )
    layer_scan = runtime.scans.layer_scan(scan)
    probe = runtime.scans.tokenized_probe(str(layer_scan.manifest["tokens_key"]))
    return ReportContext(model, dataset, hook, layer, options, layer_scan, probe)


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
    """Yield one NeuronReport per neuron of a scanned layer, in the order given. ``request`` is resolved
    (explainer and simulator set); ``variant`` is its report variant, under which the shaded exemplar
    images of a vision-language probe set are stored (required for those)."""
    if request.explainer is None or request.simulator is None:
        raise ValueError("explain_neurons takes a resolved request (workers.payloads sets both backends)")
    images = runtime.probe_images(dataset)
    explainer = make_explainer(
        request.explainer,
        runtime.llm,
        endpoint=request.endpoint,
        candidates=request.candidates,
        images=images,
        seed=request.options.seed,
    )
    simulator = make_simulator(request.simulator, runtime.llm, endpoint=request.endpoint, images=images)
    context = open_context(runtime, model, dataset, point.id, request.layer, request.options)
    writer = None
    if images is not None:
        if variant is None:
            raise ValueError(
                f"explaining on the vision-language probe set {dataset.id} needs the report variant"
            )
        writer = ExemplarImageWriter(runtime.store, images, variant)
    # Everything above runs at call time; the reports are produced lazily, chunk by chunk.
    return _explain_all(context, list(neurons), explainer, simulator, progress, writer)


def _explain_all(
    context: ReportContext,
    neurons: list[int],
    explainer: Explainer,
    simulator: Simulator,
    progress: ProgressFn | None,
    writer: ExemplarImageWriter | None = None,
) -> Iterator[NeuronReport]:
    for begin in range(0, len(neurons), CHUNK_NEURONS):
        chunk = neurons[begin : begin + CHUNK_NEURONS]
        for report in _explain_chunk(context, chunk, explainer, simulator, begin, len(neurons), progress):
            yield report if writer is None else _with_images(writer, report)


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
    simulator: Simulator,
    done: int,
    total: int,
    progress: ProgressFn | None,
) -> Iterator[NeuronReport]:
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
    inputs = [item.simulation_input(result.text) for item, result in zip(prepared, explanations, strict=True)]
    simulations = simulator.simulate(inputs)
    simulate_s = (time.perf_counter() - started) / len(prepared)
    for index, (item, explanation, simulation) in enumerate(
        zip(prepared, explanations, simulations, strict=True)
    ):
        started = time.perf_counter()
        score = score_neuron(item, simulation, context.options.seed)
        item.timings_s.update(explain=explain_s, simulate=simulate_s, score=time.perf_counter() - started)
        explainer_id = (
            explainer.backend,
            explainer.model,
            explanation.prompt_version or explainer.prompt_version,
        )
        report = build_report(
            context, item, explanation, explainer_id, simulation, (simulator.backend, simulator.model), score
        )
        if progress is not None:
            progress("simulating", done + index + 1, total)
        yield report
