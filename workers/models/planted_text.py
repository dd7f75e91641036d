"""A small BERT with planted text neurons (issue 10's ground truth for text models), built from a config
with a fixed seed and the bundled MiniLM tokenizer; used by tests and bench/bench_quality.py, never served.

Three layer-0 MLP neurons are edited: one fires on digit tokens, one on the word family "play" (plays,
played, …), one on "?". A fourth, OUTLIER_NEURON, fires on "?" like the third and six times as strongly
on "japan", a word of one or two probe samples: one outlier sample sets its global max (the case the
`quantile` scale and the `top1_dominates` flag are for). A fifth, RARE_NEURON, is a rare concept over a weak
background: it reads the same "japan" dimension with a positive bias, so every token gives it a small
positive value and the one or two "japan" samples stand far above (the case the scale's rare-concept rule
is for: the quantile of the maxima sits in the background). Hidden dimensions 0–3 are reserved (zero in
every embedding row and in what layer-0 attention writes); the concept tokens' word embeddings get a
large value in their dimension; each planted neuron's intermediate row reads only its dimensions, with a
negative bias, so GELU leaves it near zero everywhere else.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from service.contract import ModelSource, ModelSpec

PLANTED_TEXT_CONCEPTS: dict[int, tuple[str, re.Pattern[str]]] = {
    10: ("digits", re.compile(r"^(##)?\d+$")),
    20: ("the word family play", re.compile(r"^play")),
    30: ("the question mark", re.compile(r"^\?$")),
}
"""Layer-0 neuron → (concept, vocabulary tokens that fire it)."""
OUTLIER_NEURON = 40
"""Fires on "?" and, OUTLIER_GAIN times as strongly, on OUTLIER_TOKEN."""
OUTLIER_TOKEN = "japan"
OUTLIER_GAIN = 6.0
RARE_NEURON = 50
"""Fires weakly on every token (GELU of RARE_BIAS plus a small residual term), strongly on OUTLIER_TOKEN."""
RARE_BIAS = 0.3
N_NEURONS = 128
SEED = 0


def plant_text_neurons(model: Any, tokenizer: Any) -> None:
    """Edit `model` (a transformers BertModel) in place so PLANTED_TEXT_CONCEPTS hold."""
    import torch

    embeddings = model.embeddings
    layer = model.encoder.layer[0]
    with torch.no_grad():
        for table in (
            embeddings.word_embeddings,
            embeddings.position_embeddings,
            embeddings.token_type_embeddings,
        ):
            table.weight[:, :4] = 0.0
        for norm in (embeddings.LayerNorm, layer.attention.output.LayerNorm):
            norm.weight[:4], norm.bias[:4] = 1.0, 0.0
        layer.attention.output.dense.weight[:4] = 0.0
        layer.attention.output.dense.bias[:4] = 0.0
        dense = layer.intermediate.dense
        for dim, (neuron, (_, pattern)) in enumerate(PLANTED_TEXT_CONCEPTS.items()):
            ids = [index for token, index in tokenizer.vocab.items() if pattern.match(token)]
            embeddings.word_embeddings.weight[ids, dim] = 4.0
            dense.weight[neuron] = 0.0
            dense.weight[neuron, dim] = 1.0
            dense.bias[neuron] = -1.0
        embeddings.word_embeddings.weight[tokenizer.vocab[OUTLIER_TOKEN], 3] = 4.0
        dense.weight[OUTLIER_NEURON] = 0.0
        dense.weight[OUTLIER_NEURON, 2] = 1.0
        dense.weight[OUTLIER_NEURON, 3] = OUTLIER_GAIN
        dense.bias[OUTLIER_NEURON] = -1.0
        dense.weight[RARE_NEURON] = 0.0
        dense.weight[RARE_NEURON, 3] = 1.0
        dense.bias[RARE_NEURON] = RARE_BIAS


def build_planted_bert(minilm: ModelSpec, tokenizer_path: str, folder: Path) -> ModelSpec:
    """Build the planted BERT (2 layers × N_NEURONS), save it with the tokenizer in `folder`, and return
    a registry spec that loads it from there (the MiniLM spec with this model's id, size and path)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path, local_files_only=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=N_NEURONS,
        max_position_embeddings=128,
    )
    torch.manual_seed(SEED)
    model = BertModel(config).eval()
    plant_text_neurons(model, tokenizer)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return minilm.model_copy(
        update={
            "id": "tiny-bert-planted",
            "layers": 2,
            "neurons_per_layer": N_NEURONS,
            "revision": f"seed{SEED}-planted-test-3",
            "source": ModelSource(kind="hub-or-path", path=str(folder)),
            # The residual point's width is minilm's (384): this model's is its hidden size.
            "hook_points": [
                point.model_copy(update={"width": config.hidden_size}) if point.width else point
                for point in minilm.hook_points
            ],
        }
    )
