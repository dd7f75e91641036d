"""The baseline explainer and simulator, and the Bills et al. record format."""

from __future__ import annotations

import numpy as np
import pytest

from workers.errors import UnknownBackend
from workers.explain.baseline import NOTHING, BaselineExplainer, describe
from workers.llm.caller import LLMCallers
from workers.llm.endpoints import LLMEndpoints
from workers.process.backends import make_explainer, make_simulator
from workers.simulate.base import SimulationInput
from workers.simulate.baseline import BaselineSimulator, predict_record
from workers.vocabulary.prompting import format_record
from workers.vocabulary.records import MODALITY_TEXT, ActivationRecord, NeuronRecords, TokenRecord
from workers.vocabulary.text_phrase import parse_text_phrase, quote


def _record(
    sample_id: int, tokens: list[str], acts: list[float], domain: str | None = None
) -> ActivationRecord:
    modality = np.full(len(tokens), MODALITY_TEXT, dtype=np.uint8)
    token_record = TokenRecord(sample_id=sample_id, tokens=tuple(tokens), modality=modality, domain=domain)
    return ActivationRecord(record=token_record, activations=np.array(acts, dtype=np.float32))


COLOUR_RECORDS = [
    _record(0, ["the", "red", "car"], [0.1, 4.0, 0.0], "colours"),
    _record(
        1,
        ["a", "blue", "sky", "and", "the", "green", "grass"],
        [0.0, 3.6, 0.0, 0.0, 0.0, 3.0, 0.0],
        "colours",
    ),
    _record(2, ["the", "red", "door"], [0.0, 3.8, 0.1], "colours"),
    _record(3, ["the", "gr", "##ey", "wall"], [0.0, 2.0, 1.0, 0.0], "colours"),
    _record(4, ["two", "dogs", "ran"], [0.2, 0.0, 0.0], "animals"),
]


def test_record_format_is_bills_et_al() -> None:
    """The formatter the explainer prompts use (workers/vocabulary/prompting.py): normalised to 0–10 by the
    neuron's max, shown as integers with halves rounded up."""
    record = _record(0, ["the", "red", "car"], [0.0, 2.0, 0.5])
    assert format_record(record.tokens, record.normalised(2.0)) == "<start>\nthe\t0\nred\t10\ncar\t3\n<end>"
    assert format_record(record.tokens, record.normalised(4.0)) == "<start>\nthe\t0\nred\t5\ncar\t1\n<end>"
    halves = _record(1, ["a", "b", "c", "d"], [0.5, 1.5, 2.5, 4.5])
    assert format_record(halves.tokens, halves.normalised(10.0)) == "<start>\na\t1\nb\t2\nc\t3\nd\t5\n<end>"


def test_baseline_explanation_quotes_the_tokens_carrying_the_activation() -> None:
    neuron = NeuronRecords(layer=1, neuron=7, max_activation=4.0, records=COLOUR_RECORDS)
    text = describe(neuron)
    assert text == 'the tokens "red", "blue" and "green" (mostly in colours samples), often after "the"'
    result = BaselineExplainer().explain([neuron, neuron])
    assert [r.text for r in result] == [text, text]
    assert (result[0].prompt_tokens, result[0].completion_tokens, result[0].candidates) == (0, 0, None)


def test_baseline_explanation_of_a_dead_neuron_says_so() -> None:
    dead = NeuronRecords(
        layer=0, neuron=0, max_activation=-0.1, records=[_record(0, ["a", "b"], [-0.1, -0.2])]
    )
    assert describe(dead) == NOTHING


def test_simulator_predicts_from_quoted_tokens_in_order() -> None:
    parsed = parse_text_phrase('the tokens "red", "blue" and "say \\"hi\\"", often after "the"')
    assert parsed is not None
    assert parsed.tokens == ["red", "blue", 'say "hi"'] and parsed.context == ["the"]
    record = COLOUR_RECORDS[1].record  # a blue sky and the green grass
    assert predict_record(parsed, record).tolist() == [
        0.0,
        pytest.approx(8.333 * 0.75, abs=1e-3),
        0,
        0,
        0,
        0,
        0,
    ]
    red = COLOUR_RECORDS[0].record  # "the red car": red follows the context word → full weight
    assert predict_record(parsed, red).tolist() == [0.0, 10.0, 0.0]
    grey = parse_text_phrase('the token "grey"')
    assert grey is not None
    assert predict_record(grey, COLOUR_RECORDS[3].record).tolist() == [0.0, 10.0, 10.0, 0.0]  # both pieces


def test_simulator_counts_unparseable_explanations() -> None:
    records = [record.record for record in COLOUR_RECORDS[:2]]
    results = BaselineSimulator().simulate(
        [SimulationInput(NOTHING, records), SimulationInput('the token "red"', records)]
    )
    assert results[0].parse_failures == 1 and results[0].predictions == [None, None]
    assert results[1].parse_failures == 0
    assert [p.tolist() for p in results[1].predictions if p is not None] == [[0.0, 10.0, 0.0], [0.0] * 7]


def test_simulator_input_carries_tokens_only() -> None:
    # Records given to a simulator are TokenRecords: no activation field exists to peek at.
    assert "activations" not in TokenRecord.__dataclass_fields__
    hot = _record(0, ["the", "red", "car"], [0.0, 9.0, 0.0])
    cold = _record(0, ["the", "red", "car"], [5.0, 0.0, 5.0])
    results = BaselineSimulator().simulate(
        [SimulationInput('the token "red"', [hot.record]), SimulationInput('the token "red"', [cold.record])]
    )
    assert [r.predictions[0].tolist() for r in results if r.predictions[0] is not None] == [[0, 10, 0]] * 2


def test_quote_escapes_round_trip_through_the_parser() -> None:
    for token in ['"', "\\", 'a"b', "plain"]:
        parsed = parse_text_phrase(f"the token {quote(token)}")
        assert parsed is not None and parsed.tokens == [token.lower()]


def test_unknown_backends_are_named_errors() -> None:
    settings = LLMCallers(LLMEndpoints())  # no LLM endpoint configured
    assert make_explainer("baseline", settings).model == "baseline-v1"
    assert make_simulator("baseline", settings).backend == "baseline"
    with pytest.raises(UnknownBackend, match="explainer 'gpt' is not available: choose baseline"):
        make_explainer("gpt", settings)
    with pytest.raises(UnknownBackend, match="simulator 'x' is not available"):
        make_simulator("x", settings)
