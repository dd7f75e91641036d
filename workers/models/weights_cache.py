"""The weights cache of generated models: a model built from a config and a seed is saved once into the
artifact store under `models/<id>/<revision>`, so every worker of a cluster scans the same weights, and
read back as a local folder that `from_pretrained` can load.

It needs only the few store operations named by `WeightsStore` (the artifact store of workers/scan/store.py
has them), so models/ does not depend on scan/.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from transformers import PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

Builder = Callable[[], tuple[PreTrainedModel, ProcessorMixin | PreTrainedTokenizerBase]]
"""Builds a generated model and its processor (or, for a text model, its tokenizer)."""

COMPLETE = "manifest.json"
"""File whose presence marks a local copy complete (the store's manifest, written last)."""


class WeightsStore(Protocol):
    """The artifact-store operations the cache uses: artifacts are folders of files with a manifest."""

    @property
    def url(self) -> str: ...

    def exists(self, key: str) -> bool:
        """True when the artifact is complete."""
        ...

    def read_bytes(self, key: str, name: str) -> bytes: ...

    def local_path(self, key: str, name: str) -> str | None:
        """A path on this host's disk, or None for remote stores."""
        ...

    def write(self, key: str, files: Mapping[str, bytes], manifest: Mapping[str, Any]) -> bool:
        """Write an artifact; False when a complete one already existed (it is kept)."""
        ...

    def verify(self, key: str) -> dict[str, Any]:
        """The manifest, after checking every file it lists is complete."""
        ...


def model_key(model_id: str, revision: str) -> str:
    """Artifact key of a generated model: `models/<id>/<revision>`."""
    return f"models/{model_id}/{revision}"


def cached_model_dir(store: WeightsStore, model_id: str, revision: str, build: Builder) -> Path:
    """A local folder holding the model and its processor: the store's copy, built first if absent.

    Concurrent builders are harmless: the build is deterministic and the store keeps the first copy.
    """
    key = model_key(model_id, revision)
    if not store.exists(key):
        store.write(key, _built_files(build), {"model": model_id, "revision": revision})
    local = store.local_path(key, "config.json")
    if local is not None:
        return Path(local).parent
    # Remote store: copy the files once per host into a local cache that from_pretrained can read.
    folder = Path(tempfile.gettempdir()) / "neuronlens-models" / model_id / revision
    if not (folder / COMPLETE).exists():
        manifest = store.verify(key)
        staging = Path(tempfile.mkdtemp(dir=_mkdir(folder.parent), prefix=f".{revision}.tmp-"))
        for name in manifest["files"]:
            (staging / name).write_bytes(store.read_bytes(key, name))
        (staging / COMPLETE).write_text(json.dumps(manifest))
        try:
            os.rename(staging, folder)
        except OSError:  # another process of this host copied it first
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def _built_files(build: Builder) -> dict[str, bytes]:
    model, processor = build()
    with tempfile.TemporaryDirectory() as staging:
        model.save_pretrained(staging)
        processor.save_pretrained(staging)
        return {path.name: path.read_bytes() for path in sorted(Path(staging).iterdir()) if path.is_file()}


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path
