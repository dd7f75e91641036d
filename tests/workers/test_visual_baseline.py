"""The visual baseline explainer and simulator on hand-built image records: colour names, positions, the
phrase both sides parse, per-patch predictions from pixels, and text neurons left to the text baseline."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from workers.data.base import ProbeSample
from workers.data.images import ProbeSetImages
from workers.explain.baseline import BaselineExplainer
from workers.explain.visual_baseline import VisualBaselineExplainer
from workers.process.backends import make_explainer, make_simulator
from workers.simulate.base import SimulationInput
from workers.simulate.baseline import BaselineSimulator
from workers.simulate.visual_baseline import VisualBaselineSimulator
from workers.vocabulary.records import (
    MODALITY_IMAGE,
    MODALITY_TEXT,
    ActivationRecord,
    NeuronRecords,
    TokenRecord,
)
from workers.vocabulary.visual_features import (
    VisualConcept,
    colour_name,
    format_visual,
    patch_colours,
    position_name,
    split_explanation,
)

GRID = (8, 8)
RED, BLUE = (220, 30, 30), (30, 70, 220)
CAPTION = ("a", "red", "square", "on", "white", ".")


def quadrant_image(colour: tuple[int, int, int], quadrant: tuple[int, int], size: int = 64) -> Image.Image:
    """White image with one quadrant (row, col in 0–1) filled with `colour`."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    half = size // 2
    left, top = quadrant[1] * half, quadrant[0] * half
    ImageDraw.Draw(image).rectangle((left, top, left + half - 1, top + half - 1), fill=colour)
    return image


