"""Explainer backend `openai`: an OpenAI-compatible model explains each neuron from its top records.

Text models get the Bills et al. prompt; vision-language models (an image source is given) the Xu et al.
prompt with each record's image shaded by its patch activations. With k > 1 candidates, k explanations are
drawn (``n=k``, temperature 1), each is scored on a calibration split of the explainer records (every
CALIBRATION_STRIDE-th one, kept from the prompt) by a CandidateScorer (workers/analysis/calibration.py
simulates them), and the best calibration correlation wins; all candidates and their scores go into the
report. Neurons of a batch run concurrently.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.contract import CALIBRATION_STRIDE, ExplanationCandidate
from workers.data.images import ImageSource
from workers.explain.base import CandidateScorer, ExplainerResult
from workers.explain.bills import BILLS_PROMPT_VERSION as TEXT_EXPLAINER_PROMPT_VERSION
from workers.explain.bills import RawRecord, build_bills_messages
from workers.explain.prompts import (
    VISUAL_EXPLAINER_PROMPT_VERSION,
    PromptRecord,
    build_visual_explainer_messages,
    parse_explanation,
)
from workers.llm.caller import LLMCaller, Message, TokenUsage
from workers.llm.errors import LLMError
from workers.llm.pool import map_concurrently
from workers.vocabulary.records import MODALITY_IMAGE, MODALITY_TEXT, ActivationRecord, NeuronRecords
from workers.vocabulary.shading import shaded_png

EXPLANATION_MAX_TOKENS = 100
"""Completion budget of one explanation (one sentence)."""

EXPLAIN_ATTEMPTS = 2
"""Requests per neuron before an empty or unusable reply fails the neuron (the first, one retry)."""


class ExplanationUnusable(LLMError):
    """The explainer model's replies held no explanation, twice."""


