"""A target checkpoint made from the planted BERT with known per-neuron changes (issue 19's ground truth
for comparisons and pins), built from saved weights with a fixed seed; used by tests and bench, never served.

Only layer 0's intermediate rows (the `mlp_act` neurons of layer 0) are edited, so the truth for layer 0 is
exact: a `changed` neuron gets a fresh random row (a new concept: what fires it is unrelated to before); the
digit neuron can instead be re-planted onto the question-mark dimension (`replant_digits`); a `rescaled`
neuron has its row and bias multiplied by RESCALE (GELU(c·z) ≈ c·GELU(z) where it fires, so its activations
keep their order and grow about c-fold); a `dead` neuron has a zero row and a bias of DEAD_BIAS (GELU of a
large negative number: it never exceeds 0); every other neuron is untouched. Layer 1 reads layer 0's output,
so its neurons move too, without an exact truth.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path

from service.contract import ModelSource, ModelSpec

RESCALE = 2.0
"""Factor a rescaled neuron's pre-activation row and bias are multiplied by."""
DEAD_BIAS = -20.0
"""Bias of a dead neuron (its row is zero): GELU(-20) is 0 to float precision."""
CHANGE_SEED = 1
"""Seed of the fresh rows of changed neurons."""
DIGIT_NEURON, QUESTION_DIM = 10, 2
"""The planted digit neuron and the reserved dimension the question-mark concept writes."""


@dataclass(frozen=True)
class CheckpointChanges:
    """Which layer-0 neurons a target changes, and how."""

    changed: tuple[int, ...] = ()
    rescaled: tuple[int, ...] = ()
    dead: tuple[int, ...] = ()
    replant_digits: bool = False
    """Point the digit neuron at the question-mark dimension (it then fires on "?", not on digits)."""

    @property
    def revision(self) -> str:
        """The target's revision: it names the changes (a digest of them), so two targets built with other
        changes never share a scan or a report, even under one model id and one artifact store."""
        digest = hashlib.blake2b(repr(dataclasses.astuple(self)).encode(), digest_size=6).hexdigest()
        return f"changed-{digest}"

    def truth(self) -> dict[int, str]:
        """Neuron → the verdict a comparison of layer 0 should give; untouched neurons are left out."""
        verdicts = {n: "changed" for n in self.changed}
        verdicts |= {n: "rescaled" for n in self.rescaled} | {n: "dead" for n in self.dead}
        if self.replant_digits:
            verdicts[DIGIT_NEURON] = "changed"
        return verdicts


def build_changed_checkpoint(
    base: ModelSpec, target_id: str, folder: Path, changes: CheckpointChanges
) -> ModelSpec:
    """Load `base` (a BERT saved by build_planted_bert), apply `changes` to layer 0, save it with its
    tokenizer in `folder`; its registry spec is the base's with `target_id`, the revision and the path."""
    import torch
    from transformers import AutoTokenizer, BertModel

    if base.source.path is None:
        raise ValueError(f"{base.id} has no local path to load the base weights from")
    overlap = set(changes.changed) & set(changes.rescaled) | set(changes.dead) & set(
        changes.changed + changes.rescaled
    )
    if overlap or (
        changes.replant_digits and DIGIT_NEURON in changes.changed + changes.rescaled + changes.dead
    ):
        raise ValueError(f"a neuron can change in one way only: {sorted(overlap) or [DIGIT_NEURON]}")
    model = BertModel.from_pretrained(base.source.path, local_files_only=True).eval()
    tokenizer = AutoTokenizer.from_pretrained(base.source.path, local_files_only=True)
    dense = model.encoder.layer[0].intermediate.dense
    generator = torch.Generator().manual_seed(CHANGE_SEED)
    with torch.no_grad():
        for neuron in changes.changed:
            dense.weight[neuron] = torch.randn(dense.weight.shape[1], generator=generator) * 0.5
            dense.bias[neuron] = 0.0
        for neuron in changes.rescaled:
            dense.weight[neuron] *= RESCALE
            dense.bias[neuron] *= RESCALE
        for neuron in changes.dead:
            dense.weight[neuron] = 0.0
            dense.bias[neuron] = DEAD_BIAS
        if changes.replant_digits:
            dense.weight[DIGIT_NEURON] = 0.0
            dense.weight[DIGIT_NEURON, QUESTION_DIM] = 1.0
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return base.model_copy(
        update={
            "id": target_id,
            "revision": changes.revision,
            "source": ModelSource(kind="hub-or-path", path=str(folder)),
        }
    )
