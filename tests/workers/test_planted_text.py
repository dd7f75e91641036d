"""Planted neurons in a small text model built in the test (issue 10): a BERT from a config with a fixed
seed, the bundled MiniLM tokenizer, and three layer-0 MLP neurons edited to fire on digits, on the word
family "play" (plays, played, …) and on "?" (workers/models/planted_text.py). Scanned over text-probe-v2
and explained with the baseline, they are typed `text`, their explanations name the concept, and they
score above the layer's other neurons. Issue 18: a rare concept over a weak background (RARE_NEURON) and
the one-outlier neuron are typed and shaded by their concept; the permutation typing test, which asks
about image vs text tokens, is refused on this text-only model.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from service.contract import ExplanationRequest, NeuronReport, PipelineOptions, load_registry
from service.settings import load_settings
from workers.analysis.assemble import prepare_neuron
from workers.errors import InvalidRequest
from workers.models.loader import weights_path
from workers.models.planted_text import (
    OUTLIER_NEURON,
    OUTLIER_TOKEN,
    PLANTED_TEXT_CONCEPTS,
    RARE_NEURON,
    build_planted_bert,
)
from workers.process.explain_job import explain_neurons
from workers.process.scan_job import open_context

pytestmark = pytest.mark.timeout(300)

DIGITS, PLAY, QUESTION = 10, 20, 30
"""Planted neuron indices in layer 0 (workers/models/planted_text.py)."""
N_SAMPLES = 1200
CONCEPTS = PLANTED_TEXT_CONCEPTS


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, ...]:
    """(runtime, spec, dataset, hook point) with layer 0 of the planted BERT scanned."""
    registry = load_registry()
    minilm = registry.model("minilm-l6")
    spec = build_planted_bert(minilm, weights_path(minilm), tmp_path_factory.mktemp("tiny-bert-planted"))
    dataset = registry.dataset("text-probe-v2").model_copy(update={"n_samples": N_SAMPLES})
    settings = load_settings(artifact_url=str(tmp_path_factory.mktemp("planted-store")), device="cpu")
    from workers.process.scan_job import scan_layers
    from workers.process.worker import build_runtime

    runtime, point = build_runtime(settings), spec.hook("mlp_act")
    scan_layers(runtime, spec, dataset, point, [0], PipelineOptions())
    return runtime, spec, dataset, point


def _request(spec: Any, dataset: Any, options: PipelineOptions) -> ExplanationRequest:
    return ExplanationRequest(
        model=spec.id,
        layer=0,
        neurons=list(range(spec.neurons_per_layer)),
        hook="mlp_act",
        dataset=dataset.id,
        explainer="baseline",
        simulator="baseline",
        options=options,
    )


@pytest.fixture(scope="module")
def planted_reports(scanned: tuple[Any, ...]) -> dict[str, list[NeuronReport]]:
    runtime, spec, dataset, point = scanned
    reports = {}
    for method in ("threshold", "global-max", "chance-20"):
        scorers: list = ["simulation-batched", "detection", "fuzzing"]
        options = (
            PipelineOptions(scale="global-max")
            if method == "global-max"
            else PipelineOptions(chance_explanations=20)
            if method == "chance-20"
            else PipelineOptions(scorers=scorers)
        )
        request = _request(spec, dataset, options)
        reports[method] = list(
            explain_neurons(runtime, spec, dataset, point, request, list(range(spec.neurons_per_layer)))
        )
    return reports


def test_planted_neurons_are_text_neurons(planted_reports: dict[str, list[NeuronReport]]) -> None:
    reports = planted_reports["threshold"]
    for neuron in CONCEPTS:
        report = reports[neuron]
        assert report.neuron_type == "text", (neuron, report.type_evidence)
        assert report.dataset.id == "text-probe-v2"
        assert report.type_evidence.n_responding is not None and report.type_evidence.n_responding >= 40
        assert report.type_evidence.method == "text-threshold"
        assert report.type_evidence.p_value_text is None
        assert report.density is not None and 0 < report.density.sample_fraction < 0.5


def test_the_permutation_test_is_refused_on_a_text_model(scanned: tuple[Any, ...]) -> None:
    runtime, spec, dataset, point = scanned
    request = _request(spec, dataset, PipelineOptions(type_method="permutation"))
    with pytest.raises(InvalidRequest, match="text-only model has no image tokens"):
        list(explain_neurons(runtime, spec, dataset, point, request, [DIGITS]))


def test_planted_explanations_name_their_concept(planted_reports: dict[str, list[NeuronReport]]) -> None:
    reports = planted_reports["threshold"]
    assert reports[DIGITS].explanation.text.startswith("numbers (digit tokens)"), reports[DIGITS].explanation
    assert 'words starting with "play' in reports[PLAY].explanation.text, reports[PLAY].explanation
    assert '"?"' in reports[QUESTION].explanation.text, reports[QUESTION].explanation


def test_planted_neurons_score_above_the_rest_of_their_layer(
    planted_reports: dict[str, list[NeuronReport]],
) -> None:
    reports = planted_reports["threshold"]
    others = [r.simulation.correlation or 0.0 for r in reports if r.neuron not in CONCEPTS]
    for neuron in CONCEPTS:
        report = reports[neuron]
        score = report.simulation.correlation
        assert report.simulation.scorer == "simulation-batched"
        assert score is not None and score > float(np.percentile(others, 90)), (neuron, score)
        assert report.detection is not None and report.detection.balanced_accuracy is not None
        assert report.detection.balanced_accuracy >= 0.9
        assert report.fuzzing is not None and report.fuzzing.balanced_accuracy is not None
        assert report.normalisation is not None and report.domain_support is not None
        assert report.domain_specific is not None


def test_one_outlier_sample_is_flagged_and_does_not_set_the_scale(
    planted_reports: dict[str, list[NeuronReport]],
) -> None:
    outlier = planted_reports["threshold"][OUTLIER_NEURON]
    normalisation = outlier.normalisation
    assert normalisation is not None and normalisation.top1_dominates
    # Below its gap is the "?" concept, far above the typical sample: the quantile stays.
    assert normalisation.concept_samples is None and normalisation.reason is not None
    assert "one outlier sample does not squash the rest" in normalisation.reason
    assert normalisation.scale < 0.5 * outlier.max_activation  # the quantile, not the outlier
    assert outlier.neuron_type == "text"  # its "?" samples reach 10 on the quantile scale
    assert outlier.type_evidence.n_responding == 50
    question = [e for e in outlier.exemplars if "?" in e.tokens]
    assert len(question) >= 10 and all(max(e.activations_norm) > 9 for e in question)
    squashed = planted_reports["global-max"][OUTLIER_NEURON]
    assert squashed.normalisation is not None and squashed.normalisation.method == "global-max"
    # Under the global max the "?" samples stay below 3 of 10: only the outlier sample responds.
    assert squashed.neuron_type == "text" and squashed.type_evidence.n_responding == 1
    for neuron in CONCEPTS:
        normalisation = planted_reports["threshold"][neuron].normalisation
        assert normalisation is not None and not normalisation.top1_dominates
        assert normalisation.concept_samples is None


def test_a_rare_concept_over_a_weak_background_is_typed_and_shaded_by_the_concept(
    scanned: tuple[Any, ...], planted_reports: dict[str, list[NeuronReport]]
) -> None:
    report = planted_reports["threshold"][RARE_NEURON]
    concept = [e for e in report.exemplars if OUTLIER_TOKEN in e.tokens]
    background = [e for e in report.exemplars if OUTLIER_TOKEN not in e.tokens]
    assert 1 <= len(concept) <= 4 and concept == report.exemplars[: len(concept)]
    normalisation = report.normalisation
    assert normalisation is not None and normalisation.method == "quantile"
    assert normalisation.concept_samples == len(concept), normalisation
    assert normalisation.reason is not None and "rare concept" in normalisation.reason
    assert normalisation.scale == pytest.approx(min(e.max_activation for e in concept))
    assert all(max(e.activations_norm) <= 3.0 for e in background)  # background shades ≤ 3 of 10
    assert all(e.activations_norm[e.tokens.index(OUTLIER_TOKEN)] == 10.0 for e in concept)
    evidence = report.type_evidence
    assert report.neuron_type == "text" and evidence.n_responding == len(concept), evidence
    assert report.density is not None and report.density.exact
    assert report.density.n_samples_above == len(concept)
    # The explainer sees the concept samples at the top of the scale and the background near 0.
    runtime, spec, dataset, _ = scanned
    context = open_context(runtime, spec, dataset, "mlp_act", 0, PipelineOptions())
    records = prepare_neuron(context, RARE_NEURON).explainer_input(0)
    for record in records.records:
        peak = float(np.max(record.normalised(records.max_activation)))
        assert peak == 10.0 if OUTLIER_TOKEN in record.record.tokens else peak <= 3.0


def test_the_planted_digit_neuron_is_beyond_chance(planted_reports: dict[str, list[NeuronReport]]) -> None:
    """Against the explanations of 20 other neurons of the layer on its own held-out records, the digit
    neuron's score is beyond chance at p < 0.001. With the default k = 5 it is not: one of its 5 donors
    (neuron 41) is explained as numbers too and predicts its records as well (r ≈ 0.996), so with 4
    degrees of freedom p ≈ 0.09; the "play" and "?" neurons, whose donors predict nothing, are beyond
    chance at k = 5 as well."""
    digits = planted_reports["chance-20"][DIGITS].simulation
    assert digits.chance is not None and digits.chance.k == 20 and digits.correlation is not None
    assert digits.chance.p_value is not None and digits.chance.p_value < 0.001
    assert digits.chance.beyond_chance is True
    default = planted_reports["threshold"]
    for neuron in (PLAY, QUESTION):
        chance = default[neuron].simulation.chance
        assert chance is not None and chance.k == 5
        assert chance.p_value is not None and chance.p_value < 0.001 and chance.beyond_chance is True
    shared = default[DIGITS].simulation.chance
    assert shared is not None and shared.beyond_chance is False and 41 in shared.donors
    assert max(r for r in shared.null_correlations if r is not None) > 0.9