class OpenAIExplainer:
    """Explainer backend `openai` over one endpoint (thread-safe)."""

    backend = "openai"

    def __init__(
        self,
        caller: LLMCaller,
        *,
        candidates: int = 1,
        scorer: CandidateScorer | None = None,
        images: ImageSource | None = None,
    ) -> None:
        if candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {candidates}")
        if candidates > 1 and scorer is None:
            raise ValueError("k > 1 candidates need a scorer to score them on the calibration split")
        self.caller = caller
        self.candidates = candidates
        self.scorer = scorer
        self.images = images

    @property
    def model(self) -> str:
        return self.caller.endpoint.explainer_model

    @property
    def prompt_version(self) -> str:
        return VISUAL_EXPLAINER_PROMPT_VERSION if self.images is not None else TEXT_EXPLAINER_PROMPT_VERSION

    def explain(self, neurons: Sequence[NeuronRecords]) -> list[ExplainerResult]:
        """One result per neuron, in order; neurons run concurrently."""
        return map_concurrently(self.explain_neuron, neurons, self.caller.endpoint.concurrency)

    def uses_images(self, neuron: NeuronRecords) -> bool:
        """The Xu et al. image prompt for visual and multimodal neurons (or an unclassified one) when there
        are images; the Bills et al. text prompt otherwise, e.g. for a VLM's text neurons."""
        return self.images is not None and neuron.neuron_type in (None, "visual", "multimodal")

    def explain_neuron(self, neuron: NeuronRecords) -> ExplainerResult:
        shown, calibration = self._split(neuron.records)
        texts, usage = self._draw(neuron, shown)
        version = (
            VISUAL_EXPLAINER_PROMPT_VERSION if self.uses_images(neuron) else TEXT_EXPLAINER_PROMPT_VERSION
        )
        if len(texts) == 1 or not calibration or self.scorer is None:
            return ExplainerResult(texts[0], None, usage.prompt, usage.completion, usage.calls, version)
        scores = self.scorer.score(texts, calibration)
        candidates: list[ExplanationCandidate] = []
        for text, score in zip(texts, scores, strict=True):
            usage += TokenUsage(score.prompt_tokens, score.completion_tokens, score.llm_calls)
            candidates.append(
                ExplanationCandidate(
                    text=text,
                    calibration_correlation=score.correlation,
                    calibration_null_reason=score.null_reason,
                    parse_failures=score.parse_failures,
                )
            )
        text = candidates[_best(candidates)].text
        return ExplainerResult(text, candidates, usage.prompt, usage.completion, usage.calls, version)

    def _split(
        self, records: list[ActivationRecord]
    ) -> tuple[list[ActivationRecord], list[ActivationRecord]]:
        if self.candidates == 1 or len(records) < CALIBRATION_STRIDE:
            return records, []
        calibration = records[CALIBRATION_STRIDE - 1 :: CALIBRATION_STRIDE]
        shown = [record for index, record in enumerate(records) if (index + 1) % CALIBRATION_STRIDE]
        return shown, calibration

    def _draw(self, neuron: NeuronRecords, shown: list[ActivationRecord]) -> tuple[list[str], TokenUsage]:
        """k explanations (fewer requests when the endpoint honours `n`); retried once when none parse."""
        messages = self._messages(neuron, shown)
        temperature = 1.0 if self.candidates > 1 else 0.0
        texts: list[str] = []
        usage = TokenUsage()
        last_reply = ""
        for _ in range(EXPLAIN_ATTEMPTS + self.candidates - 1):
            wanted = self.candidates - len(texts)
            reply = self.caller.chat(
                messages,
                model=self.model,
                n=wanted,
                temperature=temperature,
                max_tokens=EXPLANATION_MAX_TOKENS,
            )
            usage += reply.usage
            last_reply = reply.texts[0] if reply.texts else ""
            texts.extend(text for text in map(parse_explanation, reply.texts[:wanted]) if text)
            if len(texts) >= self.candidates:
                break
        if not texts:
            raise ExplanationUnusable(
                f"explainer model '{self.model}' at {self.caller.endpoint.describe()} gave no explanation "
                f"for neuron {neuron.neuron} of layer {neuron.layer}; last reply: {last_reply[:200]!r}"
            )
        return texts, usage

    def _messages(self, neuron: NeuronRecords, shown: list[ActivationRecord]) -> list[Message]:
        if not self.uses_images(neuron):
            return build_bills_messages([_raw_text_record(record) for record in shown])
        return build_visual_explainer_messages([self._visual_record(neuron, record) for record in shown])

    def _visual_record(self, neuron: NeuronRecords, record: ActivationRecord) -> PromptRecord:
        text = _text_record(neuron, record)
        grid = record.record.patch_grid
        image = self.images.image(record.sample_id) if self.images is not None else None
        if image is None or grid is None:
            return text
        patches = record.activations[record.record.modality == MODALITY_IMAGE]
        png = shaded_png(image, patches, grid, neuron.max_activation)
        return PromptRecord(text.tokens, text.activations, image_png=png)


def _raw_text_record(record: ActivationRecord) -> RawRecord:
    """The record's text tokens with their RAW activations (Bills et al. discretise on the shown max)."""
    is_text = record.record.modality == MODALITY_TEXT
    tokens = [token for token, keep in zip(record.tokens, is_text.tolist(), strict=True) if keep]
    return RawRecord(tokens=tokens, activations=np.asarray(record.activations)[is_text].tolist())


def _text_record(neuron: NeuronRecords, record: ActivationRecord) -> PromptRecord:
    """The record's text tokens with their normalised activations (image patches are shown as the image)."""
    is_text = record.record.modality == MODALITY_TEXT
    tokens = [token for token, keep in zip(record.tokens, is_text.tolist(), strict=True) if keep]
    values = np.asarray(record.normalised(neuron.max_activation))[is_text]
    return PromptRecord(tokens=tokens, activations=values.tolist())


def _best(candidates: list[ExplanationCandidate]) -> int:
    """Index of the highest calibration correlation; an undefined one ranks last; ties keep the first."""
    scores = [c.calibration_correlation for c in candidates]
    ranked = [s if s is not None else float("-inf") for s in scores]
    return max(range(len(ranked)), key=lambda index: (ranked[index], -index))
