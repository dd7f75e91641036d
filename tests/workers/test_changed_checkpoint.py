"""The changed checkpoint (workers/models/changed_checkpoint.py): layer-0 neurons of the target change
exactly as its CheckpointChanges say, on real forward passes of both BERTs over real probe text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from service.contract import load_registry
from workers.models.changed_checkpoint import (
    DIGIT_NEURON,
    RESCALE,
    CheckpointChanges,
    build_changed_checkpoint,
)
from workers.models.loader import weights_path
from workers.models.planted_text import build_planted_bert

CHANGES = CheckpointChanges(changed=(3, 4, 5), rescaled=(20, 30), dead=(6, 7), replant_digits=True)
TEXTS = ["The 12 players asked: why 300 games?", "Did they play in 1999 or 2004?", "A quiet day."]


def _layer0(folder: str) -> np.ndarray:
    from transformers import AutoTokenizer, BertModel

    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model = BertModel.from_pretrained(folder, local_files_only=True).eval()
    captured: list[torch.Tensor] = []
    handle = model.encoder.layer[0].intermediate.register_forward_hook(lambda m, i, o: captured.append(o))
    with torch.inference_mode():
        model(**tokenizer(TEXTS, return_tensors="pt", padding=True))
    handle.remove()
    return captured[0].reshape(-1, captured[0].shape[-1]).numpy()


def test_the_target_changes_exactly_the_named_neurons(tmp_path: Path) -> None:
    minilm = load_registry().model("minilm-l6")
    base = build_planted_bert(minilm, weights_path(minilm), tmp_path / "base")
    target = build_changed_checkpoint(base, "tiny-bert-changed", tmp_path / "target", CHANGES)
    assert target.id == "tiny-bert-changed" and target.revision == CHANGES.revision
    before, after = _layer0(str(base.source.path)), _layer0(str(target.source.path))
    touched = set(CHANGES.truth())
    untouched = [n for n in range(before.shape[1]) if n not in touched]
    assert np.array_equal(before[:, untouched], after[:, untouched])
    assert np.abs(after[:, list(CHANGES.dead)]).max() < 1e-6
    for neuron in CHANGES.rescaled:
        firing = before[:, neuron] > 0.5
        assert firing.any()
        np.testing.assert_allclose(after[firing, neuron], RESCALE * before[firing, neuron], rtol=0.02)
    for neuron in (*CHANGES.changed, DIGIT_NEURON):
        assert np.corrcoef(before[:, neuron], after[:, neuron])[0, 1] < 0.5, neuron
    with pytest.raises(ValueError, match="one way only"):
        build_changed_checkpoint(base, "x", tmp_path / "bad", CheckpointChanges(changed=(3,), dead=(3,)))


def test_targets_with_other_changes_have_other_revisions() -> None:
    """The revision names the changes: two targets built under one id with other changes never share a
    stored scan (the comparison tests once read a scan of the pin tests' target, re-planted only)."""
    assert CHANGES.revision == CheckpointChanges(**vars(CHANGES)).revision
    assert CHANGES.revision != CheckpointChanges(replant_digits=True).revision
    assert CheckpointChanges(changed=(3,)).revision != CheckpointChanges(dead=(3,)).revision
