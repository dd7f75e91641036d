"""Shaded exemplar images (DESIGN §4.5): the explain worker renders each image exemplar of a report as a
PNG into the artifact store, for the API to serve; the API links them (`image_url`) when it serves the report.

One artifact per report: `contract.exemplar_images_key(model, layer, neuron, variant)` holds
`<rank>.png` for every image exemplar plus a manifest, written atomically, so the API reads a PNG once
the report that links it exists (reports are stored after their images).
"""

from __future__ import annotations

from service.contract import NeuronReport, exemplar_image_name, exemplar_images_key
from workers.data.images import ImageSource
from workers.errors import DatasetUnavailable
from workers.images import shaded_png
from workers.scan.store import ArtifactStore


class ExemplarImageWriter:
    """Renders and stores the shaded images of one request's reports (one report variant)."""

    def __init__(self, store: ArtifactStore, images: ImageSource, variant: str) -> None:
        self.store = store
        self.images = images
        self.variant = variant

    def render(self, report: NeuronReport) -> dict[str, bytes]:
        """PNG bytes by file name for every exemplar that has an image (``Exemplar.has_image``)."""
        files = {}
        for exemplar in report.exemplars:
            grid, patches = exemplar.patch_grid, exemplar.patch_activations
            if not exemplar.has_image or grid is None or patches is None:
                continue
            image = self.images.image(exemplar.sample_id)
            if image is None:
                # The API links every exemplar with patches to its image: one without would be a dead link.
                raise DatasetUnavailable(
                    f"sample {exemplar.sample_id} has image patches but its probe set gives no image for it"
                )
            png = shaded_png(image, patches, (grid[0], grid[1]), report.max_activation)
            files[exemplar_image_name(exemplar.rank)] = png
        return files

    def store_images(self, report: NeuronReport) -> None:
        """Store the report's shaded images (the API links them when it serves the report)."""
        files = self.render(report)
        if not files:
            return
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
