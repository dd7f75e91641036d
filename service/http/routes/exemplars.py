"""`GET /v1/neurons/{model}/{layer}/{neuron}/exemplars/{rank}.png`: an image exemplar shaded by activation.

Explain workers render the PNGs into the artifact store (`contract.exemplar_images_key`); this route reads
them through the API's object store (fsspec), so the API needs no torch, PIL or worker code.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath, KwargDefinition

from service.contract import exemplar_images_key
from service.contract.objects import ObjectStore
from service.http.conventions import IMAGE_CACHE_CONTROL, cache_control, conditional_response
from service.http.error_responses import problem_specs
from service.http.openapi_docs import DocumentedOperation
from service.http.routes.query import REPORT_QUERY
from service.problems import NotFound
from service.reports.reading import Query, ReportReader
from service.settings import Settings

PNG_MEDIA_TYPE = "image/png"
_IMAGE_NAME = re.compile(r"^(random-)?(0|[1-9][0-9]{0,3})(-original)?\.png$")
"""`<rank>.png`, `random-<slot>.png`; `-original` before `.png` for the unshaded one (exemplar_image_name)."""


def read_exemplar_png(
    store: ObjectStore, model: str, layer: int, neuron: int, variant: str, name: str
) -> bytes:
    """The stored PNG `name` (an `exemplar_image_name`); NotFound when the worker wrote none (no such
    rank, not an image exemplar, or a report from before unshaded and random images were stored)."""
    data = store.read(f"{exemplar_images_key(model, layer, neuron, variant)}/{name}")
    if data is None:
        raise NotFound(
            f"no exemplar image {name} for {model} layer {layer} neuron {neuron} in this report variant: "
            "only image exemplars of a stored vision-language report have one (see its `image_url`s)"
        )
    return data


@get(
    "/v1/neurons/{model:str}/{layer:int}/{neuron:int}/exemplars/{image:str}",
    operation_id="getExemplarImage",
    operation_class=DocumentedOperation,
    summary="Get a shaded exemplar image",
    tags=["neurons"],
    dependencies=REPORT_QUERY,
    sync_to_thread=True,
    media_type=PNG_MEDIA_TYPE,
    responses={
        200: ResponseSpec(
            data_container=Annotated[bytes, KwargDefinition(format="binary")],  # type: ignore[arg-type]
            media_type=PNG_MEDIA_TYPE,
            description="The exemplar's image as the model saw it, each patch faded toward white by how "
            "little it activates the neuron (docs/method.md#exemplar-images).",
            generate_examples=False,
        ),
        **problem_specs(400, 404, 422, 503),
    },
)
def get_exemplar_image(
    request: Request[Any, Any, Any],
    model: FromPath[str],
    layer: FromPath[int],
    neuron: FromPath[int],
    image: FromPath[str],
    reports: NamedDependency[ReportReader],
    settings: NamedDependency[Settings],
    report_query: NamedDependency[Query],
) -> Response[bytes]:
    """An image exemplar of a stored report: `image` is `{rank}.png` for the top exemplar of that rank,
    `random-{slot}.png` for a random exemplar, shaded by the neuron's activation per image patch:
    pixel' = pixel·(a/10) + 255·(1 − a/10), a = the patch's normalised activation; with `-original`
    before `.png` (`0-original.png`) the same image unshaded. The query selects the report variant as for
    `GET /v1/neurons/{model}/{layer}/{neuron}`; reports link each image with the right query in
    `image_url` and `original_image_url`. 404 when there is none."""
    match = _IMAGE_NAME.match(image)
    if match is None:
        raise NotFound(
            f"no exemplar image {image!r}: images are named <rank>.png or random-<slot>.png, with "
            "-original before .png for the unshaded image, e.g. 0.png, 0-original.png, random-3.png"
        )
    variant = reports.resolve(model, layer, neuron, report_query).variant
    png = read_exemplar_png(reports.store, model, layer, neuron, variant, image)
    return conditional_response(request, png, PNG_MEDIA_TYPE, cache_control(settings, IMAGE_CACHE_CONTROL))
