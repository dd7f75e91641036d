"""The `openai` explainer and simulator against the HTTP peer, with the real `openai` client.

Text neurons come from a real MiniLM scan (the session's small scan); visual records are built by hand
with images whose colours the peer can see. Every test is bounded by pytest-timeout.
"""

from __future__ import annotations

import base64
import re
from typing import Any

import numpy as np
import pytest
from PIL import Image

from service.contract import DatasetSpec, ExplanationRequest, ModelSpec, PipelineOptions
from service.settings import LLMEndpointConfig, Settings, load_settings
from tests.llm_peer import Fault, LLMPeer
from workers.analysis.assemble import prepare_neuron, score_neuron
from workers.analysis.calibration import SimulationScorer
from workers.explain.openai_explainer import ExplanationUnusable, OpenAIExplainer
from workers.llm.caller import LLMCaller
from workers.llm.endpoints import LLMEndpoint
from workers.llm.errors import LLMEndpointError
from workers.process.backends import make_openai_explainer
from workers.process.explain_job import explain_neurons
from workers.process.runtime import WorkerRuntime
from workers.process.scan_job import open_context
from workers.process.worker import build_runtime
from workers.simulate.base import SimulationInput
from workers.simulate.openai_simulator import MissingImage, OpenAISimulator, make_openai_simulator
from workers.simulate.scoring import pearson
from workers.vocabulary.records import (
    MODALITY_IMAGE,
    MODALITY_TEXT,
    ActivationRecord,
    NeuronRecords,
    TokenRecord,
)
from workers.vocabulary.shading import shaded_png

pytestmark = pytest.mark.timeout(120)

LAYER = 2
MATCH, MISS = 8.9, 0.1
"""The peer's expected values from its logprobs: 0.8·10 + 0.1·9 for a predicted 10, 0.1·1 for a 0."""


def _caller(peer: LLMPeer, concurrency: int = 4, **overrides: Any) -> LLMCaller:
    fields: dict[str, Any] = {
        "name": "peer",
        "base_url": peer.base_url,
        "api_key": "k",
        "explainer_model": "peer-explainer",
        "simulator_model": "peer-simulator",
        "timeout_s": 10.0,
        "max_retries": 2,
        "backoff_s": 0.01,
        "concurrency": concurrency,
    }
    fields.update(overrides)
    return LLMCaller(LLMEndpoint(**fields))


def _quoted(explanation: str) -> set[str]:
    return {word.lower() for phrase in re.findall(r'"([^"]+)"', explanation) for word in phrase.split()}


def _peer_prediction(explanation: str, record: TokenRecord) -> np.ndarray:
    """What the peer's rule predicts for a text record, as the simulator must report it."""
    quoted = _quoted(explanation)
    return np.array(
        [MATCH if token.strip().removeprefix("##").lower() in quoted else MISS for token in record.tokens],
        dtype=np.float32,
    )


PEER_MODELS = {"explainer_model": "peer-explainer", "simulator_model": "peer-simulator"}


@pytest.fixture(scope="module")
def text_context(
    small_scan: dict[int, Any], worker_runtime: WorkerRuntime, minilm: ModelSpec, small_probe: DatasetSpec
) -> Any:
    return open_context(worker_runtime, minilm, small_probe, "mlp_act", LAYER, PipelineOptions())


def test_text_neurons_explained_and_simulated_end_to_end(
    text_context: Any, worker_settings: Settings, minilm: ModelSpec, small_probe: DatasetSpec
) -> None:
    """The real pipeline (explain_neurons on a WorkerRuntime whose LLM endpoint is the peer) against what
    the peer's rule predicts for each neuron's held-out records."""
    neurons = list(range(8))
    request = ExplanationRequest(
        model=minilm.id,
        layer=LAYER,
        neurons=neurons,
        hook="mlp_act",
        dataset=small_probe.id,
        explainer="openai",
        simulator="openai",
        endpoint="peer",
        options=PipelineOptions(chance_explanations=0),
    )
    with LLMPeer() as peer:
        runtime = build_runtime(
            worker_settings.model_copy(
                update={"llm_endpoints": {"peer": LLMEndpointConfig(base_url=peer.base_url, **PEER_MODELS)}}
            )
        )
        point = minilm.hook("mlp_act")
        # LLM backends yield each report as its neuron completes (a checkpoint), not in request order.
        reports = sorted(
            explain_neurons(runtime, minilm, small_probe, point, request, neurons), key=lambda r: r.neuron
        )
        requests = peer.requests
    prepared = [prepare_neuron(text_context, neuron) for neuron in neurons]  # what the pipeline prepared
    n_heldout = len(prepared[0].heldout)
    assert n_heldout == 20
    assert len(requests) == len(neurons) * (1 + n_heldout)  # 1 explainer call + 1 per held-out record
    assert [report.neuron for report in reports] == neurons
    for item, report in zip(prepared, reports, strict=True):
        text = report.explanation.text
        assert text.startswith('the tokens "') or text.startswith('the token "')
        shown = {t.removeprefix("##").lower() for r in item.explainer_input(LAYER).records for t in r.tokens}
        assert _quoted(text) <= shown  # it named tokens of the records it was shown
        assert report.simulation.parse_failures == 0
        assert (report.simulation.n_top, report.simulation.n_random) == (10, 10)
        real = np.concatenate([record.activations for record in item.heldout])
        predicted = np.concatenate([_peer_prediction(text, record.record) for record in item.heldout])
        expected, _ = pearson(real, predicted)
        assert (
            report.simulation.correlation == pytest.approx(expected, abs=1e-6)
            if expected is not None
            else report.simulation.correlation is None
        )
    assert {r.explanation.model for r in reports} == {"peer-explainer"}
    assert {r.simulation.model for r in reports} == {"peer-simulator"}
    assert {r.explanation.prompt_version for r in reports} == {"text-explainer-bills-1"}
    # Explanations from the top tokens predict real activations: most neurons correlate positively.
    assert sum(1 for r in reports if (r.simulation.correlation or 0) > 0) >= len(reports) // 2
    billed = sum(request.prompt_tokens for request in requests), sum(r.completion_tokens for r in requests)
    used = (
        sum(r.provenance.llm_tokens["prompt"] for r in reports),
        sum(r.provenance.llm_tokens["completion"] for r in reports),
    )
    assert used == billed and billed[0] > 0
    assert {r.provenance.llm_calls["simulator"] for r in reports if r.provenance.llm_calls} == {n_heldout}


