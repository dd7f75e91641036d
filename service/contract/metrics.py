"""Worker metrics in Redis: the hash workers count into and the syntax of its field names.

Workers cannot reach the API's Prometheus registry, so they count into one Redis hash per deployment
(``RedisKeys.metrics``), one field per series, named like Prometheus series
(``jobs_total{outcome=finished,queue=explain}``); the API parses the fields back at every scrape
(service/http/prometheus.py). :func:`series_name` and :func:`parse_series` are the two halves of that syntax.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

DURATION_BUCKETS_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
"""Upper bounds (seconds) of the worker job and stage duration histograms: workers count a cumulative
``<name>_bucket{…,le=<bound>}`` field per bound (and ``le=+Inf``); the API exports the bounds it finds."""

_SERIES = re.compile(r"^(?P<name>[a-z_]+)(?:\{(?P<labels>[^}]*)\})?$")


def series_name(name: str, labels: Mapping[str, str] | None = None) -> str:
    """``("jobs_total", {"queue": "scan", "outcome": "failed"})`` →
    ``"jobs_total{outcome=failed,queue=scan}"`` (labels sorted by name; label values must not contain
    ``,``, ``=`` or ``}``)."""
    if not labels:
        return name
    return name + "{" + ",".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


def parse_series(field: str) -> tuple[str, dict[str, str]] | None:
    """``"jobs_total{outcome=failed,queue=scan}"`` → ``("jobs_total", {"outcome": "failed", ...})``;
    None for a field that is not a series name."""
    match = _SERIES.match(field)
    if match is None:
        return None
    labels: dict[str, str] = {}
    for pair in filter(None, (match.group("labels") or "").split(",")):
        key, sep, value = pair.partition("=")
        if not sep:
            return None
        labels[key] = value
    return match.group("name"), labels
