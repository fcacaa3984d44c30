"""Writing the demo's images (corpus, exemplars, queries) and its ground truth in the AbC test-case format."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.fileio import atomic_path, atomic_write_json, atomic_write_text
from ..core.paths import project_root
from ..core.progress import ProgressCallback, tracked
from .layout import CAPTIONS, QUERIES_PER_TYPE, QUERY_TYPES, SPLITS, VIEWS_PER_PHOTO, demo_dir, demo_json
from .synthesis import (
    apply_view,
    as_rgb,
    caption,
    corpus_photos,
    exemplar_photos,
    make_query,
    random_view,
    regions,
    seeded_rng,
    view_params,
)


def _json_path(path: Path, root: Path) -> str:
    """AbC JSON paths are relative to the project root."""
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _save(img: Image.Image, path: Path) -> None:
    with atomic_path(path) as tmp:
        img.save(tmp, format="JPEG", quality=90)


@dataclass(frozen=True)
class DemoImages:
    corpus: list[str]  # paths relative to the demo folder
    captions: dict[str, str]  # corpus path -> caption (also written to captions.jsonl)
    test_case: list[dict]  # AbC-format entries, paths relative to the project root


def make_demo_images(
    out: Path | None = None, progress: bool = True, on_progress: ProgressCallback | None = None
) -> DemoImages:
    """Write the corpus, exemplars and queries (skipping files already there) and the ground-truth JSON."""
    out = out or demo_dir()
    root = project_root()
    corpus_imgs = {k: as_rgb(f()) for k, f in corpus_photos().items()}
    exemplar_imgs = {k: as_rgb(f()) for k, f in exemplar_photos().items()}
    gray = {k for k, p in corpus_imgs.items() if np.ptp(np.asarray(p, np.int16), axis=2).max() == 0}
    jobs: list[tuple[Path, Callable[[], Image.Image]]] = []
    corpus: list[str] = []
    captions: dict[str, str] = {}
    for name, photo in corpus_imgs.items():
        for i in range(VIEWS_PER_PHOTO):
            rel = f"corpus/{name}/view_{i:03d}.jpg"
            corpus.append(rel)
            view = view_params(photo.size, seeded_rng("corpus", name, i), tint=name in gray and i % 2 == 1)
            captions[rel] = caption(name, view)
            jobs.append((out / rel, lambda p=photo, v=view: apply_view(p, v)))
    test_case: list[dict] = []
    bg_names = sorted(corpus_imgs)
    for photo_name, photo in exemplar_imgs.items():
        for q, box in enumerate(regions(photo)):
            model = f"{photo_name}_q{q}"
            region = photo.crop(box)
            rng = seeded_rng("model", model)
            n_ex = int(rng.integers(1, 5))
            exemplars = [random_view(region, seeded_rng("exemplar", model, j), scale=(0.45, 0.9)) for j in range(n_ex)]
            entry = {"exemplar": [], "synth": {t: [] for t in QUERY_TYPES}, "class_id": model, "category": photo_name}
            for j, ex in enumerate(exemplars):
                rel = f"exemplar/{model}/exemplar_{j}.jpg"
                jobs.append((out / rel, lambda e=ex: e))
                entry["exemplar"].append(_json_path(out / rel, root))
            for t in QUERY_TYPES:
                for n in range(QUERIES_PER_TYPE):
                    rng_q = seeded_rng("query", model, t, n)
                    other = corpus_imgs[bg_names[int(rng_q.integers(len(bg_names)))]]
                    ex = exemplars[int(rng_q.integers(n_ex))]
                    rel = f"synth/{model}/{t}_{n:02d}.jpg"
                    jobs.append((out / rel, lambda o=other, e=ex, r=rng_q, t=t: make_query(t, o, e, r)))
                    entry["synth"][t].append(_json_path(out / rel, root))
            test_case.append(entry)
    todo = [(p, f) for p, f in jobs if not p.is_file()]
    for path, make in tracked(
        todo, "demo images", progress=progress and bool(todo), on_progress=on_progress, unit="img"
    ):
        _save(make(), path)
    atomic_write_text(
        out / CAPTIONS, "".join(json.dumps({"path": p, "caption": c}) + "\n" for p, c in captions.items())
    )
    json_path = demo_json() if out == demo_dir() else out / "test_demo.json"
    atomic_write_json(json_path, test_case)
    for split, quadrants in SPLITS.items():
        entries = [e for e in test_case if int(e["class_id"].rsplit("_q", 1)[1]) in quadrants]
        atomic_write_json(json_path.with_name(f"{split}_demo.json"), entries)
    return DemoImages(corpus, captions, test_case)
