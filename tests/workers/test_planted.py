"""tiny-llava-planted: real forward passes over the whole `vl-probe-v1` set show every planted neuron
responding as documented, and the classifier (docs/method.md#neuron-types) recovering every planted type."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from service.contract import PipelineOptions, load_registry
from workers.analysis.neuron_types import classify_neuron
from workers.data.vl_probe import SHAPES, generate_vl_probe
from workers.models.hooks import capture_activations
from workers.models.layout import MODALITY_TEMPLATE
from workers.models.llava import VisionLanguageAdapter
from workers.models.planted import (
    BLUENESS,
    PLANTED_ID,
    PLANTED_LAYER,
    REDNESS,
    PlantedNeuron,
    build_tiny_llava_planted,
    planted_neurons,
)
from workers.vocabulary.records import MODALITY_IMAGE, MODALITY_TEXT

VISUAL, TEXT, MULTIMODAL, RED = (p.neuron for p in planted_neurons())
SPEC = load_registry().model(PLANTED_ID)
"""The bundled registry's entry: its hook points, and its `planted` list as the ground truth to check."""
HOOK_ACT, HOOK_DOWN_IN = SPEC.hook_points
BATCH = 128
TEMPLATE_WORDS = {"USER", ":", "Describe", "the", "image", ".", "ASSISTANT"}


@dataclass
class Scan:
    """Planted neurons' activations at every position of every sample (padded), with the layout."""

    acts: np.ndarray  # [samples, seq, 4] (mlp_act of the planted neurons)
    down_in: np.ndarray  # [samples, seq, 4]
    modality: np.ndarray  # [samples, seq]
    tokens: list[list[str]]
    redness: np.ndarray  # [samples, 64] per-patch colour score of the model's input pixels
    blueness: np.ndarray
    domains: list[str]
    colours: list[str]

    def column(self, neuron: int) -> int:
        return [p.neuron for p in planted_neurons()].index(neuron)


def colour_scores(pixel_values: torch.Tensor, rule: tuple[tuple[float, ...], float]) -> np.ndarray:
    """Mean colour score per 8×8 patch of what the model saw, rows-major [batch, 64]."""
    mean = torch.tensor(OPENAI_CLIP_MEAN)[None, :, None, None]
    std = torch.tensor(OPENAI_CLIP_STD)[None, :, None, None]
    rgb = (pixel_values * std + mean).unfold(2, 8, 8).unfold(3, 8, 8).mean(dim=(-1, -2))  # [b, 3, 8, 8]
    weights, threshold = rule
    score = sum(w * rgb[:, c] for c, w in enumerate(weights)) - threshold
    return score.reshape(len(pixel_values), 64).numpy()


@pytest.fixture(scope="module")
def adapter() -> VisionLanguageAdapter:
    model, processor = build_tiny_llava_planted()
    return VisionLanguageAdapter(SPEC, model, processor, torch.device("cpu"))


@pytest.fixture(scope="module")
def scan(adapter: VisionLanguageAdapter) -> Scan:
    processor = adapter.processor
    probe = generate_vl_probe()
    columns = [p.neuron for p in planted_neurons()]
    parts: dict[str, list[np.ndarray]] = {"acts": [], "down": [], "modality": [], "red": [], "blue": []}
    tokens: list[list[str]] = []
    for start in range(0, len(probe.samples), BATCH):
        samples = probe.samples[start : start + BATCH]
        inputs, layout = adapter.encode(samples)
        with torch.inference_mode():
            with capture_activations(adapter.module, HOOK_ACT, [PLANTED_LAYER]) as act:
                with capture_activations(adapter.module, HOOK_DOWN_IN, [PLANTED_LAYER]) as down:
                    adapter.forward(inputs)
        pad = 100 - layout.modality.shape[1]  # a common width for every batch
        parts["acts"].append(np.pad(act[PLANTED_LAYER][..., columns].numpy(), ((0, 0), (0, pad), (0, 0))))
        parts["down"].append(np.pad(down[PLANTED_LAYER][..., columns].numpy(), ((0, 0), (0, pad), (0, 0))))
        parts["modality"].append(np.pad(layout.modality, ((0, 0), (0, pad))))
        parts["red"].append(colour_scores(inputs["pixel_values"], REDNESS))
        parts["blue"].append(colour_scores(inputs["pixel_values"], BLUENESS))
        ids = inputs["input_ids"].tolist()
        tokens += [processor.tokenizer.convert_ids_to_tokens(row) + [""] * pad for row in ids]
    specs = [probe.samples.spec(i) for i in range(len(probe.samples))]  # type: ignore[attr-defined]
    return Scan(
        acts=np.concatenate(parts["acts"]),
        down_in=np.concatenate(parts["down"]),
        modality=np.concatenate(parts["modality"]),
        tokens=tokens,
        redness=np.concatenate(parts["red"]),
        blueness=np.concatenate(parts["blue"]),
        domains=[s.domain for s in specs],
        colours=[s.colour for s in specs],
    )


def patch_acts(scan: Scan, neuron: int) -> np.ndarray:
    """[samples, 64] activations at the image patches, in grid order."""
    column = scan.acts[..., scan.column(neuron)]
    return column[scan.modality == MODALITY_IMAGE].reshape(len(column), 64)


