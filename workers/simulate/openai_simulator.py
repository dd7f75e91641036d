"""Simulator backend `openai`: an OpenAI-compatible model predicts activations from the explanation.

One request per held-out record (text tokens) and, for vision-language records, one per image (patches);
all requests of a batch run concurrently, bounded by the endpoint's concurrency. A reply that is not JSON
or has the wrong length is asked for once more; if it fails again the record is left out of scoring and
counted in `parse_failures`, never scored as zeros.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from workers.data.images import ImageSource
from workers.llm.caller import ChatReply, LLMCaller, LLMCallers, Message, TokenUsage
from workers.llm.errors import LLMError
from workers.llm.pool import map_concurrently
from workers.simulate.base import SimulationInput, SimulatorResult
from workers.simulate.prompts import (
    TEXT_SIMULATOR_PROMPT_VERSION,
    TOP_LOGPROBS,
    VISUAL_SIMULATOR_PROMPT_VERSION,
    build_text_simulator_messages,
    build_visual_simulator_messages,
    expected_values,
    parse_activations,
    parse_patches,
)
from workers.vocabulary.records import MODALITY_IMAGE, MODALITY_TEXT, TokenRecord
from workers.vocabulary.shading import png_bytes

PARSE_ATTEMPTS = 2
"""Requests per record before an unparseable reply counts as a parse failure (the first, one retry)."""


class MissingImage(LLMError):
    """A record has image patches to simulate but no image was given to the simulator."""


@dataclass(frozen=True)
class _Outcome:
    prediction: np.ndarray | None
    parse_failures: int
    usage: TokenUsage
    prompts: tuple[str, ...] = ()
    """Versions of the prompts this record was asked with."""


class OpenAISimulator:
    """Simulator backend `openai` over one endpoint (thread-safe)."""

    backend = "openai"

    def __init__(
        self, caller: LLMCaller, *, images: ImageSource | None = None, use_logprobs: bool = True
    ) -> None:
        self.caller = caller
        self.images = images
        self.use_logprobs = use_logprobs

    @property
    def model(self) -> str:
        return self.caller.endpoint.simulator_model

    def simulate(self, items: Sequence[SimulationInput]) -> list[SimulatorResult]:
        """Predict every record of every item, concurrently; one result per item, in order."""
        jobs = [(item.explanation, record) for item in items for record in item.records]
        concurrency = self.caller.endpoint.concurrency
        outcomes = map_concurrently(lambda job: self.simulate_record(*job), jobs, concurrency)
        results: list[SimulatorResult] = []
        start = 0
        for item in items:
            mine = outcomes[start : start + len(item.records)]
            start += len(item.records)
            usage = sum((outcome.usage for outcome in mine), TokenUsage())
            prompts = sorted({version for outcome in mine for version in outcome.prompts})
            results.append(
                SimulatorResult(
                    predictions=[outcome.prediction for outcome in mine],
                    parse_failures=sum(outcome.parse_failures for outcome in mine),
                    prompt_tokens=usage.prompt,
                    completion_tokens=usage.completion,
                    llm_calls=usage.calls,
                    prompt_version="+".join(prompts) or None,
                )
            )
        return results

    def simulate_record(self, explanation: str, record: TokenRecord) -> _Outcome:
        """0–10 per token of one record: text tokens by the text prompt, image patches by the image prompt."""
        prediction = np.zeros(len(record.tokens), dtype=np.float32)
        text_at = np.flatnonzero(record.modality == MODALITY_TEXT)
        image_at = np.flatnonzero(record.modality == MODALITY_IMAGE)
        usage = TokenUsage()
        failures = 0
        prompts: list[str] = []
        if text_at.size:
            prompts.append(TEXT_SIMULATOR_PROMPT_VERSION)
            values, spent = self._ask_text(explanation, [record.tokens[i] for i in text_at])
            usage += spent
            failures += values is None
            if values is not None:
                prediction[text_at] = values
        if image_at.size:
            prompts.append(VISUAL_SIMULATOR_PROMPT_VERSION)
            values, spent = self._ask_patches(explanation, record, image_at.size)
            usage += spent
            failures += values is None
            if values is not None:
                prediction[image_at] = values
        return _Outcome(None if failures else prediction, failures, usage, tuple(prompts))

    def _ask_text(self, explanation: str, tokens: list[str]) -> tuple[list[float] | None, TokenUsage]:
        messages = build_text_simulator_messages(explanation, tokens)
        n_tokens = len(tokens)
        return self._ask(
            messages, max_tokens=32 + 4 * n_tokens, parse=lambda t: parse_activations(t, n_tokens)
        )

    def _ask_patches(
        self, explanation: str, record: TokenRecord, n_patches: int
    ) -> tuple[list[float] | None, TokenUsage]:
        image = self.images.image(record.sample_id) if self.images is not None else None
        if image is None or record.patch_grid is None:
            raise MissingImage(
                f"sample {record.sample_id} has {n_patches} image patches to simulate but the simulator "
                "was given no image for it (pass an image source for vision-language probe sets)"
            )
        rows, cols = record.patch_grid
        if rows * cols != n_patches:
            raise ValueError(f"sample {record.sample_id}: patch grid {rows}×{cols} but {n_patches} patches")
        messages = build_visual_simulator_messages(explanation, png_bytes(image), rows, cols)
        return self._ask(
            messages, max_tokens=32 + 4 * n_patches, parse=lambda text: parse_patches(text, rows, cols)
        )

    def _ask(
        self, messages: list[Message], *, max_tokens: int, parse: Callable[[str], list[float] | None]
    ) -> tuple[list[float] | None, TokenUsage]:
        usage = TokenUsage()
        for _ in range(PARSE_ATTEMPTS):
            reply = self.caller.chat(
                messages,
                model=self.model,
                temperature=0.0,
                max_tokens=max_tokens,
                json_mode=True,
                top_logprobs=TOP_LOGPROBS if self.use_logprobs else None,
            )
            usage += reply.usage
            values = parse(reply.texts[0])
            if values is not None:
                return _with_logprobs(reply, values), usage
        return None, usage


def _with_logprobs(reply: ChatReply, values: list[float]) -> list[float]:
    """Expected values over "0"…"10" where the endpoint returned logprobs that line up, else the numbers."""
    tokens = reply.logprobs[0]
    if tokens is None:
        return values
    expected = expected_values(tokens, values)
    return values if expected is None else expected


def make_openai_simulator(
    llm: LLMCallers, endpoint: str | None = None, images: ImageSource | None = None
) -> OpenAISimulator:
    """The `openai` simulator on the named endpoint (None: the default one)."""
    return OpenAISimulator(llm.caller(endpoint), images=images)
