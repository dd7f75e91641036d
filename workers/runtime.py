"""The WorkerRuntime: everything a worker process builds once and every job shares.

Built in the worker's ``main`` (workers/worker.py, the only place that reads the settings) from plain
values: the registry (loaded once, not per job), the artifact store, the models loaded so far, the scan
and tokenised-probe caches, the probe-set image caches and the LLM callers (per-endpoint concurrency
bounds, parameters an endpoint rejected). RQ entry points (workers/tasks.py) reach it through
:func:`current_runtime`, which the worker class sets around every job it runs.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache

from service.contract import DatasetSpec, Registry
from workers.data.images import ImageSource, ProbeSetImages
from workers.data.loader import load_probe_set
from workers.llm.client import LLMCallers
from workers.llm.endpoints import LLMEndpoints
from workers.models.loader import ModelCache
from workers.scan.artifacts import ScanCache
from workers.scan.run import ScanSetup
from workers.scan.store import ArtifactStore, FsspecArtifactStore

IMAGE_CACHE_SIZE = 512
"""Images kept per probe set (about 50 KB each at 128 px): top samples recur across a layer's neurons."""


@dataclass(frozen=True)
class WorkerConfig:
    """The plain values a WorkerRuntime is built from (the edge turns the settings into these)."""

    registry: Registry
    """Models and probe sets this worker serves."""
    artifact_url: str
    """Artifact store root: a local folder or an fsspec URL."""
    device: str | None = None
    """Torch device for models (cpu, cuda, cuda:1); None picks cuda when there is one."""
    scan_batch_size: int = 64
    """Samples per forward pass during a scan."""
    llm: LLMEndpoints = field(default_factory=LLMEndpoints)
    """LLM endpoints the `openai` backends may call, by name."""


class CachedImages:
    """An ImageSource that keeps the last IMAGE_CACHE_SIZE images it drew or read (least recently used
    dropped); explainers, simulators and exemplar images share it and never modify images."""

    def __init__(self, source: ImageSource) -> None:
        self.image = lru_cache(maxsize=IMAGE_CACHE_SIZE)(source.image)


class WorkerRuntime:
    """What one worker process holds between jobs; built once from a WorkerConfig."""

    def __init__(self, config: WorkerConfig, store: ArtifactStore | None = None) -> None:
        self.config = config
        self.registry = config.registry
        self.store: ArtifactStore = store or FsspecArtifactStore(config.artifact_url)
        self.models = ModelCache(self.store, config.device)
        self.scans = ScanCache(self.store)
        self.llm = LLMCallers(config.llm)
        self._images: dict[tuple[str, str], ImageSource] = {}
        self._images_lock = threading.Lock()

    @property
    def scan_setup(self) -> ScanSetup:
        """Store, models and batch size, as a scan takes them."""
        return ScanSetup(self.store, self.models, self.config.scan_batch_size)

    def probe_images(self, dataset: DatasetSpec) -> ImageSource | None:
        """The images of a vision-language probe set by sample id (drawn or read lazily, the recent ones
        kept); None for text sets."""
        if dataset.modality != "vision-language":
            return None
        key = (dataset.id, dataset.revision)
        with self._images_lock:
            if key not in self._images:
                self._images[key] = CachedImages(ProbeSetImages(load_probe_set(dataset).samples))
            return self._images[key]


_current: WorkerRuntime | None = None


def current_runtime() -> WorkerRuntime:
    """The runtime of the job running in this process (set by the worker class around each job)."""
    if _current is None:
        raise RuntimeError(
            "no WorkerRuntime is set: run NeuronLens tasks in a NeuronLensWorker (workers.worker), which "
            "builds one from the settings"
        )
    return _current


@contextmanager
def runtime_in_use(runtime: WorkerRuntime) -> Iterator[WorkerRuntime]:
    """Make ``runtime`` the current one while the block runs (a job), restoring the previous after."""
    global _current
    previous, _current = _current, runtime
    try:
        yield runtime
    finally:
        _current = previous
