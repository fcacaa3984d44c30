"""Atomic file writes: a reader never sees a half-written file or folder.

Everything the library writes (stores, shards, indexes, checkpoints, JSON, images) goes through here: write
beside the target under a hidden temporary name, then ``os.replace`` it into place. Left-over temporaries of an
interrupted run carry the ``.tmp-`` marker, so they are recognisable.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def temp_sibling(path: Path | str, suffix: str = "") -> Path:
    """A unique hidden name beside ``path`` (same folder, so the final rename is atomic)."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}{suffix}")


@contextmanager
def atomic_path(path: Path | str, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces ``path``, on failure it is removed.

    ``suffix`` keeps libraries that insist on an extension (``np.save`` adds ``.npy``) from renaming it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_sibling(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: Path | str, obj: object, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(obj, indent=indent))


def atomic_save_npy(path: Path | str, arr: np.ndarray) -> None:
    with atomic_path(path, ".npy") as tmp:
        np.save(tmp, arr)


def replace_dir(new: Path, target: Path) -> None:
    """Put folder ``new`` at ``target``, replacing an older one; at no moment is ``target`` half-written."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)
