"""Validation before report, provably (docs/counterfactual.md): the settings the LDS tables use are chosen on the
validation track and frozen in ``frozen.json`` with the hash of the configuration they hold for and the commit;
the reported track refuses to start without a matching one (unless ``--no-validation``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ...core.errors import AttributionError
from ...core.fileio import atomic_write_json
from ..report import code_commit, config_hash
from .config import LdsConfig

FROZEN = "frozen.json"
#: The harness's rules a freeze was chosen under: a freeze of other rules is not this one's validation.
#: 2 (2026-12-03): the datamodel's ranking, the query-specific table, Holm over the tracks.
#: 3 (2026-12-03): every generated query of the fine-tune testbed at a seed of its own (one seed for all
#: combinations made one image of them all: the model follows its prompts only weakly).
PROTOCOL = 3


@dataclass(frozen=True)
class Choices:
    """Every setting the tables use, chosen on the validation queries."""

    temperatures: dict[str, float]  # method -> the shared transform's temperature
    ridge: float  # the ceiling's ridge penalty

    def to_dict(self) -> dict:
        return {"temperatures": self.temperatures, "ridge": self.ridge}


def freeze(config: LdsConfig, choices: Choices, out: Path) -> dict:
    """Write ``frozen.json``: the choices, the configuration they hold for (and its hash), the commit."""
    record = {
        "config_hash": config_hash(config.identity()),
        "config": config.identity(),
        "choices": choices.to_dict(),
        "commit": code_commit(),
        "protocol": PROTOCOL,
    }
    atomic_write_json(out / FROZEN, record)
    return record


def load_frozen(config: LdsConfig, out: Path) -> tuple[Choices | None, dict]:
    """The frozen choices for ``config`` (None with ``--no-validation`` and no match), and what the report records.

    Raises:
        AttributionError: no frozen validation for this configuration (one line: what to run first).
    """
    path = out / FROZEN
    want = config_hash(config.identity())
    record = json.loads(path.read_text()) if path.is_file() else None
    if record and record.get("config_hash") == want and record.get("protocol") == PROTOCOL:
        c = record["choices"]
        return Choices({k: float(v) for k, v in c["temperatures"].items()}, float(c["ridge"])), {
            "validated": True, "config_hash": want, "frozen_commit": record.get("commit"),
        }  # fmt: skip
    if not config.no_validation:
        what = "no validation"
        if record:
            same = record.get("config_hash") == want
            what = (
                "a validation under earlier rules of the harness" if same else "a validation of another configuration"
            )
        raise AttributionError(
            f"{path}: {what} (config {want}); run the same command with --track validation first, commit frozen.json, "
            "or pass --no-validation"
        )
    return None, {"validated": False, "config_hash": want, "frozen_commit": None}
