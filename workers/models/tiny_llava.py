"""`tiny-llava`: the real transformers `LlavaForConditionalGeneration` (CLIP vision tower + Llama language
model) at a tiny size, random weights from a fixed seed, built offline.

Its tokenizer is a `tokenizers` WordPiece model whose vocabulary is built from the `vl-probe-v1` captions
and the prompt template (deterministic, no training), wrapped in `PreTrainedTokenizerFast` and a real
`LlavaProcessor`, which expands `<image>` into one token per patch. Its image processor is CLIP's PIL
backend (this machine's CPU torch has no torchvision). Generated models are cached in the artifact store
by workers/models/weights_cache.py, so every worker of a cluster scans the same weights.
"""

from __future__ import annotations

import torch
from transformers import (
    CLIPVisionConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerFast,
)
from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

from workers.data.vl_probe import QUESTION, caption_corpus
from workers.models.layout import LLAVA_TEMPLATE
from workers.models.tiny_llama import tiny_llama_config
from workers.models.wordpiece import build_wordpiece_tokenizer, wordpiece_vocabulary

TINY_LLAVA_ID = "tiny-llava"
TINY_LLAVA_REVISION = "seed0-v1"
"""Revision of the generated weights: the seed and the builder version. Part of every scan key."""
TINY_LLAVA_SEED = 0
IMAGE_TOKEN = "<image>"
SPECIAL_TOKENS: tuple[str, ...] = ("<unk>", "<s>", "</s>", "<pad>", IMAGE_TOKEN)

TINY_IMAGE_SIZE = 64
TINY_PATCH_SIZE = 8
TINY_TEXT_LAYERS = 4
TINY_NEURONS = 256
"""MLP neurons per language-model layer (intermediate size)."""


def tiny_vocabulary() -> list[str]:
    """Special tokens, then every word of the probe captions and the prompt template (sorted), then
    printable ASCII characters alone and as `##` continuations. Built, not trained: the same every time."""
    return wordpiece_vocabulary([LLAVA_TEMPLATE.render("", QUESTION, ""), *caption_corpus()], SPECIAL_TOKENS)


def build_tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A WordPiece tokenizer over `tiny_vocabulary()`, wrapped for transformers; BOS is prepended.

    Every caption word of `vl-probe-v1` is one token; other words split into printable-ASCII `##` pieces
    (greedy longest match, as BERT does); a word with any other character becomes `<unk>`.
    """
    return build_wordpiece_tokenizer(
        tiny_vocabulary(), SPECIAL_TOKENS, extra_special_tokens={"image_token": IMAGE_TOKEN}
    )


def build_tiny_processor(tokenizer: PreTrainedTokenizerFast) -> LlavaProcessor:
    """LlavaProcessor over CLIP's PIL image processor: 64 px centre crop, 8 px patches → 8×8 grid."""
    image_processor = CLIPImageProcessorPil(
        size={"shortest_edge": TINY_IMAGE_SIZE},
        crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE},
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=TINY_PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
    )


def tiny_llava_config(tokenizer: PreTrainedTokenizerFast) -> LlavaConfig:
    """LLaVA-1.5's layout, tiny: CLIP tower (2 layers) + Llama LM (4 layers × 256 SiLU-gated neurons)."""
    vision = CLIPVisionConfig(
        image_size=TINY_IMAGE_SIZE,
        patch_size=TINY_PATCH_SIZE,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
    )
    text = tiny_llama_config(tokenizer, neurons=TINY_NEURONS, layers=TINY_TEXT_LAYERS, kv_heads=4)
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=SPECIAL_TOKENS.index(IMAGE_TOKEN),  # special tokens come first in the vocabulary
        vision_feature_layer=-2,
        vision_feature_select_strategy="default",
    )


def build_tiny_llava(seed: int = TINY_LLAVA_SEED) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """tiny-llava with random weights from `seed` (same torch version + seed → same weights)."""
    tokenizer = build_tiny_tokenizer()
    processor = build_tiny_processor(tokenizer)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(tiny_llava_config(tokenizer))
    return model.eval(), processor
