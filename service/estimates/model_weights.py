"""Which registered models' weights the workers have, as they published it (service.contract.weights):
the API never sees the workers' disks, so it reports what the workers checked, and says so."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import pydantic
import redis

from service.contract import WEIGHTS_CHECK_MAX_AGE_S, ModelSpec, RedisKeys, WeightsCheck

WeightsState = Literal["present", "missing", "unknown"]
"""`present`: some worker host has them; `missing`: every host that checked lacks them; `unknown`: no
worker checked within WEIGHTS_CHECK_MAX_AGE_S."""


@dataclass(frozen=True)
class ModelWeights:
    state: WeightsState
    checks: list[WeightsCheck]
    """The fresh checks, one per worker host."""

    @property
    def detail(self) -> str:
        """How to provide missing weights (the workers' own words, one per distinct message)."""
        return " ".join(dict.fromkeys(check.detail for check in self.checks if not check.present))


def models_weights(
    connection: redis.Redis, keys: RedisKeys, models: Sequence[ModelSpec]
) -> dict[str, ModelWeights]:
    """The workers' latest weights checks of each model (one pipeline round trip)."""
    pipeline = connection.pipeline(transaction=False)
    for model in models:
        pipeline.hvals(keys.weights(model.id))
    oldest = datetime.now(UTC) - timedelta(seconds=WEIGHTS_CHECK_MAX_AGE_S)
    result = {}
    for model, values in zip(models, pipeline.execute(), strict=True):
        checks = []
        for value in values:
            try:
                check = WeightsCheck.model_validate_json(value)
            except pydantic.ValidationError:
                continue  # written by another version: not evidence either way
            if check.checked_at >= oldest:
                checks.append(check)
        state: WeightsState = (
            "unknown" if not checks else "present" if any(c.present for c in checks) else "missing"
        )
        result[model.id] = ModelWeights(state, sorted(checks, key=lambda c: c.host))
    return result
