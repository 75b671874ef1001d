"""The project's source tree as the wheel maps it: module names to files, and what each imports.

pyproject's `package-dir` maps src/events_infra/, cli/ and components/ into one `events_infra`
namespace; the layer contract (tests/test_layers.py) and the workflow's path filter
(tests/test_workflow_paths.py) both read the tree through this one mapping.
"""

from __future__ import annotations

import ast
import tomllib
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@cache
def package_dirs() -> dict[str, Path]:
    """Package name -> folder, from pyproject's `[tool.setuptools] package-dir`."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    dirs: dict[str, Path] = {}
    for package in setuptools["packages"]:
        root = max(
            (name for name in setuptools["package-dir"] if name == "" or _within(package, name)),
            key=len,
        )
        relative = package[len(root) :].lstrip(".") if root else package
        dirs[package] = ROOT / setuptools["package-dir"][root] / Path(*relative.split("."))
    return dirs


def _within(package: str, parent: str) -> bool:
    return package == parent or package.startswith(parent + ".")


@cache
def modules() -> dict[str, Path]:
    """Every module of the `events_infra` namespace (packages as their `__init__`) -> its file."""
    found: dict[str, Path] = {}
    for package, folder in package_dirs().items():
        for path in folder.glob("*.py"):
            name = package if path.stem == "__init__" else f"{package}.{path.stem}"
            found[name] = path
    return found


def module_file(name: str) -> Path | None:
    return modules().get(name)


def imports(path: Path, module: str | None = None) -> set[str]:
    """Every module `path` imports, anywhere in the file (lazy imports inside functions and
    TYPE_CHECKING blocks count), as absolute names; `from P import m` yields `P.m` when that is
    a project module. `module` is the file's own name, to resolve relative imports."""
    found: set[str] = set()
    package = module if path.stem == "__init__" else (module or "").rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            found.add(base)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules():
                    found.add(f"{base}.{alias.name}")
    return found
