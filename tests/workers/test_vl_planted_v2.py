"""tiny-llava-planted over vl-probe-v2 (issue 10): every planted neuron keeps its planted type, its
explanation names its concept, and it scores above the layer's other neurons (baseline backends). Issue 18:
under `type_method: permutation` (the within-sample peak-modality test) the planted neurons keep their
types with p < 0.001."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.contract import ExplanationRequest, NeuronReport, PipelineOptions, load_registry, report_variant
from service.settings import load_settings
from workers.models.planted import PLANTED_LAYER, planted_neurons

pytestmark = pytest.mark.timeout(600)

VISUAL, TEXT, MULTIMODAL, RED = (p.neuron for p in planted_neurons())
NEURONS = 256


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ...]:
    """(runtime, model, dataset, hook point) with the planted layer scanned over vl-probe-v2."""
    from workers.process.scan_job import scan_layers
    from workers.process.worker import build_runtime

    # A private store: explaining every neuron writes exemplar images that other tests expect absent.
    worker_settings = load_settings(artifact_url=str(tmp_path_factory.mktemp("vl-v2-store")), device="cpu")
    registry = load_registry()
    model, dataset = registry.model("tiny-llava-planted"), registry.dataset("vl-probe-v2")
    assert model.datasets[0] == dataset.id  # the default
    runtime, point = build_runtime(worker_settings), model.hook("mlp_act")
    scan_layers(runtime, model, dataset, point, [PLANTED_LAYER], PipelineOptions())
    return runtime, model, dataset, point


@pytest.fixture(scope="module")
def layer_reports(scanned: tuple[Any, ...]) -> dict[int, NeuronReport]:
    from workers.process.explain_job import explain_neurons

    runtime, model, dataset, point = scanned
    request = ExplanationRequest(
        model=model.id,
        layer=PLANTED_LAYER,
        neurons=list(range(NEURONS)),
        hook="mlp_act",
        dataset=dataset.id,
        explainer="baseline",
        simulator="baseline",
    )
    variant = report_variant(request, revision=model.revision, dataset=dataset, models=None)
    reports = explain_neurons(runtime, model, dataset, point, request, list(range(NEURONS)), variant=variant)
    return {r.neuron: r for r in reports}


def test_planted_types_and_concepts_on_v2(layer_reports: dict[int, NeuronReport]) -> None:
    for planted in planted_neurons():
        report = layer_reports[planted.neuron]
        assert report.neuron_type == planted.neuron_type, (planted, report.type_evidence)
        assert report.dataset.id == "vl-probe-v2"
    assert "blue" in layer_reports[VISUAL].explanation.text
    assert "red" in layer_reports[RED].explanation.text
    shapes = ("circle", "square", "triangle", "star", "diamond", "cross")
    assert any(f'"{shape}"' in layer_reports[TEXT].explanation.text for shape in shapes)


def test_planted_neurons_score_above_their_layer_on_v2(layer_reports: dict[int, NeuronReport]) -> None:
    planted = {p.neuron for p in planted_neurons()}
    others = [r.simulation.correlation or 0.0 for n, r in layer_reports.items() if n not in planted]
    # The colour neurons lead the layer; the shape-name neuron ranks lower (36th of 256 with the baseline:
    # random tiny-llava neurons that follow colours are predicted well by the visual baseline too).
    for neuron, percentile in ((VISUAL, 90), (RED, 90), (TEXT, 75)):
        score = layer_reports[neuron].simulation.correlation
        assert score is not None and score > float(np.percentile(others, percentile)), (neuron, score)


def test_v2_exemplars_repeat_few_captions(layer_reports: dict[int, NeuronReport]) -> None:
    for neuron in (TEXT, RED):
        texts = [
            " ".join(t for t in e.tokens if not t.startswith("<patch"))
            for e in layer_reports[neuron].exemplars
        ]
        assert len(set(texts)) >= 18, texts  # of 20 (v1's red neuron: one caption twenty times)


def test_the_peak_modality_test_keeps_the_planted_types(scanned: tuple[Any, ...]) -> None:
    from workers.analysis.assemble import prepare_neuron
    from workers.process.scan_job import open_context

    runtime, model, dataset, _ = scanned
    options = PipelineOptions(type_method="permutation")
    context = open_context(runtime, model, dataset, "mlp_act", PLANTED_LAYER, options)
    for planted in planted_neurons():
        result = prepare_neuron(context, planted.neuron).neuron_type
        assert result.neuron_type == planted.neuron_type, (planted, result)
        visual, text, _ = result.p_values
        assert visual is not None and text is not None
        p = {"visual": visual, "text": text, "multimodal": min(visual, text)}[planted.neuron_type]
        assert p < 0.001, (planted, result.p_values)
        assert result.evidence().method == "permutation" and result.high_confidence
