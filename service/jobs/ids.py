"""Every job id format, in one place.

Every id is a hash of what determines the job's output (and of the deployment's key prefix,
`RedisKeys.job_id`), so a repeat joins the jobs in flight and two API replicas create one of each:

- ``exp-<hash>``: a request, the whole job clients see (no RQ job of its own: its record lists the parts)
- ``chk-<hash>``: a check of pins (one RQ job, on the explain queue, waiting for its layers' scan)
- ``part-<hash>``: the explain job of one (layer, chunk of neurons) of a request
- ``scan-<hash>``: the scan job of a set of layers (one forward pass over the probe set)
- ``scan-<hash>-k<K>``: the merge job of a K-shard scan of the same layers, and
  ``scan-<hash>-s<k>of<K>`` its shards (k = 0 … K-1). The artifacts are the same whatever K, but the jobs
  are not: distinct ids keep a K = 1 and a K = 3 request for the same layers from reading, re-running or
  deleting each other's job records.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from service.contract import (
    CHECK_JOB_PREFIX,
    EXPLAIN_JOB_PREFIX,
    EXPLAIN_PART_PREFIX,
    PIPELINE_VERSION,
    SCAN_JOB_PREFIX,
    SCAN_VERSION,
    DatasetSpec,
    ModelSpec,
    RedisKeys,
    dataset_identity,
)
from service.estimates.checks import ResolvedCheck
from service.estimates.validate import ResolvedRequest

_MERGE_ID = re.compile(r"^(?P<scan>.+)-k(?P<shards>[0-9]+)$")


def _identity(resolved: ResolvedRequest) -> dict[str, object]:
    return {
        "request": resolved.request.model_dump(mode="json"),
        "revision": resolved.model.key_revision,
        "dataset": dataset_identity(resolved.dataset),
        "llm_models": resolved.llm_models.model_dump(mode="json") if resolved.llm_models else None,
        "pipeline": PIPELINE_VERSION,
    }


def explain_job_id(keys: RedisKeys, resolved: ResolvedRequest, budget_group: str | None = None) -> str:
    """Id of a request (the whole job clients see): a hash of the canonical resolved request (layers,
    backends, endpoint and k included), the model revision, the probe set, the endpoint's model names and
    the pipeline version; and the ``budget_group`` whose pool a budgeted request draws on when it is not
    its own (a comparison's base: the request then keeps to that comparison)."""
    identity = _identity(resolved)
    if budget_group is not None and resolved.request.budget is not None:
        identity["budget_group"] = budget_group
    return keys.job_id(EXPLAIN_JOB_PREFIX, identity)


def part_job_id(keys: RedisKeys, part: ResolvedRequest, group: str, budgeted: bool) -> str:
    """Id of the explain job of one (layer, chunk): the same hash over its one-layer request, so requests
    that share a chunk share its job; a request with a budget keeps its parts to itself (``group``)."""
    payload = {**_identity(part), "group": group if budgeted else None}
    return keys.job_id(EXPLAIN_PART_PREFIX, payload)


def scan_job_id(
    keys: RedisKeys,
    model: ModelSpec,
    dataset: DatasetSpec,
    hook: str,
    layers: Sequence[int],
    n_top: int,
    seed: int,
) -> str:
    """Id of the (one-shard) scan job of ``layers``: a hash of everything that determines their scan
    artifacts."""
    payload = {
        "model": model.id,
        "revision": model.key_revision,
        "hook": hook,
        "layers": sorted(set(layers)),
        "dataset": dataset_identity(dataset),
        "n_top": n_top,
        "seed": seed,
        "scan_version": SCAN_VERSION,
    }
    return keys.job_id(SCAN_JOB_PREFIX, payload)


def merge_job_id(scan_id: str, n_shards: int) -> str:
    """Id of the merge job of a ``n_shards``-shard scan whose one-shard scan job id is ``scan_id``."""
    return f"{scan_id}-k{n_shards}"


def shard_job_id(scan_id: str, shard: int, n_shards: int) -> str:
    """Id of shard ``shard`` (0-based) of a ``n_shards``-shard scan whose one-shard id is ``scan_id``."""
    return f"{scan_id}-s{shard}of{n_shards}"


def shard_job_ids(merge_id: str) -> list[str]:
    """Ids of the shard jobs of the merge job ``merge_id``, in shard order; empty when ``merge_id`` is not
    a merge job's id (a one-shard scan)."""
    found = _MERGE_ID.match(merge_id)
    if found is None:
        return []
    scan_id, n_shards = found["scan"], int(found["shards"])
    return [shard_job_id(scan_id, k, n_shards) for k in range(n_shards)]


def check_job_id(keys: RedisKeys, resolved: ResolvedCheck) -> str:
    """Id of a check (`chk-…`): a hash of the canonical resolved check (pins, hook, probe set, simulator,
    endpoint, options and budget; not `dry_run`), the model revision, the probe set, the endpoint's model
    names and the pipeline version. A repeat joins the check in flight or answers the finished one."""
    payload = {
        # `units` only for latents: a check of neurons keeps the id it had before dictionaries existed.
        "request": resolved.request.model_dump(
            mode="json", exclude={"dry_run"} | ({"units"} if resolved.request.units is None else set())
        ),
        "revision": resolved.model.key_revision,
        "dataset": dataset_identity(resolved.dataset),
        "llm_models": resolved.llm_models.model_dump(mode="json") if resolved.llm_models else None,
        "pipeline": PIPELINE_VERSION,
    }
    return keys.job_id(CHECK_JOB_PREFIX, payload)
