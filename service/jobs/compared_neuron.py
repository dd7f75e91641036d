"""One compared neuron read back for its viewer page: its NeuronComparison and both sides' exemplars."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from service.contract import RedisKeys
from service.contract.comparisons import (
    ComparisonExemplars,
    NeuronComparison,
    comparison_exemplars_key,
    comparison_key,
)
from service.contract.objects import ObjectStore
from service.jobs.compare import ComparisonRecord, read_comparison


@dataclass(frozen=True)
class ComparedNeuron:
    """One stored neuron of a comparison, for its viewer page."""

    record: ComparisonRecord
    comparison: NeuronComparison
    exemplars: ComparisonExemplars
    """Both sides' top exemplars (empty lists for a comparison stored before they were kept)."""


def compared_neuron(
    connection: redis.Redis, keys: RedisKeys, store: ObjectStore, cmp_id: str, layer: int, neuron: int
) -> ComparedNeuron | None:
    """The stored comparison of one neuron; None when the comparison does not exist, does not hold the
    neuron, or has not compared it yet."""
    record = read_comparison(connection, keys, cmp_id)
    if record is None or not any(lay == layer and neuron in ns for _, lay, ns in record.parts):
        return None
    raw = store.read(comparison_key(cmp_id, layer, neuron))
    if raw is None:
        return None
    found = store.read(comparison_exemplars_key(cmp_id, layer, neuron))
    exemplars = ComparisonExemplars.model_validate_json(found) if found is not None else ComparisonExemplars()
    return ComparedNeuron(record, NeuronComparison.model_validate_json(raw), exemplars)
