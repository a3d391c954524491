"""Imports sit at the top of their module (issue 11, point 1).

import-linter checks the layers, but it cannot see an import hidden inside a function to
dodge a cycle. This test can: outside the allowed cases below, every import in
``src/videogate`` is at module level (``if TYPE_CHECKING:`` blocks count as module level;
they cost nothing at run time).
"""

from __future__ import annotations

import ast
from pathlib import Path

import videogate

PACKAGE = Path(videogate.__file__).parent

# The command line imports the server stack inside each server command: the CLI also runs
# from a client-only install (`pip install videogate`) where those modules are absent.
# It is the top layer, so nothing it imports can import it back: no cycle to hide.
LAZY_PACKAGES = ("videogate.cli",)

# Imports that stay inside a function, by the module imported, and why.
ALLOWED = {
    # The optional `local` extra: seconds and gigabytes to load, imported only in the
    # generation process of a diffusers route (media/diffusion.py).
    "torch",
    "diffusers",
    # Only PostgreSQL deployments load the driver (store/due_signal.py).
    "asyncpg",
    # Only S3 deployments load obstore (blobs/__init__.py).
    "videogate.blobs.s3",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported(node: ast.Import | ast.ImportFrom) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    # A relative import keeps its dots: never allowed, and the package uses none.
    return ["." * node.level + (node.module or "")]


class _FunctionImports(ast.NodeVisitor):
    """Collects the imports that sit inside a function (at any depth)."""

    def __init__(self) -> None:
        self.depth = 0
        self.found: list[ast.Import | ast.ImportFrom] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        if self.depth:
            self.found.append(node)

    visit_ImportFrom = visit_Import


def hidden_imports(module: str, source: str) -> list[str]:
    """The imports inside a function of ``module`` that :data:`ALLOWED` does not name."""
    visitor = _FunctionImports()
    visitor.visit(ast.parse(source))
    return [
        f"{module}:{node.lineno} imports {name}"
        for node in visitor.found
        for name in _imported(node)
        if name not in ALLOWED
    ]


def test_no_imports_inside_functions() -> None:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        if not module.startswith(LAZY_PACKAGES):
            found += hidden_imports(module, path.read_text(encoding="utf-8"))
    assert found == []


def test_the_check_finds_a_hidden_import() -> None:
    source = (
        "import os\n"
        "def f():\n"
        "    if os.sep:\n"
        "        from videogate.worker import Worker\n"
        "    async def g():\n"
        "        from . import loop\n"
        "        import torch\n"
    )
    assert hidden_imports("videogate.api.app", source) == [
        "videogate.api.app:4 imports videogate.worker",
        "videogate.api.app:6 imports .",
    ]
