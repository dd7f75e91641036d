"""Pin files: read (YAML or JSON), written from a finished job's reports, and turned into a check request.

    from neuronlens import Client, read_pin_file
    with Client() as client:
        status = client.check(read_pin_file("pins.yaml"), model="my-model-v2")
        print(status.passed)

A pin file is the contract's `PinFile` (docs: Pins): `model` (optional), `hook`, `units`, `dataset`,
`simulator`, `endpoint`, `options` and `pins`, each `{layer, neuron, explanation}` with what must hold
(`type`, `min_score`, `max_score_drop` with `base_score`). YAML needs PyYAML (installed with the SDK).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError

from neuronlens._contract import (
    CheckAccepted,
    CheckEstimate,
    CheckRequest,
    CheckStatus,
    NeuronReport,
    Pin,
    PinFile,
)
from neuronlens.errors import JobFailed, RequestRejected, WaitTimeout

YAML_SUFFIXES = (".yaml", ".yml")


class PinFileError(RequestRejected):
    """A pin file that cannot be read or does not validate (the `neuronlens` command exits 2)."""


def _problems(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "the file"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def parse_pin_text(text: str, name: str = "pin file", yaml_format: bool | None = None) -> PinFile:
    """The pin file in ``text``: YAML when ``yaml_format`` (None: JSON when it parses as JSON, else YAML);
    `PinFileError` naming the line (syntax) or the field (schema) otherwise."""
    data: Any
    if yaml_format is not True:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            if yaml_format is False:
                raise PinFileError(f"{name} is not valid JSON: line {exc.lineno}: {exc.msg}") from None
            data = _load_yaml(text, name)
    else:
        data = _load_yaml(text, name)
    if not isinstance(data, Mapping):
        raise PinFileError(f"{name} must hold a mapping with `pins` (a list), not {type(data).__name__}")
    try:
        return PinFile.model_validate(data)
    except ValidationError as exc:
        raise PinFileError(f"{name} is not a valid pin file: {_problems(exc)}") from None


def _load_yaml(text: str, name: str) -> Any:
    try:
        import yaml
    except ImportError:  # pragma: no cover - PyYAML is a dependency of the SDK
        raise PinFileError(
            f"{name}: reading YAML needs PyYAML (pip install pyyaml), or write it as JSON"
        ) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise PinFileError(f"{name} is not valid YAML: {where}{problem}") from None


def read_pin_file(path: str | os.PathLike[str]) -> PinFile:
    """The pin file at ``path``: YAML for `.yaml`/`.yml`, JSON for `.json`, else by content."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PinFileError(f"cannot read the pin file {file}: {exc.strerror or exc}") from None
    suffix = file.suffix.lower()
    yaml_format = True if suffix in YAML_SUFFIXES else False if suffix == ".json" else None
    return parse_pin_text(text, str(file), yaml_format)


PinsLike = PinFile | CheckRequest | Mapping[str, Any] | Sequence[Pin | Mapping[str, Any]]
"""What a check is built from: a pin file, a check request, their JSON as a mapping, or a list of pins."""


def check_request(pins: PinsLike, model: str | None = None, **fields: Any) -> CheckRequest:
    """The `POST /v1/checks` body: ``pins`` with ``model`` (overriding the file's) and ``fields`` (hook,
    units, dataset, simulator, endpoint, options, dry_run, budget; None values left out); `RequestRejected`
    naming the field when it does not validate, or when no model is named."""
    if isinstance(pins, (PinFile, CheckRequest)):
        body = pins.model_dump(mode="json", exclude_none=True)
    elif isinstance(pins, Mapping):
        body = dict(pins)
    else:
        body = {"pins": [p.model_dump(mode="json") if isinstance(p, Pin) else dict(p) for p in pins]}
    body.pop("version", None)
    body.update({name: value for name, value in fields.items() if value is not None})
    if model is not None:
        body["model"] = model
    if not body.get("model"):
        raise RequestRejected("no model to check: name it with --model (or `model:` in the pin file)")
    try:
        return CheckRequest.model_validate(body)
    except ValidationError as exc:
        raise RequestRejected(f"invalid check: {_problems(exc)}") from None


