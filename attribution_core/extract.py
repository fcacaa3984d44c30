"""Images in folders -> a feature store: batched, with a progress bar, resumable, and tolerant of odd files.

Work is written as numbered shards inside ``STORE.partial/`` (each shard's features first, then its path list,
which is the shard's commit mark). Interrupt it and run it again: finished shards are kept and only the rest is
embedded. When every image is done the shards become the store in one atomic rename.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .backbones import Backbone
from .errors import InputImageError, StoreError
from .fileio import atomic_save_npy, atomic_write_bytes
from .images import SkippedFile, common_root, load_rgb, scan_image_files
from .paths import display_path
from .progress import CancelFlag, Progress, ProgressCallback, check_cancelled
from .store import FeatureStore, write_store


@dataclass
class ExtractReport:
    """What an extraction did."""

    store: Path
    embedded: int  # images embedded in this run
    reused: int  # images whose features were already done (earlier run or existing store)
    skipped: list[SkippedFile] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.embedded + self.reused

    def summary(self) -> str:
        reasons: dict[str, int] = {}
        for s in self.skipped:
            key = s.reason.split(":")[0].split(" (")[0]
            reasons[key] = reasons.get(key, 0) + 1
        why = ", ".join(f"{n} {r}" for r, n in sorted(reasons.items()))
        skipped = f"; skipped {len(self.skipped)} files ({why})" if self.skipped else ""
        return (
            f"{display_path(self.store)}: {self.total} images ({self.embedded} embedded now, {self.reused} already "
            f"done){skipped}"
        )


def _read_done(partial: Path) -> tuple[dict[str, tuple[Path, int]], dict[str, str]]:
    """Paths already embedded (-> shard file, row) and files already found unreadable (-> reason)."""
    done: dict[str, tuple[Path, int]] = {}
    for marker in sorted(partial.glob("shard_*.json")):
        npy = marker.with_suffix(".npy")
        if not npy.is_file():
            continue
        for row, rel in enumerate(json.loads(marker.read_text())):
            done[rel] = (npy, row)
    bad: dict[str, str] = {}
    if (partial / "skipped.json").is_file():
        bad = json.loads((partial / "skipped.json").read_text())
    return done, bad


def extract_features(
    images: Sequence[Path | str] | Path | str,
    out: Path | str,
    backbone: Backbone,
    batch_size: int = 32,
    shard_size: int = 512,
    root: Path | str | None = None,
    progress: bool = True,
    workers: int = 4,
    files: Sequence[Path] | None = None,
    on_progress: ProgressCallback | None = None,
    cancel: CancelFlag | None = None,
) -> ExtractReport:
    """Embed every image under ``images`` (folders, searched recursively) into the store ``out``.

    Args:
        images: one or more folders.
        out: the store folder to create (or update: images already in it are not embedded again).
        backbone: the loaded backbone.
        root: folder the stored paths are relative to (default: the folders' common parent, or the folder).
        workers: threads that decode images while the model runs.
        files: embed exactly these files (under ``root``) instead of scanning the folders.
        on_progress: called after every batch with images done / total.
        cancel: checked before every batch; finished shards are kept.

    Returns:
        An :class:`ExtractReport`; unreadable files are listed in ``skipped`` with a reason, never raised.
    """
    folders = [Path(images)] if isinstance(images, (str, Path)) else [Path(p) for p in images]
    out = Path(out)
    root = Path(root).resolve() if root else common_root(folders)
    if files is None:
        files, skipped = scan_image_files(folders, root)
    else:
        files, skipped = [Path(f).resolve() for f in files], []
    rel = {f: f.resolve().relative_to(root).as_posix() for f in files}

    previous: FeatureStore | None = None
    if (out / "meta.json").is_file():
        previous = FeatureStore.open(out)
        previous.check_backbone(backbone.name, backbone.dim)
        if Path(previous.meta.image_root).resolve() != root:
            raise StoreError(
                f"{display_path(out)}: store holds images relative to {previous.meta.image_root}, not {root}; "
                "choose another --out"
            )
    partial = Path(str(out) + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    info = partial / "info.json"
    if info.is_file():
        meta = json.loads(info.read_text())
        if meta.get("backbone") != backbone.name:
            raise StoreError(
                f"{display_path(partial)}: unfinished extraction with backbone {meta.get('backbone')!r}; "
                f"delete that folder or run it with --backbone {meta.get('backbone')}"
            )
    else:
        atomic_write_bytes(info, json.dumps({"backbone": backbone.name, "root": str(root)}).encode())

    done, bad = _read_done(partial)
    prev_rows = {p: i for i, p in enumerate(previous.paths)} if previous is not None else {}
    todo = [f for f in files if rel[f] not in done and rel[f] not in prev_rows and rel[f] not in bad]
    reused = sum(1 for f in files if rel[f] in done or rel[f] in prev_rows)
    skipped += [SkippedFile(rel[f], bad[rel[f]]) for f in files if rel[f] in bad]

    shard_no = len(list(partial.glob("shard_*.json")))
    embedded = 0
    bar = tqdm(
        total=len(files),
        initial=len(files) - len(todo),
        desc=f"extract {backbone.name}",
        unit="img",
        disable=not progress,
        dynamic_ncols=True,
    )

    def load(f: Path) -> torch.Tensor | SkippedFile:
        try:
            return backbone.preprocess(load_rgb(f, rel[f]))
        except InputImageError as exc:
            return SkippedFile(rel[f], str(exc).split(": ", 1)[-1])

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for start in range(0, len(todo), shard_size):
            chunk = todo[start : start + shard_size]
            shard_feats, shard_paths = [], []
            for b in range(0, len(chunk), batch_size):
                check_cancelled(cancel)
                batch_files = chunk[b : b + batch_size]
                loaded = list(pool.map(load, batch_files))
                ok = [(f, t) for f, t in zip(batch_files, loaded, strict=True) if isinstance(t, torch.Tensor)]
                for item in loaded:
                    if isinstance(item, SkippedFile):
                        skipped.append(item)
                        bad[item.path] = item.reason
                if ok:
                    shard_feats.append(backbone.embed(torch.stack([t for _, t in ok])))
                    shard_paths += [rel[f] for f, _ in ok]
                bar.update(len(batch_files))
                if on_progress:
                    on_progress(Progress(f"extract {backbone.name}", bar.n, len(files)))
            if shard_paths:
                name = f"shard_{shard_no:06d}"
                atomic_save_npy(partial / f"{name}.npy", np.concatenate(shard_feats))
                atomic_write_bytes(partial / f"{name}.json", json.dumps(shard_paths).encode())
                shard_no += 1
                embedded += len(shard_paths)
            atomic_write_bytes(partial / "skipped.json", json.dumps(bad).encode())
    bar.close()

    done, _ = _read_done(partial)
    order = [rel[f] for f in files if rel[f] in done or rel[f] in prev_rows]
    if previous is not None and embedded == 0 and order == previous.paths:
        shutil.rmtree(partial, ignore_errors=True)
        return ExtractReport(out, 0, reused, skipped)
    shards = {npy: np.load(npy, mmap_mode="r") for npy in {v[0] for v in done.values()}}
    feats = np.empty((len(order), backbone.dim), dtype=np.float32)
    for i, p in enumerate(order):
        if p in done:
            npy, row = done[p]
            feats[i] = shards[npy][row]
        else:
            feats[i] = previous.feats[prev_rows[p]]
    write_store(out, feats, order, backbone.name, image_root=root, source=", ".join(str(f) for f in folders))
    del shards
    shutil.rmtree(partial, ignore_errors=True)
    return ExtractReport(out, embedded, reused, skipped)
