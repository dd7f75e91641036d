"""`tiny-llava-planted`: tiny-llava with four layer-2 MLP neurons edited so their type and concept are known.

How, with random weights elsewhere: a few residual-stream dimensions are reserved and carry known features.

- Vision tower: two channel pairs of the patch embedding compute redness (R − 1.2·G − 0.6·B − 0.4) and
  blueness (B − R − 0.3·G − 0.2) of each patch, colours in 0…1, as (+f, −f). The other channels are
  centred so their sum is zero; then every LayerNorm sees mean zero and keeps the sign of f exactly.
  Attention and MLP output projections write nothing into the reserved channels, so the feature layer
  still holds them.
- Projector: one hidden unit per colour computes GELU(2·f) (≈ 0 when the patch is not that colour)
  and writes it to a reserved language-model dimension; a bias writes 1 into a "patch" dimension.
- Text embeddings: indicator values in reserved dimensions: every caption-vocabulary word (not the
  prompt template's words), the shape names, and the word "red" (into the same dimension as red patches).
- Language model: layers before the planted one, and its attention, write nothing into those dimensions;
  each planted neuron's gate and up rows read only its dimensions. A neuron reading none of them is
  SiLU(0) = 0 exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import torch
from transformers import LlavaForConditionalGeneration, LlavaProcessor, PreTrainedTokenizerFast
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from service.contract import NeuronType, load_registry
from workers.data.vl_probe import QUESTION, SHAPES
from workers.models.layout import LLAVA_TEMPLATE
from workers.models.tiny_llava import TINY_LLAVA_SEED, build_tiny_llava

PLANTED_ID = "tiny-llava-planted"
PLANTED_REVISION = "seed0-planted-v1"
PLANTED_LAYER = 2

# Vision channels (+f, −f) per colour feature, projector hidden units, language-model dimensions.
RED_CHANNELS = (60, 61)
BLUE_CHANNELS = (62, 63)
RED_UNIT, BLUE_UNIT = 127, 126
DIM_PATCH, DIM_CAPTION, DIM_SHAPE, DIM_BLUE, DIM_RED = 123, 124, 125, 126, 127
RESERVED_DIMS = (DIM_PATCH, DIM_CAPTION, DIM_SHAPE, DIM_BLUE, DIM_RED)

REDNESS = ((1.0, -1.2, -0.6), 0.4)
"""(RGB weights, threshold): red (220, 30, 30) scores +0.25; orange, purple, white and black stay below 0."""
BLUENESS = ((-1.0, -0.3, 1.0), 0.2)
"""(RGB weights, threshold): blue and the sky score above 0; purple, green, white and black below."""
COLOUR_GAIN = 2.0
"""Projector gain of the colour units: GELU(2·f) of the LayerNorm-scaled colour feature f."""
INDICATOR = 1.0
"""Value a text embedding or the projector bias writes into a reserved dimension."""
GATE = 0.5
"""Weight of a planted neuron's gate (and up) row on each dimension it reads."""


PLANTED_READS: dict[int, tuple[int, ...]] = {
    11: (DIM_BLUE,),
    42: (DIM_SHAPE,),
    99: (DIM_PATCH, DIM_CAPTION),
    200: (DIM_RED,),
}
"""The edit plan: reserved language-model dimensions each planted neuron's gate and up rows read. Where
the neurons are, their types and concepts are the bundled registry's `planted` list
(service/contract/registry.json); `planted_neurons` joins the two and fails when they disagree."""


@dataclass(frozen=True, slots=True)
class PlantedNeuron:
    """One edited neuron: where it is, the type the classifier should find, and what it responds to."""

    layer: int
    neuron: int
    neuron_type: NeuronType
    concept: str
    """What fires it, in words."""
    reads: tuple[int, ...]
    """Reserved language-model dimensions its gate and up rows read."""


@cache
def planted_neurons() -> tuple[PlantedNeuron, ...]:
    """The planted neurons as the bundled registry lists them (in its order), with their edit plan."""
    listed = load_registry().model(PLANTED_ID).planted or []
    where = sorted((p.layer, p.neuron) for p in listed)
    if where != [(PLANTED_LAYER, neuron) for neuron in sorted(PLANTED_READS)]:
        raise RuntimeError(
            f"the bundled registry plants {where} in {PLANTED_ID} but this builder edits layer "
            f"{PLANTED_LAYER} neurons {sorted(PLANTED_READS)}: update one of them"
        )
    return tuple(PlantedNeuron(p.layer, p.neuron, p.type, p.concept, PLANTED_READS[p.neuron]) for p in listed)


