"""The size limits that keep each module about one idea: no module over 500 lines, no class
over 300, no function over 60, anywhere under src/ (a new long one fails here, named)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
MAX_MODULE, MAX_CLASS, MAX_FUNCTION = 500, 300, 60
MODULES = sorted(SRC.rglob("*.py"))


def _span(node: ast.AST) -> int:
    """Lines from a definition's first decorator-free line to its last."""
    return node.end_lineno - node.lineno + 1  # type: ignore[attr-defined, operator]


def test_the_source_tree_is_found() -> None:
    assert len(MODULES) > 50, f"only {len(MODULES)} modules under {SRC}"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_modules_classes_and_functions_stay_small(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    too_long = []
    if (lines := text.count("\n")) > MAX_MODULE:
        too_long.append(f"module: {lines} lines > {MAX_MODULE}")
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.ClassDef) and _span(node) > MAX_CLASS:
            too_long.append(f"class {node.name}: {_span(node)} lines > {MAX_CLASS}")
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and _span(node) > MAX_FUNCTION:
            too_long.append(f"function {node.name}: {_span(node)} lines > {MAX_FUNCTION}")
    assert not too_long, "; ".join(too_long)
