"""The house rules of docs/architecture.md, checked on the source: no import circle (file or package level), lower
floors never import higher ones, judges never import a method or the demo, methods never import a judge, and
``import attribution_core`` loads no method, judge or demo. Read from the files with ``ast`` (nothing is imported
but in the last tests), so a violation names the file and the import."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "attribution_core"

#: Each floor may import only the floors named here (besides itself); methods and judges are checked apart.
FLOORS = {
    "core": set(),
    "backbones": {"core"},
    "heads": {"core"},
    "diffusion": {"core"},
    "data": {"core", "backbones"},
    "attribute": {"core", "data", "diffusion"},
    "index": {"core", "data", "heads", "attribute"},
    "registry": {"core", "attribute", "builtin"},
}
METHODS = {"features", "unlearning", "distill"}
DOORS = {"cli", "service", "app", "__main__"}


def _modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return out


MODULES = _modules()


def _imports(name: str) -> list[tuple[str, bool, int]]:
    """``(imported module, lazy, line)`` for every import of the library in module ``name``; lazy = inside a
    function (run when called, not when imported). ``if TYPE_CHECKING:`` blocks are skipped."""
    path, is_package = MODULES[name]
    out: list[tuple[str, bool, int]] = []

    def absolute(module: str | None, level: int) -> str:
        if not level:
            return module or ""
        base = name.split(".") if is_package else name.split(".")[:-1]
        base = base[: len(base) - (level - 1)]
        return ".".join(base + ([module] if module else []))

    def visit(node: ast.AST, lazy: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(child, True)
            elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            elif isinstance(child, ast.Import):
                out.extend((a.name, lazy, child.lineno) for a in child.names if a.name.startswith("attribution_core"))
            elif isinstance(child, ast.ImportFrom):
                base = absolute(child.module, child.level)
                if base.startswith("attribution_core"):
                    for alias in child.names:
                        full = f"{base}.{alias.name}"
                        out.append((full if full in MODULES else base, lazy, child.lineno))
            else:
                visit(child, lazy)

    visit(ast.parse(path.read_text()), False)
    return out


IMPORTS = {name: _imports(name) for name in MODULES}


def floor(module: str) -> str:
    """The top-level package (or module) of ``attribution_core`` a module belongs to."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "attribution_core"


def _circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_import_graph_is_read_from_the_real_files() -> None:
    """The checks below would pass on an empty graph: the reader must see the imports the package is known to
    have."""
    assert len(MODULES) > 100
    features = {target for target, _, _ in IMPORTS["attribution_core.features.attributor"]}
    assert "attribution_core.attribute.interface" in features and "attribution_core.registry" in features
    assert ("attribution_core.builtin", True) in {(t, lazy) for t, lazy, _ in IMPORTS["attribution_core.registry"]}


def test_there_is_no_import_circle_between_files() -> None:
    edges = {m: {t for t, lazy, _ in imports if not lazy and t != m} for m, imports in IMPORTS.items()}
    assert _circles(edges) == []


def test_there_is_no_import_circle_between_packages() -> None:
    edges: dict[str, set[str]] = defaultdict(set)
    for module, imports in IMPORTS.items():
        for target, lazy, _ in imports:
            if not lazy and floor(target) != floor(module) and floor(module) != "attribution_core":
                edges[floor(module)].add(floor(target))
    assert _circles(edges) == []


def _violations(sources: set[str], allowed, lazy_too: bool) -> list[str]:
    out = []
    for module, imports in IMPORTS.items():
        if floor(module) not in sources:
            continue
        for target, lazy, line in imports:
            if (lazy_too or not lazy) and floor(target) != floor(module) and not allowed(floor(module), floor(target)):
                out.append(f"{MODULES[module][0].relative_to(ROOT)}:{line} imports {target}")
    return out


def test_lower_floors_never_import_higher_ones() -> None:
    assert _violations(set(FLOORS), lambda src, dst: dst in FLOORS[src], lazy_too=True) == []


def test_judges_never_import_a_method_the_demo_or_a_door() -> None:
    """A judge asks any method through ``attribute/`` only; the demo's photos reach it as a testbed argument."""
    forbidden = METHODS | DOORS | {"demo", "builtin"}
    assert _violations({"judges"}, lambda src, dst: dst not in forbidden, lazy_too=True) == []


def test_methods_never_import_a_judge_the_demo_or_a_door() -> None:
    forbidden = {"judges", "demo", "builtin"} | DOORS
    assert _violations(METHODS, lambda src, dst: dst not in forbidden, lazy_too=True) == []


def test_the_startup_handler_is_imported_before_anything_heavy() -> None:
    """Ctrl-C during the seconds of torch's import must meet the handler: the package's first import is it (an
    import sorter moving it down breaks `attribute`'s exit code 130)."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    first = next(node for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom))
    assert isinstance(first, ast.ImportFrom) and first.module == "core" and first.names[0].name == "startup"


def test_the_top_level_stays_small() -> None:
    """A newcomer meets packages, not loose modules: the top of ``attribution_core/`` holds the packages plus the
    package files, the registry and its built-in list."""
    names = [p.name for p in PACKAGE.iterdir() if not p.name.startswith((".", "_")) or p.name == "__init__.py"]
    loose = sorted(n for n in names if n.endswith(".py") and n != "__init__.py")
    assert loose == ["builtin.py", "registry.py"], loose
    assert len([p for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()]) <= 16


def test_importing_the_package_loads_no_method_judge_or_demo() -> None:
    code = (
        "import sys, attribution_core\n"
        "heavy = sorted({m.split('.')[1] for m in sys.modules if m.startswith('attribution_core.')})\n"
        "print(' '.join(heavy))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("ATTRIBUTION_PLUGINS", "ATTRIBUTION_SPACES")}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = set(done.stdout.split())
    assert not loaded & (METHODS | {"judges", "demo", "builtin", "cli", "service", "app"}), loaded


def test_the_project_root_is_the_checkout_wherever_the_command_runs(tmp_path: Path, monkeypatch) -> None:
    """Run from another folder, the checkout's demo bundle, caches and spaces are still found (a module moved one
    folder down once made this the working directory)."""
    from attribution_core.core.paths import ROOT_ENV, project_root

    monkeypatch.delenv(ROOT_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert project_root() == ROOT


@pytest.mark.parametrize("door", sorted(DOORS - {"__main__", "app"}))
def test_doors_name_no_method_or_judge_class(door: str) -> None:
    """The doors reach methods, index kinds and judges through the registries: no door imports a method's class."""
    classes = {"FeatureAttributor", "UnlearningAttributor", "DistilledAttributor", "AbcJudge", "LdsJudge"}
    named = []
    for module, (path, _) in MODULES.items():
        if floor(module) != door:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                named += [f"{path.relative_to(ROOT)}:{node.lineno} {a.name}" for a in node.names if a.name in classes]
    assert named == []


def test_public_names_survive_the_move() -> None:
    """What third parties write down keeps its name when modules move: the plug-in entry-point group (packages
    declare it in their metadata) and the variables users set."""
    from attribution_core.core.paths import ROOT_ENV
    from attribution_core.core.plugins import ENTRY_POINT_GROUP, PLUGINS_ENV

    assert ENTRY_POINT_GROUP == "attribution_core.plugins"
    assert (PLUGINS_ENV, ROOT_ENV) == ("ATTRIBUTION_PLUGINS", "ATTRIBUTION_HOME")
