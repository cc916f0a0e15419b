"""The layering docs/architecture.md describes, enforced: read from the import statements of every module
(module-level and function-level imports alike, so a lazy import cannot hide a violation).

- ``portrait_builder`` never imports Qt (the app is a thin layer over it, never the other way round);
- SQLAlchemy only in ``portrait_builder.store`` and in the named store adapters below;
- ``detect``, ``track``, ``video`` and ``evaluate`` know nothing of the store (they work on arrays and files);
- no import cycles between modules of the package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "portrait_builder"

# Modules outside store/ that may use SQLAlchemy: each turns store rows into its stage's plain data.
STORE_ADAPTERS = {
    "portrait_builder.annotation",  # the Qt-free annotation service and its parts (queries over labels)
    "portrait_builder.dedup.store",
    "portrait_builder.split.store",
    "portrait_builder.stats.frame",
    "portrait_builder.release.writer",
    "portrait_builder.release.labels_io",
    "portrait_builder.release.jde_export",
    "portrait_builder.ingest",  # commits of crop batches, doctor
    "portrait_builder.characters.store",  # face embeddings and candidate clusters in and out of the store
    "portrait_builder.testing",  # builds sample projects for tests and benchmarks; never imported by a stage
}
STORE_FREE = ("portrait_builder.detect", "portrait_builder.track", "portrait_builder.video", "portrait_builder.evaluate")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """module -> every module name it imports (``from x import y`` counts as x and x.y)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if "migrations" in path.parts:
            continue
        module = _module_name(path)
        tree = ast.parse(path.read_text(encoding="utf-8"))
        out: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                out.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(module, path.name == "__init__.py", node)
                out.add(base)
                out.update(f"{base}.{alias.name}" for alias in node.names)
        graph[module] = out
    return graph


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


GRAPH = import_graph()


def test_the_graph_sees_known_imports():
    assert "portrait_builder.store" in GRAPH
    assert any(_within(m, "sqlalchemy") for m in GRAPH["portrait_builder.store.engine"])
    assert "portrait_builder.detect.types" in GRAPH["portrait_builder.track.tracker"]


# The one place the library hands over to the app: `portrait annotate` starts it (lazily, after parsing).
APP_ENTRY_POINT = "portrait_builder.cli.annotate"


def test_the_library_never_imports_qt():
    bad = sorted(m for m, deps in GRAPH.items() if any(_within(d, "PySide6") for d in deps))
    assert not bad, f"the library imports Qt: {bad}"
    app_users = sorted(m for m, deps in GRAPH.items() if any(_within(d, "annotator_gui") for d in deps))
    assert app_users == [APP_ENTRY_POINT], f"only {APP_ENTRY_POINT} may start the app: {app_users}"


def test_sqlalchemy_only_in_the_store_and_named_adapters():
    allowed = ("portrait_builder.store", *STORE_ADAPTERS)
    bad = sorted(
        m for m, deps in GRAPH.items()
        if any(_within(d, "sqlalchemy") for d in deps) and not any(_within(m, a) for a in allowed)
    )
    assert not bad, f"SQLAlchemy used outside the store layer: {bad}"


@pytest.mark.parametrize("layer", STORE_FREE)
def test_compute_layers_are_free_of_the_store(layer):
    bad = sorted(
        f"{m} -> {d}" for m, deps in GRAPH.items() if _within(m, layer)
        for d in deps if _within(d, "portrait_builder.store") or _within(d, "sqlalchemy")
    )
    assert not bad, f"{layer} must not know the store: {bad}"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of size > 1 (Tarjan), over edges between package modules.

    A package's ``__init__`` re-exporting its submodules is not an edge back from them: importing
    ``a.b`` runs ``a/__init__`` first anyway, so only submodule -> submodule edges can form a cycle.
    """
    nodes = set(graph)
    edges = {m: {d for d in deps if d in nodes and d != m and not m.startswith(d + ".")} for m, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a.x": {"a.y"}, "a.y": {"a.x"}, "a.z": {"a.x"}}) == [["a.x", "a.y"]]


def test_no_import_cycles():
    assert not _cycles(GRAPH), f"import cycles: {_cycles(GRAPH)}"
