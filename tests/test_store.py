"""Feature stores: memory-mapped round trip, the released .pth format, and clear errors for bad stores."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from attribution_core.core.errors import StoreError
from attribution_core.data.store import FeatureStore, import_released_feats, resolve_store, write_store

from .helpers import random_unit


def test_round_trip_is_memory_mapped(tmp_path) -> None:
    xb = random_unit(100, 8)
    store = write_store(tmp_path / "s", xb, [f"a/{i}.jpg" for i in range(100)], "pixel", image_root=tmp_path)
    again = FeatureStore.open(tmp_path / "s")
    assert isinstance(again.feats, np.memmap) and not again.feats.flags.writeable
    np.testing.assert_array_equal(again.feats, xb)
    assert again.paths[3] == "a/3.jpg" and again.image_path(3) == tmp_path / "a/3.jpg"
    assert again.checksum == store.checksum
    assert not list(tmp_path.glob(".s.tmp-*")), "temporary folder left behind"


def test_checksum_changes_with_content(tmp_path) -> None:
    xb = random_unit(10, 4)
    a = write_store(tmp_path / "a", xb, [str(i) for i in range(10)], "x")
    xb[3, 0] += 1e-3
    b = write_store(tmp_path / "b", xb, [str(i) for i in range(10)], "x")
    assert a.checksum != b.checksum


def test_released_pth_is_converted_once(tmp_path) -> None:
    feats = torch.from_numpy(random_unit(20, 512))
    paths = [f"{i:06d}.png" for i in range(20)]
    pth = tmp_path / "clip" / "laion_subset.pth"
    pth.parent.mkdir()
    torch.save({"feats": feats, "paths": paths}, pth)
    store = FeatureStore.open(pth)
    assert store.path == tmp_path / "clip" / "laion_subset.store"
    assert store.backbone == "clip" and store.dim == 512 and len(store) == 20
    assert store.paths[0] == "000000.jpg"  # the JPEG copies, as the original demo shows them
    np.testing.assert_array_equal(store.feats, feats.numpy())
    mtime = (store.path / "meta.json").stat().st_mtime_ns
    assert resolve_store(pth) == store.path and (store.path / "meta.json").stat().st_mtime_ns == mtime


def test_wrong_files_and_dimensions_are_named(tmp_path) -> None:
    with pytest.raises(StoreError, match="nowhere: no feature store here"):
        FeatureStore.open(tmp_path / "nowhere")
    torch.save({"features": torch.zeros(2, 2)}, tmp_path / "bad.pth")
    with pytest.raises(StoreError, match=r"bad.pth: not a released features file.*\['features'\]"):
        import_released_feats(tmp_path / "bad.pth", tmp_path / "bad.store", "clip")
    store = write_store(tmp_path / "s", random_unit(5, 512), list("abcde"), "clip")
    with pytest.raises(StoreError, match=r"512-d features from backbone 'clip'.*'dino' makes 768-d"):
        store.check_backbone("dino", 768)
    meta = json.loads((tmp_path / "s" / "meta.json").read_text())
    meta["count"] = 6
    (tmp_path / "s" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(StoreError, match="damaged feature store"):
        FeatureStore.open(tmp_path / "s")


@pytest.mark.parametrize(
    "damage,expect",
    [
        (
            lambda s: (s / "paths.json").write_text("[1, 2, 3]"),
            r"paths.json: expected a list of 3 image paths \(text\)",
        ),
        (lambda s: (s / "paths.json").write_text('{"a": 1}'), r"paths.json: expected a list of 3 image paths"),
        (lambda s: _edit_meta(s, image_root=12345), r"meta.json: field 'image_root' is 12345, not text"),
        (lambda s: _edit_meta(s, count="3"), r"meta.json: field 'count' is '3', not a non-negative integer"),
        (lambda s: _edit_meta(s, backbone=None), r"meta.json: field 'backbone' is None, not text"),
        (lambda s: (s / "feats.npy").write_bytes(np.random.default_rng(0).bytes(4096)), r"feats.npy: not a feature"),
    ],
)
def test_malformed_store_files_are_one_error_naming_the_file_and_field(tmp_path, damage, expect) -> None:
    """Every field of the on-disk store is checked on open: wrong types are one StoreError naming the file and
    the field (never a TypeError), and random bytes in feats.npy never get numpy's advice to unpickle them."""
    store = write_store(tmp_path / "s", random_unit(3, 8), ["a.jpg", "b.jpg", "c.jpg"], "test", tmp_path)
    damage(store.path)
    with pytest.raises(StoreError, match=expect) as err:
        FeatureStore.open(store.path)
    assert "allow_pickle" not in str(err.value) and "delete the store" in str(err.value)


def _edit_meta(store, **changes) -> None:
    meta = json.loads((store / "meta.json").read_text())
    (store / "meta.json").write_text(json.dumps({**meta, **changes}))
