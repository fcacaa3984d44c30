"""What the ``attribute`` command needs before the library's seconds of imports (torch, FAISS): Ctrl-C while they
run exits 130 with one line, as it does once the command is running, instead of a traceback from inside torch.

Only a process started as the command (``attribute …`` or ``python -m attribution_core …``) is touched; a program
that imports the library keeps its own handling of Ctrl-C.
"""

from __future__ import annotations

import os
import sys

EXIT_INTERRUPTED = 130


def _interrupted(kind: type[BaseException], value: BaseException, tb: object) -> None:
    if issubclass(kind, KeyboardInterrupt):
        sys.stderr.write("\ninterrupted while starting: nothing was done; run the same command again\n")
        sys.stderr.flush()
        os._exit(EXIT_INTERRUPTED)
    sys.__excepthook__(kind, value, tb)


def started_as_command() -> bool:
    """Whether this process is the ``attribute`` command starting (its console script, or ``python -m``, whose
    ``sys.argv[0]`` is ``-m`` while the package is imported)."""
    first = sys.argv[0] if sys.argv else ""
    return first == "-m" or os.path.basename(first) in ("attribute", "attribute.exe")


if started_as_command():
    sys.excepthook = _interrupted
