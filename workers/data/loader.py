"""Resolve a registry DatasetSpec to its ProbeSet: a user file when the spec names one, else a generator."""

from __future__ import annotations

from collections.abc import Callable

from service.contract import DatasetSpec
from workers.data.base import ProbeSet
from workers.data.coco import load_coco_detail
from workers.data.jsonl import load_jsonl_probe_set
from workers.data.text_probe import TEXT_PROBE_ID, generate_text_probe
from workers.data.text_probe_v2 import TEXT_PROBE_V2_ID, generate_text_probe_v2
from workers.data.vl_probe import VL_PROBE_ID, generate_vl_probe
from workers.data.vl_probe_v2 import VL_PROBE_V2_ID, generate_vl_probe_v2
from workers.errors import DatasetUnavailable

GENERATORS: dict[str, Callable[[DatasetSpec], ProbeSet]] = {
    TEXT_PROBE_ID: lambda spec: generate_text_probe(spec.n_samples, revision=spec.revision),
    VL_PROBE_ID: lambda spec: generate_vl_probe(spec.n_samples, revision=spec.revision),
    TEXT_PROBE_V2_ID: lambda spec: generate_text_probe_v2(spec.n_samples, revision=spec.revision),
    VL_PROBE_V2_ID: lambda spec: generate_vl_probe_v2(spec.n_samples, revision=spec.revision),
}
"""Generated probe sets by dataset id; each builds exactly `spec.n_samples` samples."""


def load_probe_set(spec: DatasetSpec) -> ProbeSet:
    """The probe set a DatasetSpec describes, with exactly `spec.n_samples` samples. A user file is JSONL
    of texts for text sets, a COCO + LLaVA detail_23k JSON (images beside it) for vision-language sets."""
    if spec.path and spec.modality == "vision-language":
        return load_coco_detail(spec.path, spec.id, spec.revision, n_samples=spec.n_samples)
    if spec.path:
        return load_jsonl_probe_set(spec.path, spec.id, spec.revision, n_samples=spec.n_samples)
    generator = GENERATORS.get(spec.id)
    if generator is None:
        known = ", ".join(sorted(GENERATORS))
        raise DatasetUnavailable(
            f"probe set {spec.id!r} has no file (`path`) and no generator: generated sets are {known}"
        )
    return generator(spec)
