"""What a space is: a named training set plus the method and parts that attribute to it, and whether it is ready.

A *feature space* (method ``feature``) is a backbone + heads + calibrator + feature store. Other methods use
``options`` for their own parts (an unlearning space names its diffusion model there). The built-in released
spaces ``clip`` and ``dino`` are defined here; the registry holds every space that can be picked by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..core.errors import AttributionError
from ..core.paths import project_root
from ..data.store import FeatureStore, resolve_store
from .calibration import Calibrator, load_calibrator

#: Calibrator used when a space has no calibrator file: the released CLIP one (mass within ~0.2 cosine of the best).
DEFAULT_CALIBRATOR = Calibrator(inv_tau=16.1587, bias=-38.5)


@dataclass(frozen=True)
class SpaceSpec:
    """One space. Paths are absolute (resolved against the project root or the declaring file)."""

    name: str  # identifier used on the CLI (``--space NAME``)
    label: str  # what people see
    backbone: str = ""  # registered backbone name (feature spaces)
    store: Path | None = None  # store folder, or a released ``{"feats","paths"}`` .pth (converted once)
    mapper: Path | None = None  # released-format heads; None = identity heads (untuned)
    calibrator: Path | Calibrator = DEFAULT_CALIBRATOR  # calibrator file or fixed values
    image_root: Path | None = None  # where a released store's images live
    demo: bool = False  # part of the embedded demo bundle
    make_ready: str = ""  # the command that makes the space ready
    description: str = ""
    backbone_weights: Path | None = None  # explicit backbone weights file
    corpus_store: Path | None = None  # the distractor corpus for evaluation, when the store holds more (exemplars)
    method: str = "feature"  # the registered attribution method that answers for this space
    options: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)  # method-specific settings
    training_set: str = ""  # the training set it attributes over, by name (spaces over the same one are comparable)
    generator: str = ""  # the generative model trained on that set, when there is one (its images are the queries)

    @property
    def trained_on(self) -> str:
        """The training set's name: ``training_set``, else the store it searches, else the space's own name."""
        return self.training_set or (str(self.store) if self.store is not None else self.name)


@dataclass(frozen=True)
class SpaceStatus:
    spec: SpaceSpec
    missing: tuple[str, ...]  # what is not there yet (empty when ready)

    @property
    def ready(self) -> bool:
        return not self.missing


def status_from_record(record: dict[str, Any]) -> SpaceStatus:
    """A space's status as listed by ``space_record`` (``attribute spaces --json``, the service's ``/v1/spaces``):
    the explorer's view of a remote service's spaces (their parts stay on the service)."""
    spec = SpaceSpec(
        name=record["name"],
        label=record.get("label", record["name"]),
        method=record.get("method", "feature"),
        backbone=record.get("backbone", ""),
        make_ready=record.get("make_ready", ""),
        description=record.get("description", ""),
        training_set=record.get("training_set", ""),
        generator=record.get("generator", ""),
    )
    return SpaceStatus(spec, tuple(record.get("missing", ())))


def released_space(name: str, backbone: str) -> SpaceSpec:
    """A space over the authors' released weights and 1M LAION features, at their conventional locations."""
    root = project_root()
    return SpaceSpec(
        name=name,
        label=f"{name} (tuned)",
        backbone=backbone,
        store=root / "feats" / name / "laion_subset.pth",
        mapper=root / "weights" / "mapper" / f"{name}_tuned.pth",
        calibrator=root / "weights" / "calibrator" / f"{name}_tuned.pth",
        image_root=root / "dataset" / "laion_subset_jpeg",
        make_ready="bash weights/download_weights.sh && bash feats/download_laion_feats.sh && "
        "bash dataset/download_dataset.sh laion_jpeg",
        description=f"AbC-tuned {backbone} over the 1M-image LAION subset (authors' released weights and features)",
        training_set="LAION subset (1M)",
    )


def released_spaces() -> list[SpaceSpec]:
    return [released_space("clip", "clip"), released_space("dino", "dino")]


def custom_space(
    base: SpaceSpec | None = None,
    backbone: str | None = None,
    feats: Path | str | None = None,
    mapper: Path | str | None = None,
    calibrator: Path | str | None = None,
    weights: Path | str | None = None,
) -> SpaceSpec:
    """A space from command-line parts, optionally overriding a named one (``--feats/--mapper/--calibrator``)."""
    if base is None:
        if backbone is None or feats is None:
            raise AttributionError("give --space NAME, or both --backbone and --feats")
        base = SpaceSpec(name="custom", label="custom", backbone=backbone, store=Path(feats))
    changes: dict = {}
    if backbone is not None:
        changes["backbone"] = backbone
    if feats is not None:
        changes["store"] = Path(feats).resolve()
        changes["corpus_store"] = None  # the named space's distractor corpus belongs to its own store
    if mapper is not None:
        changes["mapper"] = None if str(mapper) == "identity" else Path(mapper).resolve()
    if calibrator is not None:
        changes["calibrator"] = Path(calibrator).resolve()
    if weights is not None:
        changes["backbone_weights"] = Path(weights).resolve()
    return replace(base, **changes) if changes else base


def training_set_note(specs: list[SpaceSpec]) -> str | None:
    """One line saying that ``specs`` attribute over different training sets (None when they share one): their
    answers are not comparable image for image."""
    sets = dict.fromkeys(s.trained_on for s in specs)
    if len(sets) < 2:
        return None
    listed = "; ".join(f"{s.label or s.name}: {s.trained_on}" for s in specs)
    return f"these spaces attribute over different training sets ({listed}): compare them with care"


def space_calibrator(spec: SpaceSpec) -> Calibrator:
    return spec.calibrator if isinstance(spec.calibrator, Calibrator) else load_calibrator(spec.calibrator)


def open_space_store(spec: SpaceSpec, corpus: bool = False) -> FeatureStore:
    """The space's store (``corpus``: the distractor corpus evaluation uses), a released .pth converted once."""
    path = (spec.corpus_store or spec.store) if corpus else spec.store
    if path is None:
        raise AttributionError(f"space {spec.name!r} names no feature store")
    image_root = spec.image_root if path.suffix == ".pth" else None
    return FeatureStore.open(resolve_store(path, spec.backbone, image_root))
