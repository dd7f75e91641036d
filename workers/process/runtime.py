"""The WorkerRuntime: everything a worker process builds once and every job shares.

Built in the worker's ``main`` (workers/process/worker.py, the only place that reads the settings) from plain
values: the registry (loaded once, not per job), the artifact store, the models loaded so far, the scan
and tokenised-probe caches, the probe-set image caches and the LLM callers (per-endpoint concurrency
bounds, parameters an endpoint rejected). RQ entry points (workers/process/tasks.py) reach it through
:func:`current_runtime`, which the worker class sets around every job it runs. Its parts are made on
first use, so a worker process starts (and joins its queues) without importing torch or the LLM client.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from service.contract import DatasetSpec, RedisKeys, Registry
from workers.llm.endpoints import LLMEndpoints

if TYPE_CHECKING:
    from workers.data.images import ImageSource
    from workers.llm.caller import LLMCallers
    from workers.models.dictionary_cache import DictionaryCache
    from workers.models.loader import ModelCache
    from workers.process.report_writer import ReportObjects
    from workers.scan.artifacts import ScanCache
    from workers.scan.run import ScanSetup
    from workers.scan.store import ArtifactStore

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
    progress_interval_s: float = 0.25
    """Least seconds between two progress writes to a running job's meta."""
    scan_memory_bytes: int | None = None
    """Recorder state one scan pass may hold, bytes; None derives it from the device."""
    scan_checkpoint_s: float = 30.0
    """Seconds between two checkpoints of a running scan pass (workers/scan/checkpoint.py)."""
    llm: LLMEndpoints = field(default_factory=LLMEndpoints)
    """LLM endpoints the `openai` backends may call, by name."""
    redis_keys: RedisKeys = field(default_factory=RedisKeys)
    """The deployment's Redis key names (metrics, report index, budgets, weights checks)."""


class CachedImages:
    """An ImageSource that keeps the last IMAGE_CACHE_SIZE images it drew or read (least recently used
    dropped); explainers, simulators and exemplar images share it and never modify images."""

    def __init__(self, source: ImageSource) -> None:
        self.image = lru_cache(maxsize=IMAGE_CACHE_SIZE)(source.image)


class WorkerRuntime:
    """What one worker process holds between jobs; built once from a WorkerConfig."""

    def __init__(self, config: WorkerConfig) -> None:
        self.config = config
        self.registry = config.registry
        self._images: dict[tuple[str, str], ImageSource] = {}
        self._images_lock = threading.Lock()

    @cached_property
    def store(self) -> ArtifactStore:
        """The artifact store at the configured URL."""
        from workers.scan.store import FsspecArtifactStore

        return FsspecArtifactStore(self.config.artifact_url)

    @cached_property
    def reports(self) -> ReportObjects:
        """The stored report objects, under the artifact store's URL."""
        from workers.process.report_writer import ReportObjects

        return ReportObjects(self.config.artifact_url)

    @cached_property
    def models(self) -> ModelCache:
        """The models loaded so far, on the configured device."""
        from workers.models.loader import ModelCache

        return ModelCache(self.store, self.config.device)

    @cached_property
    def scans(self) -> ScanCache:
        """Layer scans and tokenised probe sets opened so far."""
        from workers.scan.artifacts import ScanCache

        return ScanCache(self.store)

    @cached_property
    def llm(self) -> LLMCallers:
        """One LLM caller per configured endpoint."""
        from workers.llm.caller import LLMCallers

        return LLMCallers(self.config.llm)

    @cached_property
    def dictionaries(self) -> DictionaryCache:
        """Dictionaries (SAEs, transcoders) loaded so far, kept for the process like its models."""
        from workers.models.dictionary_cache import DictionaryCache

        return DictionaryCache()

    @property
    def scan_setup(self) -> ScanSetup:
        """Store, models and batch size, as a scan takes them."""
        from workers.scan.run import ScanSetup

        config = self.config
        return ScanSetup(
            self.store,
            self.models,
            config.scan_batch_size,
            config.scan_memory_bytes,
            config.scan_checkpoint_s,
            self.dictionaries,
        )

    def probe_images(self, dataset: DatasetSpec) -> ImageSource | None:
        """The images of a vision-language probe set by sample id (drawn or read lazily, the recent ones
        kept); None for text sets."""
        if dataset.modality != "vision-language":
            return None
        from workers.data.images import ProbeSetImages
        from workers.data.loader import load_probe_set

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
            "no WorkerRuntime is set: run NeuronLens tasks in a NeuronLensWorker (workers.process.worker), "
            "which "
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
