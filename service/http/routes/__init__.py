"""HTTP routes, one module per resource; service/http/app.py mounts :data:`ROUTE_HANDLERS`."""

from __future__ import annotations

from service.http.routes.checks import create_check, get_check
from service.http.routes.comparisons import create_comparison, export_comparison, get_comparison
from service.http.routes.exemplars import get_exemplar_image
from service.http.routes.explanations import create_explanation
from service.http.routes.health import healthz, metrics, readyz
from service.http.routes.jobs import (
    cancel_explanation_job,
    export_job_reports,
    get_job,
    list_explanation_jobs,
)
from service.http.routes.models import get_dictionary_quality, list_models
from service.http.routes.neurons import get_neuron_report, list_layer_neurons
from service.http.routes.pages import (
    get_compared_neuron_page,
    get_comparison_page,
    get_home_page,
    get_job_page,
    get_layer_page,
    get_neuron_page,
)

API_ROUTE_HANDLERS = [
    list_models,
    get_dictionary_quality,
    create_explanation,
    get_job,
    list_explanation_jobs,
    cancel_explanation_job,
    create_check,
    get_check,
    export_job_reports,
    get_neuron_report,
    list_layer_neurons,
    get_exemplar_image,
    get_neuron_page,
    get_home_page,
    get_layer_page,
    get_job_page,
    create_comparison,
    get_comparison,
    export_comparison,
    get_comparison_page,
    get_compared_neuron_page,
]
"""The /v1 routes: behind API keys when `NEURONLENS_AUTH=keys` (service/access/auth.py)."""
OPEN_ROUTE_HANDLERS = [healthz, readyz, metrics]
"""Liveness, readiness and metrics: always open (probes and scrapers carry no key)."""
ROUTE_HANDLERS = [*API_ROUTE_HANDLERS, *OPEN_ROUTE_HANDLERS]
