"""Simulator prompts and reply parsing: a contract, pinned by exact-text tests (tests/workers/test_prompts.py)

Text: one request per held-out record; the explanation, then the record's tokens as ``token<TAB>unknown``
lines between ``<start>`` and ``<end>``; the reply is ``{"activations": [v, …]}`` with one number 0–10 per
token, in order. Images: the explanation, the image and its patch grid; the reply is
``{"patches": [[v, …], …]}`` rows × columns. Where the endpoint returns logprobs for the value tokens, the
prediction at each value is the expected value over "0"…"10" (Bills et al. 2023), else the number itself.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, Protocol

from workers.vocabulary.prompting import COMPLETION_PHRASE, format_record, png_data_url

TEXT_SIMULATOR_PROMPT_VERSION = "text-simulator-1"
"""Version of the per-record text simulator prompt (JSON reply)."""

VISUAL_SIMULATOR_PROMPT_VERSION = "visual-simulator-1"
"""Version of the per-image patch simulator prompt (JSON reply)."""

TEXT_SIMULATOR_SYSTEM = (
    "We're studying neurons in a neural network. Each neuron looks for some particular thing in a short "
    "document. Look at an explanation of what the neuron does, and try to predict its activations on each "
    "token.\n"
    "\n"
    'The activation format is token<tab>activation, activations go from 0 to 10, "unknown" indicates an '
    "unknown activation. Most activations will be 0.\n"
    "\n"
    'Reply with a JSON object {"activations": [...]} holding one number from 0 to 10 for each token '
    "listed, in the order listed, and nothing else."
)

VISUAL_SIMULATOR_SYSTEM = (
    "We're studying neurons in a vision-language model. Each neuron looks for some particular thing in an "
    "image. Look at an explanation of what the neuron does, and try to predict its activation on each "
    "patch of the image.\n"
    "\n"
    "The image is divided into a grid of patches, row 0 at the top and column 0 at the left. Activations "
    "go from 0 to 10. Most activations will be 0.\n"
    "\n"
    'Reply with a JSON object {"patches": [[...], ...]} holding one list per row of the grid, top to '
    "bottom, each with one number from 0 to 10 per column, left to right, and nothing else."
)

TOP_LOGPROBS = 20
"""Alternatives requested per generated token (the most OpenAI allows), enough to cover "0"…"10"."""

VALUE_TOKENS = {str(value): value for value in range(11)}

Message = dict[str, Any]


class LogprobToken(Protocol):
    """A generated token with its alternatives (workers.llm.caller.TokenLogprob fits)."""

    @property
    def token(self) -> str: ...

    @property
    def top(self) -> tuple[tuple[str, float], ...]: ...


def build_text_simulator_messages(explanation: str, tokens: Sequence[str]) -> list[Message]:
    """Chat messages asking for one activation per token of one record, as JSON."""
    user = (
        f"Neuron explanation: {COMPLETION_PHRASE} {explanation}\n"
        "\n"
        f"Predict the activation on each of these {len(tokens)} tokens:\n"
        f"{format_record(tokens, None)}\n"
        "\n"
        f'Reply with {{"activations": [...]}} holding exactly {len(tokens)} numbers.'
    )
    return [{"role": "system", "content": TEXT_SIMULATOR_SYSTEM}, {"role": "user", "content": user}]


def build_visual_simulator_messages(
    explanation: str, image_png: bytes, rows: int, cols: int
) -> list[Message]:
    """Chat messages asking for one activation per image patch, rows × cols, as JSON."""
    parts: list[dict[str, Any]] = [
        {
            "type": "text",
            "text": f"Neuron explanation: {COMPLETION_PHRASE} {explanation}\n"
            "\n"
            f"Patch grid: {rows} rows × {cols} columns.",
        },
        {"type": "image_url", "image_url": {"url": png_data_url(image_png)}},
        {
            "type": "text",
            "text": f'Reply with {{"patches": [...]}} holding exactly {rows} lists of {cols} numbers.',
        },
    ]
    return [{"role": "system", "content": VISUAL_SIMULATOR_SYSTEM}, {"role": "user", "content": parts}]


def _json_object(reply: str) -> dict[str, Any] | None:
    """The JSON object in a reply, tolerating code fences or words around it."""
    start, end = reply.find("{"), reply.rfind("}")
    if start < 0 or end < start:
        return None
    try:
        value = json.loads(reply[start : end + 1])
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return min(10.0, max(0.0, number)) if math.isfinite(number) else None


def _numbers(values: object, length: int) -> list[float] | None:
    if not isinstance(values, list) or len(values) != length:
        return None
    numbers = [_number(value) for value in values]
    return None if any(number is None for number in numbers) else [n for n in numbers if n is not None]


def parse_activations(reply: str, n_tokens: int) -> list[float] | None:
    """The `activations` list of a reply, each clipped to 0–10; None unless it has exactly `n_tokens`."""
    obj = _json_object(reply)
    return None if obj is None else _numbers(obj.get("activations"), n_tokens)


def parse_patches(reply: str, rows: int, cols: int) -> list[float] | None:
    """The `patches` grid of a reply, row-major, clipped to 0–10; None unless it is rows × cols."""
    obj = _json_object(reply)
    grid = None if obj is None else obj.get("patches")
    if not isinstance(grid, list) or len(grid) != rows:
        return None
    flat: list[float] = []
    for row in grid:
        numbers = _numbers(row, cols)
        if numbers is None:
            return None
        flat.extend(numbers)
    return flat


def expected_values(tokens: Sequence[LogprobToken], parsed: Sequence[float]) -> list[float] | None:
    """Expected value over "0"…"10" at each value token of a JSON reply; None unless they line up.

    The value tokens are the all-digit tokens after the first ``[``. They must match the parsed numbers
    one to one (a server whose tokenizer splits "10", or a reply with decimals, falls back to the numbers).
    """
    text_seen = ""
    in_array = False
    values: list[LogprobToken] = []
    for token in tokens:
        if not in_array and "[" in text_seen + token.token:
            in_array = True
            text_seen += token.token
            continue
        text_seen += token.token
        core = token.token.strip().strip(",[]")
        if in_array and core.isdigit():
            values.append(token)
    if len(values) != len(parsed):
        return None
    result: list[float] = []
    for token, number in zip(values, parsed, strict=True):
        core = token.token.strip().strip(",[]")
        if core not in VALUE_TOKENS or VALUE_TOKENS[core] != number:
            return None
        expectation = _expectation(token)
        result.append(number if expectation is None else expectation)
    return result


def _expectation(token: LogprobToken) -> float | None:
    weights = [0.0] * 11
    for alternative, logprob in token.top:
        value = VALUE_TOKENS.get(alternative.strip())
        if value is not None and math.isfinite(logprob):
            weights[value] += math.exp(logprob)
    total = sum(weights)
    if total <= 0:
        return None
    return sum(value * weight for value, weight in enumerate(weights)) / total


# --------------------------------------------------------------------------- batched text simulation

BATCHED_SIMULATOR_PROMPT_VERSION = "text-simulator-batched-1"
"""Version of the batched text simulator prompt (several records per request, JSON reply)."""

BATCHED_SIMULATOR_SYSTEM = (
    "We're studying neurons in a neural network. Each neuron looks for some particular thing in a short "
    "document. Look at an explanation of what the neuron does, and try to predict its activations on each "
    "token of each record.\n"
    "\n"
    'The activation format is token<tab>activation, activations go from 0 to 10, "unknown" indicates an '
    "unknown activation. Most activations will be 0.\n"
    "\n"
    'Reply with a JSON object {"records": [[...], ...]} holding one list per record, in the order given, '
    "each with one number from 0 to 10 for each token of that record, in order, and nothing else."
)


def build_batched_simulator_messages(explanation: str, records: Sequence[Sequence[str]]) -> list[Message]:
    """Chat messages asking for every token of several records at once, as one JSON object.

    Protocol: the records follow as ``Record i:`` then the per-record block (``token<TAB>unknown`` lines
    between ``<start>``/``<end>``); the reply is ``{"records": [[v, …], …]}``, one list per record with
    exactly that record's token count. A record whose list has the wrong length is a parse failure of
    that record only."""
    blocks = "\n".join(
        f"Record {number}:\n{format_record(tokens, None)}" for number, tokens in enumerate(records, start=1)
    )
    lengths = ", ".join(str(len(tokens)) for tokens in records)
    user = (
        f"Neuron explanation: {COMPLETION_PHRASE} {explanation}\n"
        "\n"
        f"Predict the activation on each token of these {len(records)} records:\n"
        f"{blocks}\n"
        "\n"
        f'Reply with {{"records": [...]}} holding exactly {len(records)} lists, of lengths {lengths}.'
    )
    return [{"role": "system", "content": BATCHED_SIMULATOR_SYSTEM}, {"role": "user", "content": user}]


def parse_batched(reply: str, lengths: Sequence[int]) -> list[list[float] | None] | None:
    """One value list per record (None for a record of the wrong length); None when the reply has no
    `records` list with one entry per record."""
    obj = _json_object(reply)
    lists = None if obj is None else obj.get("records")
    if not isinstance(lists, list) or len(lists) != len(lengths):
        return None
    return [_numbers(values, length) for values, length in zip(lists, lengths, strict=True)]
