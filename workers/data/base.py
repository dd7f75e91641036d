"""Probe sets: the samples a scan runs over. A `ProbeSet` is anything with an id, a revision and samples;
built-in generated sets and user JSONL files implement it, and so can vision-language sets."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, overload

from service.contract import Modality


@dataclass(frozen=True, slots=True)
class ProbeSample:
    """One probe sample: text, or an image with its caption (vision-language sets)."""

    id: int
    """Index of the sample in its probe set, 0 … n-1."""
    text: str
    """The text (or, with an image, the caption fed with teacher forcing)."""
    domain: str | None = None
    """Domain label (template family or user label) for per-domain counts; None when unlabelled."""
    image: object | None = None
    """A PIL image for vision-language samples; None for text."""


class ProbeSet(Protocol):
    """A deterministic list of samples, identified by id and revision (both are part of every scan key)."""

    @property
    def id(self) -> str: ...

    @property
    def revision(self) -> str: ...

    @property
    def modality(self) -> Modality: ...

    @property
    def samples(self) -> Sequence[ProbeSample]: ...


class LazySamples(Sequence[ProbeSample]):
    """Samples made when read (an image drawn or loaded per access), so a set never holds all its images.

    Subclasses give `__len__` and `make(index)`; indexing (negative and slices), bounds and iteration are
    here."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def make(self, index: int) -> ProbeSample:
        """Sample `index`, 0 <= index < len(self)."""

    @overload
    def __getitem__(self, index: int) -> ProbeSample: ...

    @overload
    def __getitem__(self, index: slice) -> list[ProbeSample]: ...

    def __getitem__(self, index: int | slice) -> ProbeSample | list[ProbeSample]:
        n = len(self)
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(n))]
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"sample {index} is out of range: this set has samples 0–{n - 1}")
        return self.make(index)

    def __iter__(self) -> Iterator[ProbeSample]:
        return (self[i] for i in range(len(self)))


@dataclass(frozen=True)
class ListProbeSet:
    """A probe set held as a list (what the generators and loaders return)."""

    id: str
    revision: str
    modality: Modality
    samples: Sequence[ProbeSample]


def domain_labels(samples: Sequence[ProbeSample]) -> list[str]:
    """Domain labels in first-seen order; samples without a label are left out of per-domain counts."""
    seen: dict[str, None] = {}
    for sample in samples:
        if sample.domain is not None:
            seen.setdefault(sample.domain, None)
    return list(seen)
