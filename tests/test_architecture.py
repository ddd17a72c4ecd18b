"""The layers' contracts, read from the source (docs/architecture.md "Contracts").

Every import counts, also the lazy ones inside functions (only ``if TYPE_CHECKING:`` blocks are left
out: they never run). Why from the source and not from ``sys.modules``: a lazy import that a test
happens not to reach is still a tie between layers.
"""

from __future__ import annotations

import ast
import pathlib
from collections.abc import Iterator

import live_nb

PACKAGE_DIR = pathlib.Path(live_nb.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE_DIR.rglob("*.py")) if "labextension" not in p.parts}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_running_code(node: ast.AST) -> Iterator[ast.AST]:
    """Every node except those under ``if TYPE_CHECKING:``."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child):
            yield from (n for sub in child.orelse for n in [sub, *_walk_running_code(sub)])
            continue
        yield child
        yield from _walk_running_code(child)


def _imports(module: str) -> set[str]:
    """live_nb modules that ``module`` imports (a ``from pkg import name`` naming a submodule counts as it)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in _walk_running_code(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _imports(module) for module in MODULES}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_the_graph_was_read() -> None:
    assert len(MODULES) >= 30
    assert "live_nb.protocol.messages" in GRAPH["live_nb.protocol.client_protocol"]
    assert "live_nb.protocol.content" in GRAPH["live_nb.protocol.config"]


def test_client_and_protocol_never_import_notebook_or_widgets() -> None:
    offenders = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _layer(module) in ("client", "protocol")
        for target in targets
        if _layer(target) in ("notebook", "widgets")
    ]
    assert not offenders, offenders


def test_protocol_imports_nothing_above_it() -> None:
    allowed = {"protocol", "exceptions"}
    offenders = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _layer(module) == "protocol"
        for target in targets
        if _layer(target) not in allowed
    ]
    assert not offenders, offenders


def test_the_emulator_stands_on_the_protocol_alone() -> None:
    """The emulator is the client's mirror image: it shares the protocol layer and nothing of the client."""
    offenders = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _layer(module) == "emulator"
        for target in targets
        if _layer(target) in ("client", "notebook", "widgets")
    ]
    assert not offenders, offenders


def test_widgets_never_import_the_notebook_layer() -> None:
    """The notebook hands widgets a real session; widgets know nothing of magics or proxies."""
    offenders = [
        f"{module} imports {target}"
        for module, targets in GRAPH.items()
        if _layer(module) == "widgets"
        for target in targets
        if _layer(target) == "notebook"
    ]
    assert not offenders, offenders


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_cycles() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_among_live_nb_modules() -> None:
    """Package ``__init__`` files are facades (re-exports, the IPython entry points): edges into them
    are left out, edges out of them count."""
    facades = {m for m, p in MODULES.items() if p.name == "__init__.py"}
    graph = {module: {t for t in targets if t not in facades} for module, targets in GRAPH.items()}
    assert not _cycles(graph)


def _is_type_name(node: ast.AST) -> bool:
    """``type(x).__name__`` (naming a type in a message is fine; comparing it is a hidden import)."""
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "__name__"
        and isinstance(node.value, ast.Call)
        and getattr(node.value.func, "id", "") == "type"
    )


def _cross_layer_lookups(path: pathlib.Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Attribute) and node.attr == "modules" and getattr(node.value, "id", "") == "sys":
            found.append(f"{path.name}:{node.lineno} sys.modules")
        elif isinstance(node, ast.Compare) and any(_is_type_name(side) for side in [node.left, *node.comparators]):
            found.append(f"{path.name}:{node.lineno} type(...).__name__ compared")
        elif isinstance(node, ast.Attribute) and node.attr == "__dict__":
            if not (isinstance(node.value, ast.Name) and node.value.id == "self"):
                found.append(f"{path.name}:{node.lineno} another object's __dict__")
        elif isinstance(node, ast.Call) and getattr(node.func, "id", "") == "getattr" and len(node.args) >= 2:
            name = node.args[1]
            if isinstance(name, ast.Constant) and name.value == "__dict__":
                found.append(f"{path.name}:{node.lineno} getattr(..., '__dict__')")
    return found


def test_no_lookups_by_type_name_sys_modules_or_dict() -> None:
    """Ties the import graph cannot see: finding a class by its name, a module in ``sys.modules``,
    an object behind a proxy through its ``__dict__``."""
    offenders = [hit for path in MODULES.values() for hit in _cross_layer_lookups(path)]
    assert not offenders, offenders