def text_acts(scan: Scan, neuron: int) -> tuple[np.ndarray, list[str]]:
    """Activations at every caption token of every sample, and those tokens."""
    column = scan.acts[..., scan.column(neuron)]
    mask = scan.modality == MODALITY_TEXT
    words = [
        t for row, m in zip(scan.tokens, mask, strict=True) for t, keep in zip(row, m, strict=True) if keep
    ]
    return column[mask], words


def test_visual_neuron_fires_on_blue_patches_only(scan: Scan) -> None:
    patches = patch_acts(scan, VISUAL)
    words, _ = text_acts(scan, VISUAL)
    peak = patches.max()
    assert peak > 1 and np.all(words == 0)
    # The sign of the patch's blueness score decides, up to rounding at the threshold itself.
    assert np.all(patches[scan.blueness > 0.02] > 0) and np.all(patches[scan.blueness > 0.1] > 0.15 * peak)
    assert np.all(patches[scan.blueness < -0.01] <= 0)
    sky = [i for i, d in enumerate(scan.domains) if d == "scenes"]
    assert np.all((patches[sky, :8] > 0).sum(axis=1) >= 5)  # the top row of a scene is sky (and maybe sun)


def test_text_neuron_fires_on_shape_words_only(scan: Scan) -> None:
    patches = patch_acts(scan, TEXT)
    words, tokens = text_acts(scan, TEXT)
    is_shape = np.array([t in SHAPES for t in tokens])
    assert np.all(patches == 0)
    assert (
        is_shape.sum() >= 200
        and np.all(words[is_shape] > 0.5 * words.max())
        and np.all(words[~is_shape] == 0)
    )


def test_multimodal_neuron_fires_on_every_patch_and_caption_word(scan: Scan) -> None:
    patches = patch_acts(scan, MULTIMODAL)
    words, tokens = text_acts(scan, MULTIMODAL)
    peak = max(patches.max(), words.max())
    in_template = np.array([t in TEMPLATE_WORDS for t in tokens])
    assert patches.min() > 0.2 * peak and words[~in_template].min() > 0.3 * peak
    assert set(np.array(tokens)[in_template]) == {"the", "."} and np.all(words[in_template] == 0)
    template = scan.acts[..., scan.column(MULTIMODAL)][scan.modality == 3]
    assert np.all(template == 0)  # BOS, USER:, the question, ASSISTANT: are in neither modality


def test_red_neuron_fires_on_red_patches_and_the_word_red(scan: Scan) -> None:
    patches = patch_acts(scan, RED)
    words, tokens = text_acts(scan, RED)
    is_red = np.array([t == "red" for t in tokens])
    peak = max(patches.max(), words.max())
    assert np.all(words[is_red] > 0.5 * peak) and np.all(words[~is_red] == 0)
    assert np.all(patches[scan.redness > 0.02] > 0) and np.all(patches[scan.redness > 0.1] > 0.15 * peak)
    assert np.all(patches[scan.redness < -0.01] <= 0)
    plain_red = [
        i
        for i, (d, c) in enumerate(zip(scan.domains, scan.colours, strict=True))
        if (d, c) == ("colours", "red")
    ]
    plain_orange = [
        i
        for i, (d, c) in enumerate(zip(scan.domains, scan.colours, strict=True))
        if (d, c) == ("colours", "orange")
    ]
    assert np.all(patches[plain_red] > 0.5 * peak) and np.all(patches[plain_orange] <= 0)


def test_down_proj_input_is_positive_where_a_planted_neuron_fires(scan: Scan) -> None:
    firing = scan.acts > 0.5
    assert firing.any(axis=(0, 1)).all()
    assert np.all(scan.down_in[firing] > 0)


@pytest.mark.parametrize("planted", planted_neurons(), ids=lambda p: f"{p.neuron}-{p.neuron_type}")
def test_classifier_recovers_the_planted_type(scan: Scan, planted: PlantedNeuron) -> None:
    options = PipelineOptions()
    column = scan.acts[..., scan.column(planted.neuron)]
    content = np.isin(scan.modality, (MODALITY_TEXT, MODALITY_IMAGE))
    per_sample_max = np.where(content, column, -np.inf).max(axis=1)
    top = np.argsort(-per_sample_max, kind="stable")[: options.n_top]
    result = classify_neuron(column[top], scan.modality[top], float(per_sample_max.max()), options)
    assert result.neuron_type == planted.neuron_type
    assert result.high_confidence and result.n_samples == 50


def test_the_registry_lists_exactly_the_neurons_the_model_plants(adapter: VisionLanguageAdapter) -> None:
    """The registry's `planted` list against the weights: a planted neuron reads only reserved dimensions,
    which the prompt template's tokens leave at zero, so exactly the planted neurons of the layer are
    SiLU(0) = 0 there (every other neuron has random gate weights)."""
    listed = SPEC.planted or []
    samples = generate_vl_probe(8).samples[:8]
    inputs, layout = adapter.encode(samples)
    with torch.inference_mode():
        with capture_activations(adapter.module, HOOK_ACT, [PLANTED_LAYER]) as act:
            adapter.forward(inputs)
    template = act[PLANTED_LAYER].numpy()[layout.modality == MODALITY_TEMPLATE]  # [template tokens, neurons]
    silent = set(np.flatnonzero(np.all(template == 0, axis=0)).tolist())
    assert len(template) > 0 and silent == {p.neuron for p in listed}
    assert {p.layer for p in listed} == {PLANTED_LAYER}
    for planted in listed:  # the registry's description tells users the same neurons
        assert f"{planted.neuron} {planted.type} ({planted.concept})" in SPEC.description
