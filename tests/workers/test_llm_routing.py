"""The `openai` backends as the pipeline builds them: registered factories (endpoint, k, images), the
prompt a vision-language neuron gets by its type, and the call counts and prompt versions results carry."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from service.settings import LLMEndpointConfig, load_settings
from tests.llm_peer import Fault, LLMPeer
from workers.analysis.calibration import SimulationScorer
from workers.errors import UnknownBackend
from workers.explain.baseline import BaselineExplainer
from workers.explain.openai_explainer import OpenAIExplainer
from workers.llm.caller import LLMCallers
from workers.llm.errors import UnknownLLMEndpoint
from workers.process.backends import make_explainer, make_simulator
from workers.process.worker import llm_endpoints
from workers.simulate.base import SimulationInput
from workers.simulate.openai_simulator import OpenAISimulator
from workers.vocabulary.records import (
    MODALITY_IMAGE,
    MODALITY_TEXT,
    ActivationRecord,
    NeuronRecords,
    TokenRecord,
)

pytestmark = pytest.mark.timeout(60)


class _Images:
    def __init__(self, image: Image.Image) -> None:
        self.picture = image

    def image(self, sample_id: int) -> Image.Image | None:
        return self.picture


def _record(sample_id: int) -> ActivationRecord:
    tokens = ("<patch>",) * 4 + ("a", "red", "square")
    modality = np.array([MODALITY_IMAGE] * 4 + [MODALITY_TEXT] * 3, dtype=np.uint8)
    record = TokenRecord(sample_id=sample_id, tokens=tokens, modality=modality, patch_grid=(2, 2))
    return ActivationRecord(record=record, activations=np.array([9, 0, 0, 0, 0, 6, 0], dtype=np.float32))


def _settings(base_url: str) -> LLMCallers:
    """The LLM callers a worker builds from these settings."""
    settings = load_settings(
        llm_base_url=base_url,
        llm_api_key="k",
        explainer_model="big",
        simulator_model="small",
        llm_backoff_s=0.01,
        llm_endpoints={"other": LLMEndpointConfig(base_url=base_url, explainer_model="other-model")},
    )
    return LLMCallers(llm_endpoints(settings))


def test_backends_are_built_by_name_with_endpoint_and_candidates() -> None:
    with LLMPeer() as peer:
        settings = _settings(peer.base_url)
        assert isinstance(make_explainer("baseline", settings), BaselineExplainer)
        explainer = make_explainer("openai", settings, endpoint="other", candidates=3, seed=4)
        assert isinstance(explainer, OpenAIExplainer)
        assert (explainer.model, explainer.candidates) == ("other-model", 3)
        assert isinstance(explainer.scorer, SimulationScorer)
        assert (explainer.scorer.seed, explainer.scorer.simulator.model) == (4, "other-model")
        simulator = make_simulator("openai", settings)
        assert isinstance(simulator, OpenAISimulator)
        assert (simulator.caller.endpoint.name, simulator.model) == ("default", "small")
        with pytest.raises(UnknownLLMEndpoint, match="choose one of default, other"):
            make_simulator("openai", settings, endpoint="nope")
        with pytest.raises(UnknownBackend, match="choose baseline, openai"):
            make_explainer("gpt", settings)


@pytest.mark.parametrize(
    ("neuron_type", "version", "has_image"),
    [
        ("visual", "visual-explainer-1", True),
        ("multimodal", "visual-explainer-1", True),
        ("text", "text-explainer-bills-1", False),
        ("unknown", "text-explainer-bills-1", False),
    ],
)
def test_a_vision_language_neuron_gets_the_prompt_of_its_type(
    neuron_type: str, version: str, has_image: bool
) -> None:
    images = _Images(Image.new("RGB", (32, 32), (220, 30, 30)))
    neuron = NeuronRecords(
        layer=2, neuron=5, max_activation=9.0, records=[_record(0)], neuron_type=neuron_type
    )
    with LLMPeer() as peer:
        explainer = make_explainer("openai", _settings(peer.base_url), images=images)
        (result,) = explainer.explain([neuron])
        (request,) = peer.requests
    assert result.prompt_version == version and result.llm_calls == 1
    content = request.body["messages"][1]["content"]
    sent_image = isinstance(content, list) and any(part["type"] == "image_url" for part in content)
    assert sent_image == has_image
    assert ("colour" in result.text) == has_image


def test_simulation_results_carry_calls_and_prompt_versions() -> None:
    images = _Images(Image.new("RGB", (32, 32), (220, 30, 30)))
    text_only = TokenRecord(
        sample_id=1, tokens=("a", "red", "car"), modality=np.full(3, MODALITY_TEXT, dtype=np.uint8)
    )
    with LLMPeer(faults=[Fault("server_error", 1, "simulator")]) as peer:
        simulator = make_simulator("openai", _settings(peer.base_url), images=images)
        mixed, text = simulator.simulate(
            [
                SimulationInput('the tokens "red"', [_record(0).record]),
                SimulationInput('the tokens "red"', [text_only]),
            ]
        )
    assert mixed.prompt_version == "text-simulator-1+visual-simulator-1"
    assert text.prompt_version == "text-simulator-1"
    # The mixed record costs a text and an image request; one of the three calls met a 500 and was retried.
    assert mixed.llm_calls + text.llm_calls == 4 == peer.calls
    assert mixed.parse_failures == text.parse_failures == 0
