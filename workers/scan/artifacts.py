"""Layer scan artifacts: write one per layer, read them back neuron by neuron.

Key `scans/<scan_id>/`: `activations.safetensors` (neuron-major arrays, one neuron = one contiguous
slice) and `manifest.json` (what was scanned, how, and with which tokenised probe set).

| tensor            | dtype   | shape                    | meaning                                        |
|-------------------|---------|--------------------------|------------------------------------------------|
| `top_acts`        | float16 | [neurons, N, T]          | per-token activations of the top-N samples     |
| `top_ids`         | int32   | [neurons, N]             | their sample ids, highest max activation first |
| `top_max`         | float32 | [neurons, N]             | their max activation                           |
| `global_max`      | float32 | [neurons]                | max activation over the whole probe set        |
| `random_acts`     | float16 | [neurons, R, T]          | per-token activations of the random records    |
| `random_ids`      | int32   | [R]                      | random records' sample ids (seeded draw order) |
| `domain_positive` | int64   | [neurons, domains]       | tokens with activation > 0 per domain          |
| `domain_tokens`   | int64   | [domains]                | tokens per domain                              |
| `sample_max`      | float16 | [neurons, samples]       | every sample's max activation (-inf: no token) |

T is the longest sample's content-token count; positions past a sample's length hold 0.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from safetensors import safe_open
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from workers.errors import ArtifactCorrupt, ScanMissing
from workers.scan.store import ArtifactStore
from workers.scan.token_keys import scan_key
from workers.scan.tokens import TokenizedProbe, read_tokenized_probe

ACTIVATIONS_FILE = "activations.safetensors"
_PER_NEURON = ("top_acts", "random_acts", "sample_max")
CACHE_SIZE = 8
"""Layer scans (and tokenised probe sets) a ScanCache keeps open."""


def write_layer_scan(
    store: ArtifactStore, scan: str, arrays: dict[str, np.ndarray], manifest: dict[str, Any]
) -> bool:
    """Store one layer's arrays under `scans/<scan>`; False when an identical scan was already there."""
    return store.write(scan_key(scan), {ACTIVATIONS_FILE: save_tensors(arrays)}, manifest)


class LayerScan:
    """One scanned layer, read once and sliced per neuron (memory-mapped on a local disk)."""

    def __init__(self, store: ArtifactStore, scan: str) -> None:
        key = scan_key(scan)
        if not store.exists(key):
            raise ScanMissing(f"scan {scan} is not in the artifact store {store.url}: scan the layer first")
        self.scan_id = scan
        self.manifest = store.read_manifest(key)
        path = store.local_path(key, ACTIVATIONS_FILE)
        self._handle: Any = None
        if path is not None:
            try:
                self._handle = safe_open(path, framework="np")
            except (FileNotFoundError, OSError) as exc:
                raise ArtifactCorrupt(f"scan {scan}: cannot open {ACTIVATIONS_FILE} ({exc})") from None
            small = {
                name: self._handle.get_tensor(name) for name in self._handle.keys() if name not in _PER_NEURON
            }
            self._full: dict[str, np.ndarray] = {}
        else:
            self._full = load_tensors(store.read_bytes(key, ACTIVATIONS_FILE))
            small = {name: value for name, value in self._full.items() if name not in _PER_NEURON}
        try:
            self.global_max: np.ndarray = small["global_max"]
            self.top_ids: np.ndarray = small["top_ids"]
            self.top_max: np.ndarray = small["top_max"]
            self.random_ids: np.ndarray = small["random_ids"]
            self.domain_positive: np.ndarray = small["domain_positive"]
            self.domain_tokens: np.ndarray = small["domain_tokens"]
        except KeyError as exc:
            raise ArtifactCorrupt(f"scan {scan}: {ACTIVATIONS_FILE} lacks {exc.args[0]!r}") from None

    @property
    def n_neurons(self) -> int:
        return int(self.global_max.shape[0])

    def _slice(self, name: str, neuron: int) -> np.ndarray:
        if self._handle is not None:
            return np.asarray(self._handle.get_slice(name)[neuron], dtype=np.float32)
        return self._full[name][neuron].astype(np.float32)

    def top_acts(self, neuron: int) -> np.ndarray:
        """float32 [N, T]: per-token activations of the neuron's top samples, rank order."""
        return self._slice("top_acts", neuron)

    def random_acts(self, neuron: int) -> np.ndarray:
        """float32 [R, T]: per-token activations of the random records, in `random_ids` order."""
        return self._slice("random_acts", neuron)

    @property
    def has_sample_max(self) -> bool:
        """Whether the scan holds every sample's max activation (scans of SCAN_VERSION 2 on)."""
        names = self._handle.keys() if self._handle is not None else self._full.keys()
        return "sample_max" in names

    def sample_max(self, neuron: int) -> np.ndarray:
        """float32 [samples]: the neuron's max activation in every probe sample, by sample id (-inf for a
        sample without content tokens); ArtifactCorrupt when the scan predates them."""
        if not self.has_sample_max:
            raise ArtifactCorrupt(f"scan {self.scan_id} holds no per-sample maxima: re-scan the layer")
        return self._slice("sample_max", neuron)


class ScanCache:
    """Opens layer scans and tokenised probe sets of one artifact store, keeping the last few opened
    (least recently used dropped). One per WorkerRuntime, so every job of the process shares it."""

    def __init__(self, store: ArtifactStore, size: int = CACHE_SIZE) -> None:
        self.store = store
        self._scans = lru_cache(maxsize=size)(self._open_layer_scan)
        self._probes = lru_cache(maxsize=size)(self._open_tokenized_probe)

    def layer_scan(self, scan: str) -> LayerScan:
        """The layer scan `scan`, read once (ScanMissing when it is not in the store)."""
        return self._scans(scan)

    def tokenized_probe(self, key: str) -> TokenizedProbe:
        """The tokenised probe set at `key`, read once (ScanMissing when it is not in the store)."""
        return self._probes(key)

    def clear(self) -> None:
        """Forget opened scans and probe sets (benchmarks measure cold reads with it)."""
        self._scans.cache_clear()
        self._probes.cache_clear()

    def _open_layer_scan(self, scan: str) -> LayerScan:
        return LayerScan(self.store, scan)

    def _open_tokenized_probe(self, key: str) -> TokenizedProbe:
        if not self.store.exists(key):
            raise ScanMissing(f"tokenised probe set {key} is not in the artifact store {self.store.url}")
        return read_tokenized_probe(self.store, key)
