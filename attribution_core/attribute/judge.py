"""The Judge interface: anything that tells a right attribution from a plausible one (the AbC benchmark,
leave-K-out retraining, the linear datamodeling score, calibration on ground truth, a user's own check).

A judge is one class registered by name (``registry.register_judge``), with typed ``Options`` (a dataclass of
``core.config.option`` fields, from which ``attribute judge NAME`` generates its flags) and one :meth:`Judge.run`
that writes its report into a folder in the one report shape (``judges.report``: table.md, table.csv,
config.json with the config's hash). A judge reaches methods only through the registry and the ``Attributor``
interface (``scores`` over a training set, ``influence``), and gets its data as arguments or options.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar


@dataclass
class JudgeReport:
    """What a judge found: one row per (method, …) with its measured values, and how it was run."""

    judge: str
    rows: list[dict[str, Any]]  # one table row each; every row has the same keys
    config: dict[str, Any]  # the options it ran with (recorded with their hash)
    markdown: str = ""  # the table as people read it (default: ``rows`` as a Markdown table)
    notes: list[str] = field(default_factory=list)  # verdicts and caveats, one line each


class Judge(ABC):
    """A registered judge. Subclasses set ``name``, ``description`` and ``Options`` and implement :meth:`run`."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    #: its typed settings (a dataclass of ``core.config.option`` fields); the CLI's flags are generated from it
    Options: ClassVar[type]

    @abstractmethod
    def run(self, options: Any, out: Path, progress: bool = True) -> JudgeReport:
        """Run (or resume) the judge with ``options``, writing its files into ``out``; returns its report."""
