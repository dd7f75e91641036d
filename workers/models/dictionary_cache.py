"""The dictionaries (SAEs, transcoders) one worker process has loaded, kept between jobs like its models."""

from __future__ import annotations

import threading

import torch

from service.contract import ModelSpec
from workers.models.dictionaries import LoadedDictionary, load_dictionary


class DictionaryCache:
    """Loaded dictionaries by (id, revision, layer, device, dtype); each is read and checked once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[tuple[str, str, int, str, str], LoadedDictionary] = {}

    def get(
        self, model: ModelSpec, layer: int, device: torch.device, dtype: torch.dtype = torch.float32
    ) -> LoadedDictionary:
        """``layer``'s dictionary of ``model`` (seen through it: ``model.units``) on ``device``, computing in
        ``dtype`` (the model's own: a bf16 model's latents are encoded in bf16, returned as float32), loaded
        and checked against the hook points' widths on first use (InvalidDictionary names what is wrong)."""
        spec = model.units
        if spec is None:
            raise ValueError(
                "DictionaryCache.get needs a model seen through a dictionary (ModelSpec.through)"
            )
        key = (spec.id, spec.revision, layer, str(device), str(dtype))
        registry_model = model.registry_model
        with self._lock:
            cached = self._loaded.get(key)
            if cached is None:
                output = spec.output_hook
                cached = load_dictionary(
                    spec.path(layer),
                    device,
                    dtype,
                    hook_width=registry_model.hook_width(spec.hook),
                    out_width=None if output is None else registry_model.hook_width(output),
                    hook_label=f"hook {spec.hook} of {model.id}",
                    out_label=f"hook {output} of {model.id}",
                )
                self._loaded[key] = cached
            return cached
