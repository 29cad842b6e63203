#!/usr/bin/env python3
"""Report import cycles between ssmsh's modules; exit 1 if there is any.

Dependencies in ssmsh point downwards (``docs/architecture.md``), so the graph of
module-level imports must have no cycle. This walks every module of the package
with :mod:`ast` (nothing is imported), takes the imports of ssmsh modules found at
module level, including those under ``if`` (``TYPE_CHECKING`` too: a cycle that
only the type checker sees is still a design cycle) and ``try``, but not those
inside functions or classes (deferred imports, which the CLI uses to stay lean),
and prints each strongly connected component of more than one module.

``from PKG import NAME`` counts as an import of ``PKG.NAME`` when that is a
module, else of ``PKG``. Importing a module also runs its packages'
``__init__``, but that edge is left out, as other import linters do: every
package would otherwise be in a cycle with the modules it re-exports.

Usage: python scripts/import_cycles.py [--graph]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "ssmsh"


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    found: dict[str, Path] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _top_level(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Import statements run when the module is imported (not in functions or classes)."""
    for node in body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If):
            yield from _top_level(node.body)
            yield from _top_level(node.orelse)
        elif isinstance(node, ast.Try):
            for block in (node.body, node.orelse, node.finalbody):
                yield from _top_level(block)
            for handler in node.handlers:
                yield from _top_level(handler.body)
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            yield from _top_level(node.body)


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The ssmsh modules that module ``name`` (at ``path``) imports at module level."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    targets: set[str] = set()
    for node in _top_level(tree.body):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
            continue
        if node.level:
            base = name.split(".")
            if not is_package:
                base.pop()  # a module's relative imports start from its package
            base = base[: len(base) - (node.level - 1)]
            origin = ".".join([*base, node.module] if node.module else base)
        else:
            origin = node.module or ""
        for alias in node.names:
            candidate = f"{origin}.{alias.name}"
            targets.add(candidate if candidate in known else origin)
    return {target for target in targets if target in known and target != name}


def graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10 * len(edges) + 100))
    for node in sorted(edges):
        if node not in index:
            visit(node)
    return sorted(found)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--graph", action="store_true", help="print every module's imports")
    args = parser.parse_args(argv)
    edges = graph()
    if args.graph:
        for name in sorted(edges):
            print(f"{name}: {' '.join(sorted(edges[name])) or '-'}")
    found = cycles(edges)
    for component in found:
        inner = {m: sorted(edges[m] & set(component)) for m in component}
        print("import cycle: " + ", ".join(component), file=sys.stderr)
        for member, targets in inner.items():
            print(f"  {member} -> {', '.join(targets)}", file=sys.stderr)
    if not found:
        print(f"no import cycles among {len(edges)} modules")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
