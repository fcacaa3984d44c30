"""``flat``: every vector in float32, scored exactly in one pass (the default kind; on a GPU through torch)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from ...core.device import check_gpu_copy
from ...core.progress import Tracker, as_tracker
from ...data.mapped import map_tail, mapped_scores
from ..registry import IndexKind, register_index_kind

ADD_CHUNK = 100_000


def add_in_chunks(index: faiss.Index, xb: np.ndarray, name: str, progress: bool | Tracker) -> faiss.Index:
    """``index.add`` of ``xb`` [nb, d] in chunks, with progress (a terminal bar for large stores) and cancel."""
    nb = len(xb)
    tracker = as_tracker(progress).quiet_below(nb, ADD_CHUNK)
    for i in tracker.track(range(0, nb, ADD_CHUNK), f"index {name}", unit="chunk"):
        index.add(np.ascontiguousarray(xb[i : i + ADD_CHUNK]))
    return index


@register_index_kind
class FlatIndex(IndexKind):
    """Exact: one BLAS pass over the memory-mapped vectors gives every score (a GPU copy when asked for)."""

    name = "flat"
    summary = "flat (exact, default)"
    devices = ("cpu", "cuda")
    exhaustive = True

    def __init__(self, index: faiss.Index, params: dict, path: Path | None = None, device=None, *rest) -> None:
        super().__init__(index, params, path, device, *rest)
        self.xb = flat_vectors(index, path)  # zero-copy view of the vectors
        self.xb_gpu = None
        if device is not None and device.type == "cuda":
            import torch

            check_gpu_copy(self.xb.nbytes, device, f"the flat index's {self.ntotal} vectors")
            self.xb_gpu = torch.from_numpy(np.ascontiguousarray(self.xb)).to(device)

    @classmethod
    def from_vectors(cls, xb: np.ndarray, params: dict, progress: bool | Tracker = True) -> faiss.Index:
        return add_in_chunks(faiss.IndexFlatIP(xb.shape[1]), xb, cls.name, progress)

    @classmethod
    def read(cls, path: Path) -> faiss.Index:
        """Memory-mapped: the vectors are not copied into the heap."""
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)

    def all_scores(self, q: np.ndarray) -> np.ndarray:
        return self.all_scores_many(q[None])[0]

    def all_scores_many(self, xq: np.ndarray) -> np.ndarray:
        """One matrix-matrix product for the whole batch: one pass over the (mapped, misaligned) vectors, no
        private copy; on the GPU copy when there is one."""
        if self.xb_gpu is not None:
            import torch

            return (torch.from_numpy(xq).to(self.xb_gpu.device) @ self.xb_gpu.T).cpu().numpy()
        return mapped_scores(self.xb, xq)


def flat_vectors(index: faiss.Index, path: Path | None) -> np.ndarray:
    """A flat index's vectors [nb, d] without a copy: numpy's memory map of the index file's tail when it holds the
    same vectors as the index (faster to fault in cold than FAISS's own mapping: see attribution_core/data/mapped.py),
    else FAISS's memory."""
    xb = faiss.rev_swig_ptr(index.get_xb(), index.ntotal * index.d).reshape(index.ntotal, index.d)
    tail = map_tail(path, xb.shape) if path is not None and index.ntotal > 0 else None
    if tail is not None and np.array_equal(tail[0], xb[0]) and np.array_equal(tail[-1], xb[-1]):
        return tail
    return xb
