"""Probe sets v2 (issue 10): distinct texts, varied shapes, images that differ within a concept, v1 kept
byte for byte, registry defaults."""

from __future__ import annotations

import hashlib

import numpy as np

from service.contract import load_registry
from workers.data.loader import load_probe_set
from workers.data.text_probe import generate_text_probe
from workers.data.text_probe_v2 import generate_text_probe_v2
from workers.data.vl_probe import generate_vl_probe
from workers.data.vl_probe_v2 import caption_v2, generate_vl_probe_v2, sample_spec_v2

V1_TEXT_SHA = "836a9ba9a110bbf8"
"""First 16 hex digits of sha256 over text-probe-v1's 4,096 texts (joined by newlines), before v2."""
V1_VL_SHA = "c7e44660675e147e"
"""The same over vl-probe-v1's 512 captions."""
V1_VL_IMAGE_SHA = "1f02adbeecd36344"
"""The same over the pixels of vl-probe-v1's sample 7."""


def test_text_probe_v2_is_at_least_97_percent_distinct_with_varied_lengths() -> None:
    texts = [sample.text for sample in generate_text_probe_v2(4096).samples]
    assert len(set(texts)) / len(texts) >= 0.97
    lengths = [len(text.split()) for text in texts]
    assert min(lengths) <= 3 and max(lengths) >= 30  # fragments to three sentences
    family0 = texts[0::24][:100]  # one family: many shapes, not one template
    assert len({text.split(" ")[0] for text in family0}) >= 8
    assert texts == [s.text for s in generate_text_probe_v2(4096).samples]  # deterministic


def test_v1_sets_stay_byte_for_byte() -> None:
    texts = "\n".join(sample.text for sample in generate_text_probe(4096).samples)
    assert hashlib.sha256(texts.encode()).hexdigest()[:16] == V1_TEXT_SHA
    v1 = generate_vl_probe(512).samples
    captions = "\n".join(sample.text for sample in v1)
    assert hashlib.sha256(captions.encode()).hexdigest()[:16] == V1_VL_SHA
    assert hashlib.sha256(v1[7].image.tobytes()).hexdigest()[:16] == V1_VL_IMAGE_SHA


def test_vl_probe_v2_captions_are_distinct_and_images_vary_within_a_concept() -> None:
    captions = [caption_v2(sample_spec_v2(index)) for index in range(512)]
    assert len(set(captions)) / len(captions) >= 0.97
    samples = generate_vl_probe_v2(512).samples
    red_shapes = [i for i in range(0, 512, 5) if sample_spec_v2(i).base.colour == "red"][:6]
    masks = [np.all(np.asarray(samples[i].image) == (220, 30, 30), axis=-1) for i in red_shapes]
    centres = {tuple(np.round(np.argwhere(mask).mean(axis=0) / 16).astype(int)) for mask in masks}
    assert len(centres) >= 3  # the red object is not always in one place
    backgrounds = {tuple(np.asarray(samples[i].image)[0, 0]) for i in range(0, 100, 5)}
    assert len(backgrounds) >= 2
    assert any(len(sample_spec_v2(i).others) == 2 for i in range(0, 50, 5))  # several objects


def test_registry_defaults_are_v2_and_loadable() -> None:
    registry = load_registry()
    for model in registry.models:
        assert model.datasets[0].endswith("-v2"), model.id
        assert model.datasets[1].endswith("-v1")
    spec = registry.dataset("text-probe-v2").model_copy(update={"n_samples": 50})
    assert [s.text for s in load_probe_set(spec).samples] == [
        s.text for s in generate_text_probe_v2(50).samples
    ]
