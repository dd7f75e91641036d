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
