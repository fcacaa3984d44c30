"""Where work runs: one ``--device`` vocabulary (``auto``, ``cpu``, ``cuda``, ``cuda:N``), one default, one help
text, and the checks that say plainly when a GPU is asked for and absent, or when a copy would not fit on it.

Every door (CLI, explorer, service) and every part (backbones, heads, diffusion models, index kinds) resolves a
device here; nothing else imports torch to ask whether CUDA is there.
"""

from __future__ import annotations

import logging

import torch

from .constants import DEFAULT_DEVICE, DEVICE_HELP
from .errors import AttributionError

__all__ = ["DEFAULT_DEVICE", "DEVICE_HELP", "check_gpu_copy", "cuda_available", "resolve_device"]

log = logging.getLogger(__name__)

#: Share of a GPU's free memory a whole-index copy may take (the rest is left to the models and the batch).
GPU_COPY_SHARE = 0.8


def cuda_available() -> bool:
    """Whether torch sees a CUDA GPU."""
    return torch.cuda.is_available()


def resolve_device(device: str | torch.device = DEFAULT_DEVICE) -> torch.device:
    """``auto`` -> CUDA when a GPU is visible, else CPU; anything else is checked.

    Raises:
        AttributionError: an unknown device name, or CUDA asked for on a machine where torch sees no GPU.
    """
    if isinstance(device, torch.device):
        return device
    name = str(device or DEFAULT_DEVICE).strip().lower()
    if name == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    try:
        resolved = torch.device(name)
    except RuntimeError:
        raise AttributionError(
            f"--device {device!r} is not a device; use {DEVICE_HELP.split(' (default')[0]}"
        ) from None
    if resolved.type == "cuda" and not cuda_available():
        raise AttributionError(f"--device {device}: no CUDA GPU is visible to torch on this machine; use --device cpu")
    if resolved.type not in ("cpu", "cuda"):
        raise AttributionError(f"--device {device}: only cpu and cuda are supported")
    return resolved


def gpu_free_bytes(device: torch.device) -> int:
    """Free memory on a CUDA device, in bytes."""
    free, _ = torch.cuda.mem_get_info(device)
    return int(free)


def check_gpu_copy(nbytes: int, device: torch.device, what: str) -> None:
    """Refuse a copy of ``nbytes`` onto ``device`` that would not fit; otherwise log that it is made.

    Raises:
        AttributionError: the copy would take more than GPU_COPY_SHARE of the GPU's free memory.
    """
    free = gpu_free_bytes(device)
    if nbytes > GPU_COPY_SHARE * free:
        raise AttributionError(
            f"{what} takes {nbytes / 2**30:.1f} GiB, more than the {free / 2**30:.1f} GiB free on {device}; "
            "use --device cpu, or a compressed or IVF index kind"
        )
    log.info("copying %s (%.2f GiB) to %s", what, nbytes / 2**30, device)
