"""Worker-domain fixtures: the bundled MiniLM, a small slice of the text probe set, and scans of it that
every test of the session shares (scanned once into the session artifact store)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from service.contract import DatasetSpec, ModelSpec, PipelineOptions, load_registry
from service.settings import Settings, load_settings

SMALL_SAMPLES = 600
"""Samples in the probe-set slice the integration tests scan (a prefix of text-probe-v1)."""
SMALL_LAYERS = [2, 5]


@pytest.fixture(scope="session")
def minilm() -> ModelSpec:
    return load_registry().model("minilm-l6")


@pytest.fixture(scope="session")
def small_probe() -> DatasetSpec:
    """text-probe-v1 cut to its first SMALL_SAMPLES samples (same generator, different scan key)."""
    return load_registry().dataset("text-probe-v1").model_copy(update={"n_samples": SMALL_SAMPLES})


@pytest.fixture(scope="session")
def worker_settings(shared_artifact_dir: Path) -> Settings:
    """Settings for worker-domain tests: the session artifact store, CPU, no Redis needed."""
    return load_settings(artifact_url=str(shared_artifact_dir), device="cpu")


@pytest.fixture(scope="session")
def worker_runtime(worker_settings: Settings) -> Any:
    """The WorkerRuntime a worker process builds from ``worker_settings`` (shared by the session)."""
    from workers.process.worker import build_runtime  # imported here so tests without torch stay light

    return build_runtime(worker_settings)


@pytest.fixture(scope="session")
def small_scan(worker_runtime: Any, minilm: ModelSpec, small_probe: DatasetSpec) -> dict[int, Any]:
    """Layers SMALL_LAYERS of MiniLM scanned in one pass over the small probe set (default options)."""
    from workers.process.scan_job import scan_layers

    return scan_layers(
        worker_runtime, minilm, small_probe, minilm.hook("mlp_act"), SMALL_LAYERS, PipelineOptions()
    )
