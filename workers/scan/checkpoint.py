"""Checkpoints of a scan pass in the artifact store, so a retried scan (or shard) resumes where its last
checkpoint left it instead of at sample 0 (docs/method.md#scan).

While a pass runs, its layers' recorder state (top-N, maxima, random records, domain counts: small, O(neurons
× N)) and the number of batches folded in are written every ``every_s`` seconds (default 30 s; a shorter
pass writes none); a retry of the same pass (same layers, scan ids, shard and batch size) loads the
latest one and skips the batches it holds, so an interruption costs at most the batches since it (one
chunk). The checkpoint lives in the artifact store, not in Redis, so a Redis outage that fails the job
does not lose it. Two slots are written in turn (each write is atomic, the other slot stays intact), and
both are deleted once the pass's artifacts are written.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from safetensors.numpy import load as load_tensors
from safetensors.numpy import save as save_tensors

from workers.scan.store import ArtifactStore

CHECKPOINT_ROOT = "checkpoints"
"""Artifact-store folder of pass checkpoints (deleted when their pass completes)."""

CHECKPOINT_EVERY_S = 30.0
"""Seconds between two checkpoints of a running pass (at most this much scanning is re-done on a retry)."""

STATE_FILE = "state.safetensors"
SLOTS = 2
CHECKPOINT_VERSION = 2
"""Part of every checkpoint key. 2: passes run their batches longest first (scanner.plan_batches), so a
checkpoint's batch count means other batches than in version 1's shortest-first passes."""

LayerState = dict[str, np.ndarray]
"""One layer recorder's state as arrays (workers/scan/recorder.py `LayerRecorder.state`)."""


@dataclass
class Resumed:
    """A pass's latest checkpoint: how many of its batches it holds and each layer's recorder state."""

    batches_done: int
    states: dict[int, LayerState]


@dataclass
class PassCheckpoints:
    """The checkpoints of the passes of one scan or shard. ``identity`` names what the state depends on
    (the layers' scan ids, the shard, the batch size): a checkpoint of anything else is never loaded."""

    store: ArtifactStore
    identity: Mapping[str, object]
    every_s: float = CHECKPOINT_EVERY_S
    _last: float = field(default=0.0, init=False)
    _slot: int = field(default=0, init=False)
    saved: int = field(default=0, init=False)
    """Checkpoints written so far (all passes)."""

    def key(self, layers: Sequence[int], slot: int) -> str:
        payload = json.dumps(
            {"identity": self.identity, "layers": sorted(layers), "version": CHECKPOINT_VERSION},
            sort_keys=True,
        )
        return f"{CHECKPOINT_ROOT}/{hashlib.sha256(payload.encode()).hexdigest()[:24]}/slot-{slot}"

    def load(self, layers: Sequence[int], n_batches: int) -> Resumed | None:
        """The latest checkpoint of the pass over ``layers`` (None: none, or one of another batch plan)."""
        best: tuple[int, int] | None = None
        for slot in range(SLOTS):
            key = self.key(layers, slot)
            if not self.store.exists(key):
                continue
            manifest = self.store.read_manifest(key)
            done = int(manifest.get("batches_done", -1))
            if (
                manifest.get("n_batches") == n_batches
                and 0 < done <= n_batches
                and (best is None or done > best[0])
            ):
                best = (done, slot)
        self._last = time.monotonic()  # the pass (re)starts: its first checkpoint is every_s from now
        if best is None:
            return None
        self._slot = 1 - best[1]  # the next write keeps the loaded slot intact
        tensors = load_tensors(self.store.read_bytes(self.key(layers, best[1]), STATE_FILE))
        states: dict[int, LayerState] = {}
        for name, array in tensors.items():
            layer, _, part = name.partition("/")
            states.setdefault(int(layer), {})[part] = array
        return Resumed(best[0], states)

    def due(self) -> bool:
        """Whether a checkpoint is due: ``every_s`` seconds after the pass started or last checkpointed
        (a pass shorter than that writes none)."""
        return time.monotonic() - self._last >= self.every_s

    def save(
        self, layers: Sequence[int], batches_done: int, n_batches: int, states: Mapping[int, LayerState]
    ) -> None:
        """Write the pass's state after ``batches_done`` of its ``n_batches`` batches."""
        key = self.key(layers, self._slot)
        files = {
            STATE_FILE: save_tensors(
                {
                    f"{layer}/{name}": np.ascontiguousarray(a)
                    for layer, state in states.items()
                    for name, a in state.items()
                }
            )
        }
        self.store.delete(key)
        self.store.write(
            key,
            files,
            {"batches_done": batches_done, "n_batches": n_batches, "identity": dict(self.identity)},
        )
        self._slot = (self._slot + 1) % SLOTS
        self._last = time.monotonic()
        self.saved += 1

    def drop(self, layers: Sequence[int]) -> None:
        """Delete the pass's checkpoints (its artifacts are written)."""
        for slot in range(SLOTS):
            self.store.delete(self.key(layers, slot))
