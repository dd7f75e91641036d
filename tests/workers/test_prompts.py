"""The explainer and simulator prompts are a contract: their exact text is pinned here."""

from __future__ import annotations

import base64
import io
import math

import numpy as np
import pytest
from PIL import Image

from workers.explain.bills import BILLS_PROMPT_VERSION as TEXT_EXPLAINER_PROMPT_VERSION
from workers.explain.bills import (
    RawRecord,
    build_bills_messages,
    discretise,
    few_shot_chars,
    few_shot_examples,
    neuron_message_chars,
)
from workers.explain.prompts import (
    VISUAL_EXPLAINER_PROMPT_VERSION,
    PromptRecord,
    build_visual_explainer_messages,
    parse_explanation,
)
from workers.llm.caller import TokenLogprob
from workers.process.prompt_profile import prompt_chars
from workers.simulate.prompts import (
    TEXT_SIMULATOR_PROMPT_VERSION,
    VISUAL_SIMULATOR_PROMPT_VERSION,
    build_text_simulator_messages,
    build_visual_simulator_messages,
    expected_values,
    parse_activations,
    parse_patches,
)
from workers.vocabulary.prompting import activation_integer, escape_token


def _png(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_prompt_versions_are_named() -> None:
    assert TEXT_EXPLAINER_PROMPT_VERSION == "text-explainer-bills-1"
    assert VISUAL_EXPLAINER_PROMPT_VERSION == "visual-explainer-1"
    assert TEXT_SIMULATOR_PROMPT_VERSION == "text-simulator-1"
    assert VISUAL_SIMULATOR_PROMPT_VERSION == "visual-simulator-1"


BILLS_SYSTEM = (
    "We're studying neurons in a neural network. Each neuron looks for some particular thing in a short "
    "document. Look at the parts of the document the neuron activates for and summarize in a single "
    "sentence what the neuron is looking for. Don't list examples of words.\n\nThe activation format is "
    "token<tab>activation. Activation values range from 0 to 10. A neuron finding what it's looking for is "
    "represented by a non-zero activation value. The higher the activation value, the stronger the match."
)
"""openai/automated-interpretability, explainer.py, TokenActivationPairExplainer: verbatim."""


def test_bills_discretisation_is_floor_on_the_shown_max() -> None:
    assert discretise([-1.0, 0.0, 0.99, 1.0, 4.99, 9.5, 10.0, 12.0], 10.0) == [0, 0, 0, 1, 4, 9, 10, 10]
    assert discretise([1.0, 2.0], 0.0) == [0, 0]


def test_text_explainer_prompt_exact_text() -> None:
    records = [
        RawRecord(tokens=["the", "red", "car"], activations=[0.0, 1.92, 0.5]),
        RawRecord(tokens=["a", "blue", "##ish", "\tsky"], activations=[-0.3, 1.49, 0.9, 0.0]),
    ]
    messages = build_bills_messages(records)
    assert messages[0] == {"role": "system", "content": BILLS_SYSTEM}
    assert [m["role"] for m in messages] == ["system", "user", "assistant"] * 1 + [
        "user",
        "assistant",
    ] * 2 + ["user"]
    assert [m["content"] for m in messages[2:7:2]] == [
        " present tense verbs ending in 'ing'.",
        " words related to physical medical conditions.",
        " phrases related to community.",
    ]
    assert messages[1]["content"].startswith("\n\nNeuron 1\nActivations:\n<start>\nt\t0\nurt\t0\n")
    assert "Same activations, but with all zeros filtered out:" in messages[1]["content"]  # 11% non-zero
    assert "filtered out" not in messages[5]["content"]  # community: 28% non-zero, no repeat
    # The shown max is 1.92: red → floor(10) = 10, car → floor(2.6) = 2, blue → floor(7.76) = 7, ##ish 4.
    assert messages[-1] == {
        "role": "user",
        "content": "\n\nNeuron 4\nActivations:\n<start>\nthe\t0\nred\t10\ncar\t2\n<end>\n<start>\na\t0\n"
        "blue\t7\n##ish\t4\n\\tsky\t0\n<end>\n\nExplanation of neuron 4 behavior: the main thing this "
        "neuron does is find",
    }


def test_sparse_records_are_repeated_without_zeros() -> None:
    records = [RawRecord(tokens=[f"w{i}" for i in range(10)], activations=[0.0] * 9 + [3.0])]
    last = build_bills_messages(records)[-1]["content"]
    assert last.endswith(
        "\nSame activations, but with all zeros filtered out:\n<start>\nw9\t10\n<end>\n"
        "\nExplanation of neuron 4 behavior: the main thing this neuron does is find"
    )
    assert len(few_shot_examples()) == 3


def test_visual_explainer_prompt_exact_parts() -> None:
    png = _png((200, 10, 10))
    url = "data:image/png;base64," + base64.b64encode(png).decode()
    records = [
        PromptRecord(tokens=["a", "red", "circle"], activations=[0, 8, 1], image_png=png),
        PromptRecord(tokens=[], activations=[], image_png=png),
    ]
    system, user = build_visual_explainer_messages(records)
    assert system["role"] == "system"
    assert system["content"].startswith("We're studying neurons in a vision-language model.")
    assert "faded to white" in system["content"]
    assert user == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Example 1:"},
            {"type": "image_url", "image_url": {"url": url}},
            {"type": "text", "text": "<start>\na\t0\nred\t8\ncircle\t1\n<end>"},
            {"type": "text", "text": "Example 2:"},
            {"type": "image_url", "image_url": {"url": url}},
            {
                "type": "text",
                "text": "Explanation of neuron behavior: the main thing this neuron does is find",
            },
        ],
    }


