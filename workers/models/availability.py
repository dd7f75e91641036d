"""Does this host have a registered model's weights? A cheap check (no model is loaded) that every worker
runs when it starts and publishes to Redis (service.contract.weights), so the viewer can mark models whose
weights no worker has, and say how to provide them: the API never sees the workers' disks."""

from __future__ import annotations

import importlib.util
import socket
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import redis

from service.contract import (
    WEIGHTS_CHECK_MAX_AGE_S,
    ModelSpec,
    RedisKeys,
    WeightsCheck,
)
from workers.errors import ModelWeightsMissing


def has_weights(folder: Path) -> bool:
    """A checkpoint folder: config.json and *.safetensors or *.bin weights."""
    if not (folder / "config.json").exists():
        return False
    return any(folder.glob("*.safetensors")) or any(folder.glob("*.bin"))


def local_checkpoint(spec: ModelSpec, path: str) -> Path:
    """The local folder of a `hub-or-path` model: ``path`` itself when it is a folder with weights, else
    the hub id's snapshot in the local Hugging Face cache; ModelWeightsMissing saying how to provide them."""
    folder = Path(path).expanduser()
    if folder.is_dir():
        if has_weights(folder):
            return folder
        raise ModelWeightsMissing(
            f"{spec.id}: the folder {folder} has no config.json with *.safetensors or *.bin weights; "
            "copy the checkpoint's files there (`huggingface-cli download <hub id> --local-dir <folder>`)"
        )
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE

    try:
        snapshot = Path(snapshot_download(path, local_files_only=True))
    except Exception:  # any failure means the files are not in the local cache
        snapshot = None
    if snapshot is not None and has_weights(snapshot):
        return snapshot
    raise ModelWeightsMissing(
        f"{spec.id}: the weights of {path} are not on this host (looked in the Hugging Face cache "
        f"{HF_HUB_CACHE}) and NeuronLens never downloads them. Provide them with "
        f"`huggingface-cli download {path}` on this host, or set this model's `source.path` in a registry "
        "file (NEURONLENS_REGISTRY_PATH) to a local folder holding config.json and the *.safetensors files."
    )


def check_weights(spec: ModelSpec) -> tuple[bool, str]:
    """(present, where they are or how to provide them) for ``spec`` on this host, without loading it."""
    source = spec.source
    if source.kind == "generated":
        return True, "generated on the worker from a fixed seed on first use"
    if source.kind == "python-package":
        package = source.package or ""
        if package and importlib.util.find_spec(package) is not None:
            return True, f"in the installed Python package {package}"
        return False, (
            f"{spec.id} ships in the Python package {package!r}, which is not installed on this worker: "
            "install it into the workers' environment"
        )
    try:
        return True, f"at {local_checkpoint(spec, source.path or '')}"
    except ModelWeightsMissing as exc:
        return False, str(exc)


def publish_weights(
    connection: redis.Redis, keys: RedisKeys, models: Iterable[ModelSpec], host: str | None = None
) -> None:
    """Check every model here and write the results under this host's name (one pipeline)."""
    host = host or socket.gethostname()
    now = datetime.now(UTC)
    pipeline = connection.pipeline(transaction=False)
    for spec in models:
        present, detail = check_weights(spec)
        check = WeightsCheck(present=present, detail=detail, host=host, checked_at=now)
        pipeline.hset(keys.weights(spec.id), host, check.model_dump_json())
        pipeline.expire(keys.weights(spec.id), WEIGHTS_CHECK_MAX_AGE_S)
    pipeline.execute()
