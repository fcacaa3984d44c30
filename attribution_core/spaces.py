"""Feature spaces: a named combination of backbone + heads + calibrator + store, and whether it is ready.

Built-in spaces: ``clip`` and ``dino`` (the authors' released weights and 1M LAION features, at their
conventional locations) and the offline demo spaces (built by ``attribute demo``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from .backbones import find_weights, get_backbone_spec
from .calibration import Calibrator
from .errors import AttributionError, CheckpointError, SpaceNotReadyError, WeightsNotFoundError
from .paths import display_path, project_root

#: Calibrator used when a space has no calibrator file: the released CLIP one (mass within ~0.2 cosine of the best).
DEFAULT_CALIBRATOR = Calibrator(inv_tau=16.1587, bias=-38.5)


@dataclass(frozen=True)
class SpaceSpec:
    """One feature space. Paths are absolute (resolved against the project root)."""

    name: str  # identifier used on the CLI (``--space NAME``)
    label: str  # what people see
    backbone: str  # registered backbone name
    store: Path  # store folder, or a released ``{"feats","paths"}`` .pth (converted once)
    mapper: Path | None = None  # released-format heads; None = identity heads (untuned)
    calibrator: Path | Calibrator = DEFAULT_CALIBRATOR  # calibrator file or fixed values
    image_root: Path | None = None  # where a released store's images live
    demo: bool = False  # part of the embedded demo bundle
    make_ready: str = ""  # the command that makes the space ready
    description: str = ""
    backbone_weights: Path | None = None  # explicit backbone weights file
    corpus_store: Path | None = None  # the distractor corpus for evaluation, when the store holds more (exemplars)


@dataclass(frozen=True)
class SpaceStatus:
    spec: SpaceSpec
    missing: tuple[str, ...]  # what is not there yet (empty when ready)

    @property
    def ready(self) -> bool:
        return not self.missing


def _released_space(name: str, backbone: str) -> SpaceSpec:
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
    )


def builtin_spaces() -> list[SpaceSpec]:
    """Every named space this installation knows, ready or not."""
    from .demo import demo_spaces

    return [_released_space("clip", "clip"), _released_space("dino", "dino"), *demo_spaces()]


def get_space(name: str) -> SpaceSpec:
    for spec in builtin_spaces():
        if spec.name == name or spec.label == name:
            return spec
    known = ", ".join(s.name for s in builtin_spaces())
    raise AttributionError(f"unknown space {name!r}; known spaces: {known} (see `attribute spaces`)")


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
    if mapper is not None:
        changes["mapper"] = None if str(mapper) == "identity" else Path(mapper).resolve()
    if calibrator is not None:
        changes["calibrator"] = Path(calibrator).resolve()
    if weights is not None:
        changes["backbone_weights"] = Path(weights).resolve()
    return replace(base, **changes) if changes else base


def space_status(spec: SpaceSpec) -> SpaceStatus:
    """Which of the space's files are missing."""
    missing: list[str] = []
    store = spec.store
    if store.suffix == ".pth":
        if not store.is_file() and not (store.with_suffix(".store") / "meta.json").is_file():
            missing.append(display_path(store))
    elif not (store / "meta.json").is_file():
        missing.append(display_path(store))
    if spec.mapper is not None and not spec.mapper.is_file():
        missing.append(display_path(spec.mapper))
    if isinstance(spec.calibrator, Path) and not spec.calibrator.is_file():
        missing.append(display_path(spec.calibrator))
    try:
        find_weights(get_backbone_spec(spec.backbone), spec.backbone_weights)
    except (WeightsNotFoundError, CheckpointError):
        missing.append(f"{spec.backbone} backbone weights")
    return SpaceStatus(spec, tuple(missing))


def list_spaces() -> list[SpaceStatus]:
    """Every built-in space with what it still lacks."""
    return [space_status(s) for s in builtin_spaces()]


def require_ready(spec: SpaceSpec) -> None:
    """Raise a clear error naming the missing files and the command that fetches them."""
    status = space_status(spec)
    if not status.ready:
        hint = f"; run: {spec.make_ready}" if spec.make_ready else ""
        raise SpaceNotReadyError(f"space {spec.name!r} is not ready: missing {', '.join(status.missing)}{hint}")
