"""The API↔worker contract: what one side writes, the other reads back unchanged."""

from __future__ import annotations

from service.contract import JobError, JobMeta, parse_series, series_name


def test_a_series_name_parses_back_to_its_name_and_labels() -> None:
    labels = {"queue": "explain", "outcome": "finished"}
    field = series_name("jobs_total", labels)
    assert field == "jobs_total{outcome=finished,queue=explain}"
    assert parse_series(field) == ("jobs_total", labels)
    assert parse_series(series_name("neurons_explained_total")) == ("neurons_explained_total", {})
    assert parse_series("jobs_total{outcome}") is None


def test_job_meta_round_trips_through_an_rq_meta_dict_without_nulls() -> None:
    meta = JobMeta(
        stage="simulating", done=3, total=8, scan_job_id="scan-1", error=JobError(type="X", message="y")
    )
    stored = {"someone_elses_key": 1, **meta.to_meta()}
    assert JobMeta.from_meta(stored) == meta
    cleared = meta.model_copy(update={"error": None, "stage": None}).to_meta()
    assert "error" not in cleared and "stage" not in cleared and cleared["done"] == 3


def test_unreadable_job_meta_reads_as_empty() -> None:
    assert JobMeta.from_meta({"done": -1, "stage": "dreaming"}) == JobMeta()
