"""Cheaper scorers (issue 10): batched simulation agrees with per-record simulation, and detection and
fuzzing separate a neuron's own explanation from a shuffled one; through the HTTP peer with the real
`openai` client, and with the baseline judge."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.llm_peer import LLMPeer
from workers.llm.caller import LLMCaller
from workers.llm.endpoints import LLMEndpoint
from workers.simulate.base import SimulationInput
from workers.simulate.batched import BatchedOpenAISimulator
from workers.simulate.binary import BaselineJudge, OpenAIJudge, binary_score, parse_binary
from workers.simulate.openai_simulator import OpenAISimulator
from workers.simulate.prompts import build_batched_simulator_messages, parse_batched
from workers.simulate.scoring import score_simulation
from workers.vocabulary.records import MODALITY_TEXT, ActivationRecord, TokenRecord

pytestmark = pytest.mark.timeout(120)

WORDS = ("the", "red", "dog", "ran", "past", "a", "blue", "car", "and", "cat", "sat", "on", "mat")


def _caller(peer: LLMPeer) -> LLMCaller:
    return LLMCaller(
        LLMEndpoint(
            name="peer",
            base_url=peer.base_url,
            api_key="k",
            explainer_model="e",
            simulator_model="s",
            timeout_s=10.0,
            max_retries=1,
            backoff_s=0.01,
            concurrency=4,
        )
    )


def _records(concept: str, n: int, seed: int, with_concept: bool) -> list[ActivationRecord]:
    """Sentences of 5–9 words; with_concept puts `concept` in each and fires only there."""
    rng = np.random.default_rng(seed)
    others = [w for w in WORDS if w not in ("red", "dog")]
    records = []
    for index in range(n):
        tokens = list(rng.choice(others, size=int(rng.integers(5, 10))))
        if with_concept:
            tokens[int(rng.integers(0, len(tokens)))] = concept
        acts = np.array([8.0 if t == concept else 0.1 for t in tokens], dtype=np.float32)
        modality = np.full(len(tokens), MODALITY_TEXT, dtype=np.uint8)
        records.append(ActivationRecord(TokenRecord(seed * 100 + index, tuple(tokens), modality), acts))
    return records


def test_batched_protocol_round_trip() -> None:
    messages = build_batched_simulator_messages('the tokens "red"', [["a", "red"], ["red"]])
    assert messages[1]["content"].endswith(
        'Reply with {"records": [...]} holding exactly 2 lists, of lengths 2, 1.'
    )
    assert "Record 2:\n<start>\nred\tunknown\n<end>" in messages[1]["content"]
    assert parse_batched('{"records": [[0, 10], [10]]}', [2, 1]) == [[0.0, 10.0], [10.0]]
    assert parse_batched('{"records": [[0, 10], [10, 1]]}', [2, 1]) == [[0.0, 10.0], None]
    assert parse_batched('{"records": [[0, 10]]}', [2, 1]) is None
    assert parse_binary("detection", '{"detections": [1, 0, 1]}', 3) == [1, 0, 1]
    assert parse_binary("detection", '{"detections": [1, 2]}', 2) is None


def test_batched_and_per_record_simulation_agree_on_the_peer() -> None:
    records = _records("red", 10, 1, True) + _records("red", 10, 2, False)
    item = SimulationInput('the tokens "red" and "blue"', [r.record for r in records])
    real = [r.activations for r in records]
    is_top = [True] * 10 + [False] * 10
    with LLMPeer() as peer:
        caller = _caller(peer)
        (single,) = OpenAISimulator(caller).simulate([item])
        single_calls = peer.calls
        (batched,) = BatchedOpenAISimulator(caller, batch_records=8).simulate([item])
        batched_calls = peer.calls - single_calls
    assert (single_calls, batched_calls) == (20, 3) and batched.llm_calls == 3
    assert batched.prompt_version == "text-simulator-batched-1" and batched.parse_failures == 0
    for one, many in zip(single.predictions, batched.predictions, strict=True):
        assert one is not None and many is not None
        np.testing.assert_allclose(one, many)
    first = score_simulation(real, single.predictions, is_top, seed=0)
    second = score_simulation(real, batched.predictions, is_top, seed=0)
    assert first.correlation is not None and first.correlation == pytest.approx(second.correlation, abs=1e-12)


@pytest.mark.parametrize("judge_kind", ["peer", "baseline"])
def test_detection_and_fuzzing_separate_own_from_shuffled_explanations(judge_kind: str) -> None:
    neurons = {
        "red": (_records("red", 10, 3, True), _records("red", 10, 4, False)),
        "dog": (_records("dog", 10, 5, True), _records("dog", 10, 6, False)),
    }
    explanations = {"red": 'the token "red"', "dog": 'the token "dog"'}
    shuffled = {"red": explanations["dog"], "dog": explanations["red"]}

    def scores(judge: Any) -> dict[tuple[str, str, str], float | None]:
        result = {}
        for name, (top, random) in neurons.items():
            for label, texts in (("own", explanations), ("shuffled", shuffled)):
                for kind in ("detection", "fuzzing"):
                    score = binary_score(kind, judge, texts[name], top, random, seed=0, prompt_version=None)
                    assert score.parse_failures == 0 and score.n_positive == 10, score
                    result[(name, label, kind)] = score.balanced_accuracy
        return result

    if judge_kind == "peer":
        with LLMPeer() as peer:
            found = scores(OpenAIJudge(_caller(peer), batch=10))
            assert peer.calls == 2 * 2 * 2 * 2  # 20 texts per score, 10 per request
    else:
        found = scores(BaselineJudge())
    for name in neurons:
        for kind in ("detection", "fuzzing"):
            own, other = found[(name, "own", kind)], found[(name, "shuffled", kind)]
            assert own == 1.0 and other is not None and other <= 0.5, (name, kind, own, other)
