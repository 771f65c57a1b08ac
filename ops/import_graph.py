"""The import graph of the project, read from the source (``ast``), checked against the layering.

Why a script and not a linter plugin: the rules are ours (the app layering of docs/architecture.md)
and the graph must count every import a reader would follow, including the ones hidden inside
functions, which import-time tools never see. Nothing here imports Django or the project, so it also
runs on an old checkout (``--root``) for a before/after comparison.

What counts as an import:
- every ``import x`` / ``from x import y`` statement anywhere in a module: at module level, inside
  functions and classes, and under ``if TYPE_CHECKING:``. A type-only import is still a dependency
  of the design (the lower module has to know the higher one), and counting it keeps a cycle from
  being "fixed" by hiding one half of it under ``TYPE_CHECKING``;
- ``from pkg import name`` is an edge to ``pkg.name`` when that is a module of the tree, else to ``pkg``;
- only first-party targets (modules found under ``PACKAGES``) are edges.
What does not: dotted paths in strings (RQ ``enqueue("app.tasks.job")``, ``job_path``, settings,
``apps.get_model``) and ``importlib.import_module`` calls. Those are late binding by name, the
mechanism that lets a domain module queue its own job without importing ``tasks.py``.

Checks (``python -m ops.import_graph`` exits 1 if either finds something):
1. cycles: strongly connected components of the module graph (all edges above);
2. layering: every module has a rank and imports only its own app or lower ranks:
   shared ``lora_manager`` < adapters < recommendations < generation < archive < overview < api < top.
   ``lora_manager`` is the project package: its modules are shared ground below the apps (runs,
   realtime, jobs, roles ...) and import no app, except the few listed in ``WIRING`` with a reason:
   "overview" pages that read every app (the API serves the same figures, so api may import them) and
   "entry" modules (settings, URLs, ASGI, routing, the launcher) at the top with the tooling
   (``ops``, ``benchmarks``), which may import anything and which nothing below imports.

``--map`` prints, per package, its modules with line counts and the other packages each imports.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

PACKAGES = ("lora_manager", "adapters", "recommendations", "generation", "archive", "api", "ops", "benchmarks")
SKIPPED_DIRS = {"migrations", "tests", "__pycache__", "templates", "static"}
APP_ORDER = ("adapters", "recommendations", "generation", "archive", "api")
PROJECT = "lora_manager"

# The lora_manager modules that may import apps, with why. A name covers the module and, if it
# becomes a package, everything under it. Every other lora_manager module is shared ground below
# the apps. "overview" modules read every app's state and sit between archive and api (the API
# serves the same figures); "entry" modules start or wire the whole project and sit at the top.
WIRING: dict[str, tuple[str, str]] = {
    "lora_manager.dashboard": ("overview", "the home page's figures come from every app"),
    "lora_manager.system_status": ("overview", "the status page asks every app whether it is ready"),
    "lora_manager.views": ("overview", "health and readiness pages: system_status's checks of every app"),
    "lora_manager.settings": ("entry", "INSTALLED_APPS and configuration of every app"),
    "lora_manager.urls": ("entry", "mounts every app's URLs and the API"),
    "lora_manager.asgi": ("entry", "the ASGI application wraps the apps' upload limit and websockets"),
    "lora_manager.routing": ("entry", "collects every app's websocket routes"),
    "lora_manager.realtime.routing": ("entry", "the websocket routes, in their realtime package home"),
    "lora_manager.launcher": ("entry", "the command line (run, test, demo, bench) starts ops.supervise"),
}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    kind: str  # "module", "function" (inside a def/class body) or "type-checking"


@dataclass
class Graph:
    root: Path
    modules: dict[str, Path] = field(default_factory=dict)
    lines: dict[str, int] = field(default_factory=dict)
    imports: list[Import] = field(default_factory=list)

    def edges(self) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {name: set() for name in self.modules}
        for imp in self.imports:
            if imp.source != imp.target:
                out[imp.source].add(imp.target)
        return out


def package_of(module: str) -> str:
    return module.split(".", 1)[0]


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path, packages: Iterable[str] = PACKAGES) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in packages:
        base = root / package
        if not (base / "__init__.py").exists():
            continue
        for path in sorted(base.rglob("*.py")):
            if SKIPPED_DIRS.intersection(path.relative_to(root).parts[:-1]):
                continue
            found[_module_name(root, path)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Collector(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool, known: dict[str, Path]) -> None:
        self.module, self.is_package, self.known = module, is_package, known
        self.found: list[Import] = []
        self.depth = 0  # inside a function or class body
        self.type_checking = 0

    def _kind(self) -> str:
        if self.type_checking:
            return "type-checking"
        return "function" if self.depth else "module"

    def _add(self, target: str, line: int) -> None:
        # the longest known prefix: ``a.b.c`` where ``c`` is a name in module ``a.b`` is an edge to ``a.b``
        parts = target.split(".")
        while parts and ".".join(parts) not in self.known:
            parts.pop()
        if parts:
            self.found.append(Import(self.module, ".".join(parts), line, self._kind()))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = node.module or ""
        if node.level:
            here = self.module.split(".")
            if not self.is_package:
                here.pop()
            here = here[: len(here) - (node.level - 1)] if node.level > 1 else here
            base = ".".join([*here, base] if base else here)
        for alias in node.names:
            candidate = f"{base}.{alias.name}"
            self._add(candidate if candidate in self.known else base, node.lineno)

    def _nested(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _nested

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            self.type_checking += 1
            for child in node.body:
                self.visit(child)
            self.type_checking -= 1
            for child in node.orelse:
                self.visit(child)
        else:
            self.generic_visit(node)


def build(root: Path, packages: Iterable[str] = PACKAGES) -> Graph:
    root = root.resolve()
    graph = Graph(root, find_modules(root, packages))
    for name, path in graph.modules.items():
        source = path.read_text(encoding="utf-8")
        graph.lines[name] = source.count("\n") + (not source.endswith("\n") and bool(source))
        collector = _Collector(name, path.name == "__init__.py", graph.modules)
        collector.visit(ast.parse(source, filename=str(path)))
        graph.imports.extend(dict.fromkeys(collector.found))  # ``from a import b, c``: one edge a line
    return graph


# -- checks -----------------------------------------------------------------------------------------


def cycles(graph: Graph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative), sorted."""
    edges = graph.edges()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
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
    return sorted(found)


