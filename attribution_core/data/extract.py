"""Images in folders -> a feature store: batched, with a progress bar, resumable, and tolerant of odd files.

Work is written as numbered shards inside ``STORE.partial/`` (each shard's features first, then its list of
paths and file stamps, which is the shard's commit mark). Interrupt it and run it again: finished shards are kept
and only the rest is embedded; shards start small (one batch) and double, so even a short run keeps its work.
When every image is done the shards become the store in one atomic rename. Images replaced under the same name
(a different size or modification time) are embedded again. One extraction per store at a time (a lock file).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..backbones import Backbone
from ..core.errors import StoreError
from ..core.fileio import FileLock, atomic_save_npy, atomic_write_bytes, clean_stale_temps
from ..core.images import IMAGE_SUFFIXES, SkippedFile, common_root, file_stamp, relative_name, scan_image_files
from ..core.paths import display_path
from ..core.progress import CancelFlag, Progress, ProgressCallback
from ..core.webdataset import shard_metadata
from .shard_engines import LocalEngine, ShardEngine
from .store import FeatureStore, check_store_target, write_store


@dataclass
class ExtractReport:
    """What an extraction did."""

    store: Path
    embedded: int  # images embedded in this run
    reused: int  # images whose features were already done (earlier run or existing store)
    skipped: list[SkippedFile] = field(default_factory=list)
    changed: int = 0  # images already in the store but replaced since: embedded again (counted in ``embedded``)

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
        changed = f", {self.changed} changed" if self.changed else ""
        return (
            f"{display_path(self.store)}: {self.total} images ({self.embedded} embedded now{changed}, {self.reused} "
            f"already done){skipped}"
        )


def _read_done(partial: Path) -> tuple[dict[str, tuple[Path, int, str]], dict[str, str]]:
    """Paths already embedded (-> shard file, row, stamp) and files already found unreadable (-> reason)."""
    done: dict[str, tuple[Path, int, str]] = {}
    for marker in sorted(partial.glob("shard_*.json")):
        npy = marker.with_suffix(".npy")
        if not npy.is_file():
            continue
        for row, entry in enumerate(json.loads(marker.read_text())):
            rel, stamp = (entry, "") if isinstance(entry, str) else (entry[0], entry[1])
            done[rel] = (npy, row, stamp)
    bad: dict[str, str] = {}
    if (partial / "skipped.json").is_file():
        bad = json.loads((partial / "skipped.json").read_text())
    return done, bad


def _still_current(done: dict[str, tuple[Path, int, str]], current: dict[str, str]) -> dict[str, tuple[Path, int, str]]:
    """Finished shard rows whose file has not changed since it was embedded (a replaced image is embedded again)."""
    return {p: v for p, v in done.items() if not v[2] or p not in current or v[2] == current[p]}


def _shard_sizes(first: int, largest: int):
    """first, 2·first, 4·first, … up to ``largest``, then ``largest`` for ever."""
    size = max(1, min(first, largest))
    while True:
        yield size
        size = min(largest, size * 2)


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
    captions: dict[str, str] | None = None,
    engine: ShardEngine | None = None,
) -> ExtractReport:
    """Embed every image under ``images`` (folders, searched recursively) into the store ``out``.

    Args:
        images: one or more folders.
        out: the store folder to create (or update: images already in it, unchanged, are not embedded again).
        backbone: the loaded backbone.
        shard_size: the largest shard, in images (shards start at one batch and double).
        root: folder the stored paths are relative to (default: the folders' common parent, or the folder).
        workers: threads that decode images while the model runs.
        files: embed exactly these files (under ``root``) instead of scanning the folders.
        on_progress: called after every batch with images done / total.
        cancel: checked before every batch; finished shards are kept.
        captions: a caption per stored path (relative to ``root``), kept in the store (images inside webdataset
            shards bring their own captions and URLs).
        engine: what embeds the shards: this process (:class:`LocalEngine`, the default) or a Ray cluster
            (``attribution_core.data.extract_ray.RayEngine``); shards are committed here either way.

    Returns:
        An :class:`ExtractReport`; unreadable files are listed in ``skipped`` with a reason, never raised.

    Raises:
        LockedError: another extraction into ``out`` is running.
    """
    folders = [Path(images)] if isinstance(images, (str, Path)) else [Path(p) for p in images]
    out = check_store_target(out)  # before any work: never over a folder that is not a store
    root = Path(root).resolve() if root else common_root(folders)
    if files is None:
        files, skipped = scan_image_files(folders, root)
    else:
        files, skipped = [Path(os.path.abspath(f)) for f in files], []
    rel = {f: relative_name(f, root) for f in files}
    out.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(out.with_name(f".{out.name}.lock"), f"another extraction into {display_path(out)}"):
        clean_stale_temps(out.parent)
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
        clean_stale_temps(partial)
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

        stamp = {f: file_stamp(f) for f in files}
        current = {rel[f]: stamp[f] for f in files}
        done, bad = _read_done(partial)
        done = _still_current(done, current)
        prev_rows = {p: i for i, p in enumerate(previous.paths)} if previous is not None else {}
        prev_stamps = previous.stamps if previous is not None else {}
        changed = {p for p, st in current.items() if p in prev_rows and prev_stamps.get(p, st) != st}
        fresh = {p for p in prev_rows if p not in changed}
        todo = [f for f in files if rel[f] not in done and rel[f] not in fresh and rel[f] not in bad]
        reused = sum(1 for f in files if rel[f] in done or rel[f] in fresh)
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

        def tick(n: int) -> None:
            bar.update(n)
            if on_progress:
                on_progress(Progress(f"extract {backbone.name}", bar.n, len(files)))

        sizes = _shard_sizes(batch_size, shard_size)
        chunks: list[list[tuple[Path, str]]] = []
        begin = 0
        while begin < len(todo):
            chunks.append([(f, rel[f]) for f in todo[begin : begin + next(sizes)]])
            begin += len(chunks[-1])
        embed = engine or LocalEngine(workers)
        for shard in embed(chunks, backbone, batch_size, tick, cancel):
            skipped += shard.skipped
            bad.update({s.path: s.reason for s in shard.skipped})
            if shard.rels:
                name = f"shard_{shard_no:06d}"
                atomic_save_npy(partial / f"{name}.npy", shard.feats)
                atomic_write_bytes(partial / f"{name}.json", json.dumps([[r, current[r]] for r in shard.rels]).encode())
                shard_no += 1
                embedded += len(shard.rels)
            atomic_write_bytes(partial / "skipped.json", json.dumps(bad).encode())
        bar.close()

        done, _ = _read_done(partial)
        done = _still_current(done, current)
        order = [rel[f] for f in files if rel[f] in done or rel[f] in fresh]
        from_shards = shard_metadata([f for f in files if rel[f] in done or rel[f] in fresh], IMAGE_SUFFIXES)
        urls = {**(previous.urls if previous is not None else {})}
        urls.update({rel[f]: s.url for f, s in from_shards.items() if s.url})
        captions = {
            **(previous.captions if previous is not None else {}),
            **{rel[f]: s.caption for f, s in from_shards.items() if s.caption},
            **(captions or {}),
        }
        same_captions = previous is not None and all(
            previous.captions.get(p) == captions.get(p) and previous.urls.get(p) == urls.get(p) for p in order
        )
        if previous is not None and embedded == 0 and not changed and order == previous.paths and same_captions:
            shutil.rmtree(partial, ignore_errors=True)
            return ExtractReport(out, 0, reused, skipped)
        shards = {npy: np.load(npy, mmap_mode="r") for npy in {v[0] for v in done.values()}}
        feats = np.empty((len(order), backbone.dim), dtype=np.float32)
        stamps: dict[str, str] = {}
        for i, p in enumerate(order):
            if p in done:
                npy, row, st = done[p]
                feats[i] = shards[npy][row]
                stamps[p] = st
            else:
                feats[i] = previous.feats[prev_rows[p]]
                stamps[p] = prev_stamps.get(p, "")
        write_store(
            out,
            feats,
            order,
            backbone.name,
            image_root=root,
            source=", ".join(str(f) for f in folders),
            stamps={p: s for p, s in stamps.items() if s},
            captions=captions,
            urls=urls,
        )
        del shards
        shutil.rmtree(partial, ignore_errors=True)
        return ExtractReport(out, embedded, reused, skipped, changed=len(changed))
