"""The distilled method as a registered Attributor (docs/method.md §9): the query's image and prompt through the
student, the training side's student embeddings in a FAISS index (any index kind), calibrated influence over the
whole training set — a feature space whose query side reads the prompt.

A distilled space is a feature space (``store``: the student's training-side embeddings, written by
``attribute distill train``; ``backbone``: the image backbone the student reads; ``calibrator``) whose
``options`` also name the student's folder and the diffusion model whose text encoder reads prompts. Without a
prompt the query's text part is zero (image features alone), and the result says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file

from ..attribute.interface import Capabilities, Query, Ranking
from ..attribute.spaces import SpaceSpec, space_calibrator
from ..backbones import Backbone, create_backbone
from ..core.config import REQUIRED, option, options_dict, parse_options
from ..core.device import resolve_device
from ..core.errors import AttributionError, CheckpointError
from ..core.paths import display_path
from ..diffusion.load import load_model
from ..diffusion.model import TextToImageModel
from ..features.attributor import FeatureAttributor
from ..features.registry import Encoder, register_encoder
from ..heads import Heads, identity_heads
from ..registry import register_method
from .config import DistilledOptions
from .features import student_inputs
from .student import Student, StudentConfig, embed
from .train import STUDENT_CONFIG, STUDENT_WEIGHTS

NO_PROMPT = "no prompt: image features alone"


@dataclass(frozen=True)
class StudentFile:
    """What ``student.json`` must hold (written by ``attribute distill train``), checked before anything is built."""

    in_dim: int = option(REQUIRED, "width of the student's input (image ⊕ text features)", minimum=1, maximum=65536)
    backbone: str = option(REQUIRED, "the image backbone the student reads")
    model: str = option(REQUIRED, "fingerprint of the diffusion model whose text encoder reads prompts")
    student: StudentConfig = option(StudentConfig(), "the student's architecture and training")
    image_dim: int = option(0, "width of the image features", minimum=0)
    space: str = option("", "the unlearning space whose labels it learnt")
    labels: str = option("", "the label folder it learnt from")
    report: dict = option({}, "its validation table")


def load_student(folder: Path, device: str = "cpu") -> tuple[Student, dict]:
    """The student in ``folder`` and its ``student.json``, both checked: safetensors holds tensors only (nothing runs
    on load); the JSON's fields and the architecture's sizes are checked before a layer is built; the weights must
    be floating point, finite and of the architecture's shapes.

    Raises:
        CheckpointError: one line naming the file, what is wrong, and how to make a good one.
    """
    rebuild = "train one with `attribute distill train` (or restore the shipped one with `git checkout`)"
    config_file, weights_file = folder / STUDENT_CONFIG, folder / STUDENT_WEIGHTS
    try:
        raw = json.loads(config_file.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"{display_path(config_file)}: missing; {rebuild}") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{display_path(config_file)}: damaged ({exc}); {rebuild}") from None
    try:
        meta = parse_options(StudentFile, raw, None, display_path(config_file))
    except AttributionError as exc:
        raise CheckpointError(f"{exc}; {rebuild}") from None
    student = Student(meta.in_dim, meta.student)
    try:
        tensors = load_file(str(weights_file))
    except FileNotFoundError:
        raise CheckpointError(f"{display_path(weights_file)}: missing; {rebuild}") from None
    except Exception as exc:  # safetensors' own error type for a truncated, empty or foreign file
        raise CheckpointError(
            f"{display_path(weights_file)}: damaged or not a safetensors file ({exc}); {rebuild}"
        ) from None
    expected = student.state_dict()
    wrong = sorted(set(expected) ^ set(tensors))
    wrong += [k for k in expected if k in tensors and tuple(tensors[k].shape) != tuple(expected[k].shape)]
    if wrong:
        raise CheckpointError(
            f"{display_path(weights_file)}: not the weights of the student {display_path(config_file)} describes "
            f"(tensor {wrong[0]!r} is missing, extra or of another shape); {rebuild}"
        )
    bad = next((k for k, t in tensors.items() if not t.is_floating_point() or not bool(torch.isfinite(t).all())), None)
    if bad is not None:
        what = "not floating point" if not tensors[bad].is_floating_point() else "holds NaN or inf"
        raise CheckpointError(f"{display_path(weights_file)}: tensor {bad!r} {what}; {rebuild}")
    student.load_state_dict(tensors)
    return student.to(device).eval(), options_dict(meta)


@register_encoder
class StudentEncoder(Encoder):
    """FastGDA's encoder: the student over a query's image features (a registered backbone) and prompt features (the
    diffusion model's own text encoder; none: zeros). The store already holds the student's training-side
    embeddings, so its rows are searched as they are (identity heads)."""

    kind = "student"
    uses_prompt = True

    def __init__(self, backbone: Backbone, text_model: TextToImageModel, student: Student, meta: dict):
        self.backbone, self.text_model, self.student, self.meta = backbone, text_model, student, meta
        self._heads = identity_heads(int(meta["student"]["embedding"]))

    @property
    def store_heads(self) -> Heads:
        return self._heads

    def store_identity(self) -> tuple[str, int]:
        return f"student:{self.meta['backbone']}", int(self.meta["student"]["embedding"])

    def encode(self, queries) -> np.ndarray:
        """Each query's image and prompt (none: zeros) through the student: unit-norm float32 [nq, d]."""
        with torch.inference_mode():
            joint = student_inputs(
                self.backbone, self.text_model, [q.image for q in queries], [q.prompt for q in queries]
            )
        return embed(self.student, joint)

    def encode_training(self, images) -> np.ndarray:
        """The student on both sides: a training image with its caption, as ``attribute distill train`` embedded the
        store's rows."""
        return self.encode(images)


@register_method
class DistilledAttributor(FeatureAttributor):
    """FastGDA: the feature family with the student as its encoder (its embedding of (image, prompt) against its
    embeddings of the training images); only its parts, its options and what a result records differ."""

    method = "distilled"
    score_kind = "cosine"
    description = "unlearning's rankings learnt by a small feature model over image and prompt (FastGDA)"
    capabilities = Capabilities(interactive=True, needs_prompt=False, uses_prompt=True, batchable=True)
    Options = DistilledOptions

    @classmethod
    def missing(cls, spec: SpaceSpec) -> tuple[str, ...]:
        options = cls.options_of(spec)
        out = [] if (options.student / STUDENT_WEIGHTS).is_file() else [display_path(options.student / STUDENT_WEIGHTS)]
        try:
            json_ok = bool(json.loads((options.student / STUDENT_CONFIG).read_text()).get("backbone"))
        except (OSError, ValueError, AttributeError):
            json_ok = False
        if not json_ok:
            out.append(f"a readable {display_path(options.student / STUDENT_CONFIG)} (run `attribute distill train`)")
        if not (options.model / "model_index.json").is_file():
            out.append(f"diffusion model {display_path(options.model)}")
        if spec.store is None or not (spec.store / "meta.json").is_file():
            out.append(display_path(spec.store) if spec.store else "the student's store (store = …)")
        return tuple(out)

    @classmethod
    def load(
        cls,
        spec: SpaceSpec,
        *,
        device: str = "auto",
        progress: bool = True,
        index_kind: str | None = None,
        index_params: dict | None = None,
        **_: Any,
    ) -> DistilledAttributor:
        options = cls.options_of(spec)
        index_kind, index_params = cls.index_choice(spec, index_kind, index_params)
        torch_device = resolve_device(device)
        student, meta = load_student(options.student, str(torch_device))
        text_model = load_model(options.model, torch_device)
        if meta["model"] != text_model.fingerprint():
            raise AttributionError(
                f"space {spec.name!r}: the student was trained for model {meta['model']}, "
                f"not {text_model.fingerprint()}; train one for this model with `attribute distill train`"
            )
        backbone = create_backbone(meta["backbone"], spec.backbone_weights, str(torch_device))
        encoder = StudentEncoder(backbone, text_model, student, meta)
        return cls(
            spec, encoder, calibrator=space_calibrator(spec), index_kind=index_kind, index_params=index_params,
            device=str(torch_device), progress=progress,
        )  # fmt: skip

    def extras(self, query: Query) -> dict[str, Any]:
        return {"prompt": query.prompt} if query.prompt else {"prompt": None, "note": NO_PROMPT}

    def rank(self, queries, ks, on_progress=None, cancel=None) -> list[Ranking]:
        rankings = super().rank(queries, ks, on_progress, cancel)
        for ranking, query in zip(rankings, queries, strict=True):
            ranking.extras = {**ranking.extras, **self.extras(query)}
        return rankings
