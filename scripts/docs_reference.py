"""The documentation site's reference pages, generated from the code at every ``mkdocs build`` (mkdocs-gen-files
runs this file): the CLI from the argparse parser itself, the spaces file's schema from ``SpaceSpec`` and every
registered method's ``Options`` dataclass and index kind's parameters, the service's routes from its OpenAPI
schema, the changelog, and the benchmarks' plots as they were written. Nothing in these pages is typed by hand,
so they cannot drift from the code.

Written by hand because no maintained MkDocs plug-in renders an argparse parser (mkdocs-click is for click;
sphinx-argparse is for Sphinx); the walk below reads argparse's public ``_actions`` the way sphinx-argparse does.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """``(name, help, parser)`` of each subcommand, in the order they were added."""
    out = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            out += [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return out


def _flags_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for a in parser._actions:
        if isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) or a.help == argparse.SUPPRESS:
            continue
        name = ", ".join(f"`{s}`" for s in a.option_strings) or f"`{a.metavar or a.dest}`"
        if a.nargs in ("+", "*"):
            name += " …"
        default = "" if a.default in (None, argparse.SUPPRESS, False) or not a.option_strings else f"`{a.default}`"
        help_text = re.sub(r" \(default [^)]*\)$", "", (a.help or "").replace("%%", "%"))
        rows.append(f"| {name} | {_cell(help_text)} | {_cell(default)} |")
    if not rows:
        return []
    return ["| argument | what it does | default |", "|---|---|---|", *rows, ""]


def cli_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """Every subcommand of ``attribute`` (nested ones included): its help, usage and every flag."""
    if parser is None:
        from attribution_core.cli import build_parser

        parser = build_parser()
    lines = [
        "# Command-line reference",
        "",
        "Generated from the `attribute` command's own parser; `attribute COMMAND --help` prints the same.",
        "",
        f"{parser.description}",
        "",
        "```text",
        parser.format_usage().strip(),
        "```",
        "",
        "Global options (any command): `-q/--quiet` (no progress bars or progress logs), `-v/--verbose` (more detail).",
        "",
    ]

    def walk(p: argparse.ArgumentParser, path: str, help_text: str, depth: int) -> None:
        children = _subcommands(p)
        lines.extend([f"{'#' * depth} `{path}`", "", _cell(help_text), ""])
        if not children:
            lines.extend(["```text", p.format_usage().strip(), "```", ""])
            lines.extend(_flags_table(p))
        for name, sub_help, sub in children:
            walk(sub, f"{path} {name}", sub_help, min(depth + 1, 4))

    for name, help_text, sub in _subcommands(parser):
        walk(sub, f"attribute {name}", help_text, 2)
    return "\n".join(lines) + "\n"


def _type_name(t: object) -> str:
    return getattr(t, "__name__", str(t)).replace("typing.", "")


def _field_comments(cls: type) -> dict[str, str]:
    """A dataclass's trailing ``# comment`` per field, read from its source."""
    import inspect

    comments = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+): [^#]+#\s*(.+)$", line)
        if m:
            comments[m.group(1)] = m.group(2).strip()
    return comments


def _default(f: dataclasses.Field) -> str:
    if f.default is not dataclasses.MISSING:
        value = f.default
    elif f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
        if dataclasses.is_dataclass(value):
            return "(a table, below)"
    else:
        return "**required**"
    return f"`{json.dumps(value) if isinstance(value, (tuple, list, str, bool)) else value}`"


def _options_table(cls: type, prefix: str = "") -> list[str]:
    rows, nested = [], []
    extra = getattr(cls, "EXTRA", None)  # a dict field whose keys are written at the top level of ``options``
    for f in dataclasses.fields(cls):
        help_text = f.metadata.get("help", "")
        if f.name == extra:
            rows.append(f"| any other key | | | {_cell(help_text)}, written beside the other options |")
            continue
        if f.metadata.get("path"):
            help_text += " (a path, relative to the spaces file)"
        rows.append(f"| `{prefix}{f.name}` | {_type_name(f.type)} | {_default(f)} | {_cell(help_text)} |")
        if f.default_factory is not dataclasses.MISSING and dataclasses.is_dataclass(f.default_factory()):
            nested.append((f.name, type(f.default_factory())))
    out = ["| option | type | default | what it sets |", "|---|---|---|---|", *rows, ""]
    for name, sub in nested:
        out += [f"`{prefix}{name}` is a table of its own (`{sub.__name__}`):", "", *_options_table(sub, f"{name}."), ""]
    return out


def spaces_markdown() -> str:
    """The spaces file: the fields of a ``[[spaces]]`` entry, each method's ``options`` and each index kind's
    parameters."""
    from attribution_core.attribute.spaces import SpaceSpec
    from attribution_core.index.registry import get_index_kind, list_index_kinds
    from attribution_core.registry import list_methods, method_options

    comments = _field_comments(SpaceSpec)
    lines = [
        "# Spaces file reference",
        "",
        "Generated from `SpaceSpec`, every registered method's `Options` dataclass and every index kind's declared",
        "parameters. A spaces file is `spaces.toml` (or `.json`) in the project root, or any file named in",
        "`$ATTRIBUTION_SPACES`; each `[[spaces]]` table declares one space",
        "([Extending](../how-it-works.md#your-own-spaces-and-methods-plug-ins) shows one). Relative paths are",
        "relative to the file.",
        "",
        "## Fields of a space",
        "",
        "| field | type | default | what it is |",
        "|---|---|---|---|",
    ]
    for f in dataclasses.fields(SpaceSpec):
        what = _cell(comments.get(f.name, ""))
        lines.append(f"| `{f.name}` | {_cell(_type_name(f.type))} | {_cell(_default(f))} | {what} |")
    lines += ["", "## `options`, per method", ""]
    for method in list_methods():
        cls = method_options(method)
        lines += [f'### `method = "{method}"`', ""]
        lines += _options_table(cls) if cls is not None else ["This method takes no options.", ""]
    lines += [
        "## Index kinds (`options` of a feature space)",
        "",
        "`index` names the kind; any parameter the kind declares may follow it in the same table, e.g.",
        '`options = { index = "ivf", nlist = 1024, nprobe = 16 }`. Build parameters make another index (rebuilt);',
        "query-time ones never rebuild it. The same names are `attribute index` / `attribute query` flags.",
        "",
    ]
    for name in list_index_kinds():
        kind = get_index_kind(name)
        lines += [f'### `index = "{name}"`', "", _cell(getattr(kind, "summary", "")), ""]
        params = list(getattr(kind, "params", ()))
        if not params:
            lines += ["No parameters.", ""]
            continue
        lines += ["| parameter | type | default | when | what it sets |", "|---|---|---|---|---|"]
        for p in params:
            default = "from the store's size" if p.default is None else f"`{p.default}`"
            choices = f" (one of {', '.join(p.choices)})" if p.choices else ""
            when = "query time" if p.query_time else "build"
            lines.append(f"| `{p.name}` | {p.type.__name__} | {default} | {when} | {_cell(p.help + choices)} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def openapi_schema() -> dict:
    from attribution_core.service import ServiceConfig, create_app

    return create_app(ServiceConfig()).openapi()


def service_markdown(schema: dict) -> str:
    """Every route of ``attribute serve`` from its OpenAPI schema."""
    lines = [
        "# Service API reference",
        "",
        f"Generated from the service's OpenAPI schema ({schema['info']['title']} {schema['info']['version']}); the",
        "schema itself: [openapi.json](openapi.json). A running service also serves it at `/openapi.json`, with",
        "interactive pages at `/docs`. How to run and secure the service: [The service](../service.md).",
        "",
        "| method | route | what it does |",
        "|---|---|---|",
    ]
    for route, ops in schema["paths"].items():
        for method, op in ops.items():
            text = op.get("summary", "")
            if op.get("description"):
                text = op["description"].strip().split("\n\n")[0]
            lines.append(f"| {method.upper()} | `{route}` | {_cell(text)} |")
    return "\n".join(lines) + "\n"


def write_pages() -> None:
    """Write the generated pages into the site being built."""
    import mkdocs_gen_files

    pages = {
        "reference/cli.md": cli_markdown(),
        "reference/spaces.md": spaces_markdown(),
        "changelog.md": (ROOT / "CHANGELOG.md").read_text(),
    }
    schema = openapi_schema()
    pages["reference/service.md"] = service_markdown(schema)
    pages["reference/openapi.json"] = json.dumps(schema, indent=1)
    for name, text in pages.items():
        with mkdocs_gen_files.open(name, "w") as f:
            f.write(text)
    for png in sorted((ROOT / "benchmarks" / "results").glob("*/*.png")):  # the benchmarks' plots, as they ran
        with mkdocs_gen_files.open(f"results/{png.parent.name}/{png.name}", "wb") as f:
            f.write(png.read_bytes())
    mkdocs_gen_files.set_edit_path("changelog.md", "../CHANGELOG.md")


if __name__ in ("__main__", "<run_path>"):
    write_pages()
