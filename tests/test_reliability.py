"""Hardening (issue 8): each test reproduces something that broke, as a user or a hostile input would hit it."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pytest
import skimage.data as data
import torch
from PIL import Image

from attribution_core.attribute.calibration import load_calibrator
from attribution_core.backbones import create_backbone
from attribution_core.cli import main
from attribution_core.core.errors import AttributionError, CheckpointError, InputImageError, StoreError
from attribution_core.core.fileio import FileLock, LockedError
from attribution_core.core.images import MAX_IMAGE_PIXELS, load_rgb
from attribution_core.core.paths import project_root
from attribution_core.data.extract import extract_features
from attribution_core.data.store import FeatureStore, import_released_feats, resolve_store, write_store
from attribution_core.heads import identity_heads, load_heads
from attribution_core.index import load_index

from .helpers import random_unit, released_heads

PHOTOS = {"chelsea": data.chelsea, "astronaut": data.astronaut, "coffee": data.coffee, "rocket": data.rocket}


def released_laion_layout(tmp_path: Path) -> tuple[Path, Path]:
    """The authors' layout in miniature: a features file naming PNGs, a folder of the JPEG copies."""
    jpeg = tmp_path / "dataset" / "laion_subset_jpeg"
    jpeg.mkdir(parents=True)
    backbone = create_backbone("pixel", device="cpu")
    images = []
    for i, make in enumerate(PHOTOS.values()):
        img = Image.fromarray(make())
        img.save(jpeg / f"{i:06d}.jpg")
        images.append(load_rgb(jpeg / f"{i:06d}.jpg"))
    feats = torch.from_numpy(backbone.embed_images(images))
    pth = tmp_path / "feats" / "pixel" / "laion_subset.pth"
    pth.parent.mkdir(parents=True)
    torch.save({"feats": feats, "paths": [f"{i:06d}.png" for i in range(len(images))]}, pth)
    return pth, jpeg


