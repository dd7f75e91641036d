"""`vl-probe-v2`: generated images that differ within a concept, with captions that rarely repeat.

v1 (workers/data/vl_probe.py, kept byte for byte) draws one object per image on white with one caption
per (domain, colour, subject): neuron 200's top exemplars were twenty copies of one caption. v2 keeps v1's
domains, palette and subjects (so the tiny-llava vocabulary and planted concepts still apply) and varies
within a concept: the object's size (small, large), position (left, right, top, bottom, centre), the
background (white, grey, cream), and a second or third object of another colour; colour fields get a
patch of another colour, textures a cell size, digits and houses a position. Captions name the main colour
and subject twice (as v1, so token-counting type rules still see them) in one of several sentence shapes
that also name size, position, background or the other objects. Sample i depends only on (seed, i).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from PIL import Image, ImageDraw

from workers.data.base import ListProbeSet, ProbeSample
from workers.data.vl_probe import (
    COLOURS,
    DIGIT_WORDS,
    DOMAINS,
    IMAGE_SIZE,
    PALETTE,
    PATTERNS,
    SHAPES,
    SeededSamples,
    VLSampleSpec,
    _draw_digit,
    _draw_scene,
    _draw_texture,
    fill_shape,
    seeded_probe_set,
)

VL_PROBE_V2_ID = "vl-probe-v2"
DEFAULT_SEED = 0
DEFAULT_N_SAMPLES = 512
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "white": (255, 255, 255),
    "grey": (200, 200, 200),
    "cream": (245, 235, 210),
}
"""Background words and RGB: pale, so no palette colour is mistaken for one."""
POSITIONS: dict[str, tuple[float, float]] = {
    "left": (0.28, 0.5),
    "right": (0.72, 0.5),
    "top": (0.5, 0.28),
    "bottom": (0.5, 0.72),
    "centre": (0.5, 0.5),
}
"""Position words and the object's centre as a fraction of the image side."""
SIZES: dict[str, float] = {"small": 0.16, "large": 0.3}
"""Size words and the object's radius as a fraction of the image side."""


@dataclass(frozen=True, slots=True)
class VLSpecV2:
    """Sample `index`: v1's domain, colour and subject plus what varies within the concept."""

    base: VLSampleSpec
    background: str
    position: str
    size: str
    others: tuple[tuple[str, str], ...]
    """Extra (colour, shape) objects, never the main colour."""
    shape_of_caption: int