def build_tiny_llava_planted(
    seed: int = TINY_LLAVA_SEED,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """tiny-llava from `seed` with `planted_neurons()` planted."""
    model, processor = build_tiny_llava(seed)
    plant_neurons(model, processor.tokenizer)
    return model, processor


@torch.no_grad()
def plant_neurons(model: LlavaForConditionalGeneration, tokenizer: PreTrainedTokenizerFast) -> None:
    """Edit `model` in place so that `planted_neurons()` respond as documented."""
    _plant_colour_channels(model)
    _plant_projector(model)
    _plant_text_indicators(model, tokenizer)
    _protect_reserved_dims(model)
    for planted in planted_neurons():
        mlp = model.model.language_model.layers[planted.layer].mlp
        for rows in (mlp.gate_proj.weight, mlp.up_proj.weight):
            rows[planted.neuron] = 0.0
            rows[planted.neuron, list(planted.reads)] = GATE


def _plant_colour_channels(model: LlavaForConditionalGeneration) -> None:
    tower = model.model.vision_tower
    vision = getattr(tower, "vision_model", tower)  # transformers 5 flattened CLIPVisionModel
    embeddings = vision.embeddings
    conv, positions = embeddings.patch_embedding.weight, embeddings.position_embedding.weight
    reserved = [*RED_CHANNELS, *BLUE_CHANNELS]
    others = [c for c in range(conv.shape[0]) if c not in reserved]
    # Zero-sum channels: LayerNorm then subtracts a mean of exactly 0 and keeps each feature's sign.
    conv[others] -= conv[others].mean(dim=0, keepdim=True)
    positions[:, others] -= positions[:, others].mean(dim=1, keepdim=True)
    embeddings.class_embedding[others] -= embeddings.class_embedding[others].mean()
    embeddings.class_embedding[reserved] = 0.0
    pixels_per_patch = conv.shape[2] * conv.shape[3]
    for (plus, minus), (weights, threshold) in ((RED_CHANNELS, REDNESS), (BLUE_CHANNELS, BLUENESS)):
        # Pixels arrive normalised, (p − mean)/std: undo that inside the weights and the bias.
        for colour, weight in enumerate(weights):
            conv[plus, colour] = weight * OPENAI_CLIP_STD[colour] / pixels_per_patch
        bias = sum(w * m for w, m in zip(weights, OPENAI_CLIP_MEAN, strict=True)) - threshold
        positions[:, plus] = bias
        conv[minus], positions[:, minus] = -conv[plus], -positions[:, plus]
    vision.pre_layrnorm.weight[reserved] = 1.0
    vision.pre_layrnorm.bias[reserved] = 0.0
    for layer in vision.encoder.layers:
        for projection in (layer.self_attn.out_proj, layer.mlp.fc2):
            projection.weight[reserved] = 0.0
            projection.bias[reserved] = 0.0


def _plant_projector(model: LlavaForConditionalGeneration) -> None:
    projector = model.model.multi_modal_projector
    first, second = projector.linear_1, projector.linear_2
    for unit, channel in ((RED_UNIT, RED_CHANNELS[0]), (BLUE_UNIT, BLUE_CHANNELS[0])):
        first.weight[unit] = 0.0
        first.weight[unit, channel] = COLOUR_GAIN
        first.bias[unit] = 0.0
    second.weight[list(RESERVED_DIMS)] = 0.0
    second.bias[list(RESERVED_DIMS)] = 0.0
    second.weight[DIM_RED, RED_UNIT] = 1.0
    second.weight[DIM_BLUE, BLUE_UNIT] = 1.0
    second.bias[DIM_PATCH] = INDICATOR


def _plant_text_indicators(model: LlavaForConditionalGeneration, tokenizer: PreTrainedTokenizerFast) -> None:
    embed = model.model.language_model.embed_tokens.weight
    embed[:, list(RESERVED_DIMS)] = 0.0
    template = set(tokenizer(LLAVA_TEMPLATE.render("", QUESTION, ""), add_special_tokens=False)["input_ids"])
    excluded = template | set(tokenizer.all_special_ids)
    caption_vocabulary = [i for i in range(embed.shape[0]) if i not in excluded]
    embed[caption_vocabulary, DIM_CAPTION] = INDICATOR
    embed[_word_ids(tokenizer, SHAPES), DIM_SHAPE] = INDICATOR
    embed[_word_ids(tokenizer, ("red",)), DIM_RED] = INDICATOR


def _word_ids(tokenizer: PreTrainedTokenizerFast, words: tuple[str, ...]) -> list[int]:
    ids = []
    for word in words:
        pieces = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(pieces) != 1:
            raise ValueError(
                f"planting needs {word!r} to be one token, the tokenizer splits it into {pieces}"
            )
        ids.append(pieces[0])
    return ids


def _protect_reserved_dims(model: LlavaForConditionalGeneration) -> None:
    """Nothing before the planted MLP writes into the reserved dimensions."""
    reserved = list(RESERVED_DIMS)
    layers = model.model.language_model.layers
    writers = [layers[index].self_attn.o_proj for index in range(PLANTED_LAYER + 1)]
    writers += [layers[index].mlp.down_proj for index in range(PLANTED_LAYER)]
    for projection in writers:
        projection.weight[reserved] = 0.0
        if projection.bias is not None:
            projection.bias[reserved] = 0.0
    layers[PLANTED_LAYER].post_attention_layernorm.weight[reserved] = 1.0
