"""Load registry models once per worker process (a ModelCache owned by the WorkerRuntime). Weights come
only from the host (an installed package, a local path or the local hub cache); nothing is downloaded
(HF_HUB_OFFLINE and local_files_only)."""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from service.contract import ModelSpec
from workers.errors import ModelWeightsMissing, UnknownModel
from workers.models.base import ModelAdapter
from workers.models.device import select_device
from workers.models.text import TextModelAdapter
from workers.models.weights_cache import WeightsStore, cached_model_dir

AdapterBuilder = Callable[[ModelSpec, torch.device, WeightsStore], ModelAdapter]
"""(spec, device, store caching generated weights) → the loaded model."""


def weights_path(spec: ModelSpec) -> str:
    """Local folder (or hub id already in the local cache) holding the model's files."""
    source = spec.source
    if source.kind == "python-package":
        if not source.package:
            raise UnknownModel(f"model {spec.id!r}: source kind python-package needs `package`")
        try:
            package = importlib.import_module(source.package)
        except ImportError:
            raise ModelWeightsMissing(
                f"model {spec.id!r} ships in the Python package {source.package!r}, "
                "which is not installed on this worker"
            ) from None
        getter = getattr(package, "get_model_path", None)
        if callable(getter):
            return str(getter())
        base = Path(package.__file__ or "").parent
        return str(base / source.subdir if source.subdir else base)
    if source.kind == "hub-or-path":
        if not source.path:
            raise UnknownModel(f"model {spec.id!r}: source kind hub-or-path needs `path`")
        return source.path
    raise UnknownModel(f"model {spec.id!r}: source kind {source.kind!r} is built by its architecture loader")


def load_text_adapter(spec: ModelSpec, device: torch.device, store: WeightsStore) -> ModelAdapter:
    """AutoModel + AutoTokenizer from local files only, in eval mode on `device`."""
    return _text_adapter_from(spec, weights_path(spec), device, None)


def load_llama_adapter(spec: ModelSpec, device: torch.device, store: WeightsStore) -> ModelAdapter:
    """Text models with a Llama-style gated MLP (Llama, Mistral, Qwen2, Gemma): a generated model
    (`tiny-llama`, built once into `store`) or a checkpoint on this host; float32 on CPU, bfloat16 on
    accelerators."""
    dtype = torch.float32 if device.type == "cpu" else torch.bfloat16
    if spec.source.kind != "generated":
        return _text_adapter_from(spec, weights_path(spec), device, dtype)
    from workers.models.tiny_llama import TINY_LLAMA_ID, TINY_LLAMA_REVISION, build_tiny_llama

    if spec.id != TINY_LLAMA_ID:
        raise UnknownModel(
            f"model {spec.id!r}: no generator for this id (generated text models: {TINY_LLAMA_ID})"
        )
    if spec.revision != TINY_LLAMA_REVISION:
        raise UnknownModel(
            f"model {spec.id!r}: the registry asks for revision {spec.revision!r}; "
            f"this NeuronLens builds {TINY_LLAMA_REVISION!r}"
        )
    folder = cached_model_dir(store, spec.id, spec.revision, build_tiny_llama)
    return _text_adapter_from(spec, str(folder), device, dtype)


def _text_adapter_from(
    spec: ModelSpec, path: str, device: torch.device, dtype: torch.dtype | None
) -> ModelAdapter:
    """AutoModel + AutoTokenizer from `path`, local files only (`dtype` None: transformers' default)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        extra: dict[str, Any] = {} if dtype is None else {"dtype": dtype}
        model = AutoModel.from_pretrained(path, local_files_only=True, **extra)
    except OSError as exc:
        raise ModelWeightsMissing(
            f"model {spec.id!r}: no weights at {path!r} on this host and nothing is downloaded ({exc})"
        ) from None
    model.eval().to(device)
    return TextModelAdapter(spec, model, tokenizer, device)


def load_vision_language_adapter(spec: ModelSpec, device: torch.device, store: WeightsStore) -> ModelAdapter:
    """LLaVA and Qwen2-VL models (workers.models.llava), imported on first use: text-only workers never
    import the vision-language stack."""
    from workers.models.llava import load_llava_adapter

    return load_llava_adapter(spec, store, device)


ADAPTER_BUILDERS: dict[str, AdapterBuilder] = {
    "bert": load_text_adapter,
    "gpt2": load_text_adapter,
    "llama": load_llama_adapter,
    "llava": load_vision_language_adapter,
    "qwen2-vl": load_vision_language_adapter,
}
"""Loader per registry `architecture`: its keys are `service.contract.SUPPORTED_ARCHITECTURES`."""


class ModelCache:
    """The models one worker process has loaded, by (id, revision), on one device chosen once; generated
    models are built once into ``store`` (the artifact store).

    Each model key has its own lock: two jobs asking for one model load it once, while a job whose model
    is loaded never waits behind another model's load."""

    def __init__(self, store: WeightsStore, device: str | None = None) -> None:
        self.store = store
        self._device_name = device
        self._device: torch.device | None = None
        self._lock = threading.Lock()
        self._key_locks: dict[tuple[str, str], threading.Lock] = {}
        self._models: dict[tuple[str, str], ModelAdapter] = {}

    @property
    def device(self) -> torch.device:
        """The torch device every model goes to (DeviceUnavailable when the configured one is absent)."""
        if self._device is None:
            self._device = select_device(self._device_name)
        return self._device

    def get(self, spec: ModelSpec) -> ModelAdapter:
        """The model for ``spec`` (its registry entry, when seen through a dictionary), loaded on first use
        and kept for the process."""
        spec = spec.registry_model
        key = (spec.id, spec.revision)
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            cached = self._models.get(key)
            if cached is not None:
                return cached
            builder = ADAPTER_BUILDERS.get(spec.architecture)
            if builder is None:
                known = ", ".join(sorted(ADAPTER_BUILDERS))
                raise UnknownModel(
                    f"model {spec.id!r}: architecture {spec.architecture!r} has no loader; known: {known}"
                )
            adapter = builder(spec, self.device, self.store)
            self._models[key] = adapter
            return adapter
