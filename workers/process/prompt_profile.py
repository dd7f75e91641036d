"""Prompt profiles: how large the `openai` backends' prompts for a scanned layer's neurons will be, written
to the artifact store for the API's dry-run estimate (contract.PromptProfile, contract.ProbeProfile).

Sizes are measured with the real prompt builders on the records the explain job will use (the same split
as workers/analysis/assemble.py), in characters of prompt text; the API turns them into tokens. Text probe
sets only: a vision-language layer's prompts depend on each neuron's type and images, so no profile is written
for them and a dry run gives calls without tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from service.contract import (
    DatasetSpec,
    ModelSpec,
    PipelineOptions,
    ProbeProfile,
    PromptProfile,
    PromptTemplates,
    probe_profile_key,
    prompt_profile_key,
)
from workers.explain.bills import (
    BILLS_PROMPT_VERSION,
    RawRecord,
    build_bills_messages,
    few_shot_chars,
    neuron_message_chars,
)
from workers.llm.caller import Message
from workers.process.report_writer import ReportObjects
from workers.scan.artifacts import LayerScan
from workers.scan.tokens import TokenizedProbe
from workers.simulate.prompts import TEXT_SIMULATOR_PROMPT_VERSION, build_text_simulator_messages
from workers.vocabulary.prompting import escape_token
from workers.vocabulary.records import MODALITY_TEXT, split_records


def prompt_chars(messages: Sequence[Message]) -> int:
    """Characters of every text part of a chat request (system, user and assistant turns)."""
    total = 0
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            total += len(content)
        else:
            texts = (part.get("text", "") for part in content or () if part.get("type") == "text")
            total += sum(len(str(text)) for text in texts)
    return total


def templates() -> PromptTemplates:
    """The record-independent sizes of the text prompts (an empty record, an empty explanation)."""
    return PromptTemplates(
        explainer_text_chars=prompt_chars(build_bills_messages([RawRecord((), ())])),
        simulator_text_chars=prompt_chars(build_text_simulator_messages("", [])),
        explainer_prompt_version=BILLS_PROMPT_VERSION,
        simulator_prompt_version=TEXT_SIMULATOR_PROMPT_VERSION,
    )


def _text_tokens(probe: TokenizedProbe, sample: int) -> tuple[list[str], np.ndarray]:
    record = probe.record(sample)
    is_text = record.modality == MODALITY_TEXT
    return [t for t, keep in zip(record.tokens, is_text.tolist(), strict=True) if keep], is_text


def layer_profile(
    model: ModelSpec, layer: int, scan: LayerScan, probe: TokenizedProbe, options: PipelineOptions
) -> PromptProfile:
    """Per neuron of the layer: its text explainer prompt's size for `options`' selection of records and
    the text simulator prompt size (empty explanation) and token count of each held-out record."""
    sim_chars: dict[int, int] = {}
    texts: dict[int, tuple[list[str], np.ndarray, np.ndarray]] = {}

    def text_tokens(sample: int) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(text tokens, text mask over the record, escaped characters of each text token), once each."""
        if sample not in texts:
            tokens, is_text = _text_tokens(probe, sample)
            chars = np.fromiter((len(escape_token(t)) for t in tokens), dtype=np.int64, count=len(tokens))
            texts[sample] = (tokens, is_text, chars)
        return texts[sample]

    def simulator_chars(sample: int) -> int:
        if sample not in sim_chars:
            sim_chars[sample] = prompt_chars(build_text_simulator_messages("", text_tokens(sample)[0]))
        return sim_chars[sample]

    few_shot = few_shot_chars()
    explainer: list[int] = []
    holdout_chars: list[list[int]] = []
    holdout_tokens: list[list[int]] = []
    for neuron in range(scan.n_neurons):
        top_ids = scan.top_ids[neuron]
        split = split_records(
            top_ids, scan.random_ids, options.n_explain, options.n_holdout, text_of=probe.tokens.__getitem__
        )
        acts = scan.top_acts(neuron)
        shown_chars: list[np.ndarray] = []
        shown_values: list[np.ndarray] = []
        for rank in split.explain_ranks:
            _, is_text, chars = text_tokens(int(top_ids[rank]))
            shown_chars.append(chars)
            shown_values.append(acts[rank, : len(is_text)][is_text])
        # The size of `build_bills_messages` of these records, computed without building it (pinned equal
        # to the builder's by tests/workers/test_prompts.py).
        explainer.append(few_shot + neuron_message_chars(shown_chars, shown_values) if shown_values else 0)
        samples = [int(top_ids[rank]) for rank in split.holdout_top_ranks]
        samples += [int(scan.random_ids[slot]) for slot in split.holdout_random_slots]
        holdout_chars.append([simulator_chars(sample) for sample in samples])
        holdout_tokens.append([len(text_tokens(sample)[0]) for sample in samples])
    return PromptProfile(
        model=model.id,
        layer=layer,
        n_top=options.n_top,
        n_explain=options.n_explain,
        n_holdout=options.n_holdout,
        templates=templates(),
        explainer_chars=explainer,
        holdout_chars=holdout_chars,
        holdout_tokens=holdout_tokens,
    )


