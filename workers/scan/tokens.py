"""The tokenised probe set of one (model, dataset): content tokens and their modality per sample, stored
once so reports show tokens without loading a tokenizer."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from workers.data.base import ProbeSample, domain_labels
from workers.models.base import TokenizedSample
from workers.scan.store import ArtifactStore
from workers.vocabulary.records import MODALITY_PAD, TokenRecord

TOKENS_FILE = "tokens.json"
ARRAYS_FILE = "arrays.safetensors"
INPUTS_FILE = "inputs.safetensors"


@dataclass(frozen=True)
class TokenizedProbe:
    """Content tokens of every sample, padded arrays [samples, max_tokens] for modality (0 = padding)."""

    tokens: list[tuple[str, ...]]
    modality: np.ndarray
    """uint8 [samples, max_tokens]: MODALITY_TEXT / MODALITY_IMAGE, MODALITY_PAD past the end."""
    lengths: np.ndarray
    """int32 [samples]: content tokens per sample."""
    domains: list[str]
    """Domain labels, in the order of per-domain counts."""
    sample_domain: np.ndarray
    """int32 [samples]: index into `domains`, -1 when unlabelled."""
    patch_index: np.ndarray | None = None
    """int32 [samples, max_tokens]: patch number per token (-1 text/padding), vision-language only."""
    patch_grid: tuple[int, int] | None = None
    _records: dict[int, TokenRecord] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_samples(self) -> int:
        return len(self.tokens)

    @property
    def n_tokens(self) -> int:
        return int(self.lengths.sum())

    @property
    def max_tokens(self) -> int:
        return int(self.modality.shape[1])

    def record(self, sample_id: int) -> TokenRecord:
        """One sample's tokens as a TokenRecord (built once per sample: reports reuse top samples)."""
        cached = self._records.get(sample_id)
        if cached is not None:
            return cached
        length = int(self.lengths[sample_id])
        domain_index = int(self.sample_domain[sample_id])
        record = TokenRecord(
            sample_id=sample_id,
            tokens=self.tokens[sample_id],
            modality=self.modality[sample_id, :length],
            domain=self.domains[domain_index] if domain_index >= 0 else None,
            patch_grid=self.patch_grid,
        )
        self._records[sample_id] = record
        return record


def build_tokenized_probe(
    samples: Sequence[ProbeSample], tokenized: Sequence[TokenizedSample], patch_grid: tuple[int, int] | None
) -> TokenizedProbe:
    """Pack per-sample tokenisations (in sample order) into the padded arrays."""
    lengths = np.array([len(item.tokens) for item in tokenized], dtype=np.int32)
    width = max(int(lengths.max(initial=0)), 1)
    modality = np.full((len(tokenized), width), MODALITY_PAD, dtype=np.uint8)
    has_patches = any(item.patch_index is not None for item in tokenized)
    patch_index = np.full((len(tokenized), width), -1, dtype=np.int32) if has_patches else None
    for row, item in enumerate(tokenized):
        modality[row, : lengths[row]] = item.modality
        if patch_index is not None and item.patch_index is not None:
            patch_index[row, : lengths[row]] = item.patch_index
    domains = domain_labels(samples)
    lookup = {name: index for index, name in enumerate(domains)}
    sample_domain = np.array(
        [lookup[s.domain] if s.domain is not None else -1 for s in samples], dtype=np.int32
    )
    return TokenizedProbe(
        tokens=[item.tokens for item in tokenized],
        modality=modality,
        lengths=lengths,
        domains=domains,
        sample_domain=sample_domain,
        patch_index=patch_index,
        patch_grid=patch_grid,
    )


def write_tokenized_probe(
    store: ArtifactStore, key: str, probe: TokenizedProbe, meta: dict[str, Any]
) -> None:
    arrays = {"modality": probe.modality, "lengths": probe.lengths, "sample_domain": probe.sample_domain}
    if probe.patch_index is not None:
        arrays["patch_index"] = probe.patch_index
    files = {
        TOKENS_FILE: json.dumps({"tokens": probe.tokens, "domains": probe.domains}).encode(),
        ARRAYS_FILE: save_tensors(arrays),
    }
    manifest = dict(
        meta,
        n_samples=probe.n_samples,
        n_tokens=probe.n_tokens,
        max_tokens=probe.max_tokens,
        patch_grid=list(probe.patch_grid) if probe.patch_grid else None,
    )
    store.write(key, files, manifest)


def read_tokenized_probe(store: ArtifactStore, key: str) -> TokenizedProbe:
    manifest = store.read_manifest(key)
    body = json.loads(store.read_bytes(key, TOKENS_FILE))
    arrays = load_tensors(store.read_bytes(key, ARRAYS_FILE))
    grid = manifest.get("patch_grid")
    return TokenizedProbe(
        tokens=[tuple(tokens) for tokens in body["tokens"]],
        modality=arrays["modality"],
        lengths=arrays["lengths"],
        domains=list(body["domains"]),
        sample_domain=arrays["sample_domain"],
        patch_index=arrays.get("patch_index"),
        patch_grid=(int(grid[0]), int(grid[1])) if grid else None,
    )


def write_model_inputs(
    store: ArtifactStore, key: str, tokenized: Sequence[TokenizedSample], meta: dict[str, Any]
) -> None:
    """Store every sample's input ids and content positions (ragged, as flat arrays with offsets), so
    another worker of the same scan builds its batches without tokenising (`read_model_inputs`)."""
    arrays = {}
    for name in ("input_ids", "content_positions"):
        parts = [np.asarray(getattr(item, name), dtype=np.int64) for item in tokenized]
        arrays[name] = np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
        arrays[f"{name}_offsets"] = np.cumsum([0] + [len(part) for part in parts], dtype=np.int64)
    store.write(key, {INPUTS_FILE: save_tensors(arrays)}, dict(meta, n_samples=len(tokenized)))


def read_model_inputs(
    store: ArtifactStore, key: str, probe: TokenizedProbe, sample_ids: Sequence[int]
) -> list[TokenizedSample]:
    """The TokenizedSamples `write_model_inputs` stored, with their tokens, modality and patch numbers
    from the tokenised probe set `probe` of the same (model, dataset); `sample_ids`: the samples' ids."""
    arrays = load_tensors(store.read_bytes(key, INPUTS_FILE))
    ids, id_offsets = arrays["input_ids"], arrays["input_ids_offsets"]
    positions, position_offsets = arrays["content_positions"], arrays["content_positions_offsets"]
    samples = []
    for row, sample_id in enumerate(sample_ids):
        length = int(probe.lengths[row])
        samples.append(
            TokenizedSample(
                sample_id=sample_id,
                input_ids=ids[id_offsets[row] : id_offsets[row + 1]],
                content_positions=positions[position_offsets[row] : position_offsets[row + 1]],
                tokens=probe.tokens[row],
                modality=probe.modality[row, :length],
                patch_index=None if probe.patch_index is None else probe.patch_index[row, :length],
            )
        )
    return samples
