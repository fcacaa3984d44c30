"""Building the demo bundle: images, feature stores and indexes per demo backbone, and the tuned space.

Idempotent and resumable: finished images, shards and stores are kept; a stamp marks a complete bundle.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..attribute.calibration import save_calibrator
from ..attribute.spaces import SpaceSpec
from ..backbones import Backbone, create_backbone
from ..core.fileio import atomic_write_text
from ..core.paths import display_path, project_root
from ..core.progress import Progress, ProgressCallback
from ..data.extract import extract_features
from ..data.store import FeatureStore, checksum_of, write_store
from ..data.testcase import read_test_case
from ..features.train import FeatureSplit, calibration_scores, fit_calibrator, train_heads
from ..features.train.inputs import test_case_features
from ..heads import identity_heads, save_heads
from ..index import load_index
from .diffusion import demo_model_dir, diffusion_json
from .distilled import build_distilled_store
from .images import make_demo_images
from .layout import (
    CAPTIONS,
    DEMO_BACKBONES,
    DEMO_VERSION,
    TUNED_BACKBONE,
    demo_corpus_store,
    demo_dir,
    demo_split_json,
    demo_store,
    tuned_calibrator_path,
    tuned_heads_path,
)
from .spaces import demo_spaces

log = logging.getLogger(__name__)


def train_tuned_space(device: str = "auto", progress: bool = True, backbone: Backbone | None = None) -> None:
    """Train the demo's tuned heads (train split, early stopping on val) and calibrator (val split).

    ``backbone``: the already loaded ``efficientnet_lite0``, if the caller has one."""
    backbone = backbone or create_backbone(TUNED_BACKBONE, device=device)
    store = FeatureStore.open(demo_store(TUNED_BACKBONE))
    corpus = np.asarray(FeatureStore.open(demo_corpus_store(TUNED_BACKBONE)).feats)  # negatives: no exemplars
    train, val = (
        FeatureSplit.from_test_case(tc, test_case_features(tc, backbone, project_root(), progress))
        for tc in (read_test_case(demo_split_json("train")), read_test_case(demo_split_json("val")))
    )
    heads, report = train_heads(train, val, corpus, progress=progress)
    save_heads(heads, tuned_heads_path())
    calibrator = fit_calibrator(*calibration_scores(heads, val, corpus), progress=progress)
    save_calibrator(calibrator, tuned_calibrator_path())
    load_index(store, heads, "flat", progress=progress)
    first, best = report.history[0], report.best
    log.info(
        "tuned heads: validation mAP %.3f -> %.3f (epoch %d); calibrator %s",
        first["val_mAP"],
        best["val_mAP"],
        report.best_epoch,
        calibrator.describe(),
    )


def build_demo(
    progress: bool = True,
    device: str = "auto",
    on_progress: ProgressCallback | None = None,
    diffusion_test_case: bool = True,
) -> list[SpaceSpec]:
    """Build (or finish, or confirm) the demo bundle. Idempotent: a second run does no work.

    Two parts, each done once: what the feature spaces need (images, stores, indexes, the tuned space), and the
    diffusion test case (customised demo models and their generations: about 4 minutes more on 2 cores), which
    only evaluation uses.

    Args:
        progress: tqdm bars on the terminal.
        on_progress: called as each stage advances (images, extraction per backbone, tuned space).
        diffusion_test_case: build the diffusion test case too (``attribute demo --with-test-case`` does, and
            evaluation on its first need; ``attribute demo`` and the explorer's first launch do not, so that a first
            run answers sooner).

    Returns:
        The demo spaces, ready.
    """
    out = demo_dir()
    stamp = out / ".complete"  # the feature part is done (the diffusion test case has its own JSON)
    want = json.dumps({"version": DEMO_VERSION, "backbones": list(DEMO_BACKBONES)})
    stores_ready = all((demo_store(b) / "meta.json").is_file() for b in DEMO_BACKBONES)
    stores_ready = stores_ready and all((demo_corpus_store(b) / "meta.json").is_file() for b in DEMO_BACKBONES)
    stores_ready = stores_ready and tuned_heads_path().is_file() and tuned_calibrator_path().is_file()
    stores_ready = stores_ready and (out / CAPTIONS).is_file()
    features_ready = stamp.is_file() and stamp.read_text() == want and stores_ready
    if not features_ready:
        stamp.unlink(missing_ok=True)
        diffusion_json().unlink(missing_ok=True)  # made from the old images: rebuilt with the new ones
    wants_test_case = diffusion_test_case and (demo_model_dir() / "model_index.json").is_file()
    if features_ready and not (wants_test_case and not diffusion_json().is_file()):
        _build_distilled_store(device)
        log.info("demo bundle is up to date")
        return demo_spaces()
    if not features_ready:
        _build_feature_part(out, progress, device, on_progress)
        atomic_write_text(stamp, want)
    _build_distilled_store(device)
    if wants_test_case and not diffusion_json().is_file():
        from .diffusion_testcase import build_diffusion_test_case  # diffusers: imported only to build it

        build_diffusion_test_case(progress, on_progress)
    return demo_spaces()


def _build_distilled_store(device: str) -> None:
    """The shipped student's training-side embeddings (seconds; once per student)."""
    if (demo_model_dir() / "model_index.json").is_file() and build_distilled_store(
        demo_model_dir(), "cpu" if device == "auto" else device
    ):
        log.info("demo distilled space: store written")


