"""A request's unit basis: the model's neurons, or the latents of one of its dictionaries (SAEs and
transcoders; docs/dictionaries.md). Resolved once, before layers, hook and neurons are checked, so every
later check reads the model as the request sees it (`ModelSpec.through`)."""

from __future__ import annotations

from service.contract import NEURONS, ModelSpec
from service.contract.dictionary_checks import header_errors
from service.contract.dictionary_files import read_dictionary_header
from service.contract.dictionary_formats import DictionaryFileError
from service.problems import InvalidInput


def resolve_units(
    model: ModelSpec, units: str | None, hook: str | None, shards: int | None = None, field: str = "units"
) -> ModelSpec:
    """``model`` seen through ``units`` (itself for `neurons` or None); InvalidInput naming ``field`` for a
    dictionary the model does not have, a ``hook`` other than the dictionary's own, or ``shards`` > 1
    (a dictionary's latents are scanned by one worker)."""
    if units is None or units == NEURONS:
        return model
    try:
        seen = model.through(units)
    except KeyError:
        offered = ", ".join([NEURONS, *(d.id for d in model.dictionaries)])
        raise InvalidInput.for_field(
            field, f"units {units!r} is not offered by {model.id}: choose one of {offered}"
        ) from None
    assert seen.units is not None
    if hook is not None and hook != seen.units.hook:
        raise InvalidInput.for_field(
            "hook",
            f"dictionary {units} reads hook point {seen.units.hook!r} of {model.id}, not {hook!r}: "
            "leave `hook` out or name that one",
        )
    if shards is not None and shards > 1:
        raise InvalidInput.for_field(
            "shards", f"latents of dictionary {units} are scanned by one worker: leave `shards` out or give 1"
        )
    return seen


def check_dictionary_files(model: ModelSpec, layers: list[int], field: str = "units") -> None:
    """For a model seen through a dictionary: read each of ``layers``' dictionary headers (`cfg.json` and the
    safetensors header, no weights) and refuse, naming the file and field, one that cannot run on its hook
    point (width, architecture, normalisation, tensor shapes, missing or unreadable files). The workers
    check the weights themselves (finite values) when they load them."""
    spec = model.units
    if spec is None:
        return
    registry_model = model.registry_model
    output = spec.output_hook
    problems: list[str] = []
    for layer in layers:
        try:
            header = read_dictionary_header(spec.path(layer))
        except DictionaryFileError as exc:
            problems.append(f"layer {layer}: {exc}")
            continue
        errors = header_errors(
            header,
            registry_model.hook_width(spec.hook),
            None if output is None else registry_model.hook_width(output),
            hook_label=f"hook {spec.hook} of {model.id}",
            out_label=f"hook {output} of {model.id}",
        )
        if header.d_sae != spec.latents:
            errors.append(
                f"{header.cfg_file} d_sae is {header.d_sae} but the registry says {spec.latents} latents"
            )
        if header.kind != spec.kind:
            errors.append(f"the files hold a {header.kind}, the registry says {spec.kind}")
        problems.extend(f"layer {layer}: {error}" for error in errors)
    if problems:
        raise InvalidInput.for_field(field, f"dictionary {spec.id} of {model.id}: " + "; ".join(problems))
