"""Where the project's conventional folders (weights/, feats/, dataset/, assets/) live."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that points at the project root (the folder holding weights/, feats/, dataset/).
ROOT_ENV = "ATTRIBUTION_HOME"


def project_root() -> Path:
    """The project root: ``$ATTRIBUTION_HOME``, else the source checkout this package lives in, else the cwd."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    checkout = Path(__file__).resolve().parents[2]  # attribution_core/core/paths.py -> the checkout
    if (checkout / "pyproject.toml").is_file() and (checkout / "attribution_core").is_dir():
        return checkout
    return Path.cwd()


def project_file(path: Path | str) -> Path:
    """A file named on the command line or as a default: as given when it exists there (or is absolute), else the
    project root's file of that relative name when that exists (a default such as ``dataset/json/test_demo.json``
    works from any folder), else as given (the reader says it is missing)."""
    path = Path(path)
    if path.is_absolute() or path.exists():
        return path
    inside = project_root() / path
    return inside if inside.exists() else path


def display_path(path: Path | str, root: Path | None = None) -> str:
    """``path`` relative to ``root`` (default: the project root) when it lies inside it, else as given."""
    path = Path(path)
    root = root or project_root()
    try:
        resolved = path.resolve()
    except (OSError, RuntimeError):  # a symlink loop cannot be resolved: name it as given, made absolute
        resolved = Path(os.path.abspath(path))
    try:
        return str(resolved.relative_to(root))
    except ValueError:
        return str(path)


#: Environment variable that points at the cache folder (indexes for ad-hoc heads, conversions of read-only files).
CACHE_ENV = "ATTRIBUTION_CACHE"


def cache_dir() -> Path:
    """``$ATTRIBUTION_CACHE``, else ``~/.cache/attribution``: derived files that need not sit beside their source."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser().resolve() if env else Path.home() / ".cache" / "attribution"
