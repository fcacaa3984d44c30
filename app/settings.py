"""What the sidebar decided: the query and the display settings."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

K_OPTIONS = sorted({int(x) for x in 10 ** np.linspace(1, 3, 101)})
RES_OPTIONS = list(range(64, 1024 + 32, 32))


@dataclass(frozen=True)
class Query:
    name: str
    digest: str
    image: Image.Image
    prompt: str | None = None  # from the PNG's metadata, or the prompt it was generated from here


@dataclass(frozen=True)
class Settings:
    spaces: list[str]
    k: int
    columns: int
    res: int
    pad: int
