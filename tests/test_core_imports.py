"""The core stays pure and acyclic: checked on the real import graph (grimp, the engine of import-linter)."""

from __future__ import annotations

import grimp

FORBIDDEN = ("asyncio", "panoramisk", "sqlalchemy", "aiohttp", "prometheus_client", "alembic")
GRAPH = grimp.build_graph("monitor", include_external_packages=True)
CORE = sorted(m for m in GRAPH.find_descendants("monitor.core"))


def test_core_imports_no_io_library_and_nothing_outside_the_core() -> None:
    for module in CORE:
        for imported in GRAPH.find_modules_directly_imported_by(module):
            top = imported.split(".")[0]
            assert top not in FORBIDDEN, (module, imported)
            if top == "monitor":
                assert imported.startswith("monitor.core"), (module, imported)


def test_core_modules_import_each_other_without_cycles() -> None:
    """Once handlers.py needed CallTracker and tracker.py imported handlers at its bottom to close the loop."""
    cycles = [(a, b) for a in CORE for b in CORE
              if a < b and GRAPH.chain_exists(a, b) and GRAPH.chain_exists(b, a)]
    assert cycles == []
