"""The AbC test-case format (docs/method.md §2): customised models, their exemplars and synthesized images.

``[{"exemplar": [paths], "synth": {"<prompt type>": [paths]}, "class_id": …, "category": …}]``; paths are
relative to the project root (or ``--root``). An optional ``"prompts": {"<path>": "<text>"}`` gives the prompt
of synthesized images for methods that need one.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import AttributionError
from ..core.paths import display_path


@dataclass(frozen=True)
class CustomModel:
    """One entry of a test case: a customised model, its exemplars and its synthesized images per prompt type."""

    class_id: str
    exemplar: tuple[str, ...]
    synth: dict[str, tuple[str, ...]]
    category: str | None = None
    prompts: dict[str, str] = field(default_factory=dict)  # synthesized image path -> its text prompt (optional)
    customized: str | None = None  # the customised model's folder (optional; methods that use the model need it)


@dataclass(frozen=True)
class TestCase:
    __test__ = False  # not a pytest test class

    name: str  # file stem, e.g. test_bamfg
    path: Path
    models: tuple[CustomModel, ...]

    @property
    def prompt_types(self) -> list[str]:
        seen: dict[str, None] = {}
        for m in self.models:
            seen.update(dict.fromkeys(m.synth))
        return list(seen)

    def image_paths(self) -> list[str]:
        """Every exemplar and synthesized image named, each once, in file order."""
        seen: dict[str, None] = {}
        for m in self.models:
            seen.update(dict.fromkeys(m.exemplar))
            for paths in m.synth.values():
                seen.update(dict.fromkeys(paths))
        return list(seen)


def first_per_type(tc: TestCase, n: int) -> TestCase:
    """The test case with only the first ``n`` synthesized images of each model and prompt type (every space then
    answers the same queries: a slow method's rows compare with the others')."""
    models = tuple(dataclasses.replace(m, synth={t: p[:n] for t, p in m.synth.items()}) for m in tc.models)
    return dataclasses.replace(tc, models=models)


def read_test_case(path: Path | str) -> TestCase:
    """Read an AbC test-case JSON: ``[{"exemplar": [...], "synth": {type: [...]}, "class_id", "category"}]``."""
    path = Path(path)
    shown = display_path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise AttributionError(f"{shown}: test-case file not found") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise AttributionError(f"{shown}: not a JSON file ({exc})") from None
    if not isinstance(raw, list) or not raw:
        raise AttributionError(f"{shown}: an AbC test case is a non-empty JSON list of customised models")
    models = []
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict) or not isinstance(entry.get("exemplar"), list) or not entry["exemplar"]:
            raise AttributionError(f"{shown}: entry {i} has no 'exemplar' list")
        if not isinstance(entry.get("synth"), dict) or not all(isinstance(v, list) for v in entry["synth"].values()):
            raise AttributionError(f"{shown}: entry {i} has no 'synth' mapping of prompt type -> image list")
        named = [("exemplar", p) for p in entry["exemplar"]]
        named += [(f"synth.{t}", p) for t, paths in entry["synth"].items() for p in paths]
        bad = next(((where, p) for where, p in named if not isinstance(p, str) or not p.strip()), None)
        if bad is not None:
            raise AttributionError(
                f"{shown}: entry {i}, {bad[0]}: image paths are non-empty strings (relative to --root), not "
                f"{json.dumps(bad[1])}"
            )
        models.append(
            CustomModel(
                class_id=str(entry.get("class_id", i)),
                exemplar=tuple(entry["exemplar"]),
                synth={k: tuple(v) for k, v in entry["synth"].items()},
                category=entry.get("category"),
                prompts={str(k): str(v) for k, v in entry.get("prompts", {}).items()}
                if isinstance(entry.get("prompts"), dict)
                else {},
                customized=str(entry["customized"]) if entry.get("customized") else None,
            )
        )
    return TestCase(path.stem, path, tuple(models))


def describe_test_case(tc: TestCase) -> dict:
    """The structure of a test case: models, prompt types, counts."""
    ex = [len(m.exemplar) for m in tc.models]
    return {
        "test_case": tc.name,
        "models": len(tc.models),
        "prompt_types": {t: sum(len(m.synth.get(t, ())) for m in tc.models) for t in tc.prompt_types},
        "synth_per_model": sorted({len(v) for m in tc.models for v in m.synth.values()}),
        "exemplars": {"total": sum(ex), "min": min(ex), "median": statistics.median(ex), "max": max(ex)},
        "images": len(tc.image_paths()),
    }


def check_test_case_files(tc: TestCase, root: Path) -> None:
    """Every image the test case names lies under ``root`` and exists.

    Raises:
        AttributionError: image paths lead outside ``root``, or images are missing (all reported at once, counted).
    """
    names = tc.image_paths()
    root = Path(root).resolve()
    outside = [p for p in names if Path(p).is_absolute() or not (root / p).resolve().is_relative_to(root)]
    outside = [p for p in outside if not (Path(os.path.abspath(root / p))).is_relative_to(root)]
    if outside:
        raise AttributionError(
            f"{display_path(tc.path)}: {len(outside)} image paths lead outside {display_path(root)} (e.g. "
            f"{outside[0]}); test-case paths are relative to --root"
        )
    missing = [p for p in names if not (root / p).is_file()]
    if missing:
        shown = ", ".join(missing[:3]) + (", …" if len(missing) > 3 else "")
        raise AttributionError(
            f"{display_path(tc.path)}: {len(missing)} of {len(names)} images are missing under "
            f"{display_path(root)} (e.g. {shown}); get them with `bash dataset/download_dataset.sh exemplar` and "
            "`bash dataset/download_dataset.sh testset`, or pass --root"
        )