def quadrant_patches(quadrant: tuple[int, int]) -> np.ndarray:
    """bool [64]: the patches of an 8×8 grid inside a quadrant."""
    rows, cols = np.divmod(np.arange(64), 8)
    return (rows // 4 == quadrant[0]) & (cols // 4 == quadrant[1])


def image_record(sample_id: int, caption: tuple[str, ...] = CAPTION) -> TokenRecord:
    tokens = tuple(f"<patch {r},{c}>" for r in range(8) for c in range(8)) + caption
    modality = np.array([MODALITY_IMAGE] * 64 + [MODALITY_TEXT] * len(caption), dtype=np.uint8)
    return TokenRecord(sample_id=sample_id, tokens=tokens, modality=modality, patch_grid=GRID)


def activations(
    patches: np.ndarray, caption: tuple[str, ...] = CAPTION, word: str | None = None
) -> np.ndarray:
    text = [5.0 if token == word else 0.0 for token in caption]
    return np.concatenate([np.where(patches, 5.0, 0.0), text]).astype(np.float32)


@pytest.fixture()
def red_top_left() -> tuple[ProbeSetImages, NeuronRecords]:
    """Ten images with a red top-left quadrant (the neuron fires there) and their records."""
    images = [quadrant_image(RED, (0, 0)) for _ in range(10)]
    samples = [ProbeSample(id=i, text=" ".join(CAPTION), image=image) for i, image in enumerate(images)]
    records = [ActivationRecord(image_record(i), activations(quadrant_patches((0, 0)))) for i in range(10)]
    return ProbeSetImages(samples), NeuronRecords(2, 7, 5.0, records, neuron_type="visual")


def test_colour_and_position_names() -> None:
    assert colour_name((215, 40, 35)) == "red" and colour_name((90, 160, 240)) == "blue"
    assert colour_name((250, 250, 245)) == "white"
    assert position_name((0.1, 0.1)) == "top-left" and position_name((0.5, 0.5)) == "centre"
    assert position_name((0.9, 0.5)) == "bottom" and position_name((0.5, 0.99)) == "right"


def test_patch_colours_are_the_mean_pixels_under_each_patch() -> None:
    image = quadrant_image(BLUE, (1, 1), size=64)
    colours = patch_colours(image, (2, 2))
    assert colours.tolist() == [[255, 255, 255], [255, 255, 255], [255, 255, 255], list(BLUE)]
    stretched = patch_colours(image.resize((40, 40), Image.Resampling.NEAREST), GRID)
    assert np.allclose(stretched[quadrant_patches((1, 1))], BLUE)


@pytest.mark.parametrize(
    "concept",
    [
        VisualConcept(rgb=(221, 32, 30), position=None, caption_words=("red", "circle", "square")),
        VisualConcept(rgb=(40, 90, 225), position="top-left"),
        VisualConcept(rgb=None, position="bottom", caption_words=("sky",)),
    ],
)
def test_visual_phrase_round_trips(concept: VisualConcept) -> None:
    phrase = format_visual(concept)
    assert phrase.startswith("image regions ")
    assert split_explanation(phrase) == ("", concept)
    text = 'the tokens "red" and "reds", often after "the"'
    assert split_explanation(f"{text}; and {phrase}") == (text, concept)


def test_text_explanations_have_no_visual_part() -> None:
    assert split_explanation('the token "red"') == ('the token "red"', None)
    assert split_explanation("image regions that are red, somewhere")[1] is None
    assert split_explanation("image regions of any colour, in the middle-ish of the image")[1] is None


def test_explainer_names_colour_position_and_caption_words(
    red_top_left: tuple[ProbeSetImages, NeuronRecords],
) -> None:
    images, neuron = red_top_left
    [result] = VisualBaselineExplainer(images).explain([neuron])
    assert result.text == (
        "image regions that are red (RGB 220, 30, 30), in the top-left of the image, "
        "in images whose captions often say red, square and white"
    )
    assert result.prompt_version == "baseline-visual-1"


def test_multimodal_neuron_gets_text_and_visual_parts(
    red_top_left: tuple[ProbeSetImages, NeuronRecords],
) -> None:
    images, neuron = red_top_left
    records = [
        ActivationRecord(r.record, activations(quadrant_patches((0, 0)), word="red")) for r in neuron.records
    ]
    multimodal = NeuronRecords(2, 7, 5.0, records, neuron_type="multimodal")
    [result] = VisualBaselineExplainer(images).explain([multimodal])
    assert result.text.startswith(
        'the token "red", often after "a"; and image regions that are red (RGB 220, 30, 30)'
    )
    assert result.prompt_version == "baseline-text-3+baseline-visual-1"


def test_text_neurons_get_the_text_baseline(red_top_left: tuple[ProbeSetImages, NeuronRecords]) -> None:
    images, neuron = red_top_left
    records = [
        ActivationRecord(r.record, activations(np.zeros(64, bool), word="square")) for r in neuron.records
    ]
    text_neuron = NeuronRecords(2, 7, 5.0, records, neuron_type="text")
    assert VisualBaselineExplainer(images).explain([text_neuron]) == BaselineExplainer().explain(
        [text_neuron]
    )


def test_spread_patches_of_mixed_colours_are_any_colour_anywhere() -> None:
    corners = [(0, 0), (0, 1), (1, 0), (1, 1)]
    colours = [RED, BLUE, (40, 160, 60), (240, 210, 30)]
    images = [quadrant_image(colour, q) for colour, q in zip(colours, corners, strict=True)]
    samples = [ProbeSample(id=i, text="x", image=image) for i, image in enumerate(images)]
    records = [
        ActivationRecord(image_record(i), activations(quadrant_patches(q))) for i, q in enumerate(corners)
    ]
    neuron = NeuronRecords(0, 0, 5.0, records, neuron_type="visual")
    [result] = VisualBaselineExplainer(ProbeSetImages(samples)).explain([neuron])
    assert result.text.startswith("image regions of any colour, anywhere in the image")


def test_simulator_predicts_patches_from_pixels_and_position() -> None:
    images = [quadrant_image(RED, (0, 0)), quadrant_image(RED, (1, 1)), quadrant_image(BLUE, (0, 0))]
    samples = [ProbeSample(id=i, text="x", image=image) for i, image in enumerate(images)]
    records = [image_record(i) for i in range(3)]
    simulator = VisualBaselineSimulator(ProbeSetImages(samples))
    anywhere = format_visual(VisualConcept(rgb=RED, position=None))
    top_left = format_visual(VisualConcept(rgb=RED, position="top-left"))
    [free, placed] = simulator.simulate(
        [SimulationInput(anywhere, records), SimulationInput(top_left, records)]
    )
    assert free.parse_failures == 0
    red_here, red_there, blue_here = (np.asarray(p) for p in free.predictions)  # type: ignore[arg-type]
    inside, outside = quadrant_patches((0, 0)), ~quadrant_patches((0, 0))
    assert np.allclose(red_here[:64][inside], 10.0) and red_here[:64][outside].max() < 0.01
    assert np.allclose(red_there[:64][quadrant_patches((1, 1))], 10.0)
    assert blue_here[:64].max() < 0.01
    assert not red_here[64:].any()  # no text part: caption tokens are predicted 0
    placed_there = np.asarray(placed.predictions[1])
    assert placed_there[:64][quadrant_patches((1, 1))].max() < 5.0  # red, but far from the top-left


def test_simulator_reads_the_text_part_and_fails_without_either_part() -> None:
    samples = [ProbeSample(id=0, text="x", image=quadrant_image(RED, (0, 0)))]
    record = image_record(0)
    simulator = VisualBaselineSimulator(ProbeSetImages(samples))
    both = 'the token "red"; and ' + format_visual(VisualConcept(rgb=RED, position=None))
    [mixed, nothing] = simulator.simulate(
        [SimulationInput(both, [record]), SimulationInput("nothing", [record])]
    )
    prediction = np.asarray(mixed.predictions[0])
    assert prediction[64 + CAPTION.index("red")] == 10.0 and prediction[64:].sum() == 10.0
    assert np.allclose(prediction[:64][quadrant_patches((0, 0))], 10.0)
    assert nothing.predictions == [None] and nothing.parse_failures == 1


def test_backends_pick_the_visual_baseline_when_given_images() -> None:
    from workers.llm.caller import LLMCallers
    from workers.llm.endpoints import LLMEndpoints

    settings = LLMCallers(LLMEndpoints())  # no LLM endpoint configured
    images = ProbeSetImages([])
    assert isinstance(make_explainer("baseline", settings, images=images), VisualBaselineExplainer)
    assert isinstance(make_explainer("baseline", settings), BaselineExplainer)
    assert isinstance(make_simulator("baseline", settings, images=images), VisualBaselineSimulator)
    assert isinstance(make_simulator("baseline", settings), BaselineSimulator)
