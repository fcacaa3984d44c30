"""SSCD copy-detection descriptor ``sscd_disc_mixup`` (a TorchScript file), 512-d.

SSCD is released only as TorchScript, which carries its model code: load only the official file
(``sscd_disc_mixup.torchscript.pt``). It is never unpickled with ``torch.load``.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from ..core.constants import IMAGENET_MEAN, IMAGENET_STD
from ..core.errors import CheckpointError
from ..core.paths import display_path
from .registry import BackboneSpec, Preprocess, register_backbone


def load_sscd(path: Path | None) -> torch.nn.Module:
    try:
        with warnings.catch_warnings():  # torch deprecates TorchScript, the only format SSCD is released in
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{display_path(path)}: not a TorchScript SSCD model ({first})") from None


register_backbone(
    BackboneSpec(
        name="sscd",
        dim=512,
        preprocess=Preprocess(resize=288, crop=288, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        description="SSCD sscd_disc_mixup copy-detection descriptor (TorchScript, local file)",
        load=load_sscd,
        weights_files=("sscd_disc_mixup.torchscript.pt",),
        download_hint=(
            "Download sscd_disc_mixup.torchscript.pt from the SSCD release (facebookresearch/sscd-copy-detection) "
            "into weights/pretrained/."
        ),
    )
)
