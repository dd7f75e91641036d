"""Size rules of the product code (issue 17): no module over 400 lines, no function or method over 60.

A function counts from its `def` line to its last line, docstring included (decorators left out); nested
functions count inside their parent and on their own. The test lists every breach at once."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("service", "workers", "neuronlens")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def product_modules() -> list[Path]:
    """Every Python module of the product packages, sorted."""
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob("*.py"))


def module_breaches(limit: int = MAX_MODULE_LINES) -> list[str]:
    """``path: N lines`` for every product module longer than ``limit`` lines."""
    breaches = []
    for path in product_modules():
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > limit:
            breaches.append(f"{path.relative_to(ROOT)}: {lines} lines (limit {limit})")
    return breaches


def function_breaches(limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:line name: N lines`` for every function or method longer than ``limit`` lines."""
    breaches = []
    for path in product_modules():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            assert node.end_lineno is not None
            lines = node.end_lineno - node.lineno + 1
            if lines > limit:
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                breaches.append(f"{where} {node.name}: {lines} lines (limit {limit})")
    return breaches


def test_the_walk_sees_every_product_package() -> None:
    found = {path.relative_to(ROOT).parts[0] for path in product_modules()}
    assert found == set(PACKAGES)


def test_no_module_is_over_400_lines() -> None:
    breaches = module_breaches()
    assert not breaches, "modules over the size limit:\n" + "\n".join(breaches)


def test_no_function_is_over_60_lines() -> None:
    breaches = function_breaches()
    assert not breaches, "functions over the size limit:\n" + "\n".join(breaches)
