"""The documentation site (issue: docs that cannot rot): the reference pages are generated from the code and
complete, and no page narrates development history (that belongs in CHANGELOG.md)."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _reference():
    spec = importlib.util.spec_from_file_location("docs_reference", ROOT / "scripts" / "docs_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _walk(parser: argparse.ArgumentParser, path: str):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{path} {name}", sub
                yield from _walk(sub, f"{path} {name}")


def test_the_cli_reference_lists_every_subcommand_and_every_flag() -> None:
    from attribution_core.cli import build_parser

    parser = build_parser()
    text = _reference().cli_markdown(parser)
    commands = list(_walk(parser, "attribute"))
    assert len(commands) > 15
    for path, sub in commands:
        assert f"`{path}`" in text, path
        for action in sub._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}`" in text, f"{path} {flag}"


def test_the_spaces_reference_lists_every_option_of_every_method_and_index_kind() -> None:
    from attribution_core.attribute.spaces import SpaceSpec
    from attribution_core.index.registry import get_index_kind, list_index_kinds
    from attribution_core.registry import list_methods, method_options

    text = _reference().spaces_markdown()
    for f in dataclasses.fields(SpaceSpec):
        assert f"| `{f.name}` |" in text, f.name
    for method in list_methods():
        assert f'`method = "{method}"`' in text
        options = method_options(method)
        for f in dataclasses.fields(options) if options else ():
            if f.name != getattr(options, "EXTRA", None):
                assert f"`{f.name}`" in text, (method, f.name)
    assert "`config.steps`" in text  # unlearning's nested settings are listed too
    for kind in list_index_kinds():
        assert f'`index = "{kind}"`' in text
        for p in get_index_kind(kind).params:
            assert f"| `{p.name}` |" in text, (kind, p.name)


def test_the_service_reference_lists_every_route() -> None:
    reference = _reference()
    schema = reference.openapi_schema()
    text = reference.service_markdown(schema)
    for route in schema["paths"]:
        assert f"`{route}`" in text
    assert "/v1/attribute" in schema["paths"]


HISTORY = re.compile(
    r"first attempt|previous version|used to |an earlier run|the code before|was changed|this round|"
    r"caught on the way|no longer|we first|initially",
    re.I,
)


@pytest.mark.parametrize(
    "page", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").rglob("*.md"))]
)
def test_no_page_narrates_development_history(page: str) -> None:
    text = (ROOT / page).read_text()
    found = [m.group(0) for m in HISTORY.finditer(text)]
    assert not found, f"{page}: {found} (history belongs in CHANGELOG.md)"


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200
