"""The Grafana dashboard and the alert rules query only series the API exports today.

The exported names come from a real scrape: the API's metrics registry over a real Redis holding one
worker series of every kind, read back with prometheus_client's own text parser.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import redis
from prometheus_client.parser import text_string_to_metric_families

from service.http.prometheus import ApiMetrics
from service.jobs.queues import JobQueues
from service.settings import Settings
from tests.deploy.k8s_checks import render

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
DASHBOARD = K8S / "monitoring" / "grafana-dashboard.json"
METRIC_NAME = re.compile(r"\bneuronlens_[a-z_]+\b")
SUFFIXES = {"counter": ("_total",), "summary": ("_sum", "_count"), "histogram": ("_bucket", "_sum", "_count")}
WORKER_SERIES = {
    "jobs_total{outcome=failed,queue=scan}": 1,
    "job_seconds_sum{queue=scan}": 2.5,
    "job_seconds_count{queue=scan}": 1,
    "stage_seconds_sum{stage=scan}": 2.0,
    "stage_seconds_count{stage=scan}": 1,
    "scans_total{reused=false}": 1,
    "neurons_explained_total": 1,
    "llm_calls_total{endpoint=e,role=simulator}": 1,
    "llm_tokens_total{endpoint=e,kind=prompt}": 10,
    "llm_parse_failures_total{endpoint=e}": 1,
    "llm_endpoint_errors_total{endpoint=e}": 1,
}


def _exported_samples(redis_conn: redis.Redis, settings: Settings) -> set[str]:
    redis_conn.hset(settings.redis_keys.metrics, mapping=WORKER_SERIES)
    metrics = ApiMetrics(lambda: (redis_conn, JobQueues.connect(redis_conn, settings)), settings.redis_keys)
    metrics.request_seconds.labels("GET", "/healthz", "200").observe(0.001)
    names: set[str] = set()
    for family in text_string_to_metric_families(metrics.render().decode()):
        names.add(family.name)
        names |= {family.name + suffix for suffix in SUFFIXES.get(family.type, ())}
        names |= {sample.name for sample in family.samples}
    return names


def _rule_expressions(objects: list[dict[str, Any]]) -> dict[str, str]:
    rule = next(obj for obj in objects if obj["kind"] == "PrometheusRule")
    return {r["alert"]: r["expr"] for group in rule["spec"]["groups"] for r in group["rules"]}


def _dashboard_expressions() -> dict[str, str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return {
        f"{panel['title']} / {target['refId']}": target["expr"]
        for panel in dashboard["panels"]
        for target in panel["targets"]
    }


def test_alerts_and_dashboard_use_only_exported_series(redis_conn: redis.Redis, settings: Settings) -> None:
    exported = _exported_samples(redis_conn, settings)
    assert "neuronlens_queue_jobs" in exported and "neuronlens_llm_tokens_total" in exported
    alerts = _rule_expressions(render(K8S))
    assert {"NeuronLensQueueGrowing", "NeuronLensWorkersAbsent", "NeuronLensLLMEndpointErrors"} <= set(alerts)
    panels = _dashboard_expressions()
    for where, expr in {**alerts, **panels}.items():
        used = set(METRIC_NAME.findall(expr))
        assert used, f"{where}: queries no NeuronLens series"
        assert used <= exported, f"{where}: {sorted(used - exported)} are not exported by the API"


def test_dashboard_covers_queues_jobs_llm_and_errors() -> None:
    exprs = " ".join(_dashboard_expressions().values())
    for series in (
        "neuronlens_queue_jobs",
        "neuronlens_jobs_total",
        "neuronlens_job_duration_seconds_sum",
        "neuronlens_llm_calls_total",
        "neuronlens_llm_tokens_total",
        "neuronlens_llm_endpoint_errors_total",
    ):
        assert series in exprs, f"the dashboard has no panel on {series}"
    variables = {v["name"] for v in json.loads(DASHBOARD.read_text())["templating"]["list"]}
    assert {"datasource", "prompt_usd_per_mtok", "completion_usd_per_mtok"} <= variables


def test_dashboard_ships_as_a_configmap_for_grafanas_sidecar() -> None:
    objects = render(K8S)
    config = next(
        o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["name"].endswith("dashboard")
    )
    assert config["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config["data"]["grafana-dashboard.json"]) == json.loads(DASHBOARD.read_text())
    monitor = next(o for o in objects if o["kind"] == "ServiceMonitor")["spec"]
    api_service = next(o for o in objects if o["kind"] == "Service" and o["metadata"]["name"] == "api")
    assert monitor["selector"]["matchLabels"].items() <= api_service["metadata"]["labels"].items()
    assert monitor["endpoints"][0]["port"] in {port["name"] for port in api_service["spec"]["ports"]}
    assert monitor["endpoints"][0]["path"] == "/metrics"
