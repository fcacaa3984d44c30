"""Where the demo bundle lives and its fixed sizes (one source of truth for every demo module)."""

from __future__ import annotations

from pathlib import Path

from ..core.paths import project_root

DEMO_VERSION = 4
DEMO_BACKBONES = ("efficientnet_lite0", "pixel")
VIEWS_PER_PHOTO = 60
SIDE = 256  # every generated image is SIDE x SIDE pixels
QUERIES_PER_TYPE = 4
QUERY_TYPES = ("object", "style")
#: Which quadrant's model goes to which split: held-out exemplars are never seen in training or validation.
SPLITS = {"train": (0, 1), "val": (2,), "heldout": (3,)}
TUNED_BACKBONE = "efficientnet_lite0"
#: The corpus captions, JSON lines ``{"path", "caption"}`` relative to the demo folder (the diffusion model's data).
CAPTIONS = "captions.jsonl"
EXAMPLE_QUERIES = ("synth/chelsea_q0/object_00.jpg", "synth/astronaut_q1/object_01.jpg", "synth/coffee_q2/style_00.jpg")


#: The demo's training sets, by name: the diffusion model's (the corpus), and the AbC benchmark's (with exemplars).
CORPUS_SET = "demo corpus"
ABC_SET = "demo corpus + exemplars (AbC benchmark)"
DEMO_GENERATOR = "demo diffusion model"


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
