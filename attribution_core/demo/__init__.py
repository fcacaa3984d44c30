"""The embedded default: a demo bundle built offline from photographs that installed packages ship.

What ``build_demo`` makes (all deterministic, all git-ignored, all rebuilt by this code):

- ``dataset/demo/corpus/<photo>/view_NNN.jpg``: the training corpus, >= 1,000 crops/views of scikit-image's
  bundled photographs (the distractors of the AbC protocol).
- ``dataset/demo/exemplar/<model>/exemplar_N.jpg``: exemplars, from *other* photographs than the corpus; each
  "model" (as in AbC, one customised model) is one region of one photo, with 1-4 exemplar views of it.
- ``dataset/demo/synth/<model>/{object,style}_NN.jpg``: exemplar-influenced queries made without a diffusion model.
- ``dataset/json/test_demo.json``: the ground truth in the AbC test-case format (docs/method.md §2), and its
  train / val / held-out splits.
- ``feats/demo/<backbone>/train``: feature stores over corpus ∪ exemplars (what the explorer searches), with flat
  indexes, and ``feats/demo/<backbone>/corpus`` (the corpus alone, for evaluation); the tuned space's heads and
  calibrator.
"""

from .build import build_demo, ensure_diffusion_test_case, train_tuned_space
from .diffusion import demo_model_dir, demo_training_set, unlearning_space
from .images import DemoImages, make_demo_images
from .layout import (
    DEMO_BACKBONES,
    EXAMPLE_QUERIES,
    QUERY_TYPES,
    SIDE,
    SPLITS,
    TUNED_BACKBONE,
    demo_corpus_store,
    demo_dir,
    demo_json,
    demo_split_json,
    demo_store,
    tuned_calibrator_path,
    tuned_heads_path,
)
from .spaces import demo_spaces

__all__ = [
    "DEMO_BACKBONES",
    "EXAMPLE_QUERIES",
    "QUERY_TYPES",
    "SIDE",
    "SPLITS",
    "TUNED_BACKBONE",
    "DemoImages",
    "build_demo",
    "demo_corpus_store",
    "demo_dir",
    "demo_json",
    "demo_model_dir",
    "demo_spaces",
    "demo_split_json",
    "demo_store",
    "demo_training_set",
    "ensure_diffusion_test_case",
    "make_demo_images",
    "train_tuned_space",
    "tuned_calibrator_path",
    "tuned_heads_path",
    "unlearning_space",
]
