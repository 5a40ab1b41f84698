#!/usr/bin/env python3
"""Print the shape of the code: import cycles between modules, the longest modules and functions.

Run from the repository root: ``python scripts/architecture_stats.py [--top N]`` (needs grimp, a dev dependency).
Used for the architecture issue's before/after figures; any checkout can be measured the same way.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import grimp


def functions(path: Path) -> list[tuple[int, str]]:
    """(lines, qualified name) of every function and method in one file."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: list[tuple[int, str]] = []

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                end = child.end_lineno or child.lineno
                out.append((end - child.lineno + 1, f"{path}:{child.lineno} {prefix}{child.name}"))
                walk(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                walk(child, f"{prefix}{child.name}.")

    walk(tree, "")
    return out


def main() -> None:
    """Print the report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--top", type=int, default=5)
    ap.add_argument("--package", default="monitor")
    args = ap.parse_args()
    graph = grimp.build_graph(args.package)
    modules = sorted(graph.modules)
    cycles = set()
    for a in modules:
        for b in graph.find_modules_directly_imported_by(a):
            if graph.chain_exists(importer=b, imported=a):
                cycles.add(tuple(sorted((a, b))))
    edges = sum(len(graph.find_modules_directly_imported_by(m)) for m in modules)
    print(f"modules: {len(modules)}; import edges: {edges}")
    print(f"module pairs in an import cycle (A imports B, B reaches A): {len(cycles)}")
    for a, b in sorted(cycles)[: args.top]:
        print(f"  {a} <-> {b}")
    files = sorted(Path(args.package).rglob("*.py"))
    sizes = sorted(((len(f.read_text(encoding='utf-8').splitlines()), str(f)) for f in files), reverse=True)
    print("longest modules (lines): " + ", ".join(f"{p} {n}" for n, p in sizes[: args.top]))
    print(f"modules over 400 lines: {sum(1 for n, _ in sizes if n > 400)}")
    funcs = sorted((fn for f in files for fn in functions(f)), reverse=True)
    print("longest functions (lines): " + ", ".join(f"{name} {n}" for n, name in funcs[: args.top]))
    print(f"functions over 60 lines: {sum(1 for n, _ in funcs if n > 60)}")


if __name__ == "__main__":
    main()
