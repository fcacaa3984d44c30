"""Webdataset shards (img2dataset's format) and extraction on a local Ray cluster (Ray Data actors).

The Ray tests start a real local Ray instance with two embedding actors; they compare its store with the
single-process extraction of the same folder, and kill an extraction mid-run to check that resuming redoes only
the shards that were not committed.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import skimage.data as data
from PIL import Image

from attribution_core.backbones import create_backbone
from attribution_core.cli import main
from attribution_core.core.images import load_rgb
from attribution_core.data.extract import extract_features
from attribution_core.data.store import FeatureStore

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon", "page", "text", "clock")


def write_shard(path: Path, photos: tuple[str, ...], first_key: int = 0) -> None:
    """A webdataset shard as img2dataset writes it: KEY.jpg, KEY.txt (caption), KEY.json (url, key, caption)."""
    with tarfile.open(path, "w") as tar:
        for i, name in enumerate(photos):
            key = f"{first_key + i:09d}"
            buf = io.BytesIO()
            Image.fromarray(getattr(data, name)()).convert("RGB").save(buf, format="JPEG")
            meta = {"url": f"https://images.example.org/{name}.jpg", "key": key, "caption": f"json {name}"}
            for suffix, payload in (
                (".jpg", buf.getvalue()),
                (".txt", f"a photo of {name}".encode()),
                (".json", json.dumps(meta).encode()),
            ):
                info = tarfile.TarInfo(key + suffix)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


@pytest.fixture
def corpus(photo_dir: Path) -> Path:
    """Loose photos, two webdataset shards, and one file that is not an image."""
    write_shard(photo_dir / "00000.tar", PHOTOS[:6])
    write_shard(photo_dir / "00001.tar", PHOTOS[6:], first_key=6)
    (photo_dir / "notes.jpg").write_text("not an image")
    return photo_dir


def test_webdataset_shards_keep_captions_and_urls(corpus: Path, tmp_path: Path, capsys) -> None:
    report = extract_features(corpus, tmp_path / "store", create_backbone("pixel", device="cpu"), progress=False)
    store = FeatureStore.open(tmp_path / "store")
    in_shards = [p for p in store.paths if ".tar/" in p]
    assert in_shards[:2] == ["00000.tar/000000000.jpg", "00000.tar/000000001.jpg"] and len(in_shards) == 10
    assert store.captions["00001.tar/000000007.jpg"] == "a photo of page"  # the .txt wins over the JSON's
    assert store.urls["00000.tar/000000002.jpg"] == "https://images.example.org/chelsea.jpg"
    assert "cats/chelsea.jpg" in store.paths and "cats/chelsea.jpg" not in store.urls
    assert [s.path for s in report.skipped] == ["notes.jpg"]
    # the image inside the shard reads as the original would (JPEG-decoded the same way)
    assert load_rgb(corpus / "00000.tar" / "000000003.jpg").size == Image.fromarray(data.rocket()).size

    query = tmp_path / "moon.png"  # only in a shard
    Image.fromarray(data.moon()).save(query)
    args = ["query", str(query), "--backbone", "pixel", "--feats", str(tmp_path / "store"), "-k", "3", "-q"]
    assert main([*args, "--json"]) == 0
    top = json.loads(capsys.readouterr().out)["results"][0]
    assert top["path"].endswith("00001.tar/000000006.jpg")
    assert top["url"] == "https://images.example.org/moon.jpg" and top["caption"] == "a photo of moon"
    assert main([*args, "--csv"]) == 0
    header, *rows = capsys.readouterr().out.splitlines()
    assert header.endswith(",caption,url")
    assert rows[0].endswith(",a photo of moon,https://images.example.org/moon.jpg")


def test_a_rewritten_shard_is_embedded_again(corpus: Path, tmp_path: Path) -> None:
    backbone = create_backbone("pixel", device="cpu")
    extract_features(corpus, tmp_path / "store", backbone, progress=False)
    time.sleep(0.01)
    write_shard(corpus / "00001.tar", ("horse", *PHOTOS[7:]), first_key=6)  # same names, other first image
    report = extract_features(corpus, tmp_path / "store", backbone, progress=False)
    assert report.embedded == 4 and report.changed == 4  # only the rewritten shard's images
    store = FeatureStore.open(tmp_path / "store")
    assert store.urls["00001.tar/000000006.jpg"] == "https://images.example.org/horse.jpg"


def _same_store(a: FeatureStore, b: FeatureStore) -> None:
    assert a.paths == b.paths
    np.testing.assert_allclose(a.feats, b.feats, rtol=1e-5, atol=1e-6)
    assert a.captions == b.captions and a.urls == b.urls


@pytest.mark.slow
def test_ray_extraction_equals_the_local_one(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from attribution_core.data.extract_ray import BackboneRequest, RayEngine

    backbone = create_backbone("pixel", device="cpu")
    local = extract_features(corpus, tmp_path / "local", backbone, batch_size=2, shard_size=4, progress=False)
    engine = RayEngine(BackboneRequest("pixel"), workers=2)
    remote = extract_features(
        corpus, tmp_path / "ray", backbone, batch_size=2, shard_size=4, progress=False, engine=engine
    )
    _same_store(FeatureStore.open(tmp_path / "local"), FeatureStore.open(tmp_path / "ray"))
    assert remote.embedded == local.embedded == 15
    assert [s.path for s in remote.skipped] == [s.path for s in local.skipped] == ["notes.jpg"]


_KILLABLE = textwrap.dedent(
    """
    import sys
    from attribution_core.backbones import Backbone, create_backbone
    from attribution_core.data.extract import extract_features
    from attribution_core.data.extract_ray import BackboneRequest, RayEngine

    real = create_backbone("pixel", device="cpu")
    extract_features(sys.argv[1], sys.argv[2], real, batch_size=1, shard_size=1, progress=False,
                     engine=RayEngine(BackboneRequest("pixel"), workers=1))
    """
)


@pytest.mark.slow
def test_a_killed_ray_extraction_resumes_with_only_the_missing_shards(corpus: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    from attribution_core.data.extract_ray import BackboneRequest, RayEngine

    out = tmp_path / "ray"
    partial = Path(f"{out}.partial")
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLABLE, str(corpus), str(out)], start_new_session=True, env=os.environ.copy()
    )
    try:
        deadline = time.monotonic() + 240
        while len(list(partial.glob("shard_*.json"))) < 2:
            assert proc.poll() is None, "the extraction ended before it could be killed"
            assert time.monotonic() < deadline, "no shard was committed in 4 minutes"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, its Ray instance and its actor, mid-run
        proc.wait()
    committed = len(list(partial.glob("shard_*.json")))
    assert not (out / "meta.json").exists() and 2 <= committed < 15

    backbone = create_backbone("pixel", device="cpu")
    resumed = extract_features(
        corpus, out, backbone, batch_size=1, shard_size=1, progress=False, engine=RayEngine(BackboneRequest("pixel"))
    )
    assert resumed.reused >= committed and resumed.embedded == 15 - resumed.reused
    extract_features(corpus, tmp_path / "local", backbone, progress=False)
    _same_store(FeatureStore.open(tmp_path / "local"), FeatureStore.open(out))
