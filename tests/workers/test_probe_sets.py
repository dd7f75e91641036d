"""Probe sets: the generated text set (determinism, coverage) and user JSONL files."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from service.contract import DatasetSpec, load_registry
from workers.data.jsonl import load_jsonl_probe_set
from workers.data.loader import load_probe_set
from workers.data.text_probe import FAMILIES, generate_text_probe
from workers.errors import DatasetUnavailable


def test_same_seed_gives_identical_samples_and_other_seeds_differ() -> None:
    first = generate_text_probe(500, seed=7)
    again = generate_text_probe(500, seed=7)
    other = generate_text_probe(500, seed=8)
    assert first.samples == again.samples
    assert [s.text for s in first.samples] != [s.text for s in other.samples]


def test_a_smaller_set_is_a_prefix_of_a_larger_one() -> None:
    small = generate_text_probe(100).samples
    large = generate_text_probe(1000).samples
    assert list(small) == list(large[:100])


def test_registry_set_has_exactly_n_samples_covering_every_family() -> None:
    spec = load_registry().dataset("text-probe-v1")
    probe = load_probe_set(spec)
    assert len(probe.samples) == spec.n_samples == 4096
    assert [s.id for s in probe.samples] == list(range(4096))
    counts = Counter(s.domain for s in probe.samples)
    assert set(counts) == set(FAMILIES)
    assert max(counts.values()) - min(counts.values()) <= 1  # families take turns
    texts = [s.text for s in probe.samples]
    assert len(set(texts)) > 2500  # varied, not a handful of sentences repeated
    joined = " ".join(texts)
    for needle in ("red", "dog", "Paris", "@", "https://", "def ", "?", "not", "$", "o'clock", "2"):
        assert needle in joined, needle


def test_every_family_renders_without_unfilled_slots() -> None:
    probe = generate_text_probe(len(FAMILIES) * 40)
    for sample in probe.samples:
        assert "{" not in sample.text and "}" not in sample.text, sample.text
        assert sample.text.strip()


def test_jsonl_probe_set_reads_text_and_domains(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    lines = [
        {"text": "A red car.", "domain": "colours"},
        {"text": "Two dogs."},
        {"text": "Blue sky", "domain": "x"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    probe = load_jsonl_probe_set(str(path), "mine", "r1")
    assert [(s.id, s.text, s.domain) for s in probe.samples] == [
        (0, "A red car.", "colours"),
        (1, "Two dogs.", None),
        (2, "Blue sky", "x"),
    ]
    spec = DatasetSpec(id="mine", modality="text", revision="r1", n_samples=2, path=str(path))
    assert [s.text for s in load_probe_set(spec).samples] == ["A red car.", "Two dogs."]


def test_jsonl_errors_name_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine"}\n{"txt": "no"}\n')
    with pytest.raises(DatasetUnavailable, match=r"bad.jsonl line 2"):
        load_jsonl_probe_set(str(path), "bad", "1")
    path.write_text('{"text": "fine"}\nnot json\n')
    with pytest.raises(DatasetUnavailable, match=r"line 2 is not JSON"):
        load_jsonl_probe_set(str(path), "bad", "1")
    with pytest.raises(DatasetUnavailable, match=r"has 1 samples, the registry says 5"):
        path.write_text('{"text": "fine"}\n')
        load_jsonl_probe_set(str(path), "bad", "1", n_samples=5)
    with pytest.raises(DatasetUnavailable, match="cannot read"):
        load_jsonl_probe_set(str(tmp_path / "missing.jsonl"), "bad", "1")


def test_unknown_generated_set_is_a_named_error() -> None:
    spec = DatasetSpec(id="nope-v9", modality="text", revision="1", n_samples=3)
    with pytest.raises(DatasetUnavailable, match="no generator"):
        load_probe_set(spec)