def _build_feature_part(out: Path, progress: bool, device: str, on_progress: ProgressCallback | None) -> None:
    """Images, feature stores with flat indexes, the corpus-only stores, and the tuned space."""
    images = make_demo_images(out, progress, on_progress)
    n_ex = sum(len(e["exemplar"]) for e in images.test_case)
    n_q = sum(len(v) for e in images.test_case for v in e["synth"].values())
    log.info(
        "demo images: %d corpus, %d exemplars, %d queries in %d models",
        len(images.corpus),
        n_ex,
        n_q,
        len(images.test_case),
    )
    loaded = {}
    for name in DEMO_BACKBONES:
        backbone = loaded[name] = create_backbone(name, device=device)
        report = extract_features(
            [out / "corpus", out / "exemplar"],
            demo_store(name),
            backbone,
            root=out,
            progress=progress,
            on_progress=on_progress,
            captions=images.captions,
        )
        log.info(report.summary())

        store = FeatureStore.open(demo_store(name))
        load_index(store, identity_heads(backbone.dim), "flat", progress=progress)
        rows = [i for i, p in enumerate(store.paths) if p.startswith("corpus/")]
        corpus = demo_corpus_store(name)
        old = FeatureStore.open(corpus) if (corpus / "meta.json").is_file() else None
        if old is None or old.paths != [store.paths[i] for i in rows] or old.checksum != _rows_checksum(store, rows):
            write_store(
                corpus,
                np.asarray(store.feats[rows]),
                [store.paths[i] for i in rows],
                name,
                store.meta.image_root,
                source=f"corpus rows of {store.path}",
                captions=store.captions,
            )
    if on_progress:
        on_progress(Progress("train the tuned space", 0, 1))
    train_tuned_space(device, progress, backbone=loaded.get(TUNED_BACKBONE))
    if on_progress:
        on_progress(Progress("train the tuned space", 1, 1))


def _rows_checksum(store: FeatureStore, rows: list[int]) -> str:
    """The checksum a corpus store of these rows has (rebuilt when the rows' data changed)."""
    return checksum_of(np.asarray(store.feats[rows]), [store.paths[i] for i in rows])


def ensure_diffusion_test_case(files: Sequence[Path | str], progress: bool = True) -> None:
    """Build the demo's diffusion test case on its first need: when one of ``files`` is it and it is missing (it is
    only read by evaluation and calibration: ``attribute demo`` leaves it out, so that a first run answers sooner).
    About 4 minutes on 2 cores, once; the customised models already made are kept if interrupted."""
    target = diffusion_json().resolve()
    named = {Path(f).resolve() for f in files} | {
        (project_root() / f).resolve() for f in files if not Path(f).is_absolute()
    }
    if target.is_file() or target not in named:
        return
    if not (demo_model_dir() / "model_index.json").is_file():
        return  # no demo model to customise: the reader says the file is missing
    log.warning(
        "first use of %s: customising the demo model on 10 models' exemplars and generating their images "
        "(about 4 minutes on 2 cores, once)",
        display_path(target),
    )
    build_demo(progress=progress, diffusion_test_case=True)
