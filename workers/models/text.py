"""Text models loaded with transformers `AutoModel`/`AutoTokenizer` (BERT, GPT-2, …)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from service.contract import ModelSpec
from workers.data.base import ProbeSample
from workers.models.base import TokenizedSample
from workers.vocabulary.records import MODALITY_TEXT

MAX_TOKENS = 64
"""Longest model input (special tokens included); longer samples are truncated."""


class TextModelAdapter:
    """A transformers text model and its tokenizer; content tokens are all non-special tokens."""

    def __init__(self, spec: ModelSpec, model: torch.nn.Module, tokenizer: object, device: torch.device):
        self.spec = spec
        self.module = model
        self._tokenizer = tokenizer
        self.device = device
        pad_id = getattr(tokenizer, "pad_token_id", None)
        # GPT-2 style tokenizers have no pad token; padded positions are masked out anyway.
        self._pad_id = int(pad_id) if pad_id is not None else 0
        self._uses_token_types = "token_type_ids" in getattr(tokenizer, "model_input_names", ())

    @property
    def patch_grid(self) -> tuple[int, int] | None:
        return None

    def tokenize(self, samples: Sequence[ProbeSample]) -> list[TokenizedSample]:
        tokenizer = self._tokenizer
        encoded = tokenizer(  # type: ignore[operator]
            [sample.text for sample in samples],
            truncation=True,
            max_length=MAX_TOKENS,
            return_special_tokens_mask=True,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        result = []
        for sample, ids, special in zip(
            samples, encoded["input_ids"], encoded["special_tokens_mask"], strict=True
        ):
            input_ids = np.asarray(ids, dtype=np.int64)
            positions = np.flatnonzero(np.asarray(special) == 0).astype(np.int64)
            tokens = tokenizer.convert_ids_to_tokens(input_ids[positions].tolist())  # type: ignore[attr-defined]
            result.append(
                TokenizedSample(
                    sample_id=sample.id,
                    input_ids=input_ids,
                    content_positions=positions,
                    tokens=tuple(tokens),
                    modality=np.full(len(positions), MODALITY_TEXT, dtype=np.uint8),
                )
            )
        return result

    def make_batch(
        self, samples: Sequence[ProbeSample], tokenized: Sequence[TokenizedSample]
    ) -> Mapping[str, torch.Tensor]:
        length = max(len(item.input_ids) for item in tokenized)
        ids = np.full((len(tokenized), length), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(tokenized), length), dtype=np.int64)
        for row, item in enumerate(tokenized):
            ids[row, : len(item.input_ids)] = item.input_ids
            mask[row, : len(item.input_ids)] = 1
        inputs = {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask)}
        if self._uses_token_types:
            inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
        return {name: tensor.to(self.device, non_blocking=True) for name, tensor in inputs.items()}

    def forward(self, inputs: Mapping[str, torch.Tensor]) -> None:
        self.module(**inputs)
