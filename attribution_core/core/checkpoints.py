"""Safe loading of pickle-based PyTorch checkpoints: tensors only, never code."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch

from .errors import CheckpointError
from .fileio import atomic_path
from .paths import display_path


def load_checkpoint(path: Path | str, what: str = "checkpoint") -> Any:
    """Load a ``.pth``/``.pt``/``.bin`` or ``.safetensors`` file onto the CPU without running any code.

    Pickles are read with ``torch.load(weights_only=True)``: a file whose unpickling would build arbitrary
    Python objects (and so could run code) is refused before anything in it runs.

    Raises:
        CheckpointError: the file is missing, not a checkpoint, or holds more than tensors and containers.
    """
    path = Path(path)
    shown = display_path(path)
    if not path.is_file():
        raise CheckpointError(f"{shown}: {what} not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(path), device="cpu")
        except Exception as exc:
            raise CheckpointError(f"{shown}: not a readable safetensors {what} ({exc})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()
        detail = next((line for line in first if "GLOBAL" in line or "Unsupported" in line), first[0] if first else "")
        raise CheckpointError(
            f"{shown}: refused to load {what}: it holds Python objects other than tensors, which could run code "
            f"when unpickled ({detail.strip()}). Only plain tensor checkpoints are accepted."
        ) from None
    except Exception as exc:  # a damaged file can fail anywhere inside the unpickler
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{shown}: not a readable PyTorch {what} ({msg})") from None


def save_checkpoint(obj: Any, path: Path | str) -> None:
    """Save ``obj`` (tensors in dicts) atomically: a reader never sees a half-written file."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
