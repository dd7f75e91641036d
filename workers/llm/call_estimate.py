"""What one chat request will cost, estimated before it is made: the reservation a budget holds for it
while it is in flight (workers/llm/usage.py), replaced by what the endpoint reports once it answers.

Prompt tokens are the request's text characters ÷ 4 (OpenAI's rule of thumb, the dry run's
`CHARS_PER_TOKEN`) plus 85 per image (low detail); completion tokens are the request's own cap
(``max_tokens`` per choice), so the estimate is an upper bound of the answer. An endpoint without prices
has no estimate (None).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from workers.llm.endpoints import LLMEndpoint

CHARS_PER_TOKEN = 4
"""Prompt characters per token (the API's dry run counts the same way)."""

IMAGE_TOKENS = 85
"""Prompt tokens per image at low detail."""

UNCAPPED_COMPLETION_TOKENS = 256
"""Completion tokens assumed per choice for a request that sets no ``max_tokens``."""


def estimated_tokens(params: Mapping[str, Any]) -> tuple[int, int]:
    """(prompt, completion) tokens of a chat request as the client sends it (``messages``, ``n``,
    ``max_tokens`` or ``max_completion_tokens``)."""
    chars, images = 0, 0
    for message in params.get("messages", ()):
        content = message.get("content")
        if isinstance(content, str):
            chars += len(content)
            continue
        for part in content or ():
            if part.get("type") == "text":
                chars += len(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                images += 1
    cap = params.get("max_tokens", params.get("max_completion_tokens"))
    per_choice = int(cap) if cap is not None else UNCAPPED_COMPLETION_TOKENS
    return chars // CHARS_PER_TOKEN + IMAGE_TOKENS * images, per_choice * int(params.get("n", 1))


def estimated_cost_usd(endpoint: LLMEndpoint, params: Mapping[str, Any]) -> float | None:
    """USD the request will cost at most at the endpoint's prices (None: the endpoint has none)."""
    return endpoint.cost_usd(*estimated_tokens(params))