def test_candidates_are_scored_on_a_calibration_split(text_context: Any) -> None:
    item = prepare_neuron(text_context, 3)
    records = item.explainer_input(LAYER)
    with LLMPeer() as peer:
        caller = _caller(peer)
        explainer = OpenAIExplainer(caller, candidates=3, scorer=SimulationScorer(OpenAISimulator(caller)))
        (result,) = explainer.explain([records])
        explain_request = next(r for r in peer.requests if r.role == "explainer")
        n_simulations = sum(1 for r in peer.requests if r.role == "simulator")
    n_records = len(records.records)
    n_calibration = n_records // 4
    # The neuron is the last user turn (after Bills et al.'s few-shot neurons), before a zeros-only repeat.
    prompt = explain_request.body["messages"][-1]["content"].split("Same activations")[0]
    assert prompt.count("<start>") == n_records - n_calibration  # calibration records stay out of the prompt
    assert explain_request.body["n"] == 3 and explain_request.body["temperature"] == 1.0
    assert n_simulations == 3 * n_calibration
    assert result.candidates is not None and len(result.candidates) == 3
    assert len({c.text for c in result.candidates}) == 3  # the peer's three choices differ
    scores = [c.calibration_correlation for c in result.candidates]
    best = max(range(3), key=lambda i: (scores[i] if isinstance(scores[i], float) else -2.0, -i))
    assert result.text == result.candidates[best].text
    assert result.prompt_tokens > 0


def test_unparseable_replies_are_retried_once_then_counted(text_context: Any) -> None:
    item = prepare_neuron(text_context, 5)
    explanation = 'the tokens "the"'
    # The first three simulator replies are bad. With one request in flight at a time, some record gets
    # two of them (a parse failure) and another one (its retry succeeds), whichever thread asks first.
    faults = [Fault("malformed", 2, role="simulator"), Fault("wrong_length", 1, role="simulator")]
    with LLMPeer(faults=faults) as peer:
        simulator = OpenAISimulator(_caller(peer, concurrency=1))
        (result,) = simulator.simulate([item.simulation_input(explanation)])
        calls = peer.calls
    n = len(item.heldout)
    assert calls == n + 2
    assert result.parse_failures == 1
    assert sum(prediction is None for prediction in result.predictions) == 1
    score = score_neuron(item, result, seed=0)
    assert score.n_top + score.n_random == n - 1  # the failed record is left out, not scored as zeros


def test_persistent_endpoint_failure_is_a_named_error(text_context: Any) -> None:
    records = prepare_neuron(text_context, 1).explainer_input(LAYER)
    with LLMPeer(faults=[Fault("server_error", 100)]) as peer:
        with pytest.raises(LLMEndpointError, match=r"^LLM endpoint 'peer' failed after 3 attempts"):
            OpenAIExplainer(_caller(peer)).explain([records])


def test_a_failing_endpoint_stops_the_batch_early() -> None:
    records = [
        TokenRecord(sample_id=i, tokens=("red",), modality=np.array([MODALITY_TEXT], dtype=np.uint8))
        for i in range(200)
    ]
    with LLMPeer(api_key="another-key") as peer:  # every call answers 401, which is not retried
        simulator = OpenAISimulator(_caller(peer, concurrency=2))
        with pytest.raises(LLMEndpointError, match="HTTP 401"):
            simulator.simulate([SimulationInput('the tokens "red"', records)])
        calls = peer.calls
    assert calls < len(records)  # the queued calls were cancelled, not each sent to a failing endpoint


