"""Assemble NeuronReports from a layer scan: records, split, type, explanation, simulation, score."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from typing import Literal

import numpy as np

from service.contract import (
    PIPELINE_VERSION,
    BinaryScore,
    DatasetRef,
    DatasetSpec,
    Density,
    DictionaryRef,
    Exemplar,
    Explanation,
    LLMUsage,
    ModelSpec,
    NeuronReport,
    Normalisation,
    PipelineOptions,
    Provenance,
    Simulation,
)
from workers.analysis.density import scan_density
from workers.analysis.domains import domain_shares, domain_specific
from workers.analysis.neuron_types import NeuronTypeResult, classify_neuron, permutation_type
from workers.analysis.scale import Scale, neuron_scale, typical_max
from workers.explain.base import ExplainerResult
from workers.scan.artifacts import LayerScan
from workers.scan.tokens import TokenizedProbe
from workers.simulate.base import SimulationInput, SimulatorResult
from workers.simulate.scoring import Score, score_simulation
from workers.vocabulary.protocols import protocol_split
from workers.vocabulary.records import (
    MODALITY_IMAGE,
    ActivationRecord,
    NeuronRecords,
    RecordSplit,
    normalise,
)

RANDOM_EXEMPLARS = 5
"""Held-out random records a report carries as `random_exemplars` (with the simulator's predictions):
enough to show how the neuron behaves on ordinary samples, few enough to keep reports small."""


@dataclass(frozen=True)
class ReportContext:
    """What every report of one job shares."""

    model: ModelSpec
    dataset: DatasetSpec
    hook: str
    layer: int
    options: PipelineOptions
    scan: LayerScan
    probe: TokenizedProbe

    @cached_property
    def shares(self) -> np.ndarray:
        """p [neurons, domains]: share of each domain's tokens where the neuron is > 0."""
        return domain_shares(self.scan.domain_positive, self.scan.domain_tokens)

    @cached_property
    def specific(self) -> list[list[str]]:
        """Domains each neuron of the layer is specific to (a layer-wide computation, done once)."""
        return domain_specific(self.shares, self.probe.domains, self.scan.domain_positive)

    @cached_property
    def dictionary(self) -> DictionaryRef | None:
        """The dictionary whose latents the layer's units are (from the scan's manifest); None for neurons."""
        spec = self.model.units
        if spec is None:
            return None
        read = self.scan.manifest.get("dictionary")
        header = read if isinstance(read, dict) else {}
        return DictionaryRef(
            id=spec.id,
            kind=spec.kind,
            revision=spec.revision,
            digest=str(header.get("digest", "")),
            format=str(header.get("format", "")),
            architecture=str(header.get("architecture", "")),
            output_hook=spec.output_hook,
        )

    @property
    def is_text_model(self) -> bool:
        """Text-only models are typed by the text-model rule (workers/analysis/neuron_types.py)."""
        return self.model.modality == "text"


@dataclass
class PreparedNeuron:
    """One neuron's records, split and type, ready for the explainer and the simulator."""

    neuron: int
    max_activation: float
    top: dict[int, ActivationRecord]
    """Top records by rank: only the ranks exemplars, the explainer and scoring use."""
    split: RecordSplit
    heldout: list[ActivationRecord]
    """Held-out top records, then held-out random records."""
    heldout_is_top: list[bool]
    neuron_type: NeuronTypeResult
    scale: Scale | None = None
    """What set the 0–10 scale (`max_activation` above is the global max)."""
    density: Density | None = None
    timings_s: dict[str, float] = field(default_factory=dict)

    @property
    def scale_value(self) -> float:
        """Raw activation that maps to 10 (the global max without a robust scale)."""
        return self.scale.value if self.scale is not None else self.max_activation

    def explainer_input(self, layer: int) -> NeuronRecords:
        records = [self.top[rank] for rank in self.split.explain_ranks]
        return NeuronRecords(
            layer=layer,
            neuron=self.neuron,
            max_activation=self.scale_value,
            records=records,
            neuron_type=self.neuron_type.neuron_type,
        )

    def simulation_input(self, explanation: str) -> SimulationInput:
        return SimulationInput(explanation=explanation, records=[record.record for record in self.heldout])


def _records(
    probe: TokenizedProbe, sample_ids: np.ndarray, acts: np.ndarray, rows: Sequence[int]
) -> dict[int, ActivationRecord]:
    records = {}
    for row in rows:
        record = probe.record(int(sample_ids[row]))
        records[row] = ActivationRecord(record=record, activations=acts[row, : len(record.tokens)])
    return records


def prepare_neuron(context: ReportContext, neuron: int) -> PreparedNeuron:
    """Read one neuron from the scan and derive its scale, records, held-out split and type."""
    scan, probe, options = context.scan, context.probe, context.options
    max_activation = float(scan.global_max[neuron])
    top_ids, top_acts, random_acts = scan.top_ids[neuron], scan.top_acts(neuron), scan.random_acts(neuron)
    typical = typical_max(random_acts, probe.lengths[scan.random_ids])
    scale = neuron_scale(
        scan.top_max[neuron], max_activation, probe.n_samples, options.scale, options.scale_quantile, typical
    )
    random_rows = (random_acts, probe.lengths[scan.random_ids])
    split = protocol_split(options, top_ids, scan.random_ids, random_rows, probe.tokens.__getitem__)
    ranks = {*range(min(options.n_exemplars, len(top_ids))), *split.explain_ranks, *split.holdout_top_ranks}
    top = _records(probe, top_ids, top_acts, sorted(ranks))
    slots = split.holdout_random_slots
    randoms = _records(probe, scan.random_ids, random_acts, slots)
    heldout = [top[rank] for rank in split.holdout_top_ranks] + [randoms[slot] for slot in slots]
    modality = probe.modality[top_ids]
    if options.type_method == "permutation":
        neuron_type = permutation_type(
            top_acts, modality, scale.value, options, context.is_text_model, neuron
        )
    else:
        neuron_type = classify_neuron(top_acts, modality, scale.value, options, context.is_text_model)
    return PreparedNeuron(
        neuron=neuron,
        max_activation=max_activation,
        top=top,
        split=split,
        heldout=heldout,
        heldout_is_top=[True] * len(split.holdout_top_ranks) + [False] * len(slots),
        neuron_type=neuron_type,
        scale=scale,
        density=scan_density(
            scan, probe, neuron, (top_acts, random_acts), scale.value, options.text_threshold
        ),
    )


def score_neuron(prepared: PreparedNeuron, simulation: SimulatorResult, seed: int) -> Score:
    real = [record.activations for record in prepared.heldout]
    return score_simulation(real, simulation.predictions, prepared.heldout_is_top, seed=seed)


def exemplar(
    record: ActivationRecord,
    rank: int,
    row_max: float,
    max_activation: float,
    simulated: np.ndarray | None = None,
) -> Exemplar:
    token_record = record.record
    grid = token_record.patch_grid
    patches = None
    if grid is not None:
        patches = [float(v) for v in record.activations[token_record.modality == MODALITY_IMAGE]]
    return Exemplar(
        sample_id=record.sample_id,
        rank=rank,
        kind="image+text" if grid is not None else "text",
        tokens=list(record.tokens),
        activations=record.activations.tolist(),
        activations_norm=normalise(record.activations, max_activation).tolist(),
        max_activation=row_max,
        patch_grid=list(grid) if grid is not None else None,
        patch_activations=patches,
        simulated=[round(float(v), 3) for v in simulated] if simulated is not None else None,
    )


def _simulated_by_record(
    prepared: PreparedNeuron, simulation: SimulatorResult
) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
    """The simulator's predictions of held-out records: (by top rank, by random slot); unparsed left out."""
    n_top = len(prepared.split.holdout_top_ranks)
    keys = [*prepared.split.holdout_top_ranks, *prepared.split.holdout_random_slots]
    by_top: dict[int, np.ndarray] = {}
    by_random: dict[int, np.ndarray] = {}
    for index, (key, prediction) in enumerate(zip(keys, simulation.predictions, strict=True)):
        if prediction is not None:
            (by_top if index < n_top else by_random)[key] = prediction
    return by_top, by_random


def _random_exemplars(prepared: PreparedNeuron, by_random: dict[int, np.ndarray]) -> list[Exemplar]:
    """The first RANDOM_EXEMPLARS held-out random records, with their predictions."""
    n_top = len(prepared.split.holdout_top_ranks)
    records = prepared.heldout[n_top:]
    exemplars = []
    for slot, record in list(zip(prepared.split.holdout_random_slots, records, strict=True))[
        :RANDOM_EXEMPLARS
    ]:
        row_max = float(record.activations.max()) if len(record.activations) else 0.0
        exemplars.append(exemplar(record, slot, row_max, prepared.scale_value, by_random.get(slot)))
    return exemplars


def _domains(context: ReportContext, neuron: int) -> dict[str, float] | None:
    names = context.probe.domains
    if not names:
        return None
    return dict(zip(names, context.shares[neuron].tolist(), strict=True))


def _support(context: ReportContext, neuron: int) -> dict[str, int] | None:
    names = context.probe.domains
    if not names:
        return None
    return dict(zip(names, (int(v) for v in context.scan.domain_positive[neuron]), strict=True))


def _normalisation(scale: Scale | None) -> Normalisation | None:
    if scale is None:
        return None
    return Normalisation(
        method=scale.method,  # type: ignore[arg-type]
        quantile=scale.quantile,
        scale=scale.value,
        top1_ratio=scale.top1_ratio,
        top1_dominates=scale.top1_dominates,
        concept_samples=scale.concept_samples,
        reason=scale.reason or None,
    )


def build_report(
    context: ReportContext,
    prepared: PreparedNeuron,
    explanation: ExplainerResult,
    explainer: tuple[str, str, str],
    simulation: SimulatorResult,
    simulator: tuple[str, str],
    score: Score,
    binary: dict[str, BinaryScore] | None = None,
    usage: LLMUsage | None = None,
) -> NeuronReport:
    """The NeuronReport; `explainer` is (backend, model, prompt_version), `simulator` (backend, model);
    `binary` holds the detection and fuzzing scores that were requested; `usage`, when the neuron's LLM
    calls were metered, is every call's tokens and cost (else the explainer's and simulator's tokens)."""
    binary = binary or {}
    neuron = prepared.neuron
    top_max = context.scan.top_max[neuron]
    n_exemplars = min(context.options.n_exemplars, len(top_max))
    by_top, by_random = _simulated_by_record(prepared, simulation)
    return NeuronReport(
        model=context.model.id,
        model_revision=context.model.revision,
        layer=context.layer,
        neuron=neuron,
        hook=context.hook,
        dictionary=context.dictionary,
        neuron_type=prepared.neuron_type.neuron_type,
        type_evidence=prepared.neuron_type.evidence(),
        max_activation=prepared.max_activation,
        exemplars=[
            exemplar(prepared.top[rank], rank, float(top_max[rank]), prepared.scale_value, by_top.get(rank))
            for rank in range(n_exemplars)
        ],
        random_exemplars=_random_exemplars(prepared, by_random),
        explanation=Explanation(
            text=explanation.text,
            backend=explainer[0],
            model=explainer[1],
            prompt_version=explainer[2],
            candidates=explanation.candidates,
        ),
        simulation=_simulation(context, simulation, simulator, score),
        domains=_domains(context, neuron),
        domain_specific=context.specific[neuron] if context.probe.domains else None,
        domain_support=_support(context, neuron),
        normalisation=_normalisation(prepared.scale),
        density=prepared.density,
        detection=binary.get("detection"),
        fuzzing=binary.get("fuzzing"),
        protocol=context.options.protocol,
        dataset=_dataset_ref(context),
        provenance=_provenance(context, prepared, explanation, simulation, binary, usage),
    )


def _simulation(
    context: ReportContext, simulation: SimulatorResult, simulator: tuple[str, str], score: Score
) -> Simulation:
    """The report's simulation score; `simulator` is (backend, model)."""
    scorer: Literal["simulation", "simulation-batched"] = (
        "simulation-batched" if "simulation-batched" in context.options.scorers else "simulation"
    )
    return Simulation(
        correlation=score.correlation,
        null_reason=score.null_reason,
        method="pooled-pearson",
        scorer=scorer,
        backend=simulator[0],
        model=simulator[1],
        n_top=score.n_top,
        n_random=score.n_random,
        n_tokens=score.n_tokens,
        correlation_top=score.correlation_top,
        correlation_random=score.correlation_random,
        ci95=list(score.ci95) if score.ci95 is not None else None,
        parse_failures=simulation.parse_failures,
        prompt_version=simulation.prompt_version,
    )


def _dataset_ref(context: ReportContext) -> DatasetRef:
    manifest = context.scan.manifest
    return DatasetRef(
        id=context.dataset.id,
        revision=context.dataset.revision,
        n_samples=int(manifest["n_samples"]),
        n_tokens=int(manifest["n_tokens"]),
    )


def _provenance(
    context: ReportContext,
    prepared: PreparedNeuron,
    explanation: ExplainerResult,
    simulation: SimulatorResult,
    binary: dict[str, BinaryScore],
    usage: LLMUsage | None,
) -> Provenance:
    """How the report was made: versions, scan, seed, options, timings, LLM tokens, calls and cost."""
    return Provenance(
        pipeline_version=PIPELINE_VERSION,
        scan_id=context.scan.scan_id,
        seed=context.options.seed,
        non_default_options=context.options.non_default(),
        created_at=datetime.now(UTC),
        timings_s={name: round(value, 6) for name, value in prepared.timings_s.items()},
        llm_tokens=_llm_tokens(explanation, simulation, usage),
        llm_cost_usd=usage.cost_usd if usage is not None else None,
        llm_calls={
            "explainer": explanation.llm_calls,
            "simulator": simulation.llm_calls,
            **{name: score.llm_calls for name, score in binary.items()},
        },
    )


def _llm_tokens(
    explanation: ExplainerResult, simulation: SimulatorResult, usage: LLMUsage | None
) -> dict[str, int]:
    if usage is not None and usage.calls:
        return {"prompt": usage.prompt_tokens, "completion": usage.completion_tokens}
    return {
        "prompt": explanation.prompt_tokens + simulation.prompt_tokens,
        "completion": explanation.completion_tokens + simulation.completion_tokens,
    }
