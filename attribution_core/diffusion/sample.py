"""Generating images from prompts (DDIM with classifier-free guidance), and the PNG metadata that lets a later
query recover how an image was made (prompt, seed, model fingerprint, sampler settings)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from diffusers import DDIMScheduler
from PIL import Image, PngImagePlugin

from ..errors import InputImageError
from ..fileio import atomic_path
from ..progress import CancelFlag, ProgressCallback, tracked
from .data import tensor_image
from .model import TextToImageModel

METADATA_KEY = "attribution_core"  # the PNG text chunk holding the generation record (JSON)


@dataclass(frozen=True)
class SamplerSettings:
    steps: int = 50  # DDIM steps
    guidance: float = 2.0  # classifier-free guidance scale (1 = none); 2 chosen on validation seeds (README)
    eta: float = 0.0  # DDIM eta (0 = deterministic given the initial noise)


@dataclass(frozen=True)
class Generation:
    """How an image was made: enough to regenerate it exactly."""

    prompt: str
    seed: int
    model: str  # the model's fingerprint
    sampler: SamplerSettings

    def to_json(self) -> str:
        return json.dumps(
            {"prompt": self.prompt, "seed": self.seed, "model": self.model, "sampler": asdict(self.sampler)}
        )


def initial_noise(model: TextToImageModel, seed: int) -> torch.Tensor:
    """The starting noise [1, c, h, w] of seed ``seed`` (the same on every machine and device)."""
    return torch.randn((1, *model.sample_shape()), generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def generate(
    model: TextToImageModel,
    prompts: Sequence[str],
    seeds: Sequence[int],
    settings: SamplerSettings = SamplerSettings(),
    progress: bool = False,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> torch.Tensor:
    """Sample one image per (prompt, seed), in a batch.

    Returns:
        [B, 3, r, r] images in [-1, 1].
    """
    device = model.device
    scheduler = DDIMScheduler.from_config(model.scheduler.config)
    scheduler.set_timesteps(settings.steps)
    x = torch.cat([initial_noise(model, s) for s in seeds]).to(device)
    text = model.encode_prompts(list(prompts))
    empty = model.encode_prompts([""] * len(prompts))
    both = torch.cat([empty, text])
    for t in tracked(scheduler.timesteps, "sample", progress=progress, on_progress=on_progress, cancel=cancel):
        eps = model.predict_noise(torch.cat([x, x]), t.expand(2 * len(x)).to(device), both)
        uncond, cond = eps.chunk(2)
        guided = uncond + settings.guidance * (cond - uncond)
        x = scheduler.step(guided, t, x, eta=settings.eta, generator=torch.Generator().manual_seed(0)).prev_sample
    return model.decode(x).clamp(-1, 1)


def generate_image(
    model: TextToImageModel, prompt: str, seed: int, settings: SamplerSettings = SamplerSettings(), **kw
) -> tuple[Image.Image, Generation]:
    """One image and its generation record."""
    x = generate(model, [prompt], [seed], settings, **kw)[0]
    return tensor_image(x), Generation(prompt, seed, model.fingerprint(), settings)


def png_bytes(image: Image.Image, generation: Generation) -> bytes:
    """A PNG that carries its generation record in a text chunk (and the prompt where other tools look)."""
    import io

    info = PngImagePlugin.PngInfo()
    info.add_text(METADATA_KEY, generation.to_json())
    info.add_text("parameters", generation.prompt)
    buf = io.BytesIO()
    image.save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


def save_generated(image: Image.Image, generation: Generation, path: Path | str) -> None:
    """Write :func:`png_bytes` to ``path`` atomically."""
    with atomic_path(path, ".png") as tmp:
        tmp.write_bytes(png_bytes(image, generation))


def read_generation(source: Path | str | bytes) -> Generation | None:
    """The generation record of a PNG written by :func:`save_generated`, or None when it has none."""
    import io

    try:
        with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
            raw = img.text.get(METADATA_KEY) if hasattr(img, "text") else None
    except (OSError, ValueError) as exc:
        raise InputImageError(f"{source if not isinstance(source, bytes) else 'upload'}: cannot read ({exc})") from None
    return parse_generation(raw)


def parse_generation(raw: str | None) -> Generation | None:
    """A generation record from its JSON text (a PNG text chunk), or None when absent or malformed."""
    if not raw:
        return None
    try:
        obj = json.loads(raw)
        return Generation(str(obj["prompt"]), int(obj["seed"]), str(obj["model"]), SamplerSettings(**obj["sampler"]))
    except (ValueError, KeyError, TypeError):
        return None


def generation_of(image: Image.Image) -> Generation | None:
    """The generation record carried by an opened image (its PNG text chunks survive ``load_rgb``), if any."""
    return parse_generation(image.info.get(METADATA_KEY))
