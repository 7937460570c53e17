"""The house rules of DESIGN.md, checked on the source: layers point one way and no modules import each
other (directly or around a longer circle). Every import counts, also the ones inside functions: a
function-level import is still a dependency, only a later one.

No database, no Django: the modules are parsed, never imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Bottom to top. An app may import only apps at its own index or lower; workers/ sits above every app.
LAYERS = ["common", "projects", "features", "registry", "deployments", "monitoring", "releases", "training",
          "readiness"]
RANK = {f"apps.{name}": i for i, name in enumerate(LAYERS)}
RANK["workers"] = len(LAYERS)
RANK["portal"] = len(LAYERS) + 1


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    out = {}
    for top in ("apps", "workers"):
        for path in (ROOT / top).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            out[_module_name(path)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The longest known module that ``name`` names or lies in (``apps.x.models.Foo`` → ``apps.x.models``)."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in MODULES:
            return candidate
        parts.pop()
    return None


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                found.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for alias in node.names:
                found.add(f"{prefix}.{alias.name}")  # a submodule, or a name inside ``prefix``
            found.add(prefix)
    return {t for t in (_resolve(n) for n in found if n.startswith(("apps.", "workers", "portal"))) if t} | {
        n for n in found if n == "portal" or n.startswith("portal.")}


def _layer(module: str) -> str:
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "apps" else parts[0]


GRAPH = {m: {t for t in _imports(m, p) if t != m} for m, p in MODULES.items()}


def test_the_walk_sees_every_app_and_the_moved_capabilities():
    assert {_layer(m) for m in MODULES} >= {f"apps.{n}" for n in LAYERS} | {"workers"}
    assert "apps.releases.services.promotion" in GRAPH["apps.training.services.retraining"]


def test_no_app_imports_a_higher_layer_or_workers_or_portal():
    wrong = []
    for module, targets in GRAPH.items():
        layer = _layer(module)
        if layer == "workers":
            continue
        for target in targets:
            tlayer = _layer(target) if not target.startswith("portal") else "portal"
            if tlayer not in RANK:
                continue
            if RANK[tlayer] > RANK[layer]:
                wrong.append(f"{module} imports {target} ({tlayer} sits above {layer})")
    assert not wrong, "Imports against the layer order:\n" + "\n".join(sorted(wrong))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
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
                    out.append(sorted(component))
    return out


def test_no_import_circles_between_modules():
    cycles = _cycles(GRAPH)
    assert not cycles, "Modules that import each other (directly or in a circle):\n" + "\n".join(
        " ↔ ".join(c) for c in cycles)


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}, [["a", "b", "c"]]),
    ({"a": {"b"}, "b": set()}, []),
])
def test_the_cycle_finder_finds_circles(graph, expected):
    assert _cycles(graph) == expected


@pytest.mark.parametrize("app", ["releases", "training"])
def test_moved_apps_read_like_the_others(app):
    base = ROOT / "apps" / app
    for name in ("models.py", "api.py", "views.py", "forms.py", "urls.py", "apps.py"):
        assert (base / name).exists(), f"apps/{app}/{name} is missing"
    assert (base / "services").is_dir() or (base / "services.py").exists()
    leftovers = [p.name for p in (ROOT / "apps").rglob("*_promotion.py") if "migrations" not in p.parts] + [
        p.name for p in (ROOT / "apps").rglob("*_training.py") if "migrations" not in p.parts] + [
        p.name for p in (ROOT / "apps").rglob("*_retraining.py") if "migrations" not in p.parts]
    assert not leftovers, f"suffixed capability files left behind: {leftovers}"
