"""The test peer's "model": rule-based answers computed from the prompt itself.

As explainer it reads the ``<start>…<end>`` records and names the tokens with the highest activations (and,
for images, the colour of the least-faded pixels); as simulator it reads the quoted tokens (or colour words)
of the explanation and predicts 10 where a token (or patch colour) matches, 0 elsewhere. Deterministic, so
tests can tell what a correct pipeline must produce.
"""

from __future__ import annotations

import base64
import io
import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from workers.vocabulary.visual_features import COLOUR_NAMES, colour_name

Role = Literal["explainer", "simulator"]

CANDIDATE_SIZES = (3, 1, 6, 2, 4, 5)
"""How many tokens choice i of an n>1 request names, so candidates differ (and score differently)."""

_BLOCK = re.compile(r"<start>\n(.*?)\n?<end>", re.DOTALL)
_QUOTED = re.compile(r'"([^"]+)"')
_GRID = re.compile(r"(\d+) rows × (\d+) columns")


@dataclass(frozen=True)
class Prompt:
    """The parts of a chat request the rules read."""

    system: str
    text: str
    images: list[bytes]


def read_prompt(messages: Sequence[dict[str, Any]]) -> Prompt:
    system: list[str] = []
    texts: list[str] = []
    images: list[bytes] = []
    for message in messages:
        content = message.get("content")
        parts: list[dict[str, Any]] = (
            [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        )
        for part in parts:
            if part.get("type") == "text":
                (system if message.get("role") == "system" else texts).append(str(part.get("text", "")))
            elif part.get("type") == "image_url":
                url = str(part.get("image_url", {}).get("url", ""))
                if url.startswith("data:") and "," in url:
                    images.append(base64.b64decode(url.split(",", 1)[1]))
    return Prompt(system="\n".join(system), text="\n".join(texts), images=images)


def role_of(prompt: Prompt) -> Role:
    return "simulator" if "Neuron explanation:" in prompt.text else "explainer"


def _lines(block: str) -> list[tuple[str, str]]:
    pairs = []
    for line in block.split("\n"):
        token, _, value = line.rpartition("\t")
        pairs.append((token, value))
    return pairs


def _normal(token: str) -> str:
    return token.strip().removeprefix("##").lower()


def top_tokens(text: str) -> list[str]:
    """Tokens of the shown records by their highest activation (ties: first seen first)."""
    best: dict[str, tuple[int, int]] = {}
    for block in _BLOCK.findall(text):
        for token, value in _lines(block):
            word = _normal(token)
            if not word or not value.strip().isdigit() or int(value) == 0:
                continue
            score = int(value)
            if word not in best or score > best[word][0]:
                best[word] = (score, best.get(word, (0, len(best)))[1])
    return [word for word, _ in sorted(best.items(), key=lambda item: (-item[1][0], item[1][1]))]


def quoted_list(words: Sequence[str]) -> str:
    quoted = [f'"{word}"' for word in words]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " and " + quoted[-1]


def explain(prompt: Prompt, choice: int) -> str:
    """One sentence completing "the main thing this neuron does is find"."""
    size = CANDIDATE_SIZES[choice % len(CANDIDATE_SIZES)]
    # Only the neuron to explain: Bills et al.'s few-shot neurons come before the last "Activations:".
    words = top_tokens(prompt.text.rsplit("Activations:", 1)[-1])[:size]
    colours = [colour for colour in (image_colour(png) for png in prompt.images) if colour]
    parts = []
    if colours:
        parts.append(f'the colour "{max(set(colours), key=colours.count)}" in the image')
    if words:
        parts.append(f"the tokens {quoted_list(words)}")
    return (" and ".join(parts) or "nothing in particular") + "."


def _explanation(text: str) -> str:
    for line in text.split("\n"):
        if line.startswith("Neuron explanation:"):
            return line
    return ""


def simulate_text(prompt: Prompt) -> list[int]:
    """10 for each listed token that the explanation quotes, 0 for the others."""
    quoted = {
        _normal(word) for phrase in _QUOTED.findall(_explanation(prompt.text)) for word in phrase.split()
    }
    blocks = _BLOCK.findall(prompt.text)
    tokens = [token for token, _ in _lines(blocks[0])] if blocks else []
    return [10 if _normal(token) in quoted else 0 for token in tokens]


def simulate_patches(prompt: Prompt) -> list[list[int]]:
    """10 for each patch whose colour the explanation names, 0 for the others."""
    explanation = _explanation(prompt.text).lower()
    named = {colour for colour in COLOUR_NAMES if re.search(rf"\b{colour}\b", explanation)}
    match = _GRID.search(prompt.text)
    rows, cols = (int(match.group(1)), int(match.group(2))) if match else (1, 1)
    if not prompt.images:
        return [[0] * cols for _ in range(rows)]
    grid = patch_colours(prompt.images[0], rows, cols)
    return [[10 if colour in named else 0 for colour in row] for row in grid]


def _pixels(png: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    from PIL import Image  # the peer's only heavy import, needed for image prompts alone

    with Image.open(io.BytesIO(png)) as image:
        rgb = image.convert("RGB")
        pixels = [(int(p[0]), int(p[1]), int(p[2])) for p in rgb.get_flattened_data()]  # type: ignore[index]
        return rgb.width, rgb.height, pixels


def vivid_colour(pixels: Sequence[tuple[int, int, int]]) -> str | None:
    """The colour name (workers.vocabulary.visual_features, the baseline's vocabulary) of the saturated
    pixels' mean; None when (nearly) all are grey or white, as faded regions of a shaded exemplar are."""
    vivid = [p for p in pixels if max(p) - min(p) > 60]
    if len(vivid) < max(1, len(pixels) // 20):
        return None
    return colour_name([sum(p[i] for p in vivid) / len(vivid) for i in range(3)])


def image_colour(png: bytes) -> str | None:
    _, _, pixels = _pixels(png)
    return vivid_colour(pixels)


def patch_colours(png: bytes, rows: int, cols: int) -> list[list[str | None]]:
    width, height, pixels = _pixels(png)
    grid: list[list[str | None]] = []
    for row in range(rows):
        y0, y1 = row * height // rows, (row + 1) * height // rows
        line: list[str | None] = []
        for col in range(cols):
            x0, x1 = col * width // cols, (col + 1) * width // cols
            line.append(vivid_colour([pixels[y * width + x] for y in range(y0, y1) for x in range(x0, x1)]))
        grid.append(line)
    return grid


def json_tokens(key: str, values: list[int] | list[list[int]]) -> list[str]:
    """The reply ``{"key": [...]}`` split into tokens, each number its own token (as real tokenizers do)."""
    tokens = [f'{{"{key}": [']
    nested = bool(values) and isinstance(values[0], list)
    rows: list[list[int]] = values if nested else [values]  # type: ignore[assignment,list-item]
    for index, row in enumerate(rows):
        if nested:
            tokens.append("[" if index == 0 else ", [")
        for position, value in enumerate(row):
            tokens.extend([", "] if position else [])
            tokens.append(str(value))
        tokens.append("]" if nested else "")
    tokens.append("]}")
    return [token for token in tokens if token]


def value_alternatives(value: int) -> list[tuple[str, float]]:
    """Top logprobs of a value token: mostly the value, some mass next to it (so the expectation differs)."""
    if value >= 10:
        return [("10", math.log(0.8)), ("9", math.log(0.1)), ("0", math.log(0.1))]
    return [(str(value), math.log(0.9)), (str(value + 1), math.log(0.1))]


def reply_json(key: str, values: list[int] | list[list[int]]) -> str:
    return json.dumps({key: values})


# --------------------------------------------------------------------------- issue 10 protocols

_TEXT_LINE = re.compile(r"^Text \d+: (.*)$", re.MULTILINE)
_MARKED = re.compile(r"<<(.+?)>>")


def _quoted_words(prompt: Prompt) -> set[str]:
    return {_normal(word) for phrase in _QUOTED.findall(_explanation(prompt.text)) for word in phrase.split()}


def scorer_of(prompt: Prompt) -> str | None:
    """Which issue-10 reply a simulator-role prompt asks for: records, detections, fuzzing (None: other)."""
    for key in ("records", "detections", "fuzzing"):
        if f'Reply with {{"{key}"' in prompt.text:
            return key
    return None


def simulate_batched(prompt: Prompt) -> list[list[int]]:
    """10 for each quoted token, per `<start>…<end>` record of a batched simulation prompt."""
    quoted = _quoted_words(prompt)
    return [
        [10 if _normal(token) in quoted else 0 for token, _ in _lines(block)]
        for block in _BLOCK.findall(prompt.text)
    ]


def judge(prompt: Prompt, key: str) -> list[int]:
    """Detection: 1 when a text holds a quoted word. Fuzzing: 1 when every marked token is quoted."""
    quoted = _quoted_words(prompt)
    answers = []
    for text in _TEXT_LINE.findall(prompt.text):
        if key == "fuzzing":
            marked = [_normal(token) for token in _MARKED.findall(text)]
            answers.append(int(bool(marked) and all(token in quoted for token in marked)))
        else:
            words = {_normal(word) for word in _MARKED.sub(r"\1", text).split()}
            answers.append(int(bool(words & quoted)))
    return answers
