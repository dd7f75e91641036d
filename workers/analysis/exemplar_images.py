"""Exemplar images (docs/method.md#exemplar-images): the explain worker renders each image exemplar of a
report, top and random, as two PNGs into the artifact store, shaded by activation and unshaded (the image as
the model saw it), for the API to serve; the API links them (`image_url`, `original_image_url`) when it serves
the report.

One artifact per report: `contract.exemplar_images_key(model, layer, neuron, variant)` holds the files named
by `contract.exemplar_image_name` plus a manifest, written atomically, so the API reads a PNG once the
report that links it exists (reports are stored after their images).
"""

from __future__ import annotations

from service.contract import Exemplar, NeuronReport, exemplar_image_name, exemplar_images_key
from workers.data.images import ImageSource
from workers.errors import DatasetUnavailable
from workers.scan.store import ArtifactStore
from workers.vocabulary.shading import png_bytes, shaded_png


class ExemplarImageWriter:
    """Renders and stores the images of one request's reports (one report variant)."""

    def __init__(self, store: ArtifactStore, images: ImageSource, variant: str) -> None:
        self.store = store
        self.images = images
        self.variant = variant

    def _render_one(
        self, exemplar: Exemplar, max_activation: float, random: bool, files: dict[str, bytes]
    ) -> None:
        grid, patches = exemplar.patch_grid, exemplar.patch_activations
        if not exemplar.has_image or grid is None or patches is None:
            return
        image = self.images.image(exemplar.sample_id)
        if image is None:
            # The API links every exemplar with patches to its image: one without would be a dead link.
            raise DatasetUnavailable(
                f"sample {exemplar.sample_id} has image patches but its probe set gives no image for it"
            )
        name = exemplar_image_name(exemplar.rank, random=random)
        files[name] = shaded_png(image, patches, (grid[0], grid[1]), max_activation)
        files[exemplar_image_name(exemplar.rank, random=random, original=True)] = png_bytes(image)

    def render(self, report: NeuronReport) -> dict[str, bytes]:
        """PNG bytes by file name, shaded and original, for every top and random exemplar that has an
        image (``Exemplar.has_image``)."""
        files: dict[str, bytes] = {}
        for exemplar in report.exemplars:
            self._render_one(exemplar, report.max_activation, False, files)
        for exemplar in report.random_exemplars or []:
            self._render_one(exemplar, report.max_activation, True, files)
        return files

    def store_images(self, report: NeuronReport) -> None:
        """Store the report's images (the API links them when it serves the report)."""
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
