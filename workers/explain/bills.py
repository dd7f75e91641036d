"""The Bills et al. 2023 explainer prompt (`text-explainer-bills-1`), the default for text neurons.

Matched to openai/automated-interpretability (neuron-explainer/neuron_explainer/explanations/explainer.py,
`TokenActivationPairExplainer` with the HARMONY_V4 chat format, and activations/activation_records.py):
- their system message, word for word ("… Don't list examples of words. …");
- their three ORIGINAL few-shot neurons (few_shot_examples.py; tokens, activations and explanations copied
  into bills_few_shot.json), each a user turn and an assistant turn " {explanation}.";
- per neuron: "\\n\\nNeuron {i}\\nActivations:" then the records as ``token<TAB>value`` lines between
  ``<start>``/``<end>``, each value ``min(10, floor(10·relu(x)/max))`` with max over the SHOWN records
  (not the probe set's), then — when under 20% of the shown values are non-zero — "\\nSame activations,
  but with all zeros filtered out:" and the non-zero lines again, then "\\nExplanation of neuron {i}
  behavior: the main thing this neuron does is find".
Differences: tabs and newlines inside a token are escaped (one token per line), and the reply is parsed
by workers.explain.prompts.parse_explanation. The previous NeuronLens prompt (half-up rounding on the
probe-set scale, "quote them", no few-shot examples) is dropped.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from workers.vocabulary.prompting import COMPLETION_PHRASE, escape_token

BILLS_PROMPT_VERSION = "text-explainer-bills-1"
"""Version of the Bills et al. text explainer prompt; reported as `explanation.prompt_version`."""

BILLS_SYSTEM = (
    "We're studying neurons in a neural network. Each neuron looks for some particular "
    "thing in a short document. Look at the parts of the document the neuron activates for "
    "and summarize in a single sentence what the neuron is looking for. Don't list "
    "examples of words.\n\nThe activation format is token<tab>activation. Activation "
    "values range from 0 to 10. A neuron finding what it's looking for is represented by a "
    "non-zero activation value. The higher the activation value, the stronger the match."
)
"""Their system message, verbatim."""

SPARSE_SHARE = 0.2
"""Below this share of non-zero shown values the zeros-filtered repeat is added (their rule)."""

FEW_SHOT_FILE = Path(__file__).with_name("bills_few_shot.json")

Message = dict[str, Any]


@dataclass(frozen=True)
class RawRecord:
    """One shown record: tokens and RAW activations (discretised on the shown records' max)."""

    tokens: Sequence[str]
    activations: Sequence[float]


@lru_cache(maxsize=1)
@cache
def few_shot_examples() -> tuple[tuple[str, tuple[RawRecord, ...]], ...]:
    """Their ORIGINAL few-shot set: (explanation, records) × 3 (read once)."""
    data = json.loads(FEW_SHOT_FILE.read_text())
    return tuple(
        (item["explanation"], tuple(RawRecord(r["tokens"], r["activations"]) for r in item["records"]))
        for item in data
    )


def discretise(activations: Sequence[float], max_activation: float) -> list[int]:
    """min(10, floor(10·relu(x)/max)); all 0 when max ≤ 0 (their `normalize_activations`)."""
    if not max_activation > 0:
        return [0] * len(activations)
    return [
        min(10, math.floor(10 * max(0.0, x) / max_activation)) if math.isfinite(x) else 0 for x in activations
    ]


def shown_max(records: Sequence[RawRecord]) -> float:
    """max over the shown records of relu(activation) (their `calculate_max_activation`)."""
    return max((max((max(0.0, x) for x in r.activations), default=0.0) for r in records), default=0.0)


def format_records(records: Sequence[RawRecord], max_activation: float, omit_zeros: bool = False) -> str:
    """Their `format_activation_records`: "\\n<start>\\n" … "\\n<end>\\n<start>\\n" … "\\n<end>\\n"."""
    blocks = []
    for record in records:
        values = discretise(record.activations, max_activation)
        lines = [
            f"{escape_token(token)}\t{value}"
            for token, value in zip(record.tokens, values, strict=True)
            if value > 0 or not omit_zeros
        ]
        blocks.append("\n".join(lines))
    return "\n<start>\n" + "\n<end>\n<start>\n".join(blocks) + "\n<end>\n"


def _nonzero_share(records: Sequence[RawRecord], max_activation: float) -> float:
    values = [v for r in records for v in discretise(r.activations, max_activation)]
    return sum(1 for v in values if v) / len(values) if values else 0.0


def neuron_message(records: Sequence[RawRecord], index: int) -> str:
    """The user turn for neuron `index` (1-based)."""
    top = shown_max(records)
    message = f"\n\nNeuron {index}\nActivations:{format_records(records, top)}"
    if _nonzero_share(records, top) < SPARSE_SHARE:
        message += f"\nSame activations, but with all zeros filtered out:{format_records(records, top, True)}"
    return message + f"\nExplanation of neuron {index} behavior: {COMPLETION_PHRASE}"


def build_bills_messages(records: Sequence[RawRecord]) -> list[Message]:
    """System, three few-shot user/assistant pairs, then the neuron to explain (their HARMONY_V4 layout)."""
    if not records:
        raise ValueError("the explainer needs at least one record")
    messages: list[Message] = [{"role": "system", "content": BILLS_SYSTEM}]
    messages += [{"role": role, "content": content} for role, content in _few_shot_turns()]
    messages.append({"role": "user", "content": neuron_message(records, len(few_shot_examples()) + 1)})
    return messages


@cache
def _few_shot_turns() -> tuple[tuple[str, str], ...]:
    """The few-shot user/assistant turns as (role, content), formatted once (they never change)."""
    turns: list[tuple[str, str]] = []
    for number, (explanation, example) in enumerate(few_shot_examples(), start=1):
        turns += [("user", neuron_message(example, number)), ("assistant", f" {explanation}.")]
    return tuple(turns)


def few_shot_chars() -> int:
    """Characters of the system turn and the few-shot turns: the part of every prompt that never changes."""
    return len(BILLS_SYSTEM) + sum(len(content) for _, content in _few_shot_turns())


def neuron_message_chars(token_chars: Sequence[np.ndarray], activations: Sequence[np.ndarray]) -> int:
    """``len(neuron_message(records, 4))`` without building it: record ``r`` has tokens of
    ``token_chars[r]`` escaped characters and ``activations[r]``. Computed with whole-array operations for
    the dry-run prompt profiles (workers/process/prompt_profile.py), which size every neuron of a layer; a
    test keeps it equal to the builder's."""
    if not activations:
        raise ValueError("the explainer needs at least one record")
    top = max((float(np.fmax(a, 0.0).max(initial=0.0)) for a in activations), default=0.0)
    values = [_discretised(a, top) for a in activations]
    index = len(few_shot_examples()) + 1

    def records_chars(omit_zeros: bool) -> int:
        total = len("\n<start>\n") + len("\n<end>\n<start>\n") * (len(values) - 1) + len("\n<end>\n")
        for chars, shown in zip(token_chars, values, strict=True):
            kept = shown > 0 if omit_zeros else np.ones(shown.shape, dtype=bool)
            n_kept = int(kept.sum())
            digits = np.where(shown[kept] >= 10, 2, 1)
            total += int(chars[kept].sum()) + n_kept + int(digits.sum()) + max(0, n_kept - 1)
        return total

    size = len(f"\n\nNeuron {index}\nActivations:") + records_chars(False)
    n_values = sum(v.size for v in values)
    share = sum(int((v > 0).sum()) for v in values) / n_values if n_values else 0.0
    if share < SPARSE_SHARE:
        size += len("\nSame activations, but with all zeros filtered out:") + records_chars(True)
    return size + len(f"\nExplanation of neuron {index} behavior: {COMPLETION_PHRASE}")


def _discretised(activations: np.ndarray, max_activation: float) -> np.ndarray:
    """`discretise` as an array (the same float64 arithmetic, so the same integers)."""
    values = np.asarray(activations, dtype=np.float64)
    if not max_activation > 0:
        return np.zeros(values.shape, dtype=np.int64)
    scaled = np.floor(10 * np.maximum(values, 0.0) / max_activation)
    return np.where(np.isfinite(values), np.minimum(10, scaled), 0).astype(np.int64)
