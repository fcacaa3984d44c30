"""The backbone registry: name -> spec, and the Backbone wrapper that turns images into features."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torchvision import transforms

from ..core.device import resolve_device
from ..core.errors import AttributionError, CheckpointError, WeightsNotFoundError
from ..core.paths import display_path, project_root


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes the backbone's input tensor (docs/method.md §2)."""

    resize: int  # short side after resizing, pixels
    crop: int  # side of the centre crop, pixels (the model's input size)
    mean: tuple[float, float, float]  # per-channel normalisation mean (on [0, 1] values)
    std: tuple[float, float, float]  # per-channel normalisation std
    interpolation: str = "bicubic"  # resize filter: "bicubic" or "bilinear"

    def transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """A torchvision transform: PIL RGB image -> float tensor [3, crop, crop]."""
        mode = transforms.InterpolationMode.BICUBIC
        if self.interpolation == "bilinear":
            mode = transforms.InterpolationMode.BILINEAR
        return transforms.Compose(
            [
                transforms.Resize(self.resize, interpolation=mode, antialias=True),
                transforms.CenterCrop(self.crop),
                transforms.ToTensor(),
                transforms.Normalize(self.mean, self.std),
            ]
        )


#: A loader builds the feature model from a weights file (or None when the backbone needs no weights).
Loader = Callable[[Path | None], torch.nn.Module]


