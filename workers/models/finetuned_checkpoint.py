"""A target checkpoint made by a few REAL fine-tuning steps of the planted BERT (issue 19's comparison of a
fine-tune): a masked-language-model head on top, N AdamW steps on a small text set, on the CPU, seeded;
used by tests and docs figures, never served.

Unlike workers/models/changed_checkpoint.py there is no exact truth: every weight moves a little, so what
a comparison must say is only what has to hold (docs/method.md#comparisons): the planted concept neurons,
whose rows read a reserved dimension with a large weight, keep firing on their tokens (`unchanged` or
`rescaled`, their explanations keep their score), and the share of neurons judged `changed` grows with the
number of steps and the learning rate. The head's decoder is tied to the word embeddings (as BERT's is),
so the embeddings train too; the saved checkpoint is the encoder alone, as the base was saved.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from service.contract import ModelSource, ModelSpec

TEXT_SEED = 7
"""Seed of the fine-tuning text set (the probe sets use another: the texts differ from the probe's)."""


@dataclass(frozen=True)
class FineTuning:
    """How the base is fine-tuned: optimizer steps, learning rate, batch, masking, seed."""

    steps: int = 5
    learning_rate: float = 1e-3
    batch_size: int = 16
    mask_share: float = 0.15
    """Share of a text's (non-special) tokens replaced by [MASK] and predicted."""
    max_length: int = 64
    seed: int = 0

    @property
    def revision(self) -> str:
        return f"mlm-{self.steps}x{self.batch_size}-lr{self.learning_rate:g}-seed{self.seed}"


def fine_tuning_texts(n_texts: int = 256) -> list[str]:
    """A small text set: seeded texts of the text-probe-v2 families, drawn with TEXT_SEED (not the probe
    set's draw)."""
    from workers.data.text_probe_v2 import generate_text_probe_v2

    return [sample.text for sample in generate_text_probe_v2(n_texts, seed=TEXT_SEED).samples]


def _masked_batch(tokenizer: object, texts: Sequence[str], tuning: FineTuning, generator: object) -> dict:
    """Tokenised texts with `mask_share` of their ordinary tokens masked; labels -100 elsewhere."""
    import torch

    batch = tokenizer(  # type: ignore[operator]
        list(texts), padding=True, truncation=True, max_length=tuning.max_length, return_tensors="pt"
    )
    ids = batch["input_ids"]
    special = torch.tensor(
        [
            tokenizer.get_special_tokens_mask(row, already_has_special_tokens=True)  # type: ignore[attr-defined]
            for row in ids.tolist()
        ],
        dtype=torch.bool,
    )
    draw = torch.rand(ids.shape, generator=generator)  # type: ignore[call-overload]
    masked = (draw < tuning.mask_share) & ~special & batch["attention_mask"].bool()
    labels = torch.where(masked, ids, torch.full_like(ids, -100))
    batch["input_ids"] = torch.where(masked, torch.full_like(ids, tokenizer.mask_token_id), ids)  # type: ignore[attr-defined]
    batch["labels"] = labels
    return dict(batch)


def build_finetuned_checkpoint(
    base: ModelSpec, target_id: str, folder: Path, texts: Sequence[str], tuning: FineTuning
) -> tuple[ModelSpec, list[float]]:
    """Fine-tune `base` (a BERT saved by build_planted_bert) for `tuning.steps` masked-LM steps on `texts`
    (batches taken in order, cycling), save the encoder with its tokenizer in `folder`; its registry spec
    (the base's with `target_id`, the revision and the path) and the loss of each step."""
    import torch
    from transformers import AutoTokenizer, BertForMaskedLM, BertModel

    if base.source.path is None:
        raise ValueError(f"{base.id} has no local path to load the base weights from")
    if not texts:
        raise ValueError("fine-tuning needs at least one text")
    torch.manual_seed(tuning.seed)
    tokenizer = AutoTokenizer.from_pretrained(base.source.path, local_files_only=True)
    encoder = BertModel.from_pretrained(base.source.path, local_files_only=True)
    model = BertForMaskedLM(encoder.config)  # the head initialised under the seed
    model.bert = encoder  # the base's encoder (its pooler unused and untouched)
    model.tie_weights()
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=tuning.learning_rate)
    generator = torch.Generator().manual_seed(tuning.seed)
    losses = []
    for step in range(tuning.steps):
        start = (step * tuning.batch_size) % len(texts)
        chunk = [texts[(start + i) % len(texts)] for i in range(tuning.batch_size)]
        batch = _masked_batch(tokenizer, chunk, tuning, generator)
        labels = batch.pop("labels")
        hidden = model.bert(**batch).last_hidden_state
        masked = labels != -100  # the head predicts the masked tokens only (what the loss reads)
        loss = torch.nn.functional.cross_entropy(model.cls(hidden[masked]), labels[masked])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    encoder.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    spec = base.model_copy(
        update={
            "id": target_id,
            "revision": tuning.revision,
            "source": ModelSource(kind="hub-or-path", path=str(folder)),
        }
    )
    return spec, losses
