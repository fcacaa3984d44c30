"""Extraction: odd files are skipped with reasons, and an interrupted run resumes without redoing work."""

from __future__ import annotations

import io

import numpy as np
import pytest
import skimage.data as data
from PIL import Image

from attribution_core.backbones import Backbone, create_backbone
from attribution_core.data.extract import extract_features
from attribution_core.data.store import FeatureStore


class CountingBackbone(Backbone):
    """The real pixel backbone, instrumented: counts embedded images and can be interrupted after N batches."""

    def __init__(self, interrupt_after: int | None = None):
        real = create_backbone("pixel", device="cpu")
        super().__init__(real.spec, real.model, real.device, real.weights)
        self.embedded = 0
        self.batches = 0
        self.interrupt_after = interrupt_after

    def embed(self, batch):
        if self.interrupt_after is not None and self.batches >= self.interrupt_after:
            raise KeyboardInterrupt
        self.batches += 1
        self.embedded += batch.shape[0]
        return super().embed(batch)


def test_odd_files_are_skipped_or_handled(photo_dir) -> None:
    (photo_dir / "readme.txt").write_text("not an image")
    (photo_dir / "fake.jpg").write_text("not really a jpeg")
    buf = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buf, format="JPEG")
    (photo_dir / "cut.jpg").write_bytes(buf.getvalue()[:3000])
    Image.fromarray(data.chelsea()).convert("CMYK").save(photo_dir / "cmyk.jpg")
    Image.fromarray(data.chelsea()).convert("RGBA").save(photo_dir / "alpha.png")
    (photo_dir / ".hidden.jpg").write_text("ignored")
    report = extract_features(photo_dir, photo_dir.parent / "store", CountingBackbone(), progress=False)
    store = FeatureStore.open(photo_dir.parent / "store")
    assert sorted(store.paths) == sorted(
        [
            "cats/chelsea.jpg",
            "misc/astronaut.png",
            "misc/coffee.webp",
            "rocket.jpg",
            "camera.png",
            "cmyk.jpg",
            "alpha.png",
        ]
    )
    reasons = {s.path: s.reason for s in report.skipped}
    assert set(reasons) == {"readme.txt", "fake.jpg", "cut.jpg"}
    assert "not an image" in reasons["readme.txt"] and "not an image" in reasons["fake.jpg"]
    assert "truncated" in reasons["cut.jpg"]
    assert "3 files" in report.summary()


def test_interrupted_extraction_resumes_without_recomputing(tmp_path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    out = tmp_path / "store"
    first = CountingBackbone(
        interrupt_after=3
    )  # 3 batches of 4: shards of 4 and 8 finished (shards grow from one batch)
    with pytest.raises(KeyboardInterrupt):
        extract_features(folder, out, first, batch_size=4, shard_size=8, progress=False)
    assert not (out / "meta.json").exists(), "no half-written store"
    second = CountingBackbone()
    report = extract_features(folder, out, second, batch_size=4, shard_size=8, progress=False)
    assert report.reused == 12 and report.embedded == 28 and second.embedded == 28
    fresh = CountingBackbone()
    extract_features(folder, tmp_path / "fresh", fresh, progress=False)
    a, b = FeatureStore.open(out), FeatureStore.open(tmp_path / "fresh")
    assert a.paths == b.paths
    np.testing.assert_allclose(a.feats, b.feats, atol=1e-6)
    third = CountingBackbone()
    again = extract_features(folder, out, third, progress=False)
    assert third.embedded == 0 and again.reused == 40, "a finished store is not recomputed"
    Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(folder / "new.png")
    fourth = CountingBackbone()
    extract_features(folder, out, fourth, progress=False)
    assert fourth.embedded == 1 and len(FeatureStore.open(out)) == 41, "only the new image is embedded"


def test_odd_shard_members_are_skipped_and_counted_and_never_share_a_path(tmp_path) -> None:
    """A webdataset shard with members named ``../../evil.jpg``, ``/abs/x.jpg`` and ``sub/../evil.jpg`` (beside a real
    ``sub/evil.jpg``), a symlink and a hard-link member: the two real images are extracted, every odd member is
    skipped and counted with its reason, and no two rows share a path."""
    import tarfile

    def jpeg(seed: int) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)).save(buf, "JPEG")
        return buf.getvalue()

    folder = tmp_path / "shards"
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as tar:
        for i, name in enumerate(["000.jpg", "../../evil.jpg", "/abs/x.jpg", "sub/evil.jpg", "sub/../evil.jpg"]):
            data = jpeg(i)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, kind in (("link.jpg", tarfile.SYMTYPE), ("hard.jpg", tarfile.LNKTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "000.jpg"
            tar.addfile(info)
    report = extract_features([folder], tmp_path / "store", create_backbone("pixel"), progress=False)
    store = FeatureStore.open(tmp_path / "store")
    assert sorted(store.paths) == ["00000.tar/000.jpg", "00000.tar/sub/evil.jpg"]
    assert report.embedded == 2 and len(report.skipped) == 5, report.skipped
    reasons = {s.path.split("00000.tar/", 1)[1]: s.reason for s in report.skipped}
    assert "unsafe member name" in reasons["../../evil.jpg"] and "unsafe member name" in reasons["/abs/x.jpg"]
    assert "unsafe member name" in reasons["sub/../evil.jpg"]
    assert "link" in reasons["link.jpg"] and "link" in reasons["hard.jpg"]
