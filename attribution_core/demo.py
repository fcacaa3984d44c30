"""The embedded default: a demo bundle built offline from photographs that installed packages ship.

What ``build_demo`` makes (all deterministic, all git-ignored, all rebuilt by this code):

- ``dataset/demo/corpus/<photo>/view_NNN.jpg``: the training corpus, >= 1,000 crops/views of scikit-image's
  bundled photographs (the distractors of the AbC protocol).
- ``dataset/demo/exemplar/<model>/exemplar_N.jpg``: exemplars, from *other* photographs than the corpus; each
  "model" (as in AbC, one customised model) is one region of one photo, with 1-4 exemplar views of it.
- ``dataset/demo/synth/<model>/{object,style}_NN.jpg``: exemplar-influenced queries made without a diffusion
  model: "object" pastes an exemplar's content into another scene; "style" carries an exemplar's colours and
  texture onto other content.
- ``dataset/json/test_demo.json``: the ground truth in the AbC test-case format (REFERENCE §2).
- ``feats/demo/<backbone>/train``: feature stores over corpus ∪ exemplars (what the explorer searches), with
  flat indexes, for the demo spaces ``demo_efficientnet_lite0`` and ``demo_pixel``.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageOps
from tqdm.auto import tqdm

from .paths import project_root
from .spaces import DEFAULT_CALIBRATOR, SpaceSpec

if TYPE_CHECKING:
    from .backbones import Backbone

DEMO_VERSION = 3
DEMO_BACKBONES = ("efficientnet_lite0", "pixel")
VIEWS_PER_PHOTO = 60
SIDE = 256  # every generated image is SIDE x SIDE pixels
QUERIES_PER_TYPE = 4
QUERY_TYPES = ("object", "style")
#: Which quadrant's model goes to which split: held-out exemplars are never seen in training or validation.
SPLITS = {"train": (0, 1), "val": (2,), "heldout": (3,)}
TUNED_BACKBONE = "efficientnet_lite0"
EXAMPLE_QUERIES = ("synth/chelsea_q0/object_00.jpg", "synth/astronaut_q1/object_01.jpg", "synth/coffee_q2/style_00.jpg")


def _corpus_photos() -> dict[str, Callable[[], np.ndarray]]:
    import skimage.data as data

    return {
        "hubble": data.hubble_deep_field,
        "retina": data.retina,
        "camera": data.camera,
        "moon": data.moon,
        "coins": data.coins,
        "brick": data.brick,
        "grass": data.grass,
        "gravel": data.gravel,
        "page": data.page,
        "text": data.text,
        "cell": data.cell,
        "clock": data.clock,
        "horse": lambda: (~data.horse()).astype(np.uint8) * 255,
        "ihc": data.immunohistochemistry,
        "colorwheel": data.colorwheel,
        "logo": data.logo,
        "phantom": lambda: (data.shepp_logan_phantom() * 255).astype(np.uint8),
    }


def _exemplar_photos() -> dict[str, Callable[[], np.ndarray]]:
    import skimage.data as data

    return {
        "astronaut": data.astronaut,
        "chelsea": data.chelsea,
        "coffee": data.coffee,
        "rocket": data.rocket,
        "motorcycle": lambda: data.stereo_motorcycle()[0],
    }


def demo_dir() -> Path:
    return project_root() / "dataset" / "demo"


def demo_json() -> Path:
    return project_root() / "dataset" / "json" / "test_demo.json"


def demo_store(backbone: str) -> Path:
    return project_root() / "feats" / "demo" / backbone / "train"


def demo_corpus_store(backbone: str) -> Path:
    """The corpus alone (no exemplars): the distractors that evaluation appends exemplars to (AbC semantics)."""
    return project_root() / "feats" / "demo" / backbone / "corpus"


def demo_split_json(split: str) -> Path:
    """``dataset/json/{train,val,heldout}_demo.json``: the demo test case split by model (disjoint exemplars)."""
    return project_root() / "dataset" / "json" / f"{split}_demo.json"


def tuned_heads_path() -> Path:
    return project_root() / "feats" / "demo" / TUNED_BACKBONE / "tuned_heads.pth"


def tuned_calibrator_path() -> Path:
    return project_root() / "feats" / "demo" / TUNED_BACKBONE / "tuned_calibrator.pth"


def demo_spaces() -> list[SpaceSpec]:
    """The demo spaces: identity heads, the default calibrator, corpus ∪ exemplars."""
    names = {"efficientnet_lite0": "EfficientNet-Lite0", "pixel": "pixels"}
    return [
        SpaceSpec(
            name=f"demo_{b}",
            label=f"{names[b]} (demo)",
            backbone=b,
            store=demo_store(b),
            corpus_store=demo_corpus_store(b),
            mapper=None,
            calibrator=DEFAULT_CALIBRATOR,
            demo=True,
            make_ready="attribute demo",
            description=f"Demo space: untuned {names[b]} features over the demo corpus and exemplars "
            "(built offline from scikit-image's photographs; default calibrator)",
        )
        for b in DEMO_BACKBONES
    ] + [
        SpaceSpec(
            name=f"demo_{TUNED_BACKBONE}_tuned",
            label="EfficientNet-Lite0 (demo, tuned)",
            backbone=TUNED_BACKBONE,
            store=demo_store(TUNED_BACKBONE),
            corpus_store=demo_corpus_store(TUNED_BACKBONE),
            mapper=tuned_heads_path(),
            calibrator=tuned_calibrator_path(),
            demo=True,
            make_ready="attribute demo",
            description="Demo space: EfficientNet-Lite0 with heads and calibrator trained on the demo's training "
            "split (`attribute train-head`, `attribute train-calibrator`)",
        )
    ]


def _rng(*key: object) -> np.random.Generator:
    digest = hashlib.sha256("/".join(map(str, key)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _as_rgb(arr: np.ndarray) -> Image.Image:
    img = Image.fromarray(arr)
    if img.mode == "RGBA":
        bg = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(bg, img)
    return img.convert("RGB")


def _random_view(photo: Image.Image, rng: np.random.Generator, scale=(0.15, 1.0), tint: bool = False) -> Image.Image:
    """A random-resized crop, flip, small rotation and colour change of ``photo``, SIDE x SIDE."""
    w, h = photo.size
    area = w * h * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    cw = int(min(w, max(16, np.sqrt(area * aspect))))
    ch = int(min(h, max(16, np.sqrt(area / aspect))))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    view = photo.crop((x0, y0, x0 + cw, y0 + ch))
    angle = float(rng.uniform(-10, 10))
    view = view.rotate(angle, resample=Image.BICUBIC, expand=False, fillcolor=(255, 255, 255))
    if rng.random() < 0.5:
        view = ImageOps.mirror(view)
    view = view.resize((SIDE, SIDE), Image.BICUBIC)
    arr = np.asarray(view, dtype=np.float32)
    if tint:
        lum = arr.mean(axis=2, keepdims=True) / 255.0
        dark, light = rng.uniform(0, 120, 3), rng.uniform(150, 255, 3)
        arr = dark + lum * (light - dark)
    arr = (arr - 128) * rng.uniform(0.8, 1.2) + 128 + rng.uniform(-20, 20)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def _regions(photo: Image.Image) -> list[tuple[int, int, int, int]]:
    """The 2 x 2 quadrants of a photo, each grown by 12% for context: one AbC "model" each."""
    w, h = photo.size
    out = []
    for qy in range(2):
        for qx in range(2):
            x0, y0, x1, y1 = qx * w // 2, qy * h // 2, (qx + 1) * w // 2, (qy + 1) * h // 2
            mx, my = int(0.12 * w / 2), int(0.12 * h / 2)
            out.append((max(0, x0 - mx), max(0, y0 - my), min(w, x1 + mx), min(h, y1 + my)))
    return out


def _style_transfer(content: Image.Image, exemplar: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Carry the exemplar's colours (luminance-ordered palette) and texture (its high frequencies) onto content."""
    c = np.asarray(content, dtype=np.float32)
    e = np.asarray(exemplar.resize((SIDE, SIDE), Image.BICUBIC), dtype=np.float32)
    c_lum, e_lum = c.mean(axis=2).ravel(), e.mean(axis=2).ravel()
    ranks = np.argsort(np.argsort(c_lum, kind="stable"), kind="stable")
    palette = e.reshape(-1, 3)[np.argsort(e_lum, kind="stable")]
    recoloured = palette[(ranks * (palette.shape[0] - 1)) // max(1, ranks.size - 1)].reshape(c.shape)
    blur = np.asarray(exemplar.resize((SIDE, SIDE), Image.BICUBIC).filter(ImageFilter.GaussianBlur(4)), np.float32)
    texture = e - blur
    if rng.random() < 0.5:
        texture = texture[:, ::-1]
    out = recoloured + float(rng.uniform(0.6, 1.0)) * texture
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8))


