"""tiny-llava-planted through the worker pipeline (scan_layers + explain_neurons, baseline backends): every
planted neuron gets its planted type with p_* evidence, image exemplars carry patch grids and activations,
the red neuron's exemplars show red images and the word "red", and the visual baseline names the planted
colours and predicts the planted patches."""

from __future__ import annotations

import numpy as np
import pytest

from service.contract import (
    DatasetSpec,
    ExplanationRequest,
    ModelSpec,
    NeuronReport,
    PipelineOptions,
    load_registry,
    report_variant,
)
from workers.data.vl_probe import SHAPES, sample_spec
from workers.models.planted import PLANTED_LAYER, PlantedNeuron, planted_neurons
from workers.process.runtime import WorkerRuntime

VISUAL, TEXT, MULTIMODAL, RED = (p.neuron for p in planted_neurons())
PLAIN = 5
"""A layer-2 neuron nobody planted."""
TEMPLATE_WORDS = {"USER", ":", "Describe", "image", "ASSISTANT", "<s>", "<image>"}


@pytest.fixture(scope="module")
def planted() -> tuple[ModelSpec, DatasetSpec]:
    registry = load_registry()
    return registry.model("tiny-llava-planted"), registry.dataset("vl-probe-v1")


@pytest.fixture(scope="module")
def reports(worker_runtime: WorkerRuntime, planted: tuple[ModelSpec, DatasetSpec]) -> dict[int, NeuronReport]:
    from workers.process.explain_job import explain_neurons
    from workers.process.scan_job import scan_layers

    model, dataset = planted
    options = PipelineOptions()
    point = model.hook("mlp_act")
    scan_layers(worker_runtime, model, dataset, point, [PLANTED_LAYER], options)
    neurons = [VISUAL, TEXT, MULTIMODAL, RED, PLAIN]
    request = ExplanationRequest(
        model=model.id,
        layer=PLANTED_LAYER,
        neurons=neurons,
        hook="mlp_act",
        dataset=dataset.id,
        explainer="baseline",
        simulator="baseline",
    )
    variant = report_variant(request, revision=model.revision, dataset=dataset, models=None)
    explained = explain_neurons(worker_runtime, model, dataset, point, request, neurons, variant=variant)
    return {r.neuron: r for r in explained}


@pytest.mark.parametrize("planted_neuron", planted_neurons(), ids=lambda p: f"{p.neuron}-{p.neuron_type}")
def test_every_planted_type_is_recovered(
    reports: dict[int, NeuronReport], planted_neuron: PlantedNeuron
) -> None:
    report = reports[planted_neuron.neuron]
    evidence = report.type_evidence
    assert report.neuron_type == planted_neuron.neuron_type
    assert evidence.n_samples == 50 and evidence.high_confidence
    shares = {
        "visual": evidence.p_visual,
        "text": evidence.p_text,
        "multimodal": evidence.p_multimodal,
        "unknown": evidence.p_unknown,
    }
    assert shares[planted_neuron.neuron_type] > 0.8
    assert sum(shares.values()) == pytest.approx(1.0)


def test_image_exemplars_carry_their_patch_grid_and_activations(reports: dict[int, NeuronReport]) -> None:
    for report in reports.values():
        assert len(report.exemplars) == 20
        for exemplar in report.exemplars:
            assert exemplar.kind == "image+text" and exemplar.patch_grid == [8, 8]
            patches = [i for i, token in enumerate(exemplar.tokens) if token.startswith("<patch ")]
            assert [exemplar.tokens[i] for i in patches] == [
                f"<patch {r},{c}>" for r in range(8) for c in range(8)
            ]
            assert exemplar.patch_activations == [exemplar.activations[i] for i in patches]
            # Template tokens (BOS, "USER:", the question, "ASSISTANT:") are in neither modality.
            assert not TEMPLATE_WORDS & set(exemplar.tokens)
            assert exemplar.max_activation == pytest.approx(max(exemplar.activations), rel=1e-3)


def test_red_neurons_exemplars_show_red_images_and_the_word_red(reports: dict[int, NeuronReport]) -> None:
    report = reports[RED]
    for exemplar in report.exemplars:
        assert sample_spec(exemplar.sample_id).colour == "red"
        red_words = [a for t, a in zip(exemplar.tokens, exemplar.activations, strict=True) if t == "red"]
        assert len(red_words) >= 2 and min(red_words) > 0.5 * report.max_activation
        assert max(exemplar.patch_activations or [0.0]) > 0.5 * report.max_activation


def test_shape_neurons_exemplars_name_shapes(reports: dict[int, NeuronReport]) -> None:
    for exemplar in reports[TEXT].exemplars:
        top_token = exemplar.tokens[int(np.argmax(exemplar.activations))]
        assert top_token in SHAPES
        assert max(exemplar.patch_activations or [1.0]) == 0.0


def test_visual_baseline_names_the_planted_colours_and_predicts_them(
    reports: dict[int, NeuronReport],
) -> None:
    blue, red, shapes = reports[VISUAL], reports[RED], reports[TEXT]
    assert blue.explanation.text.startswith("image regions that are blue (RGB ")
    assert blue.explanation.prompt_version == "baseline-visual-1"
    assert '"' not in blue.explanation.text  # no text part: the word "blue" does not fire it
    assert red.explanation.text.startswith('the token "red"; and image regions that are red (RGB ')
    assert red.explanation.prompt_version == "baseline-text-3+baseline-visual-1"
    assert shapes.explanation.prompt_version == "baseline-text-3"
    for report in (blue, red, shapes):
        simulation = report.simulation
        assert simulation.backend == "baseline" and simulation.parse_failures == 0
        # vl-probe-v1 repeats captions: held-out records whose text the explainer saw are dropped.
        assert 5 <= simulation.n_top <= 10 and simulation.n_random == simulation.n_top
        assert simulation.correlation is not None and simulation.correlation > 0.7
        # Pooled over every token of the held-out records, patches included (65+ tokens per record).
        assert simulation.n_tokens > 2 * simulation.n_top * 64


def test_reports_count_domains_per_sample_label(reports: dict[int, NeuronReport]) -> None:
    shapes_only = reports[TEXT].domains
    assert shapes_only is not None and set(shapes_only) == {
        "shapes",
        "colours",
        "textures",
        "digits",
        "scenes",
    }
    assert shapes_only["shapes"] > 0 and all(v == 0 for k, v in shapes_only.items() if k != "shapes")
    # Active in one domain only: among the layer's lowest-entropy neurons, specific to that domain.
    assert reports[TEXT].domain_specific == ["shapes"]
    assert reports[TEXT].domain_support is not None and reports[TEXT].domain_support["shapes"] >= 20
    assert reports[MULTIMODAL].domain_specific == []  # active everywhere


def test_mmneurons_raw_rate_prefilter_misses_the_planted_shape_neuron(
    reports: dict[int, NeuronReport], worker_runtime: WorkerRuntime, planted: tuple[ModelSpec, DatasetSpec]
) -> None:
    """Why domain flags compare normalised rates: the raw-rate rule (MMNeuron's pre-filter) misses it."""
    from workers.analysis.domains import domain_shares, domain_specific
    from workers.process.scan_job import open_context

    model, dataset = planted
    context = open_context(worker_runtime, model, dataset, "mlp_act", PLANTED_LAYER, PipelineOptions())
    scan, names = context.scan, context.probe.domains
    shares = domain_shares(scan.domain_positive, scan.domain_tokens)
    assert domain_specific(shares, names, scan.domain_positive)[TEXT] == ["shapes"]
    assert domain_specific(shares, names, scan.domain_positive, rates="raw")[TEXT] == []