def test_text_simulator_prompt_exact_text() -> None:
    messages = build_text_simulator_messages('the tokens "red".', ["the", "red", "car"])
    assert messages[0]["role"] == "system"
    assert messages[0]["content"] == (
        "We're studying neurons in a neural network. Each neuron looks for some particular thing in a short "
        "document. Look at an explanation of what the neuron does, and try to predict its activations on "
        "each token.\n\nThe activation format is token<tab>activation, activations go from 0 to 10, "
        '"unknown" indicates an unknown activation. Most activations will be 0.\n\n'
        'Reply with a JSON object {"activations": [...]} holding one number from 0 to 10 for each token '
        "listed, in the order listed, and nothing else."
    )
    assert messages[1] == {
        "role": "user",
        "content": 'Neuron explanation: the main thing this neuron does is find the tokens "red".\n\n'
        "Predict the activation on each of these 3 tokens:\n"
        "<start>\nthe\tunknown\nred\tunknown\ncar\tunknown\n<end>\n\n"
        'Reply with {"activations": [...]} holding exactly 3 numbers.',
    }


def test_visual_simulator_prompt_exact_parts() -> None:
    png = _png((10, 10, 200))
    system, user = build_visual_simulator_messages('the colour "blue"', png, 2, 3)
    assert "grid of patches, row 0 at the top and column 0 at the left" in system["content"]
    assert user["content"] == [
        {
            "type": "text",
            "text": 'Neuron explanation: the main thing this neuron does is find the colour "blue"\n\n'
            "Patch grid: 2 rows × 3 columns.",
        },
        {
            "type": "image_url",
            "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()},
        },
        {"type": "text", "text": 'Reply with {"patches": [...]} holding exactly 2 lists of 3 numbers.'},
    ]


def test_record_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError):
        build_bills_messages([RawRecord(tokens=["a", "b"], activations=[1.0])])
    with pytest.raises(ValueError, match="at least one record"):
        build_bills_messages([])


def test_activation_integer_and_escaping() -> None:
    assert [activation_integer(v) for v in (-1.0, 0.49, 0.5, 4.5, 9.99, 12.0, math.nan)] == [
        0,
        0,
        1,
        5,
        10,
        10,
        0,
    ]
    assert escape_token("a\tb\nc\\") == "a\\tb\\nc\\\\"


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (' the tokens "red" and "blue".', 'the tokens "red" and "blue".'),
        ("colour words. They appear often.", "colour words."),
        ("the main thing this neuron does is find dates\nmore text", "dates"),
        ("Explanation of neuron behavior: the main thing this neuron does is find numbers.", "numbers."),
        ('the tokens "." and "!" at ends of sentences.', 'the tokens "." and "!" at ends of sentences.'),
        ("   \n ", None),
    ],
)
def test_parse_explanation(reply: str, expected: str | None) -> None:
    assert parse_explanation(reply) == expected


