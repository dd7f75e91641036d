"""Stored NeuronReports in Redis, under ``contract.report_key`` (the API reads them from there)."""

from __future__ import annotations

import redis

from service.contract import NeuronReport
from workers.metrics import record_report


def missing_reports(connection: redis.Redis, keys: dict[int, str]) -> list[int]:
    """The neurons (in ``keys`` order) whose report is not stored yet."""
    neurons = list(keys)
    with connection.pipeline(transaction=False) as pipe:
        for neuron in neurons:
            pipe.exists(keys[neuron])
        present = pipe.execute()
    return [neuron for neuron, stored in zip(neurons, present, strict=True) if not stored]


def store_report(connection: redis.Redis, key: str, report: NeuronReport, llm_endpoint: str | None) -> None:
    """Store ``report`` under ``key`` and count it in the worker metrics, in one round trip."""
    with connection.pipeline(transaction=False) as pipe:
        pipe.set(key, report.model_dump_json())
        record_report(pipe, report, llm_endpoint)
        pipe.execute()
