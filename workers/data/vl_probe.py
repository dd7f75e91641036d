"""`vl-probe-v1`: generated images of shapes, colours, textures, digits and simple scenes, with captions.

Every caption names what its image shows, and names the main colour (and the shape, pattern or digit)
twice, so a neuron tuned to a word has at least two text tokens per sample (typing counts tokens:
docs/method.md#neuron-types).
Sample i depends only on (seed, i): the same seed gives identical images and captions, and a smaller set
is a prefix of a larger one. Domains take turns (sample i is in domain i mod 5) and each domain cycles
through the palette, so every (domain, colour) pair has the same number of samples (±1).

Images are drawn on demand when a sample is read, never stored. Geometry snaps to multiples of
`image_size / 8`, the patch grid of tiny-llava, so its patches are mostly one colour.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from workers.data.base import LazySamples, ListProbeSet, ProbeSample

VL_PROBE_ID = "vl-probe-v1"
DEFAULT_SEED = 0
"""Generator seed of the registry's `vl-probe-v1` (its revision pins this)."""
DEFAULT_N_SAMPLES = 512
IMAGE_SIZE = 128
"""Side of the generated square images, pixels."""
QUESTION = "Describe the image."
"""The question of the prompt template; the caption is the answer, fed with teacher forcing."""

DOMAINS: tuple[str, ...] = ("shapes", "colours", "textures", "digits", "scenes")
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (40, 160, 60),
    "blue": (30, 70, 220),
    "yellow": (240, 210, 30),
    "orange": (245, 140, 20),
    "purple": (150, 60, 170),
    "black": (20, 20, 20),
}
"""Colour words and their RGB. Chosen far apart, so "red" regions are red and nothing else is."""
COLOURS: tuple[str, ...] = tuple(PALETTE)
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "cross")
PATTERNS: tuple[str, ...] = ("stripes", "dots", "checkers")
DIGIT_WORDS: tuple[str, ...] = (
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
)
WHITE = (255, 255, 255)
SKY = (90, 160, 240)
GRASS = (40, 150, 50)
SUN = (250, 220, 40)
ROOF = (120, 60, 40)

