"""Batched simulation (`simulation-batched` scorer): several held-out records per LLM call.

Same contract as the per-record `openai` simulator (workers/simulate/openai_simulator.py) and the same
pooled Pearson score: only the number of requests changes. Text tokens of up to `batch_records` records go
into one request (protocol: workers/simulate/prompts.build_batched_simulator_messages); a reply that is
not JSON or lacks one list per record is asked for once more; a record whose list has the wrong length
is left out of scoring and counted in `parse_failures`. Image patches are still one request per image.
Where the endpoint returns logprobs that line up with every value, the expected values are used.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from workers.llm.caller import ChatReply, TokenUsage
from workers.llm.pool import map_concurrently
from workers.simulate.base import SimulationInput, SimulatorResult
from workers.simulate.openai_simulator import PARSE_ATTEMPTS, OpenAISimulator, _with_logprobs
from workers.simulate.prompts import (
    BATCHED_SIMULATOR_PROMPT_VERSION,
    TOP_LOGPROBS,
    VISUAL_SIMULATOR_PROMPT_VERSION,
    build_batched_simulator_messages,
    parse_batched,
)
from workers.vocabulary.records import MODALITY_IMAGE, MODALITY_TEXT, TokenRecord

Batch = tuple[str, list[TokenRecord]]


class BatchedOpenAISimulator(OpenAISimulator):
    """The `openai` simulator asking for `batch_records` records' text tokens per request."""

    def __init__(self, *args: object, batch_records: int = 10, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        if batch_records < 1:
            raise ValueError(f"batch_records must be at least 1, got {batch_records}")
        self.batch_records = batch_records

    def simulate(self, items: Sequence[SimulationInput]) -> list[SimulatorResult]:
        batches: list[tuple[int, Batch]] = []
        for index, item in enumerate(items):
            texts = [r for r in item.records if (r.modality == MODALITY_TEXT).any()]
            for start in range(0, len(texts), self.batch_records):
                batches.append((index, (item.explanation, texts[start : start + self.batch_records])))
        images = [
            (index, item.explanation, record)
            for index, item in enumerate(items)
            for record in item.records
            if (record.modality == MODALITY_IMAGE).any()
        ]
        concurrency = self.caller.endpoint.concurrency
        text_out = map_concurrently(lambda job: self._ask_batch(*job[1]), batches, concurrency)
        image_out = map_concurrently(
            lambda job: self._ask_patches(job[1], job[2], int((job[2].modality == MODALITY_IMAGE).sum())),
            images,
            concurrency,
        )
        return [self._assemble(i, item, batches, text_out, images, image_out) for i, item in enumerate(items)]

    def _assemble(
        self,
        index: int,
        item: SimulationInput,
        batches: list[tuple[int, Batch]],
        text_out: list[tuple[dict[int, list[float] | None], TokenUsage]],
        images: list[tuple[int, str, TokenRecord]],
        image_out: list[tuple[list[float] | None, TokenUsage]],
    ) -> SimulatorResult:
        values: dict[int, np.ndarray | None] = {
            id(r): np.zeros(len(r.tokens), dtype=np.float32) for r in item.records
        }
        usage, failures, prompts = TokenUsage(), 0, set()
        for (owner, (_, records)), (answers, spent) in zip(batches, text_out, strict=True):
            if owner != index:
                continue
            usage += spent
            prompts.add(BATCHED_SIMULATOR_PROMPT_VERSION)
            for record in records:
                failures += _place(values, record, MODALITY_TEXT, answers.get(id(record)))
        for (owner, _, record), (patches, spent) in zip(images, image_out, strict=True):
            if owner == index:
                usage += spent
                prompts.add(VISUAL_SIMULATOR_PROMPT_VERSION)
                failures += _place(values, record, MODALITY_IMAGE, patches)
        return SimulatorResult(
            predictions=[values[id(r)] for r in item.records],
            parse_failures=failures,
            prompt_tokens=usage.prompt,
            completion_tokens=usage.completion,
            llm_calls=usage.calls,
            prompt_version="+".join(sorted(prompts)) or None,
        )

    def _ask_batch(
        self, explanation: str, records: list[TokenRecord]
    ) -> tuple[dict[int, list[float] | None], TokenUsage]:
        """Values of each record's text tokens (keyed by id(record)); None for records that failed."""
        at = [np.flatnonzero(r.modality == MODALITY_TEXT) for r in records]
        tokens = [[r.tokens[i] for i in where] for r, where in zip(records, at, strict=True)]
        lengths = [len(t) for t in tokens]
        messages = build_batched_simulator_messages(explanation, tokens)
        usage = TokenUsage()
        parsed: list[list[float] | None] | None = None
        for _ in range(PARSE_ATTEMPTS):
            reply = self.caller.chat(
                messages,
                model=self.model,
                temperature=0.0,
                max_tokens=32 + 4 * sum(lengths) + 4 * len(records),
                json_mode=True,
                top_logprobs=TOP_LOGPROBS if self.use_logprobs else None,
            )
            usage += reply.usage
            parsed = parse_batched(reply.texts[0], lengths)
            if parsed is not None:
                parsed = _expected(reply, parsed, lengths)
                break
        answers = {id(r): (parsed[k] if parsed is not None else None) for k, r in enumerate(records)}
        return answers, usage


def _expected(
    reply: ChatReply, parsed: list[list[float] | None], lengths: list[int]
) -> list[list[float] | None]:
    """Expected values over "0"…"10" when every record parsed and the logprobs line up."""
    if any(values is None for values in parsed):
        return parsed
    flat = [v for values in parsed if values is not None for v in values]
    expected = _with_logprobs(reply, flat)
    result: list[list[float] | None] = []
    start = 0
    for length in lengths:
        result.append(expected[start : start + length])
        start += length
    return result


def _place(
    values: dict[int, np.ndarray | None], record: TokenRecord, code: int, answer: list[float] | None
) -> int:
    """Write `answer` at the record's `code` positions; a missing answer drops the record (1 failure)."""
    current = values[id(record)]
    if answer is None:
        values[id(record)] = None
        return 1
    if current is not None:
        current[np.flatnonzero(record.modality == code)] = answer
    return 0
