"""The one device vocabulary: ``auto`` resolves to what torch sees, a GPU asked for on a machine without one is a
one-line error, and index kinds search where they can."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attribution_core.core.device import resolve_device
from attribution_core.core.errors import AttributionError
from attribution_core.data.store import write_store
from attribution_core.heads import identity_heads
from attribution_core.index import get_index_kind, load_index


def test_auto_is_the_cpu_without_a_gpu_and_names_are_checked() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(AttributionError, match="--device 'tpu9' is not a device"):
        resolve_device("tpu9")
    if not torch.cuda.is_available():
        with pytest.raises(AttributionError, match="no CUDA GPU is visible to torch on this machine; use --device cpu"):
            resolve_device("cuda")


def test_index_kinds_declare_their_devices_and_a_cpu_only_kind_searches_on_the_cpu(tmp_path) -> None:
    """hnsw runs on the CPU only: asked for ``auto`` it loads there (on any machine) and gives flat's answer."""
    assert "cuda" in get_index_kind("flat").devices and get_index_kind("hnsw").devices == ("cpu",)
    xb = np.random.default_rng(0).standard_normal((300, 8)).astype(np.float32)
    xb /= np.linalg.norm(xb, axis=1, keepdims=True)
    store = write_store(tmp_path / "s", xb, [str(i) for i in range(300)], "test")
    index, _ = load_index(store, identity_heads(8), "hnsw", progress=False, device="auto", params={"efSearch": 300})
    assert index.loaded.device == torch.device("cpu")
    flat, _ = load_index(store, identity_heads(8), "flat", progress=False, device="cpu")
    np.testing.assert_allclose(index.all_scores(xb[0]), flat.all_scores(xb[0]), atol=1e-6)


@pytest.mark.gpu
def test_heads_and_queries_run_on_the_gpu(tmp_path) -> None:
    """Heads move to the GPU with ``Heads.to``; mapping the store through them there gives the CPU's numbers."""
    xb = np.random.default_rng(1).standard_normal((100, 16)).astype(np.float32)
    heads = identity_heads(16)
    cpu = heads.real_head.map_numpy(xb)
    heads.to("cuda")
    assert heads.real_head.device.type == "cuda"
    np.testing.assert_allclose(heads.real_head.map_numpy(xb), cpu, atol=1e-6)