# Seven-segment digits: segments a..g lit for each digit.
_SEGMENTS = {
    0: "abcdef", 1: "bc", 2: "abdeg", 3: "abcdg", 4: "bcfg",
    5: "acdfg", 6: "acdefg", 7: "abc", 8: "abcdefg", 9: "abcdfg",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class VLSampleSpec:
    """Everything needed to draw one sample and write its caption."""

    index: int
    """Sample index in the probe set."""
    domain: str
    """One of DOMAINS."""
    colour: str
    """Main colour word (key of PALETTE)."""
    subject: str
    """Shape name, pattern name, digit (as a string) or "house", by domain; the colour name for colours."""
    variant: int
    """Seeded integer choosing the geometry (position, size, orientation) within the domain."""
    with_sun: bool = False
    """Scenes only: whether a sun is drawn (and named)."""


def sample_spec(index: int, seed: int = DEFAULT_SEED) -> VLSampleSpec:
    """The spec of sample `index` for `seed`; depends on nothing else."""
    rng = random.Random(seed * 1_000_003 + index)
    domain = DOMAINS[index % len(DOMAINS)]
    colour = COLOURS[(index // len(DOMAINS)) % len(COLOURS)]
    variant = rng.randrange(1 << 30)
    match domain:
        case "shapes":
            subject = rng.choice(SHAPES)
        case "textures":
            subject = rng.choice(PATTERNS)
        case "digits":
            subject = str(rng.randrange(10))
        case "scenes":
            return VLSampleSpec(index, domain, colour, "house", variant, with_sun=rng.random() < 0.7)
        case _:
            subject = colour
    return VLSampleSpec(index, domain, colour, subject, variant)


def caption(spec: VLSampleSpec) -> str:
    """The description of the sample's image, naming the colour and subject twice."""
    colour, subject = spec.colour, spec.subject
    match spec.domain:
        case "shapes":
            return f"a {colour} {subject} on a white background. the {subject} is {colour}."
        case "colours":
            return f"a plain {colour} picture. everything is {colour}."
        case "textures":
            return f"{colour} and white {subject}. the {subject} are {colour}."
        case "digits":
            word = DIGIT_WORDS[int(subject)]
            return f"the digit {subject} in white on a {colour} background. the number {word} on {colour}."
        case _:
            sun = " with a yellow sun" if spec.with_sun else ""
            return f"a {colour} house on green grass under a blue sky{sun}. the house is {colour}."


def draw(spec: VLSampleSpec, size: int = IMAGE_SIZE) -> Image.Image:
    """Draw the sample's RGB image, `size` × `size` pixels."""
    rng = random.Random(spec.variant)
    rgb = PALETTE[spec.colour]
    if spec.domain == "colours":
        return _draw_colour_field(rgb, size, rng)
    image = Image.new("RGB", (size, size), WHITE)
    canvas = ImageDraw.Draw(image)
    match spec.domain:
        case "shapes":
            _draw_shape(canvas, spec.subject, rgb, size, rng)
        case "textures":
            _draw_texture(canvas, spec.subject, rgb, size, rng)
        case "digits":
            _draw_digit(canvas, int(spec.subject), rgb, size, rng)
        case _:
            _draw_scene(canvas, rgb, spec.with_sun, size, rng)
    return image


def _draw_colour_field(rgb: tuple[int, int, int], size: int, rng: random.Random) -> Image.Image:
    # Mild seeded noise so colour samples are not pixel-identical; ±12 keeps every colour recognisable.
    noise = np.random.default_rng(rng.randrange(1 << 30)).integers(-12, 13, size=(size, size, 3))
    pixels = np.clip(np.asarray(rgb, dtype=np.int64) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, mode="RGB")


def _polygon(cx: float, cy: float, radii: Sequence[float], turn: float) -> list[tuple[float, float]]:
    """Points at equal angles around (cx, cy), radius cycling through `radii`, starting at `turn` rad."""
    n = len(radii)
    return [
        (
            cx + radii[k] * math.sin(turn + 2 * math.pi * k / n),
            cy - radii[k] * math.cos(turn + 2 * math.pi * k / n),
        )
        for k in range(n)
    ]


def _draw_shape(
    canvas: ImageDraw.ImageDraw, shape: str, rgb: tuple[int, int, int], size: int, rng: random.Random
) -> None:
    radius = size * rng.uniform(0.30, 0.42)
    cx = rng.uniform(radius, size - radius)
    cy = rng.uniform(radius, size - radius)
    fill_shape(canvas, shape, rgb, cx, cy, radius)


def fill_shape(
    canvas: ImageDraw.ImageDraw, shape: str, rgb: tuple[int, int, int], cx: float, cy: float, radius: float
) -> None:
    """Fill one of SHAPES centred at (cx, cy), `radius` pixels from centre to its outer points."""
    match shape:
        case "circle":
            canvas.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=rgb)
        case "square":
            half = radius * 0.85
            canvas.rectangle((cx - half, cy - half, cx + half, cy + half), fill=rgb)
        case "triangle":
            canvas.polygon(_polygon(cx, cy + radius * 0.2, [radius * 1.2] * 3, 0.0), fill=rgb)
        case "star":
            canvas.polygon(_polygon(cx, cy, [radius, radius * 0.6] * 5, 0.0), fill=rgb)
        case "diamond":
            canvas.polygon(_polygon(cx, cy, [radius, radius * 0.8] * 2, 0.0), fill=rgb)
        case _:
            arm = radius * 0.4
            canvas.rectangle((cx - radius, cy - arm, cx + radius, cy + arm), fill=rgb)
            canvas.rectangle((cx - arm, cy - radius, cx + arm, cy + radius), fill=rgb)


def _draw_texture(
    canvas: ImageDraw.ImageDraw, pattern: str, rgb: tuple[int, int, int], size: int, rng: random.Random
) -> None:
    cell = size // 8
    match pattern:
        case "stripes":
            width = cell * rng.choice((1, 2))
            vertical = rng.random() < 0.5
            for start in range(rng.choice((0, width)), size, 2 * width):
                box = (start, 0, start + width - 1, size) if vertical else (0, start, size, start + width - 1)
                canvas.rectangle(box, fill=rgb)
        case "dots":
            radius = cell * 1.6
            offset = cell * rng.choice((2, 3))
            for cy in range(offset, size, 4 * cell):
                for cx in range(offset, size, 4 * cell):
                    canvas.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=rgb)
        case _:
            square = cell * 2
            parity = rng.randrange(2)
            for row in range(size // square):
                for col in range(size // square):
                    if (row + col) % 2 == parity:
                        x, y = col * square, row * square
                        canvas.rectangle((x, y, x + square - 1, y + square - 1), fill=rgb)


def _draw_digit(
    canvas: ImageDraw.ImageDraw, digit: int, rgb: tuple[int, int, int], size: int, rng: random.Random
) -> None:
    # White seven-segment digit on a coloured card, so the colour covers most patches.
    canvas.rectangle((0, 0, size, size), fill=rgb)
    width, height = size * rng.uniform(0.35, 0.45), size * rng.uniform(0.6, 0.7)
    left = rng.uniform(size * 0.1, size - width - size * 0.1)
    top = rng.uniform(size * 0.08, size - height - size * 0.08)
    thick = size * 0.08
    right, middle, bottom = left + width, top + height / 2, top + height
    segments = {
        "a": (left, top, right, top + thick),
        "b": (right - thick, top, right, middle),
        "c": (right - thick, middle, right, bottom),
        "d": (left, bottom - thick, right, bottom),
        "e": (left, middle, left + thick, bottom),
        "f": (left, top, left + thick, middle),
        "g": (left, middle - thick / 2, right, middle + thick / 2),
    }
    for name in _SEGMENTS[digit]:
        canvas.rectangle(segments[name], fill=WHITE)


def _draw_scene(
    canvas: ImageDraw.ImageDraw, rgb: tuple[int, int, int], with_sun: bool, size: int, rng: random.Random
) -> None:
    cell = size // 8
    horizon = cell * rng.choice((5, 6))
    canvas.rectangle((0, 0, size, horizon), fill=SKY)
    canvas.rectangle((0, horizon, size, size), fill=GRASS)
    if with_sun:
        sun_x, sun_r = rng.uniform(size * 0.15, size * 0.85), size * 0.1
        canvas.ellipse((sun_x - sun_r, size * 0.05, sun_x + sun_r, size * 0.05 + 2 * sun_r), fill=SUN)
    width, height = cell * rng.choice((3, 4)), cell * 3
    left = cell * rng.randrange(0, 8 - width // cell + 1)
    bottom = horizon + cell
    canvas.rectangle((left, bottom - height, left + width - 1, bottom - 1), fill=rgb)
    roof_top = bottom - height - cell * 1.5
    canvas.polygon(
        [(left - 4, bottom - height), (left + width + 3, bottom - height), (left + width / 2, roof_top)],
        fill=ROOF,
    )


class SeededSamples(LazySamples):
    """`n_samples` generated samples of `image_size` pixels; sample i depends only on (seed, i)."""

    def __init__(self, n_samples: int, seed: int, image_size: int) -> None:
        self._n = n_samples
        self._seed = seed
        self._size = image_size

    def __len__(self) -> int:
        return self._n


class VLProbeSamples(SeededSamples):
    """The samples of a generated set; each image is drawn when its sample is read."""

    def make(self, index: int) -> ProbeSample:
        spec = self.spec(index)
        return ProbeSample(id=index, text=caption(spec), domain=spec.domain, image=draw(spec, self._size))

    def spec(self, index: int) -> VLSampleSpec:
        """What sample `index` shows, without drawing it."""
        return sample_spec(index, self._seed)


def seeded_probe_set(
    probe_id: str, kind: type[SeededSamples], n_samples: int, seed: int, revision: str, image_size: int
) -> ListProbeSet:
    """A vision-language probe set `probe_id` of `n_samples` (at least 1) samples from `kind`."""
    if n_samples < 1:
        raise ValueError(f"n_samples must be at least 1, got {n_samples}")
    samples = kind(n_samples, seed, image_size)
    return ListProbeSet(id=probe_id, revision=revision, modality="vision-language", samples=samples)


def generate_vl_probe(
    n_samples: int = DEFAULT_N_SAMPLES,
    seed: int = DEFAULT_SEED,
    revision: str = "1",
    image_size: int = IMAGE_SIZE,
) -> ListProbeSet:
    """The `vl-probe-v1` probe set: `n_samples` seeded image + caption samples with domain labels."""
    return seeded_probe_set(VL_PROBE_ID, VLProbeSamples, n_samples, seed, revision, image_size)


def caption_corpus() -> list[str]:
    """Every word the generator can write, as short texts (what the tiny tokenizer is trained on)."""
    words = [*COLOURS, *SHAPES, *PATTERNS, *DIGIT_WORDS, *(str(d) for d in range(10))]
    specs = [sample_spec(i) for i in range(len(DOMAINS) * len(COLOURS) * 4)]
    return [" ".join(words), *(caption(spec) for spec in specs), *(caption(_full_scene(c)) for c in COLOURS)]


def _full_scene(colour: str) -> VLSampleSpec:
    return VLSampleSpec(0, "scenes", colour, "house", 0, with_sun=True)
