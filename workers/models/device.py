"""The one place the torch device is chosen."""

from __future__ import annotations

import torch

from workers.errors import DeviceUnavailable


def select_device(device: str | None) -> torch.device:
    """``device`` when given (cpu, cuda, cuda:1, …), else cuda when available, else cpu."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise DeviceUnavailable(
            f"device {device!r} is not a torch device: use cpu, cuda or cuda:<index>"
        ) from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailable(f"device {device!r} was asked for but this host has no CUDA device")
    return chosen


SCAN_MEMORY_FRACTION = 0.5
"""Share of the device's free memory a scan's recorder state may use when no budget is set (the rest
is left to the model's activations, the batch and other processes)."""


def default_scan_memory_bytes(device: str, fraction: float = SCAN_MEMORY_FRACTION) -> int:
    """The scan memory budget of `device` (cpu, cuda, cuda:1, …) when none is configured: `fraction` of
    the free CUDA memory on a CUDA device, of the available RAM (psutil) otherwise."""
    target = torch.device(device)
    if target.type == "cuda":
        free, _total = torch.cuda.mem_get_info(target)
        return int(free * fraction)
    import psutil

    return int(psutil.virtual_memory().available * fraction)
