"""How a generated image was made (prompt, seed, model fingerprint, sampler settings), carried in its PNG's
metadata so that a later query recovers them. Light on purpose: reading an upload's record needs no diffusers."""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from PIL import Image, PngImagePlugin

from ..core.errors import InputImageError
from ..core.fileio import atomic_path

METADATA_KEY = "attribution_core"  # the PNG text chunk holding the generation record (JSON)


@dataclass(frozen=True)
class SamplerSettings:
    """DDIM settings; the defaults were chosen on validation seeds 10–15 (docs/benchmarks.md, "Quality bar")."""

    steps: int = 50  # DDIM steps
    guidance: float = 3.0  # classifier-free guidance scale (1 = none)
    eta: float = 1.0  # DDIM eta: 0 deterministic given the initial noise, 1 ancestral (fresh noise each step)


#: The settings before that choice: the leave-K-out table and the demo's diffusion test case were made with them,
#: so they keep them (their numbers stay reproducible).
FIRST_SAMPLER = SamplerSettings(steps=50, guidance=2.0, eta=0.0)


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


def png_bytes(image: Image.Image, generation: Generation) -> bytes:
    """A PNG that carries its generation record in a text chunk (and the prompt where other tools look)."""
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


def prompt_of(image: Image.Image | Path | str) -> str | None:
    """The prompt recorded in a generated PNG's metadata (a file or an opened image), if any."""
    if isinstance(image, Image.Image):
        generation = generation_of(image)
    else:
        generation = read_generation(Path(image)) if Path(image).suffix.lower() == ".png" else None
    return generation.prompt if generation else None