def probe_profile(probe: TokenizedProbe) -> ProbeProfile:
    """The probe set's mean record sizes in the text prompts (the dry run's fallback before a scan)."""
    shapes = templates()
    explainer_chars: list[int] = []
    simulator_chars: list[int] = []
    token_counts: list[int] = []
    for sample in range(probe.n_samples):
        tokens, _ = _text_tokens(probe, sample)
        token_counts.append(len(tokens))
        # "<start>", a "token<TAB>value" line per token (values mostly one digit), "<end>" (Bills' layout).
        explainer_chars.append(16 + sum(len(token) + 3 for token in tokens))
        simulator_chars.append(
            prompt_chars(build_text_simulator_messages("", tokens)) - shapes.simulator_text_chars
        )
    n = max(1, probe.n_samples)
    return ProbeProfile(
        n_samples=probe.n_samples,
        n_tokens=probe.n_tokens,
        mean_record_tokens=sum(token_counts) / n,
        mean_explainer_record_chars=sum(explainer_chars) / n,
        mean_simulator_record_chars=sum(simulator_chars) / n,
        templates=shapes,
    )


def is_text_probe(probe: TokenizedProbe) -> bool:
    """Profiles are written for text probe sets only (see the module docstring)."""
    return probe.patch_grid is None


def write_probe_profile(
    objects: ReportObjects, model: ModelSpec, dataset: DatasetSpec, probe: TokenizedProbe
) -> bool:
    """Write the probe set's profile (mean record sizes: the dry run's fallback) unless stored; True when
    written now. Cheap (one pass over the probe set's records): scan jobs write it."""
    key = probe_profile_key(model.id, model.revision, dataset)
    if not is_text_probe(probe) or objects.exists(key):
        return False
    objects.write(key, probe_profile(probe).model_dump_json().encode())
    return True


def write_profiles(
    objects: ReportObjects,
    model: ModelSpec,
    dataset: DatasetSpec,
    hook: str,
    layer: int,
    scan: LayerScan,
    probe: TokenizedProbe,
    options: PipelineOptions,
) -> bool:
    """Write the layer's prompt profile (and the probe set's) unless stored; True when the layer's was
    written now. A profile is measured once per scan artifact, for `options`' selection of records; it
    sizes every neuron of the layer (about 1.5 s for 1,536 neurons on one core), so the first LLM explain
    job of a layer writes it, not the scan."""
    if not is_text_probe(probe):
        return False
    write_probe_profile(objects, model, dataset, probe)
    key = prompt_profile_key(model.id, model.key_revision, hook, layer, dataset, options.n_top, options.seed)
    if objects.exists(key):
        return False
    objects.write(key, layer_profile(model, layer, scan, probe, options).model_dump_json().encode())
    return True
