"""The package's layers: every module imports only from its own layer or the ones below it,
the import graph has no cycle, and a function-local import says why it is local.

The layers (``docs/architecture.md`` draws them) are listed in :data:`LAYERS`; a new module
must be placed there, or this test fails.
"""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "s2s_ad"

# Lowest first. A name is a module or a package (which places everything under it).
LAYERS: list[tuple[str, ...]] = [
    (
        "s2s_ad.version",
        "s2s_ad.errors",
        "s2s_ad.dtype",
        "s2s_ad.lru",
        "s2s_ad.context",
        "s2s_ad.tensor",
        "s2s_ad.cpumath",
        "s2s_ad.vecmath",
        "s2s_ad.pyast",
        "s2s_ad.buffers",
        "s2s_ad.lazy",
        "s2s_ad.progress",
    ),
    ("s2s_ad.ir",),
    ("s2s_ad.primitives", "s2s_ad.regions", "s2s_ad.symbolic_heads"),
    ("s2s_ad.symbolic", "s2s_ad.clusters", "s2s_ad.scalarise"),
    ("s2s_ad.ad", "s2s_ad.opt", "s2s_ad.fusion", "s2s_ad.derivatives", "s2s_ad.batching"),
    ("s2s_ad.codegen", "s2s_ad.cuda", "s2s_ad.backend", "s2s_ad.diskcache", "s2s_ad.tiered", "s2s_ad.llvmloops"),
    ("s2s_ad.trace",),
    ("s2s_ad.runtime", "s2s_ad.warmstart"),
    (
        "s2s_ad.ops",
        "s2s_ad.nn",
        "s2s_ad.common",
        "s2s_ad.api",
        "s2s_ad.jacobians",
        "s2s_ad.laplacian",
        "s2s_ad.testing",
        "s2s_ad.custom",
        "s2s_ad.checkpointing",
    ),
    ("s2s_ad.cli", "s2s_ad.demo", "s2s_ad.__main__", "s2s_ad"),
]


def _module_name(path: pathlib.Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, found = -1, None
    for k, names in enumerate(LAYERS):
        for name in names:
            if (module == name or module.startswith(name + ".")) and len(name) > best:
                best, found = len(name), k
    if found is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in {__file__}")
    return found


class Import:
    def __init__(self, source: str, target: str, line: int, local: bool, reason: bool):
        self.source, self.target, self.line, self.local, self.reason = source, target, line, local, reason

    def __repr__(self) -> str:
        where = f"{MODULES[self.source].relative_to(PACKAGE.parent)}:{self.line}"
        return f"{where}: {self.source} imports {self.target}{' (function-local)' if self.local else ''}"


def _imports(module: str, path: pathlib.Path) -> list[Import]:
    text = path.read_text()
    lines = text.splitlines()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []
    seen: set[tuple[str, int]] = set()

    def reason(node: ast.stmt) -> bool:
        here = lines[node.lineno - 1]
        above = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
        return "#" in here or above.startswith("#")

    def add(node: ast.stmt, target: str, local: bool) -> None:
        if (target == "s2s_ad" or target.startswith("s2s_ad.")) and (target, node.lineno) not in seen:
            seen.add((target, node.lineno))
            found.append(Import(module, target, node.lineno, local, reason(node)))

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                continue  # names for type hints only: nothing is imported when the code runs
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = package.split(".")[: len(package.split(".")) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                for alias in child.names:
                    # ``from pkg import name`` imports the submodule pkg.name where there is one
                    sub = f"{target}.{alias.name}"
                    add(child, sub if sub in MODULES else target, inner)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    add(child, alias.name, inner)
            visit(child, inner)

    visit(ast.parse(text), False)
    return found


IMPORTS = [imp for m, p in MODULES.items() for imp in _imports(m, p)]


def _edges() -> dict[str, set[str]]:
    """Every import between the package's modules. (Importing a module also runs its parent
    packages' ``__init__``: :func:`test_no_upward_import` keeps every module at or above the
    layer of its package, so those edges never point down a layer either.)"""
    edges: dict[str, set[str]] = {m: set() for m in MODULES}
    for imp in IMPORTS:
        if imp.target in MODULES and imp.target != imp.source:
            edges[imp.source].add(imp.target)
    return edges


def test_every_module_has_a_layer() -> None:
    for m in MODULES:
        layer_of(m)


def test_no_upward_import() -> None:
    upward = [imp for imp in IMPORTS if imp.target in MODULES and layer_of(imp.target) > layer_of(imp.source)]
    # importing a module runs its package's __init__: a module may not sit below its package
    upward += [
        f"{m} is in layer {layer_of(m)}, below its package {parent} (layer {layer_of(parent)})"
        for m in MODULES
        for parent in [m.rpartition(".")[0]]
        if parent != "s2s_ad" and parent in MODULES and layer_of(parent) > layer_of(m)
    ]
    assert not upward, "imports from a higher layer:\n" + "\n".join(map(str, upward))


def test_import_graph_has_no_cycle() -> None:
    edges = _edges()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state:
                cycle = visit(n)
                if cycle:
                    return cycle
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(MODULES):
        if m not in state:
            cycle = visit(m)
            assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_function_local_imports_say_why() -> None:
    silent = [imp for imp in IMPORTS if imp.local and not imp.reason]
    assert not silent, "function-local imports without a comment giving the reason:\n" + "\n".join(map(str, silent))


# Import one module with the package's facade (its ``__init__``) left out, and list what loaded.
_PROBE = """
import importlib, sys, types
package = types.ModuleType("s2s_ad")
package.__path__ = [{path!r}]
sys.modules["s2s_ad"] = package
importlib.import_module({module!r})
print(" ".join(sorted(m for m in sys.modules if m.startswith("s2s_ad."))))
"""


@pytest.mark.parametrize(
    "module",
    ["s2s_ad.ir", "s2s_ad.primitives", "s2s_ad.ad.reverse", "s2s_ad.codegen", "s2s_ad.trace", "s2s_ad.runtime"],
)
def test_a_layer_loads_without_the_layers_above(module: str) -> None:
    code = _PROBE.format(path=str(PACKAGE), module=module)
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert module in loaded
    above = [m for m in loaded if layer_of(m) > layer_of(module)]
    assert not above, f"importing {module} loads modules of higher layers: {above}"


@pytest.mark.parametrize(
    ("source", "target", "upward"),
    [("s2s_ad.ir", "s2s_ad.primitives", True), ("s2s_ad.runtime", "s2s_ad.ir", False)],
)
def test_layer_order(source: str, target: str, upward: bool) -> None:
    # the check above can fail: the op table sits above the IR, the runtime above both
    assert (layer_of(target) > layer_of(source)) is upward
