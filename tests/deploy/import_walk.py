"""A static import walk of our own source files, shared by the image tests (test_images.py,
test_image_locks.py): which modules a file imports, lazy (in-function) imports included, and where
a module's file is among a list of source folders."""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path


def _optional_nodes(tree: ast.AST) -> set[int]:
    """Nodes inside `if TYPE_CHECKING:` or in the body of a `try` that catches ImportError."""
    optional: set[int] = set()
    for node in ast.walk(tree):
        catches_import_error = isinstance(node, ast.Try) and any(
            h.type is None or re.search(r"\b(ImportError|ModuleNotFoundError)\b", ast.unparse(h.type))
            for h in node.handlers)
        type_checking = isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        if catches_import_error or type_checking:
            optional |= {id(n) for stmt in node.body for n in ast.walk(stmt)}
    return optional


@cache
def module_imports(path: Path, module: str) -> tuple[frozenset[str], frozenset[str]]:
    """(modules the file imports, names that may be modules: `b` of `from a import b`), lazy
    (in-function) imports included, optional ones (_optional_nodes) left out."""
    tree = ast.parse(path.read_text(), filename=str(path))
    optional = _optional_nodes(tree)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    required: set[str] = set()
    maybe: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            required |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            required.add(base)
            maybe |= {f"{base}.{alias.name}" for alias in node.names if alias.name != "*"}
    return frozenset(required - {"__future__"}), frozenset(maybe)


def module_file(folders: list[Path], module: str) -> Path | None:
    for folder in folders:
        base = folder.joinpath(*module.split("."))
        for candidate in (base.with_suffix(".py"), base / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None