def sample_spec_v2(index: int, seed: int = DEFAULT_SEED) -> VLSpecV2:
    rng = random.Random(f"{VL_PROBE_V2_ID}:{seed}:{index}")
    domain = DOMAINS[index % len(DOMAINS)]
    colour = COLOURS[(index // len(DOMAINS)) % len(COLOURS)]
    subject = {
        "shapes": lambda: rng.choice(SHAPES),
        "textures": lambda: rng.choice(PATTERNS),
        "digits": lambda: str(rng.randrange(10)),
        "scenes": lambda: "house",
    }.get(domain, lambda: colour)()
    base = VLSampleSpec(index, domain, colour, subject, rng.randrange(1 << 30), with_sun=rng.random() < 0.6)
    others_n = rng.choice((1, 2)) if domain in ("colours", "scenes") else rng.choice((0, 1, 1, 2))
    other_colours = [c for c in COLOURS if c != colour]
    others = tuple((rng.choice(other_colours), rng.choice(SHAPES)) for _ in range(others_n))
    return VLSpecV2(
        base,
        rng.choice(tuple(BACKGROUNDS)),
        rng.choice(tuple(POSITIONS)),
        rng.choice(tuple(SIZES)),
        others,
        rng.randrange(3),
    )


def _objects(others: tuple[tuple[str, str], ...]) -> str:
    return " and ".join(f"a {colour} {shape}" for colour, shape in others)


def caption_v2(spec: VLSpecV2) -> str:
    """The caption: main colour and subject named twice, plus what varies, in one of three shapes."""
    b, where, size, bg = spec.base, spec.position, spec.size, spec.background
    colour, subject = b.colour, b.subject
    extra = f" next to {_objects(spec.others)}" if spec.others else ""
    match b.domain, spec.shape_of_caption:
        case "shapes", 0:
            return f"a {size} {colour} {subject} on the {where}{extra}. the {subject} is {colour}."
        case "shapes", 1:
            return f"on a {bg} background, a {colour} {subject} at the {where}{extra}. {colour} {subject}."
        case "shapes", _:
            return f"the {colour} {subject} is {size} and sits {where}{extra}, the {subject} being {colour}."
        case "colours", 0:
            objects = _objects(spec.others)
            return f"a plain {colour} picture with {objects} on the {where}. all else is {colour}."
        case "colours", _:
            return f"{colour} all over, with {_objects(spec.others)} at the {where}. {colour}."
        case "textures", 0:
            return f"{size} {colour} {subject} on {bg}{extra}. the {subject} are {colour}."
        case "textures", _:
            return f"a {bg} pattern of {colour} {subject}{extra}; {size} {subject}, all {colour}."
        case "digits", shape:
            word = DIGIT_WORDS[int(subject)]
            lead = "the digit" if shape else "a white"
            return f"{lead} {subject} on a {colour} card{extra}. the number {word} on {colour}."
        case _:
            sun = " and a yellow sun" if b.with_sun else ""
            return f"a {size} {colour} house under a blue sky{sun}{extra}. the house is {colour}."


def draw_v2(spec: VLSpecV2, size: int = IMAGE_SIZE) -> Image.Image:
    """Draw the sample's RGB image, `size` × `size` pixels."""
    b = spec.base
    rng = random.Random(b.variant)
    rgb = PALETTE[b.colour]
    background = rgb if b.domain in ("colours", "digits") else BACKGROUNDS[spec.background]
    image = Image.new("RGB", (size, size), background)
    canvas = ImageDraw.Draw(image)
    match b.domain:
        case "textures":
            _draw_texture(canvas, b.subject, rgb, size, rng)
        case "digits":
            _draw_digit(canvas, int(b.subject), rgb, size, rng)
        case "scenes":
            _draw_scene(canvas, rgb, b.with_sun, size, rng)
    taken = {spec.position} if b.domain != "colours" else set()
    for colour, shape in spec.others:
        free = [p for p in POSITIONS if p not in taken] or list(POSITIONS)
        where = spec.position if b.domain == "colours" and not taken else rng.choice(free)
        taken.add(where)
        fill_shape(canvas, shape, PALETTE[colour], *_place(where, "small", size, rng))
    if b.domain == "shapes":  # drawn last: the main object stays whole
        fill_shape(canvas, b.subject, rgb, *_place(spec.position, spec.size, size, rng))
    return image


def _place(position: str, size_word: str, size: int, rng: random.Random) -> tuple[float, float, float]:
    fx, fy = POSITIONS[position]
    radius = size * SIZES[size_word] * rng.uniform(0.9, 1.1)
    jitter = size * 0.04
    return fx * size + rng.uniform(-jitter, jitter), fy * size + rng.uniform(-jitter, jitter), radius


class VLProbeV2Samples(SeededSamples):
    """The samples of `vl-probe-v2`; each image is drawn when its sample is read."""

    def make(self, index: int) -> ProbeSample:
        spec = sample_spec_v2(index, self._seed)
        return ProbeSample(index, caption_v2(spec), spec.base.domain, draw_v2(spec, self._size))


def generate_vl_probe_v2(
    n_samples: int = DEFAULT_N_SAMPLES,
    seed: int = DEFAULT_SEED,
    revision: str = "1",
    image_size: int = IMAGE_SIZE,
) -> ListProbeSet:
    """The `vl-probe-v2` probe set: `n_samples` seeded image + caption samples with domain labels."""
    return seeded_probe_set(VL_PROBE_V2_ID, VLProbeV2Samples, n_samples, seed, revision, image_size)