def test_an_empty_explanation_is_retried_then_fails_clearly(text_context: Any) -> None:
    records = prepare_neuron(text_context, 1).explainer_input(LAYER)
    with LLMPeer(faults=[Fault("malformed", 1, role="explainer")]) as peer:
        (result,) = OpenAIExplainer(_caller(peer)).explain([records])
        assert result.text and peer.calls == 2
    with LLMPeer(faults=[Fault("malformed", 2, role="explainer")]) as peer:
        with pytest.raises(ExplanationUnusable, match="gave no explanation for neuron 1 of layer 2"):
            OpenAIExplainer(_caller(peer)).explain([records])


# --------------------------------------------------------------------------- visual records


class _Images:
    def __init__(self, images: dict[int, Image.Image]) -> None:
        self.images = images

    def image(self, sample_id: int) -> Image.Image | None:
        return self.images.get(sample_id)


def _quadrant_image(colour: tuple[int, int, int]) -> Image.Image:
    """32×32 grey image with `colour` in its top-left quadrant (patch 0 of a 2×2 grid)."""
    image = Image.new("RGB", (32, 32), (128, 128, 128))
    image.paste(colour, (0, 0, 16, 16))
    return image


def _visual_record(sample_id: int, word: str, patch_acts: list[float]) -> ActivationRecord:
    tokens = ("<patch>",) * 4 + ("a", word, "square")
    modality = np.array([MODALITY_IMAGE] * 4 + [MODALITY_TEXT] * 3, dtype=np.uint8)
    record = TokenRecord(sample_id=sample_id, tokens=tokens, modality=modality, patch_grid=(2, 2))
    activations = np.array([*patch_acts, 0.0, 5.0, 0.0], dtype=np.float32)
    return ActivationRecord(record=record, activations=activations)


def test_visual_neuron_explained_from_shaded_images_and_simulated_per_patch() -> None:
    images = _Images({0: _quadrant_image((220, 30, 30)), 1: _quadrant_image((30, 60, 220))})
    shown = _visual_record(0, "red", [10.0, 0.0, 0.0, 0.0])
    neuron = NeuronRecords(layer=0, neuron=9, max_activation=10.0, records=[shown])
    with LLMPeer() as peer:
        caller = _caller(peer)
        explainer = OpenAIExplainer(caller, images=images)
        (result,) = explainer.explain([neuron])
        request = peer.requests[0]
        simulator = OpenAISimulator(caller, images=images)
        heldout = [_visual_record(0, "red", [0.0] * 4).record, _visual_record(1, "blue", [0.0] * 4).record]
        (simulation,) = simulator.simulate([SimulationInput(result.text, heldout)])
    assert explainer.prompt_version == "visual-explainer-1"
    assert result.text == 'the colour "red" in the image and the tokens "red".'
    parts = request.body["messages"][1]["content"]
    image_url = next(part["image_url"]["url"] for part in parts if part["type"] == "image_url")
    expected_png = shaded_png(images.images[0], [10.0, 0.0, 0.0, 0.0], (2, 2), 10.0)
    assert base64.b64decode(image_url.split(",", 1)[1]) == expected_png  # the shaded exemplar was sent
    assert {"type": "text", "text": "<start>\na\t0\nred\t5\nsquare\t0\n<end>"} in parts
    red, blue = simulation.predictions
    assert red is not None and blue is not None
    np.testing.assert_allclose(red, [MATCH, MISS, MISS, MISS, MISS, MATCH, MISS], rtol=1e-6)
    np.testing.assert_allclose(blue, [MISS] * 7, rtol=1e-6)
    assert simulation.parse_failures == 0


def test_patches_without_an_image_source_are_a_named_error() -> None:
    record = _visual_record(0, "red", [0.0] * 4).record
    with LLMPeer() as peer:
        simulator = OpenAISimulator(_caller(peer))
        with pytest.raises(MissingImage, match="sample 0 has 4 image patches to simulate but"):
            simulator.simulate([SimulationInput('the colour "red"', [record])])


def test_factories_read_endpoint_and_candidates_from_settings() -> None:
    with LLMPeer() as peer:
        settings = load_settings(
            llm_base_url=peer.base_url, explainer_model="big", simulator_model="small", llm_candidates=2
        )
        llm = build_runtime(settings).llm
        explainer = make_openai_explainer(llm)
        simulator = make_openai_simulator(llm)
        assert (explainer.backend, explainer.model, explainer.candidates) == ("openai", "big", 2)
        assert isinstance(explainer.scorer, SimulationScorer) and explainer.scorer.simulator.model == "small"
        assert (simulator.backend, simulator.model) == ("openai", "small")
        assert simulator.caller.endpoint.base_url == peer.base_url
