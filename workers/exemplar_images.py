"""Shaded exemplar images (DESIGN §4.5): the explain worker renders each image exemplar of a report as a
PNG into the artifact store, and the report links it (`image_url`) for the API to serve.

One artifact per report: `schemas.exemplar_images_key(model, layer, neuron, variant)` holds
`<rank>.png` for every image exemplar plus a manifest, written atomically, so the API reads a PNG once
the report that links it exists (reports are stored after their images).
"""

from __future__ import annotations

from service.schemas import (
    ExplanationRequest,
    NeuronReport,
    exemplar_image_name,
    exemplar_image_url,
    exemplar_images_key,
)
from workers.images import shaded_png
from workers.scan.store import ArtifactStore
from workers.simulate.openai_simulator import ImageSource


class ExemplarImageWriter:
    """Renders and stores the shaded images of one request's reports (one report variant)."""

    def __init__(
        self, store: ArtifactStore, images: ImageSource, request: ExplanationRequest, variant: str
    ) -> None:
        self.store = store
        self.images = images
        self.request = request
        self.variant = variant

    def render(self, report: NeuronReport) -> dict[str, bytes]:
        """PNG bytes by file name for every exemplar with patch activations and an image."""
        files = {}
        for exemplar in report.exemplars:
            grid, patches = exemplar.patch_grid, exemplar.patch_activations
            if grid is None or patches is None:
                continue
            image = self.images.image(exemplar.sample_id)
            if image is None:
                continue
            png = shaded_png(image, patches, (grid[0], grid[1]), report.max_activation)
            files[exemplar_image_name(exemplar.rank)] = png
        return files

    def attach(self, report: NeuronReport) -> NeuronReport:
        """Store the report's shaded images and return the report with their `image_url`s."""
        files = self.render(report)
        if not files:
            return report
        key = exemplar_images_key(report.model, report.layer, report.neuron, self.variant)
        manifest = {
            "model": report.model,
            "model_revision": report.model_revision,
            "layer": report.layer,
            "neuron": report.neuron,
            "variant": self.variant,
            "max_activation": report.max_activation,
        }
        # False when a previous run stored the same images (deterministic for a variant): keep those.
        self.store.write(key, files, manifest)
        exemplars = []
        for exemplar in report.exemplars:
            if exemplar_image_name(exemplar.rank) in files:
                url = exemplar_image_url(self.request, report.neuron, exemplar.rank, self.variant)
                exemplar = exemplar.model_copy(update={"image_url": url})
            exemplars.append(exemplar)
        return report.model_copy(update={"exemplars": exemplars})
