"""`vl-probe-v1`: deterministic for a seed, balanced over domains and colours, captions that name what
the images show."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from workers.data.vl_probe import (
    COLOURS,
    DOMAINS,
    IMAGE_SIZE,
    PALETTE,
    SHAPES,
    VL_PROBE_ID,
    generate_vl_probe,
)


def pixels(sample: object) -> np.ndarray:
    return np.asarray(sample.image)  # type: ignore[attr-defined]


def test_same_seed_gives_identical_samples_and_smaller_sets_are_prefixes() -> None:
    first, again = generate_vl_probe(40, seed=3), generate_vl_probe(40, seed=3)
    prefix = generate_vl_probe(10, seed=3)
    for a, b in zip(first.samples, again.samples, strict=True):
        assert (a.id, a.text, a.domain) == (b.id, b.text, b.domain)
        assert np.array_equal(pixels(a), pixels(b))
    for a, b in zip(prefix.samples, first.samples[:10], strict=True):
        assert a.text == b.text and np.array_equal(pixels(a), pixels(b))


def test_another_seed_gives_other_images() -> None:
    a, b = generate_vl_probe(20, seed=0).samples, generate_vl_probe(20, seed=1).samples
    assert sum(not np.array_equal(pixels(x), pixels(y)) for x, y in zip(a, b, strict=True)) >= 15


def test_default_set_is_balanced_over_domains_and_colours() -> None:
    probe = generate_vl_probe()
    assert (probe.id, probe.modality, len(probe.samples)) == (VL_PROBE_ID, "vision-language", 512)
    specs = [probe.samples.spec(i) for i in range(512)]  # type: ignore[attr-defined]
    domains = Counter(spec.domain for spec in specs)
    assert set(domains) == set(DOMAINS) and max(domains.values()) - min(domains.values()) <= 1
    for domain in DOMAINS:
        colours = Counter(spec.colour for spec in specs if spec.domain == domain)
        assert set(colours) == set(COLOURS) and max(colours.values()) - min(colours.values()) <= 1
    assert sum(spec.colour == "red" for spec in specs) >= 70  # enough for N = 50 top samples
    assert {spec.subject for spec in specs if spec.domain == "shapes"} == set(SHAPES)


def test_captions_name_colour_and_subject_twice() -> None:
    probe = generate_vl_probe(100)
    for index, sample in enumerate(probe.samples):
        spec = probe.samples.spec(index)  # type: ignore[attr-defined]
        words = sample.text.replace(".", " ").split()
        assert words.count(spec.colour) >= 2, sample.text
        if spec.domain in ("shapes", "textures"):
            assert words.count(spec.subject) >= 2, sample.text
        if spec.domain == "digits":
            assert spec.subject in words


@pytest.mark.parametrize("domain", DOMAINS)
def test_images_show_the_captioned_colour(domain: str) -> None:
    probe = generate_vl_probe(70)
    for index, sample in enumerate(probe.samples):
        spec = probe.samples.spec(index)  # type: ignore[attr-defined]
        if spec.domain != domain:
            continue
        image = pixels(sample).astype(int)
        assert image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
        # Colour fields carry ±12 noise per channel; drawn regions are the exact palette colour.
        near = np.abs(image - np.array(PALETTE[spec.colour])).max(axis=-1) <= 12
        assert near.mean() > (0.9 if domain == "colours" else 0.04), (sample.text, near.mean())


def test_samples_are_a_lazy_sequence_with_clear_bounds() -> None:
    samples = generate_vl_probe(5).samples
    assert samples[-1].id == 4 and [s.id for s in samples[1:3]] == [1, 2]
    with pytest.raises(IndexError, match="samples 0–4"):
        samples[5]
    with pytest.raises(ValueError, match="at least 1"):
        generate_vl_probe(0)
