"""What a caller hands the ``Attributor`` template, checked at the door of every method: how many results (``k``),
the prompts (length), and how queries are named in results and errors. One-line errors that name the door's own
flag or field."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.errors import AttributionError

#: A query image: opened, or a file (a path; ``SHARD.tar/MEMBER`` inside a webdataset shard).
QueryImage = Image.Image | Path | str


def query_names(images: Sequence[QueryImage], names: Sequence[str] | None) -> list[str]:
    """``names``, or each image's path, or "image i"."""
    if names is not None:
        return list(names)
    return [str(im) if not isinstance(im, Image.Image) else f"image {i}" for i, im in enumerate(images)]


def check_k(k: int, name: str = "--top-k") -> int:
    """``k`` as an int >= 1, or a one-line error naming it as the caller's door does (``--top-k``, ``k``)."""
    if int(k) < 1:
        raise AttributionError(f"{name} must be at least 1 (got {k})")
    return int(k)


#: Longest prompt accepted, in characters (a text encoder reads a few dozen tokens; longer text is a mistake).
MAX_PROMPT_CHARS = 1000


def check_prompt(prompt: str | None, name: str) -> str | None:
    """``prompt``, or a one-line error naming the query when it is absurdly long."""
    if prompt is not None and len(prompt) > MAX_PROMPT_CHARS:
        raise AttributionError(
            f"{name}: the prompt is {len(prompt):,} characters long; at most {MAX_PROMPT_CHARS:,} are accepted "
            "(the text encoder reads the first few dozen words)"
        )
    return prompt


def check_ks(k: int | Sequence[int], n: int) -> list[int]:
    """One checked k per query: ``k`` for all ``n``, or the ``n`` given."""
    if isinstance(k, (int, np.integer)):
        return [check_k(int(k))] * n
    ks = [check_k(x) for x in k]
    if len(ks) != n:
        raise AttributionError(f"{len(ks)} values of k for {n} query images")
    return ks
