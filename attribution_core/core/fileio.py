"""Atomic file writes: a reader never sees a half-written file or folder.

Everything the library writes (stores, shards, indexes, checkpoints, JSON, images) goes through here: write
beside the target under a hidden temporary name, then ``os.replace`` it into place. Left-over temporaries of an
interrupted run carry the ``.tmp-`` marker, so they are recognisable.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import AttributionError


class LockedError(AttributionError):
    """Another process holds the lock for the same work."""


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: The process's umask, read once at import (reading it means setting it, which is not thread-safe later).
_UMASK = _current_umask()


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
        if tmp.is_file():  # the user's umask, whatever the writer did (safetensors writes 0600)
            os.chmod(tmp, 0o666 & ~_UMASK)
        os.replace(tmp, path)
    except BaseException as exc:
        full = disk_full(path, exc)  # measured before the partial file is removed: it is what filled the disk
        tmp.unlink(missing_ok=True)
        if full is not None:
            raise full from None
        raise


#: Below this much free space, a failed write is taken for a full disk.
FULL_BELOW_BYTES = 64 * 2**20


def disk_full(path: Path, exc: BaseException) -> OSError | None:
    """The plain "no space left" error a failed write of ``path`` stands for, or None. Writers report a full disk
    in their own words (numpy: "21504 requested and 19424 written", FAISS: a RuntimeError naming a failed ``ret ==
    (n)`` check): when the folder has almost no free space left, say what it is."""
    if not isinstance(exc, OSError | RuntimeError) or getattr(exc, "errno", None) == errno.ENOSPC:
        return None
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return None
    if free >= FULL_BELOW_BYTES:
        return None
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))


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


#: Temporaries older than this are left-overs of an interrupted run (a live writer keeps touching its file).
STALE_AFTER_S = 600.0


def clean_stale_temps(folder: Path | str, older_than_s: float = STALE_AFTER_S) -> int:
    """Remove left-over ``.*.tmp-*`` / ``.*.old-*`` files and folders of interrupted runs in ``folder``.

    Returns:
        How many were removed.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    now = time.time()
    removed = 0
    for entry in folder.iterdir():
        if not entry.name.startswith(".") or not (".tmp-" in entry.name or ".old-" in entry.name):
            continue
        try:
            if now - entry.lstat().st_mtime < older_than_s:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
        except OSError:
            continue
    return removed


def is_writable_dir(folder: Path) -> bool:
    """Whether files can be created in ``folder`` (or, if it does not exist yet, in its nearest existing parent)."""
    while not folder.exists():
        if folder.parent == folder:
            return False
        folder = folder.parent
    return folder.is_dir() and os.access(folder, os.W_OK | os.X_OK)


class FileLock:
    """An exclusive, non-blocking lock on a file (``fcntl.flock``): held while the ``with`` block runs.

    The lock goes away with the process, so a killed run never leaves a stale lock behind.
    """

    def __init__(self, path: Path | str, what: str, wait: bool = False):
        self.path = Path(path)
        self.what = what
        self.wait = wait  # block until the holder lets go, instead of raising LockedError
        self._fd: int | None = None

    def __enter__(self) -> FileLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if self.wait else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(fd)
            raise LockedError(f"{self.what} is already running (lock {self.path}); wait for it to finish") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        import fcntl

        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
