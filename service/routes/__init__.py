"""HTTP routes, one module per resource; service/app.py mounts :data:`ROUTE_HANDLERS`."""

from __future__ import annotations

from service.routes.exemplars import get_exemplar_image
from service.routes.explanations import create_explanation
from service.routes.health import healthz, metrics, readyz
from service.routes.jobs import get_job
from service.routes.models import list_models
from service.routes.neurons import get_neuron_report, list_layer_neurons
from service.routes.pages import get_home_page, get_job_page, get_layer_page, get_neuron_page

ROUTE_HANDLERS = [
    list_models,
    create_explanation,
    get_job,
    get_neuron_report,
    list_layer_neurons,
    get_exemplar_image,
    get_neuron_page,
    get_home_page,
    get_layer_page,
    get_job_page,
    healthz,
    readyz,
    metrics,
]