RANKS = ("lora_manager shared", "adapters", "recommendations", "generation", "archive", "overview", "api", "top")


def wiring_tier(module: str) -> str | None:
    for name, (tier, _reason) in WIRING.items():
        if module == name or module.startswith(name + "."):
            return tier
    return None


def layer(module: str) -> tuple[int, str]:
    """(rank, label) of a module; a higher rank may import a lower one, never the reverse."""
    package = package_of(module)
    if package == PROJECT:
        tier = wiring_tier(module)
        label = {"overview": "overview", "entry": "top"}.get(tier or "", "lora_manager shared")
        return RANKS.index(label), "lora_manager " + (tier or "shared")
    if package in APP_ORDER:
        return RANKS.index(package), package
    return RANKS.index("top"), package


def layering_violations(graph: Graph) -> list[Import]:
    """Imports of a higher layer; within an app (or within the tooling) anything goes."""
    bad = []
    for imp in graph.imports:
        source, target = package_of(imp.source), package_of(imp.target)
        if source == target and source != PROJECT:
            continue
        if layer(imp.target)[0] > layer(imp.source)[0]:
            bad.append(imp)
    return bad


def cycle_edges(graph: Graph, component: list[str]) -> list[Import]:
    members = set(component)
    return [imp for imp in graph.imports if {imp.source, imp.target} <= members and imp.source != imp.target]


# -- output -----------------------------------------------------------------------------------------


def report(graph: Graph) -> tuple[list[str], int]:
    out: list[str] = []
    found = cycles(graph)
    bad = layering_violations(graph)
    for component in found:
        out.append("cycle: " + " <-> ".join(component))
        for imp in cycle_edges(graph, component):
            out.append(f"    {imp.source}:{imp.line} imports {imp.target} ({imp.kind}-level)")
    for imp in bad:
        out.append(
            f"layering: {imp.source}:{imp.line} ({layer(imp.source)[1]}) imports {imp.target} "
            f"({layer(imp.target)[1]}, {imp.kind}-level)"
        )
    problems = len(found) + len(bad)
    out.append(
        f"{len(graph.modules)} modules, {len(graph.imports)} first-party imports: "
        f"{len(found)} cycles, {len(bad)} imports against the layering"
    )
    return out, problems


def module_map(graph: Graph) -> list[str]:
    """Per package: modules with line counts and the other packages each imports (f: only in functions)."""
    by_package: dict[str, list[str]] = defaultdict(list)
    for name in graph.modules:
        by_package[package_of(name)].append(name)
    uses: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for imp in graph.imports:
        target = package_of(imp.target)
        if target != package_of(imp.source):
            uses[imp.source][target].add(imp.kind)
    out = []
    for package in PACKAGES:
        names = sorted(by_package.get(package, []))
        if not names:
            continue
        total = sum(graph.lines[name] for name in names)
        imported = sorted({target for name in names for target in uses[name]})
        out.append(f"{package}: {len(names)} modules, {total} lines; imports {', '.join(imported) or 'nothing'}")
        for name in names:
            shown = [
                target if "module" in kinds or "type-checking" in kinds else f"{target}(f)"
                for target, kinds in sorted(uses[name].items())
            ]
            out.append(f"  {name:<46} {graph.lines[name]:>5}  {' '.join(shown)}".rstrip())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ops.import_graph", description=__doc__.split("\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent, help="checkout to read")
    parser.add_argument("--map", action="store_true", help="print the module map (before/after comparisons)")
    args = parser.parse_args(argv)
    graph = build(args.root)
    if args.map:
        print("\n".join(module_map(graph)))
        print()
    lines, problems = report(graph)
    print("\n".join(lines))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