@dataclass(frozen=True)
class BackboneSpec:
    """Everything the library knows about one backbone; the one source of truth for its dimension."""

    name: str  # registry name, used on the CLI and in store metadata
    dim: int  # feature dimension d of the pooled output
    preprocess: Preprocess
    description: str  # one line for `attribute spaces` and the app
    load: Loader  # builds the model from a local weights file
    weights_files: tuple[str, ...] = ()  # file names looked for under weights/pretrained/, first found wins
    hub_files: tuple[tuple[str, str], ...] = ()  # (repo_id, filename) on the Hugging Face hub, tried in order
    default_weights: Callable[[], Path] | None = None  # weights shipped inside an installed package
    needs_weights: bool = True
    download_hint: str = ""  # what to download when no weights are found


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone to the registry (each backbone module calls this once at import)."""
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones() -> list[str]:
    """Names of all registered backbones."""
    return sorted(_REGISTRY)


def get_backbone_spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name``; a clear error listing the known names otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise AttributionError(f"unknown backbone {name!r}; known backbones: {', '.join(list_backbones())}") from None


def find_weights(spec: BackboneSpec, weights: Path | str | None = None, allow_download: bool = False) -> Path | None:
    """Locate the weights file for ``spec``: an explicit path, then ``weights/pretrained/``, then the
    package that ships them, then the Hugging Face cache (no network), then a download if allowed.

    Raises:
        WeightsNotFoundError: nothing found; the message says what to download and where to put it.
    """
    if not spec.needs_weights:
        return None
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise CheckpointError(f"{display_path(path)}: weights file for backbone {spec.name!r} not found")
        return path
    local_dir = project_root() / "weights" / "pretrained"
    for name in spec.weights_files:
        if (local_dir / name).is_file():
            return local_dir / name
    if spec.default_weights is not None:
        path = spec.default_weights()
        if path.is_file():
            return path
    if spec.hub_files:
        from huggingface_hub import try_to_load_from_cache

        for repo_id, filename in spec.hub_files:
            cached = try_to_load_from_cache(repo_id, filename)
            if isinstance(cached, str):
                return Path(cached)
        if allow_download:
            from huggingface_hub import hf_hub_download

            repo_id, filename = spec.hub_files[0]
            try:
                return Path(hf_hub_download(repo_id, filename))
            except Exception as exc:
                raise WeightsNotFoundError(
                    f"backbone {spec.name!r}: download of {repo_id}/{filename} failed ({type(exc).__name__}). "
                    f"{spec.download_hint}"
                ) from None
    where = display_path(local_dir / spec.weights_files[0]) if spec.weights_files else "weights/pretrained/"
    raise WeightsNotFoundError(
        f"backbone {spec.name!r}: no pretrained weights on this machine (looked for {where} and the Hugging Face "
        f"cache). {spec.download_hint} Or pass --weights FILE, or --download to fetch them when online."
    )


def load_into(model: torch.nn.Module, state_dict: dict, path: Path, backbone: str) -> torch.nn.Module:
    """``model.load_state_dict(state_dict, strict=True)`` with a one-line error naming the file and the misfit."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise CheckpointError(f"{display_path(path)}: not a state dict of tensors for backbone {backbone!r}")
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    wrong = [k for k in own if k in state_dict and tuple(state_dict[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        if wrong:
            k = wrong[0]
            got, want = tuple(state_dict[k].shape), tuple(own[k].shape)
            parts.append(f"{len(wrong)} shape mismatches (e.g. {k}: file {got}, model {want})")
        raise CheckpointError(
            f"{display_path(path)}: checkpoint does not fit backbone {backbone!r}: {'; '.join(parts)}"
        )
    model.load_state_dict(state_dict, strict=True)
    return model


class Backbone:
    """A loaded backbone: images -> raw features [B, d] (before any head).

    Create with :func:`create_backbone`.
    """

    def __init__(self, spec: BackboneSpec, model: torch.nn.Module, device: torch.device, weights: Path | None):
        self.spec = spec
        self.model = model.eval().to(device)
        self.device = device
        self.weights = weights
        self._transform = spec.preprocess.transform()

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def dim(self) -> int:
        return self.spec.dim

    def preprocess(self, image: Image.Image) -> torch.Tensor:
        """One RGB image -> input tensor [3, crop, crop]."""
        return self._transform(image)

    @torch.inference_mode()
    def embed_tensor(self, batch: torch.Tensor) -> torch.Tensor:
        """Preprocessed batch [B, 3, crop, crop] -> raw features, float32 [B, d], left on the backbone's device."""
        feats = self.model(batch.to(self.device)).float()
        if feats.ndim != 2 or feats.shape[1] != self.dim:
            raise RuntimeError(f"backbone {self.name} produced shape {tuple(feats.shape)}, expected [B, {self.dim}]")
        return feats

    def embed(self, batch: torch.Tensor) -> np.ndarray:
        """Preprocessed batch [B, 3, crop, crop] -> raw features, float32 numpy [B, d]."""
        return self.embed_tensor(batch).cpu().numpy()

    @torch.inference_mode()
    def embed_images_tensor(self, images: Sequence[Image.Image], batch_size: int = 32) -> torch.Tensor:
        """RGB images -> raw features, float32 [len(images), d] on the backbone's device (no copy to the host)."""
        out = [
            self.embed_tensor(torch.stack([self.preprocess(im) for im in images[i : i + batch_size]]))
            for i in range(0, len(images), batch_size)
        ]
        return torch.cat(out) if out else torch.zeros((0, self.dim), device=self.device)

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """RGB images -> raw features, float32 numpy [len(images), d]."""
        return self.embed_images_tensor(images, batch_size).cpu().numpy()


def create_backbone(
    name: str, weights: Path | str | None = None, device: str = "auto", allow_download: bool = False
) -> Backbone:
    """Build backbone ``name`` with real pretrained weights (never random ones).

    Args:
        name: a registered backbone (see :func:`list_backbones`).
        weights: an explicit weights file; otherwise the usual places are searched (:func:`find_weights`).
        device: ``auto``, ``cpu`` or ``cuda``.
        allow_download: fetch the weights from the Hugging Face hub when they are nowhere local.
    """
    spec = get_backbone_spec(name)
    path = find_weights(spec, weights, allow_download)
    model = spec.load(path)
    return Backbone(spec, model, resolve_device(device), path)
