"""The SDK's DataFrames of a job and of a layer read the Parquet export, and equal `to_dataframe` of the
same reports fetched one by one (the old, slow path); `AsyncClient` does the same. Reports stored as an
explain worker stores them, the API over real HTTP."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import redis

from neuronlens import SUMMARY_COLUMNS, AsyncClient, Client, to_dataframe
from service.contract import ExplanationRequest
from tests.service.helpers import store_reports
from workers.process.report_writer import ReportObjects

NEURONS = [5, 42, 7]


def _records(frame: Any) -> list[dict[str, Any]]:
    """Rows with NaN as None and list cells as lists (pandas keeps both ways of saying "no value")."""
    rows = []
    for row in frame.to_dict("records"):
        rows.append(
            {
                key: None if isinstance(value, float) and math.isnan(value) else value
                for key, value in row.items()
            }
        )
    return rows


def test_dataframes_of_a_job_and_a_layer_come_from_parquet_and_equal_the_old_path(
    api_url: str, redis_conn: redis.Redis, report_objects: ReportObjects, minilm_revision: str
) -> None:
    request = ExplanationRequest(model="minilm-l6", layer=3, neurons=NEURONS)
    store_reports(redis_conn, report_objects, request, minilm_revision)
    with Client(api_url) as client:
        answer = client.submit("minilm-l6", 3, NEURONS)  # every report stored: finished at once
        old = to_dataframe(list(client.iter_reports(answer.job_id)))
        new = client.to_dataframe(answer)
        layer = client.layer_to_dataframe("minilm-l6", 3)
        assert client.to_dataframe(answer.job_id, fields="full")["report"].str.startswith("{").all()
    assert list(new.columns) == list(old.columns) == list(SUMMARY_COLUMNS)
    assert new["neuron"].tolist() == sorted(NEURONS)
    assert _records(new) == _records(old)
    assert _records(layer) == _records(old)

    async def from_async() -> Any:
        async with AsyncClient(api_url) as client:
            return await client.to_dataframe(answer.job_id), await client.layer_to_dataframe("minilm-l6", 3)

    job_frame, layer_frame = asyncio.run(from_async())
    assert _records(job_frame) == _records(layer_frame) == _records(old)