def pins_from_reports(
    reports: Iterable[NeuronReport],
    *,
    min_score: float | None = None,
    max_score_drop: float | None = None,
    pin_type: bool = True,
) -> tuple[PinFile | None, list[NeuronReport]]:
    """A pin file from reports (a finished job's): per report its explanation, its type (``pin_type``) and
    its score as `base_score`, with ``min_score`` and ``max_score_drop``. Reports whose score is undefined
    or below ``min_score`` are left out (they would fail at once) and returned as the second item; the pin
    file is None when none is left."""
    kept: list[NeuronReport] = []
    left_out: list[NeuronReport] = []
    for report in reports:
        score = report.simulation.correlation
        if score is None or (min_score is not None and score < min_score):
            left_out.append(report)
        else:
            kept.append(report)
    if not kept:
        return None, left_out
    first = kept[0]
    pins = [
        Pin(
            layer=r.layer,
            neuron=r.neuron,
            explanation=r.explanation.text,
            type=r.neuron_type if pin_type else None,
            min_score=min_score,
            max_score_drop=max_score_drop,
            base_score=round(float(r.simulation.correlation or 0.0), 4),
        )
        for r in kept
    ]
    backend = first.simulation.backend
    pin_file = PinFile.model_validate(
        {
            "model": first.model,
            "hook": first.hook,
            "units": first.dictionary.id if first.dictionary is not None else None,
            "dataset": first.dataset.id,
            "simulator": backend if backend in ("baseline", "openai") else None,
            "options": first.provenance.options_changed(),
            "pins": pins,
        }
    )
    return pin_file, left_out


def dump_pin_file(pin_file: PinFile, yaml_format: bool = True) -> str:
    """The pin file as YAML (or JSON), defaults and nulls left out, `version` kept."""
    data = pin_file.model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    data = {"version": pin_file.version, "model": pin_file.model, **data}
    if pin_file.model is None:
        del data["model"]
    data["pins"] = [pin.model_dump(mode="json", exclude_none=True) for pin in pin_file.pins]
    if not yaml_format:
        return json.dumps(data, indent=2) + "\n"
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def check_body(request: CheckRequest) -> dict[str, Any]:
    return request.model_dump(mode="json", exclude_none=True)


def parse_check_submission(response: httpx.Response) -> CheckAccepted | CheckEstimate:
    """202: the check to follow; 200: a dry run's estimate."""
    if response.status_code == 200:
        return CheckEstimate.model_validate_json(response.content)
    return CheckAccepted.model_validate_json(response.content)


def accepted_check(answer: CheckAccepted | CheckEstimate) -> CheckAccepted:
    if isinstance(answer, CheckEstimate):
        raise RequestRejected("a dry run answers an estimate, not a check: use submit_check(dry_run=True)")
    return answer


class CheckPoll:
    """One wait for check ``check_id``: `done` checks each polled status (``progress``, failure, the
    ``timeout_s`` deadline)."""

    def __init__(
        self, check_id: str, progress: Callable[[CheckStatus], None] | None, timeout_s: float | None
    ) -> None:
        self.check_id, self.progress, self.timeout_s = check_id, progress, timeout_s
        self.deadline = None if timeout_s is None else time.monotonic() + timeout_s

    def done(self, status: CheckStatus) -> bool:
        """True once finished (whether or not every pin passed); `JobFailed` when the check could not run,
        `WaitTimeout` past the deadline; False: poll again."""
        if self.progress is not None:
            self.progress(status)
        if status.status == "failed":
            raise JobFailed(self.check_id, status.error)
        if status.status == "finished":
            return True
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise WaitTimeout(
                f"check {self.check_id} is still {status.status} after {self.timeout_s:g}s; stopped waiting "
                f"(it goes on in the service: GET /v1/checks/{self.check_id})"
            )
        return False


def pin_file_schema() -> str:
    """The JSON Schema of a pin file, as docs/pin-file.schema.json publishes it."""
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema", **PinFile.model_json_schema()}
    schema["title"] = "NeuronLens pin file"
    return json.dumps(schema, indent=2) + "\n"
