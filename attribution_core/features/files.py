"""Raw backbone features of image files a judge asks about (a test case's exemplars and generated images), extracted
once and cached as a store (``feats/eval/<backbone>/<name>-<root key>``): resumable like any extraction; images
replaced since are embedded again. Keyed by the name the judge gives (a test case's) and the folder the files lie
under, so the same test case evaluated under another ``--root`` gets its own features."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..backbones import Backbone
from ..core.errors import AttributionError
from ..core.paths import display_path, project_root
from ..data.extract import extract_features
from ..data.store import FeatureStore


def file_features(
    files: Sequence[Path], backbone: Backbone, root: Path, name: str, cache_root: Path | None = None,
    progress: bool = True,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Raw features [d] of every file (absolute paths under ``root``), by its absolute path.

    Raises:
        AttributionError: some images cannot be read (naming up to three).
    """
    root = Path(root).resolve()
    files = [Path(f) for f in dict.fromkeys(str(f) for f in files)]
    root_key = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    out = (cache_root or project_root() / "feats" / "eval") / backbone.name / f"{name}-{root_key}"
    report = extract_features([root], out, backbone, root=root, files=files, progress=progress)
    if report.skipped:
        bad = "; ".join(f"{s.path}: {s.reason}" for s in report.skipped[:3])
        raise AttributionError(f"{display_path(out)}: {len(report.skipped)} images cannot be read ({bad})")
    store = FeatureStore.open(out)
    row = {p: i for i, p in enumerate(store.paths)}
    return {str(f): np.asarray(store.feats[row[f.relative_to(root).as_posix()]]) for f in files}