def test_parse_activations() -> None:
    assert parse_activations('{"activations": [0, 10, 3.5]}', 3) == [0.0, 10.0, 3.5]
    assert parse_activations('```json\n{"activations": [12, -1, "4"]}\n```', 3) == [10.0, 0.0, 4.0]
    assert parse_activations('{"activations": [0, 10]}', 3) is None
    assert parse_activations("Sure! The first token.", 3) is None
    assert parse_activations('{"activations": [true, 1, 2]}', 3) is None
    assert parse_activations('{"values": [1, 2, 3]}', 3) is None


def test_parse_patches() -> None:
    assert parse_patches('{"patches": [[0, 10], [5, 0]]}', 2, 2) == [0.0, 10.0, 5.0, 0.0]
    assert parse_patches('{"patches": [[0, 10]]}', 2, 2) is None
    assert parse_patches('{"patches": [[0, 10], [5]]}', 2, 2) is None


def _tok(token: str, top: list[tuple[str, float]] | None = None) -> TokenLogprob:
    alternatives = tuple(top) if top is not None else ((token, 0.0),)
    return TokenLogprob(token=token, logprob=alternatives[0][1], top=alternatives)


def test_expected_values_from_logprobs() -> None:
    tokens = [
        _tok('{"activations": ['),
        _tok("10", [("10", math.log(0.5)), ("8", math.log(0.25)), ("x", math.log(0.25))]),
        _tok(", "),
        _tok("0", [("0", math.log(0.6)), (" 2", math.log(0.2))]),
        _tok("]}"),
    ]
    values = expected_values(tokens, [10.0, 0.0])
    assert values is not None
    # (10·0.5 + 8·0.25) / 0.75 and (2·0.2) / 0.8: mass on non-value tokens is left out.
    assert values == pytest.approx([7.0 / 0.75, 0.4 / 0.8])


def test_expected_values_fall_back_when_tokens_do_not_line_up() -> None:
    split_ten = [_tok('{"activations": ['), _tok("1"), _tok("0"), _tok("]}")]
    assert expected_values(split_ten, [10.0]) is None
    assert expected_values([_tok('{"activations": ['), _tok("3"), _tok("]}")], [4.0]) is None


@pytest.mark.parametrize("seed", range(12))
def test_the_profile_size_of_a_bills_prompt_equals_the_built_prompt(seed: int) -> None:
    """The dry run's explainer sizes (neuron_message_chars) are the builder's, on dense and sparse records,
    negative, NaN and all-zero activations, and tokens that need escaping."""
    rng = np.random.default_rng(seed)
    alphabet = ["a", "bb", "the", "\t", "x\ny", "\\", "é", " ", "tokenised"]
    records = []
    for _ in range(int(rng.integers(1, 6))):
        n = int(rng.integers(1, 30))
        tokens = tuple(str(rng.choice(alphabet)) + str(rng.choice(alphabet)) for _ in range(n))
        values = rng.normal(0.0, 1.0, n) * (0 if seed == 3 else 1)
        if seed % 2:  # sparse: mostly zeros, a few peaks
            values = np.where(rng.random(n) < 0.1, rng.uniform(0, 9, n), 0.0)
        if seed == 5:
            values[0] = np.nan
        records.append(RawRecord(tokens=tokens, activations=values.astype(np.float16).astype(float).tolist()))
    built = prompt_chars(build_bills_messages(records))
    chars = [np.array([len(escape_token(t)) for t in r.tokens]) for r in records]
    values = [np.asarray(r.activations, dtype=np.float16) for r in records]
    assert few_shot_chars() + neuron_message_chars(chars, values) == built