def test_released_png_names_point_at_the_jpeg_copies(tmp_path) -> None:
    pth, jpeg = released_laion_layout(tmp_path)
    (tmp_path / "spaces.toml").write_text(
        f'[[spaces]]\nname = "laion_pixels"\nbackbone = "pixel"\nstore = "{pth}"\nimage_root = "{jpeg}"\n'
    )
    query = jpeg / "000001.jpg"
    out = subprocess.run(
        [sys.executable, "-m", "attribution_core", "-q", "query", str(query), "--space", "laion_pixels", "--json"],
        capture_output=True,
        text=True,
        cwd=project_root(),
        env={**os.environ, "ATTRIBUTION_SPACES": str(tmp_path / "spaces.toml"), "ATTRIBUTION_CACHE": str(tmp_path)},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    paths = [r["path"] for r in json.loads(out.stdout)["results"]]
    assert paths[0] == str(query) and all(Path(p).is_file() for p in paths), paths


def test_released_png_names_in_the_explorer(tmp_path, monkeypatch) -> None:
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    pth, jpeg = released_laion_layout(tmp_path)
    (tmp_path / "spaces.toml").write_text(
        f'[[spaces]]\nname = "laion_pixels"\nbackbone = "pixel"\nstore = "{pth}"\nimage_root = "{jpeg}"\n'
    )
    monkeypatch.setenv("ATTRIBUTION_SPACES", str(tmp_path / "spaces.toml"))
    monkeypatch.setattr("app.resources.demo_ready", lambda statuses: True)  # this test needs no demo bundle
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(str(project_root() / "streamlit_demo.py"), default_timeout=180)
    at.run()
    at.sidebar.multiselect[0].set_value(["laion_pixels"]).run()
    upload = (jpeg / "000002.jpg").read_bytes()
    at.sidebar.file_uploader[0].set_value(("q.jpg", upload, "image/jpeg")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    rows = dict(zip(at.table[0].value.index, at.table[0].value["value"], strict=True))
    assert rows["path"].endswith("000002.jpg") and Path(jpeg / "000002.jpg").is_file()
    from app.resources import thumbnails
    from attribution_core.attribute.interface import Attribution

    shown = Attribution(1, str(jpeg / "000002.jpg"), 1.0, 1.0, 2)
    assert thumbnails().get("laion_pixels", shown) is not None  # a real image, not a placeholder


def small_store(tmp_path: Path, n: int = 200, d: int = 8) -> FeatureStore:
    return write_store(tmp_path / "s", random_unit(n, d), [f"{i}.jpg" for i in range(n)], "test")


def test_index_rebuilds_when_the_store_data_is_rewritten(tmp_path, caplog) -> None:
    store = small_store(tmp_path)
    heads = identity_heads(8)
    load_index(store, heads)
    feats = np.lib.format.open_memmap(store.path / "feats.npy", mode="r+")
    feats[:] = random_unit(200, 8, seed=9)  # same shape, other data
    feats.flush()
    del feats
    time.sleep(0.01)
    os.utime(store.path / "feats.npy")
    reopened = FeatureStore.open(store.path)
    assert reopened.checksum != store.checksum
    index, built = load_index(reopened, heads)
    assert built
    np.testing.assert_allclose(index.index.reconstruct(5), reopened.feats[5], atol=1e-6)


def test_index_of_another_head_copied_in_is_rebuilt(tmp_path) -> None:
    store = small_store(tmp_path)
    torch.save(released_heads(8, seed=1), tmp_path / "h1.pth")
    torch.save(released_heads(8, seed=2), tmp_path / "h2.pth")
    h1, h2 = load_heads(tmp_path / "h1.pth", 8), load_heads(tmp_path / "h2.pth", 8)
    i1, _ = load_index(store, h1)
    i2, _ = load_index(store, h2)
    shutil.copy(i2.path, i1.path)  # same size: a flat index of the same shape
    (store.path / "index" / i1.path.with_suffix(".json").name).write_text(i1.path.with_suffix(".json").read_text())
    _, built = load_index(store, h1)
    assert built, "another head's vectors are not trusted"


def test_corrupt_or_truncated_faiss_file_is_rebuilt(tmp_path) -> None:
    store = small_store(tmp_path)
    index, _ = load_index(store, identity_heads(8))
    data_ = index.path.read_bytes()
    index.path.write_bytes(data_[: len(data_) // 2])
    again, built = load_index(store, identity_heads(8))
    assert built and again.ntotal == 200


def test_replaced_image_is_embedded_again(tmp_path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(data.chelsea()).save(folder / "a.jpg")
    Image.fromarray(data.coffee()).save(folder / "b.jpg")
    backbone = create_backbone("pixel", device="cpu")
    extract_features(folder, tmp_path / "store", backbone, progress=False)
    before = np.array(FeatureStore.open(tmp_path / "store").feats)
    Image.fromarray(data.rocket()).save(folder / "a.jpg")  # replaced under the same name
    report = extract_features(folder, tmp_path / "store", backbone, progress=False)
    assert report.changed == 1 and report.embedded == 1 and "1 changed" in report.summary()
    after = FeatureStore.open(tmp_path / "store")
    row = after.paths.index("a.jpg")
    assert not np.allclose(after.feats[row], before[row])
    np.testing.assert_array_equal(after.feats[after.paths.index("b.jpg")], before[after.paths.index("b.jpg")])


def test_nan_heads_calibrators_and_feature_rows_are_refused(tmp_path) -> None:
    state = released_heads(4)
    state["synth_mapper"]["weight"][0, 0] = float("nan")
    torch.save(state, tmp_path / "nan_heads.pth")
    with pytest.raises(CheckpointError, match=r"nan_heads.pth: synth_mapper.weight holds NaN or inf"):
        load_heads(tmp_path / "nan_heads.pth", 4)
    torch.save({"inv_tau": torch.tensor(float("inf")), "bias": torch.tensor(0.0)}, tmp_path / "cal.pth")
    with pytest.raises(CheckpointError, match=r"cal.pth: calibrator inv_tau must be a positive number"):
        load_calibrator(tmp_path / "cal.pth")
    feats = torch.from_numpy(random_unit(5, 4))
    feats[3, 1] = float("nan")
    torch.save({"feats": feats, "paths": [f"{i}.png" for i in range(5)]}, tmp_path / "nan.pth")
    with pytest.raises(StoreError, match=r"nan.pth: feature row 3 \(3.jpg\) holds NaN or inf"):
        import_released_feats(tmp_path / "nan.pth", tmp_path / "nan.store", "test", image_root=tmp_path / "x_jpeg")
    assert not (tmp_path / "nan.store").exists(), "nothing half-written"
    torch.save({"feats": torch.zeros(0, 4), "paths": []}, tmp_path / "empty.pth")
    with pytest.raises(StoreError, match=r"empty.pth: the features file has no rows"):
        import_released_feats(tmp_path / "empty.pth", tmp_path / "e.store", "test")


def test_decompression_limit_is_stated_and_16_bit_is_exact(tmp_path) -> None:
    side = int(MAX_IMAGE_PIXELS**0.5) + 10
    Image.new("1", (side, side)).save(tmp_path / "big.png")
    with pytest.raises(InputImageError, match=f"over the limit of {MAX_IMAGE_PIXELS:,} pixels"):
        load_rgb(tmp_path / "big.png")
    ramp = (np.arange(65536, dtype=np.uint32).reshape(256, 256)).astype(np.uint16)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    got = np.asarray(load_rgb(tmp_path / "ramp16.png"))[..., 0].astype(int)
    want = np.clip(np.round(ramp.astype(np.float64) / 65535 * 255), 0, 255).astype(int)
    assert np.abs(got - want).max() <= 1


MEMORY_PROBE = r"""
import io, sys, threading
import numpy as np
from PIL import Image
from attribution_core.core.images import load_rgb, release_memory, QUERY_MAX_SIDE
side = int(sys.argv[1])
rng = np.random.default_rng(0)
tile = rng.integers(0, 255, (side // 8, side, 3), dtype=np.uint8)
buf = io.BytesIO(); Image.fromarray(np.concatenate([tile] * 8)).save(buf, format="PNG", compress_level=1)
data = buf.getvalue()
def rss(): return int(open("/proc/self/statm").read().split()[1]) * 4096 // 2**20
def hwm(): return int(next(l for l in open("/proc/self/status") if l.startswith("VmHWM")).split()[1]) // 1024
open("/proc/self/clear_refs", "w").write("5")  # reset the peak: measure the decoding alone
base = rss()
out = []
threads = [threading.Thread(target=lambda: out.append(load_rgb(data, max_side=QUERY_MAX_SIDE).size)) for _ in range(8)]
[t.start() for t in threads]; [t.join() for t in threads]
peak = hwm()
release_memory()
print(base, peak, rss(), len(data) // 2**20, out[0][0], out[0][1])
"""


@pytest.mark.slow
def test_eight_concurrent_large_uploads_stay_within_the_memory_bound(tmp_path) -> None:
    """8 sessions decode a legal 36-megapixel upload at once: peak RSS grows by under 1 GB (README: Reliability;
    large decodes take turns, two at a time) and comes back down afterwards."""
    out = subprocess.run(
        [sys.executable, "-c", MEMORY_PROBE, "6000"], capture_output=True, text=True, timeout=300, cwd=project_root()
    )
    assert out.returncode == 0, out.stderr
    base, peak, after, _, w, h = map(int, out.stdout.split())
    assert peak - base < 1000, (base, peak, after)
    assert after < base + 300, (base, peak, after)
    assert min(w, h) >= 2048 and max(w, h) <= 6000  # reduced while decoding, never below what embedding needs


def test_disk_full_is_one_line_and_leaves_no_temporaries(tmp_path, monkeypatch, capsys) -> None:
    store = small_store(tmp_path)

    def full(index, path):
        Path(path).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device", path)

    monkeypatch.setattr(faiss, "write_index", full)
    assert main(["-q", "index", str(store.path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "run the same command again" in err
    assert not [p for p in (store.path / "index").iterdir() if ".tmp-" in p.name]


def test_read_only_released_location_converts_into_the_cache(tmp_path, monkeypatch) -> None:
    pth, jpeg = released_laion_layout(tmp_path)
    monkeypatch.setenv("ATTRIBUTION_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr("attribution_core.data.store.is_writable_dir", lambda folder: False)
    out = resolve_store(pth, "pixel", jpeg)
    assert out.is_relative_to(tmp_path / "cache") and FeatureStore.open(out).paths[0] == "000000.jpg"


def test_symlinks_outside_the_folder_and_outside_root(tmp_path) -> None:
    folder, elsewhere = tmp_path / "imgs", tmp_path / "elsewhere"
    folder.mkdir()
    elsewhere.mkdir()
    Image.fromarray(data.chelsea()).save(elsewhere / "cat.jpg")
    (folder / "cat.jpg").symlink_to(elsewhere / "cat.jpg")
    (folder / "gone.jpg").symlink_to(tmp_path / "missing.jpg")
    (folder / "linked_dir").symlink_to(elsewhere, target_is_directory=True)
    (folder / "loop").symlink_to(folder, target_is_directory=True)
    report = extract_features(folder, tmp_path / "store", create_backbone("pixel", device="cpu"), progress=False)
    assert FeatureStore.open(tmp_path / "store").paths == ["cat.jpg"]
    reasons = {s.path: s.reason for s in report.skipped}
    assert reasons["gone.jpg"] == "broken symlink"
    assert "not followed" in reasons["linked_dir"] and "not followed" in reasons["loop"]
    (tmp_path / "tc.json").write_text(json.dumps([{"exemplar": ["../elsewhere/cat.jpg"], "synth": {"o": ["x.jpg"]}}]))
    with pytest.raises(AttributionError, match=r"1 image paths lead outside"):
        from attribution_core.judges.abc import check_test_case_files, read_test_case

        check_test_case_files(read_test_case(tmp_path / "tc.json"), folder)


def test_damaged_metadata_and_concurrent_extraction(tmp_path) -> None:
    store = small_store(tmp_path)
    (store.path / "meta.json").write_text("[1, 2, 3]")
    with pytest.raises(StoreError, match=r"damaged feature store \(meta.json holds a list, not an object\)"):
        FeatureStore.open(store.path)
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(data.coffee()).save(folder / "c.jpg")
    with FileLock(tmp_path / ".out.lock", "x"), pytest.raises(LockedError, match="another extraction into"):
        extract_features(folder, tmp_path / "out", create_backbone("pixel", device="cpu"), progress=False)


def test_stale_temporaries_are_cleaned_on_the_next_run(tmp_path) -> None:
    old = time.time() - 3600
    (tmp_path / ".s.tmp-deadbeef").mkdir()
    (tmp_path / ".s.old-deadbeef").mkdir()
    (tmp_path / ".s.tmp-cafe0000").mkdir()  # a live writer's: recent, kept
    for name in (".s.tmp-deadbeef", ".s.old-deadbeef"):
        os.utime(tmp_path / name, (old, old))
    small_store(tmp_path)
    left = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert left == [".s.tmp-cafe0000"]


def test_ad_hoc_heads_index_goes_to_the_cache(demo_bundle, tmp_path, monkeypatch) -> None:
    from attribution_core.attribute.spaces import custom_space
    from attribution_core.features.attributor import FeatureAttributor
    from attribution_core.registry import get_space

    monkeypatch.setenv("ATTRIBUTION_CACHE", str(tmp_path / "cache"))
    torch.save(released_heads(768, seed=4), tmp_path / "mine.pth")
    spec = custom_space(get_space("demo_pixel"), mapper=tmp_path / "mine.pth")
    before = set((spec.store / "index").iterdir())
    attributor = FeatureAttributor.load(spec, device="cpu", progress=False)
    assert attributor.index.path.is_relative_to(tmp_path / "cache")
    assert set((spec.store / "index").iterdir()) == before, "the demo's store folder is left alone"


def test_evaluation_cache_is_keyed_by_root(tmp_path) -> None:
    from attribution_core.features.files import file_features

    for copy in ("a", "b"):
        (tmp_path / copy).mkdir()
        Image.fromarray(data.chelsea() if copy == "a" else data.coffee()).save(tmp_path / copy / "e.jpg")
        Image.fromarray(data.rocket()).save(tmp_path / copy / "s.jpg")
    (tmp_path / "tc.json").write_text(json.dumps([{"exemplar": ["e.jpg"], "synth": {"o": ["s.jpg"]}}]))
    backbone = create_backbone("pixel", device="cpu")
    files = {c: [tmp_path / c / "e.jpg", tmp_path / c / "s.jpg"] for c in ("a", "b")}
    fa = file_features(files["a"], backbone, tmp_path / "a", "tc", tmp_path / "cache", progress=False)
    fb = file_features(files["b"], backbone, tmp_path / "b", "tc", tmp_path / "cache", progress=False)
    assert not np.allclose(fa[str(files["a"][0])], fb[str(files["b"][0])]), "each root's own images"
    stores = [p for p in (tmp_path / "cache" / "pixel").iterdir() if p.is_dir()]  # beside each, its extraction lock
    assert len(stores) == 2, "one cached store per root"


PEAK_RSS = (
    "import resource, sys\n"
    "from attribution_core.cli import main\n"
    "rc = main(sys.argv[1:])\n"
    "print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, 'rc', rc)\n"
)


def peak_of(*args: str) -> tuple[int, int, str]:
    """(peak RSS in KiB, exit code, stderr) of one ``attribute`` run in a fresh process."""
    out = subprocess.run(
        [sys.executable, "-c", PEAK_RSS, "-q", *args], cwd=project_root(), capture_output=True, text=True, timeout=600
    )
    words = out.stdout.split()
    return int(words[words.index("peak") + 1]), int(words[words.index("rc") + 1]), out.stderr


def test_degenerate_shapes_cost_no_more_than_a_normal_query(demo_bundle, tmp_path) -> None:
    """A 144-byte PNG of 20000 x 1 pixels (which a backbone would scale to 5,120,000 x 256: 6 GB) is refused with one
    line that says what to do, at the memory of a normal query; four such files in an extraction are skipped and
    counted."""
    strip = tmp_path / "strip.png"
    Image.new("RGB", (20000, 1), (200, 30, 30)).save(strip)
    normal = project_root() / "assets" / "chelsea_q0_object_00.jpg"
    base, rc, _ = peak_of("query", str(normal), "--space", "demo_efficientnet_lite0")
    assert rc == 0
    peak, rc, err = peak_of("query", str(strip), "--space", "demo_efficientnet_lite0")
    assert rc == 2 and "too elongated (at most 16:1" in err and "crop it" in err and len(err.strip().splitlines()) == 1
    assert peak <= 1.5 * base, (peak, base)
    folder = tmp_path / "strips"
    folder.mkdir()
    for i in range(4):
        Image.new("RGB", (1, 20000), (i, 0, 0)).save(folder / f"s{i}.png")
    shutil.copy(normal, folder / "photo.jpg")
    report = extract_features([folder], tmp_path / "store", create_backbone("pixel"), progress=False)
    assert report.embedded == 1 and len(report.skipped) == 4
    assert all("too elongated" in s.reason for s in report.skipped)


def test_a_symlink_loop_and_a_sparse_shard_member_are_named_for_what_they_are(tmp_path) -> None:
    """A file symlink loop is reported as a loop (not "file not found"), as a query and in an extraction; a sparse
    member of a webdataset shard is skipped as sparse (not reported as a truncated shard)."""
    import io
    import tarfile

    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "a.jpg").symlink_to(folder / "b.jpg")
    (folder / "b.jpg").symlink_to(folder / "a.jpg")
    with pytest.raises(InputImageError, match=r"a\.jpg: a symlink loop"):
        load_rgb(folder / "a.jpg")
    buf = io.BytesIO()
    Image.fromarray(data.chelsea()).save(buf, "JPEG")
    with tarfile.open(folder / "00000.tar", "w", format=tarfile.GNU_FORMAT) as tar:
        for name, kind in (("000.jpg", tarfile.REGTYPE), ("001.jpg", tarfile.GNUTYPE_SPARSE)):
            info = tarfile.TarInfo(name)
            info.type, info.size = kind, len(buf.getvalue())
            tar.addfile(info, io.BytesIO(buf.getvalue()))
    report = extract_features(folder, tmp_path / "store", create_backbone("pixel", device="cpu"), progress=False)
    reasons = {s.path: s.reason for s in report.skipped}
    assert report.embedded == 1 and FeatureStore.open(tmp_path / "store").paths == ["00000.tar/000.jpg"]
    assert "symlink loop" in reasons["a.jpg"] and "symlink loop" in reasons["b.jpg"]
    assert "sparse" in reasons["00000.tar/001.jpg"]
