"""The ``attribute`` command: argparse subcommands, each one parsing, calling one library function and printing.

Global options (``-q``, ``-v``) are accepted before or after the subcommand. User mistakes print one line on
stderr and exit 2; Ctrl-C exits 130 and keeps finished work.
"""

from __future__ import annotations

import argparse
import errno
import logging
import sys
from collections.abc import Sequence

from ..core.errors import AttributionError
from . import data, distill, judge, model, query, service
from .common import config_from_args, global_options

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130

__all__ = ["build_parser", "config_from_args", "main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="attribute",
        description="Data attribution for text-to-image models: which training images influenced a generated "
        "image, and how much.",
        parents=[global_options(False)],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    common = [global_options(argparse.SUPPRESS)]

    def command(name: str, help: str, func, parent=sub) -> argparse.ArgumentParser:
        p = parent.add_parser(name, help=help, parents=common)
        p.set_defaults(func=func)
        return p

    query.add_commands(command)
    data.add_commands(command)
    model.add_commands(command)
    distill.add_commands(command)
    judge.add_commands(command)
    service.add_commands(command)
    return parser


def _setup_logging(quiet: bool, verbose: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr, force=True)
    for noisy in ("httpx", "urllib3", "PIL", "matplotlib", "filelock"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: user mistakes print one line on stderr and exit 2; Ctrl-C exits 130 (work so far is kept)."""
    try:
        parser = build_parser()  # reads the registries: a plug-in that cannot be imported is a user error
    except AttributionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    args = parser.parse_args(argv)
    _setup_logging(args.quiet, args.verbose)
    try:
        return args.func(args)
    except AttributionError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("\ninterrupted: finished work is kept; run the same command again to continue", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the machine, not the code: disk full, read-only folder, permissions
        where = f"{exc.filename}: " if exc.filename else ""
        hint = (
            " (free some space, then run the same command again: finished work is kept)"
            if exc.errno
            in (
                errno.ENOSPC,
                errno.EDQUOT,
            )
            else ""
        )
        print(f"error: {where}{exc.strerror or exc}{hint}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
