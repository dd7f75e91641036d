"""Modality layout of vision-language prompts: which token positions are image patches, caption text,
or template (docs/method.md#tokens-and-modalities).

A sample becomes one prompt, `USER: <image>\\n{question} ASSISTANT: {caption}` for LLaVA, in which the
processor expands the image token into one token per patch. Patch tokens are the visual modality (with
their row and column in the patch grid), the caption tokens fed with teacher forcing are the text modality,
and everything else (BOS, role markers, the question, padding) is in neither.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from workers.vocabulary.records import MODALITY_IMAGE, MODALITY_PAD, MODALITY_TEXT

MODALITY_TEMPLATE = 3
"""A prompt-template or special token (BOS, "USER:", the question, "ASSISTANT:"): in neither modality."""


@dataclass(frozen=True, slots=True)
class PromptTemplate:
    """How an architecture wraps an image and a caption into one prompt."""

    prefix: str
    """Text before the image token."""
    infix: str
    """Text between the image token and the question."""
    suffix: str
    """Text between the question and the caption (the assistant's turn marker)."""

    def render(self, image_token: str, question: str, caption: str) -> str:
        """The prompt text with one image token, before the processor expands it into patch tokens."""
        return f"{self.prefix}{image_token}{self.infix}{question}{self.suffix}{caption}"


LLAVA_TEMPLATE = PromptTemplate(prefix="USER: ", infix="\n", suffix=" ASSISTANT: ")
"""LLaVA-1.5's conversation format (llava-hf model cards), also used by tiny-llava."""
QWEN2_VL_TEMPLATE = PromptTemplate(
    prefix="<|im_start|>user\n<|vision_start|>",
    infix="<|vision_end|>",
    suffix="<|im_end|>\n<|im_start|>assistant\n",
)
"""Qwen2-VL's chat format for one image and one question."""


@dataclass(frozen=True, slots=True)
class BatchLayout:
    """Per-position modality of a padded batch of prompts, shape [batch, seq]."""

    modality: np.ndarray
    """int8 code per position: MODALITY_TEXT, MODALITY_IMAGE, MODALITY_TEMPLATE, or MODALITY_PAD."""
    patch_index: np.ndarray
    """int32 row-major index into the sample's patch grid at image positions, -1 elsewhere."""
    grids: list[tuple[int, int]]
    """(rows, cols) of each sample's patch grid."""

    def patch_row_col(self, sample: int, position: int) -> tuple[int, int]:
        """(row, col) of the patch at `position` of `sample`; ValueError when it is not a patch."""
        index = int(self.patch_index[sample, position])
        if index < 0:
            raise ValueError(f"position {position} of sample {sample} is not an image patch")
        cols = self.grids[sample][1]
        return index // cols, index % cols

    def content_mask(self) -> np.ndarray:
        """bool [batch, seq]: True at text and image positions (what a scan records)."""
        return (self.modality == MODALITY_TEXT) | (self.modality == MODALITY_IMAGE)


def layout_batch(
    input_ids: np.ndarray,
    attention_mask: np.ndarray,
    offsets: np.ndarray,
    caption_starts: Sequence[int],
    image_token_id: int,
    grids: Sequence[tuple[int, int]],
    special_ids: Sequence[int] = (),
    caption_lead_in: int = 0,
) -> BatchLayout:
    """The modality layout of a tokenised batch.

    `offsets` are the tokenizer's character spans [batch, seq, 2] in the expanded prompt text, and
    `caption_starts[i]` is where sample i's caption begins in that text. A token is caption text when its
    span reaches into the caption and starts at most `caption_lead_in` characters before it (the
    whitespace that SentencePiece tokenizers fold into a word's first token). Image positions must number
    rows × cols of the sample's grid.
    """
    ids = np.asarray(input_ids)
    live = np.asarray(attention_mask).astype(bool)
    starts = np.asarray(offsets)[..., 0]
    ends = np.asarray(offsets)[..., 1]
    is_image = (ids == image_token_id) & live
    is_special = np.isin(ids, np.asarray(list(special_ids), dtype=ids.dtype))
    caption_at = np.asarray(caption_starts, dtype=np.int64)[:, None]
    in_caption = (ends > caption_at) & (starts >= caption_at - caption_lead_in) & (ends > starts)
    is_text = live & ~is_image & ~is_special & in_caption

    modality = np.full(ids.shape, MODALITY_TEMPLATE, dtype=np.int8)
    modality[~live] = MODALITY_PAD
    modality[is_text] = MODALITY_TEXT
    modality[is_image] = MODALITY_IMAGE
    patch_index = np.where(is_image, np.cumsum(is_image, axis=1) - 1, -1).astype(np.int32)
    for sample, (rows, cols) in enumerate(grids):
        found = int(is_image[sample].sum())
        if found != rows * cols:
            raise ValueError(
                f"sample {sample} has {found} image tokens; its {rows}×{cols} patch grid needs {rows * cols}"
            )
    return BatchLayout(modality=modality, patch_index=patch_index, grids=list(grids))