def _paste_object(background: Image.Image, exemplar: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Paste (a crop of) the exemplar into the background with a feathered elliptical mask."""
    ew, eh = exemplar.size
    f = rng.uniform(0.7, 1.0)
    cw, ch = int(ew * f), int(eh * f)
    x0, y0 = int(rng.integers(0, ew - cw + 1)), int(rng.integers(0, eh - ch + 1))
    obj = exemplar.crop((x0, y0, x0 + cw, y0 + ch))
    side = int(SIDE * rng.uniform(0.55, 0.8))
    obj = obj.resize((side, side), Image.BICUBIC)
    mask = Image.new("L", (side, side), 0)
    ImageDraw.Draw(mask).ellipse((side * 0.04, side * 0.04, side * 0.96, side * 0.96), fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(side * 0.05))
    px, py = int(rng.integers(0, SIDE - side + 1)), int(rng.integers(0, SIDE - side + 1))
    out = background.copy()
    out.paste(obj, (px, py), mask)
    return out


def _make_query(kind: str, other: Image.Image, exemplar: Image.Image, rng: np.random.Generator) -> Image.Image:
    """An exemplar-influenced query: ``object`` pastes the exemplar into a scene; ``style`` restyles a scene."""
    scene = _random_view(other, rng, scale=(0.3, 1.0))
    return _paste_object(scene, exemplar, rng) if kind == "object" else _style_transfer(scene, exemplar, rng)


def _json_path(path: Path, root: Path) -> str:
    """AbC JSON paths are relative to the project root."""
    return path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)


def _save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    img.save(tmp, format="JPEG", quality=90)
    os.replace(tmp, path)


@dataclass(frozen=True)
class DemoImages:
    corpus: list[str]  # paths relative to the demo folder
    test_case: list[dict]  # AbC-format entries, paths relative to the project root


def make_demo_images(out: Path | None = None, progress: bool = True) -> DemoImages:
    """Write the corpus, exemplars and queries (skipping files already there) and the ground-truth JSON."""
    out = out or demo_dir()
    root = project_root()
    corpus_photos = {k: _as_rgb(f()) for k, f in _corpus_photos().items()}
    exemplar_photos = {k: _as_rgb(f()) for k, f in _exemplar_photos().items()}
    gray = {k for k, p in corpus_photos.items() if np.ptp(np.asarray(p, np.int16), axis=2).max() == 0}
    jobs: list[tuple[Path, Callable[[], Image.Image]]] = []
    corpus: list[str] = []
    for name, photo in corpus_photos.items():
        for i in range(VIEWS_PER_PHOTO):
            rel = f"corpus/{name}/view_{i:03d}.jpg"
            corpus.append(rel)
            rng = _rng("corpus", name, i)
            jobs.append((out / rel, lambda p=photo, r=rng, t=name in gray and i % 2 == 1: _random_view(p, r, tint=t)))
    test_case: list[dict] = []
    bg_names = sorted(corpus_photos)
    for photo_name, photo in exemplar_photos.items():
        for q, box in enumerate(_regions(photo)):
            model = f"{photo_name}_q{q}"
            region = photo.crop(box)
            rng = _rng("model", model)
            n_ex = int(rng.integers(1, 5))
            exemplars = [_random_view(region, _rng("exemplar", model, j), scale=(0.45, 0.9)) for j in range(n_ex)]
            entry = {"exemplar": [], "synth": {t: [] for t in QUERY_TYPES}, "class_id": model, "category": photo_name}
            for j, ex in enumerate(exemplars):
                rel = f"exemplar/{model}/exemplar_{j}.jpg"
                jobs.append((out / rel, lambda e=ex: e))
                entry["exemplar"].append(_json_path(out / rel, root))
            for t in QUERY_TYPES:
                for n in range(QUERIES_PER_TYPE):
                    rng_q = _rng("query", model, t, n)
                    other = corpus_photos[bg_names[int(rng_q.integers(len(bg_names)))]]
                    ex = exemplars[int(rng_q.integers(n_ex))]
                    rel = f"synth/{model}/{t}_{n:02d}.jpg"
                    jobs.append((out / rel, lambda o=other, e=ex, r=rng_q, t=t: _make_query(t, o, e, r)))
                    entry["synth"][t].append(_json_path(out / rel, root))
            test_case.append(entry)
    todo = [(p, f) for p, f in jobs if not p.is_file()]
    for path, make in tqdm(todo, desc="demo images", unit="img", disable=not progress or not todo):
        _save(make(), path)
    json_path = demo_json() if out == demo_dir() else out / "test_demo.json"
    _write_json(json_path, test_case)
    for split, quadrants in SPLITS.items():
        entries = [e for e in test_case if int(e["class_id"].rsplit("_q", 1)[1]) in quadrants]
        _write_json(json_path.with_name(f"{split}_demo.json"), entries)
    return DemoImages(corpus, test_case)


def _write_json(path: Path, obj: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def train_tuned_space(
    device: str = "auto", progress: bool = True, log: Callable[[str], None] = print, backbone: Backbone | None = None
) -> None:
    """Train the demo's tuned heads (train split, early stopping on val) and calibrator (val split).

    ``backbone``: the already loaded ``efficientnet_lite0``, if the caller has one."""
    from .backbones import create_backbone
    from .calibration import save_calibrator
    from .evaluate import read_test_case, test_case_features
    from .heads import save_heads
    from .index import load_index
    from .store import FeatureStore
    from .train import FeatureSplit, calibration_scores, fit_calibrator, train_heads

    backbone = backbone or create_backbone(TUNED_BACKBONE, device=device)
    store = FeatureStore.open(demo_store(TUNED_BACKBONE))
    corpus = np.asarray(FeatureStore.open(demo_corpus_store(TUNED_BACKBONE)).feats)  # negatives: no exemplars
    train, val = (
        FeatureSplit.from_test_case(tc, test_case_features(tc, backbone, project_root(), progress=progress))
        for tc in (read_test_case(demo_split_json("train")), read_test_case(demo_split_json("val")))
    )
    heads, report = train_heads(train, val, corpus, progress=progress)
    save_heads(heads, tuned_heads_path())
    calibrator = fit_calibrator(*calibration_scores(heads, val, corpus), progress=progress)
    save_calibrator(calibrator, tuned_calibrator_path())
    load_index(store, heads, "flat", progress=progress)
    first, best = report.history[0], report.best
    log(
        f"tuned heads: validation mAP {first['val_mAP']:.3f} -> {best['val_mAP']:.3f} (epoch {report.best_epoch}); "
        f"calibrator {calibrator.describe()}"
    )


def build_demo(progress: bool = True, device: str = "auto", log: Callable[[str], None] = print) -> list[SpaceSpec]:
    """Build (or finish, or confirm) the whole demo bundle. Idempotent: a second run does no work.

    Returns:
        The demo spaces, ready.
    """
    from .backbones import create_backbone
    from .extract import extract_features
    from .heads import identity_heads
    from .index import load_index

    out = demo_dir()
    stamp = out / ".complete"
    want = json.dumps({"version": DEMO_VERSION, "backbones": list(DEMO_BACKBONES)})
    stores_ready = all((demo_store(b) / "meta.json").is_file() for b in DEMO_BACKBONES)
    stores_ready = stores_ready and all((demo_corpus_store(b) / "meta.json").is_file() for b in DEMO_BACKBONES)
    stores_ready = stores_ready and tuned_heads_path().is_file() and tuned_calibrator_path().is_file()
    if stamp.is_file() and stamp.read_text() == want and stores_ready:
        log("demo bundle is up to date")
        return demo_spaces()
    images = make_demo_images(out, progress)
    n_ex = sum(len(e["exemplar"]) for e in images.test_case)
    n_q = sum(len(v) for e in images.test_case for v in e["synth"].values())
    log(f"demo images: {len(images.corpus)} corpus, {n_ex} exemplars, {n_q} queries in {len(images.test_case)} models")
    loaded = {}
    for name in DEMO_BACKBONES:
        backbone = loaded[name] = create_backbone(name, device=device)
        report = extract_features(
            [out / "corpus", out / "exemplar"], demo_store(name), backbone, root=out, progress=progress
        )
        log(report.summary())
        from .store import FeatureStore, write_store

        store = FeatureStore.open(demo_store(name))
        load_index(store, identity_heads(backbone.dim), "flat", progress=progress)
        rows = [i for i, p in enumerate(store.paths) if p.startswith("corpus/")]
        corpus = demo_corpus_store(name)
        if not (corpus / "meta.json").is_file() or FeatureStore.open(corpus).paths != [store.paths[i] for i in rows]:
            write_store(
                corpus,
                np.asarray(store.feats[rows]),
                [store.paths[i] for i in rows],
                name,
                store.meta.image_root,
                source=f"corpus rows of {store.path}",
            )
    train_tuned_space(device, progress, log, backbone=loaded.get(TUNED_BACKBONE))
    stamp.write_text(want)
    return demo_spaces()
