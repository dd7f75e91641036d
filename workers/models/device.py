"""The one place the torch device is chosen."""

from __future__ import annotations

import torch

from service.settings import Settings
from workers.errors import InvalidRequest


def select_device(settings: Settings) -> torch.device:
    """`settings.device` when set (cpu, cuda, cuda:1, …), else cuda when available, else cpu."""
    if settings.device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(settings.device)
    except RuntimeError:
        raise InvalidRequest(
            f"device {settings.device!r} is not a torch device: use cpu, cuda or cuda:<index>"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise InvalidRequest(f"device {settings.device!r} was asked for but this host has no CUDA device")
    return device
