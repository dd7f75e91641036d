"""`tiny-llama`: the real transformers `LlamaForCausalLM` at a tiny size, random weights from a fixed seed,
built offline: the text-only member of the `llama` family (Llama, Mistral, Qwen2, Gemma: gated MLP).

Its tokenizer is a `tokenizers` WordPiece model whose vocabulary is built from the `text-probe-v1`
sentences (deterministic, no training; tiny-llava's approach over the text probe set), with BOS
prepended as Llama tokenizers do, so the scan's content tokens exclude it as special. Generated models
are cached in the artifact store by workers/models/weights_cache.py.
"""

from __future__ import annotations

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from workers.data.text_probe import generate_text_probe
from workers.models.wordpiece import build_wordpiece_tokenizer, wordpiece_vocabulary

TINY_LLAMA_ID = "tiny-llama"
TINY_LLAMA_REVISION = "seed0-v1"
"""Revision of the generated weights: the seed and the builder version. Part of every scan key."""
TINY_LLAMA_SEED = 0
TINY_LLAMA_LAYERS = 4
TINY_LLAMA_NEURONS = 256
"""MLP neurons per layer (intermediate size)."""
VOCABULARY_SAMPLES = 4096
"""Probe sentences whose words become whole tokens (text-probe-v1's default size)."""
SPECIAL_TOKENS: tuple[str, ...] = ("<unk>", "<s>", "</s>", "<pad>")


def tiny_llama_vocabulary() -> list[str]:
    """Special tokens, every word of the first VOCABULARY_SAMPLES probe sentences (sorted), then printable
    ASCII characters alone and as `##` continuations. Built, not trained: the same every time."""
    texts = [sample.text for sample in generate_text_probe(VOCABULARY_SAMPLES).samples]
    return wordpiece_vocabulary(texts, SPECIAL_TOKENS)


def build_tiny_llama_tokenizer() -> PreTrainedTokenizerFast:
    """A WordPiece tokenizer over `tiny_llama_vocabulary()`, BOS prepended, inputs ids + attention mask."""
    return build_wordpiece_tokenizer(
        tiny_llama_vocabulary(), SPECIAL_TOKENS, model_input_names=["input_ids", "attention_mask"]
    )


def tiny_llama_config(
    tokenizer: PreTrainedTokenizerFast,
    neurons: int = TINY_LLAMA_NEURONS,
    layers: int = TINY_LLAMA_LAYERS,
    kv_heads: int = 2,
) -> LlamaConfig:
    """Llama's layout, tiny: `layers` (4) × `neurons` (256) SiLU-gated MLP neurons, hidden size 128,
    4 attention heads over `kv_heads` key/value heads (tiny-llava's language model is one with 4)."""
    return LlamaConfig(
        hidden_size=128,
        intermediate_size=neurons,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=kv_heads,
        hidden_act="silu",
        vocab_size=len(tokenizer),
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_llama(seed: int = TINY_LLAMA_SEED) -> tuple[LlamaForCausalLM, PreTrainedTokenizerFast]:
    """tiny-llama with random weights from `seed` (same torch version + seed → same weights)."""
    tokenizer = build_tiny_llama_tokenizer()
    torch.manual_seed(seed)
    model = LlamaForCausalLM(tiny_llama_config(tokenizer))
    return model.eval(), tokenizer
