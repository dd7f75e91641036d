"""Explainer prompts: a contract, pinned by exact-text tests (tests/workers/test_prompts.py).

Text neurons get Bills et al. 2023's own prompt (workers/explain/bills.py). Visual and
multimodal neurons follow Xu et al. 2025: the shaded exemplar images go in as image inputs, each with its
description text in the same token/activation format. Change a prompt → bump its version. The record
lines and the completion phrase are shared with the simulator prompts (workers/vocabulary/prompting.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from workers.vocabulary.prompting import COMPLETION_PHRASE, format_record, png_data_url

VISUAL_EXPLAINER_PROMPT_VERSION = "visual-explainer-1"
"""Version of the image + text explainer prompt (Xu et al. format)."""

VISUAL_EXPLAINER_SYSTEM = (
    "We're studying neurons in a vision-language model. Each neuron looks for some particular thing in an "
    "image or in the text that describes it. Look at the examples the neuron activates for and summarize "
    "in a single sentence what the neuron is looking for. If it responds to particular words or tokens, "
    "quote them.\n"
    "\n"
    "Each example is an image in which the regions where the neuron is inactive are faded to white: the "
    "more visible a region, the stronger the activation. After each image comes its description in the "
    "format token<tab>activation. Activation values range from 0 to 10; the higher the value, the "
    "stronger the match.\n"
    "\n"
    "Reply with one sentence that completes the last line of the user's message."
)

EXPLANATION_PROMPT = f"Explanation of neuron behavior: {COMPLETION_PHRASE}"

Message = dict[str, Any]


@dataclass(frozen=True)
class PromptRecord:
    """One record shown to the explainer."""

    tokens: Sequence[str]
    """Content tokens (text tokens only; image patches are shown as the image)."""
    activations: Sequence[float]
    """Normalised activation (0–10) per token, same length as `tokens`."""
    image_png: bytes | None = None
    """The shaded exemplar image as PNG bytes (visual/multimodal records only)."""


def build_visual_explainer_messages(records: Sequence[PromptRecord]) -> list[Message]:
    """Chat messages with each shaded image as an `image_url` part followed by its description lines."""
    if not records:
        raise ValueError("the explainer needs at least one record")
    parts: list[dict[str, Any]] = []
    for number, record in enumerate(records, start=1):
        parts.append({"type": "text", "text": f"Example {number}:"})
        if record.image_png is not None:
            parts.append({"type": "image_url", "image_url": {"url": png_data_url(record.image_png)}})
        if record.tokens:
            parts.append({"type": "text", "text": format_record(record.tokens, record.activations)})
    parts.append({"type": "text", "text": EXPLANATION_PROMPT})
    return [{"role": "system", "content": VISUAL_EXPLAINER_SYSTEM}, {"role": "user", "content": parts}]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def parse_explanation(reply: str) -> str | None:
    """The explanation in a reply: its first sentence, without the completion phrase; None if empty."""
    lines = [line.strip() for line in reply.strip().splitlines() if line.strip()]
    if not lines:
        return None
    text = lines[0]
    for prefix in (EXPLANATION_PROMPT, COMPLETION_PHRASE):
        if text.lower().startswith(prefix.lower()):
            text = text[len(prefix) :].strip()
    text = _SENTENCE_END.split(text, maxsplit=1)[0].strip()
    return text or None
