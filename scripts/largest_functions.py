"""Print the largest functions and methods under src/, and how many pass a threshold.

A function's size is its lines from the ``def`` (decorators excluded) to its last line, nested
functions included in their parent's size and listed on their own as well. The house rule in
``tests/test_house_rules.py`` reads the same measure (``function_lengths``); its named
exceptions live in ``tests/data/long_functions.json``, which ``--write`` rewrites after a
function shrank. ``--docstrings`` prints the lines of docstrings in src instead (module, class
and function docstrings).

    python scripts/largest_functions.py [--top 15] [--over 80] [--write] [--docstrings]
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# The house rule's ceilings: a module or a function longer than these is a named exception.
MODULE_LINES = 700
FUNCTION_LINES = 120
EXCEPTIONS = ROOT / "tests" / "data" / "long_functions.json"


def _sources(root: Path) -> list[Path]:
    return sorted((root / "src" / "msgstorm").rglob("*.py"))


def _functions(node: ast.AST, where: str, prefix: str) -> list[tuple[int, str, str]]:
    """(lines, "path:line", qualified name) of the functions under ``node``, nested ones too."""
    found = []
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
            name = f"{prefix}{child.name}"
            assert child.end_lineno is not None
            found.append((child.end_lineno - child.lineno + 1, f"{where}:{child.lineno}", name))
            found += _functions(child, where, f"{name}.")
        elif isinstance(child, ast.ClassDef):
            found += _functions(child, where, f"{prefix}{child.name}.")
        else:
            found += _functions(child, where, prefix)
    return found


def function_lengths(root: Path = ROOT) -> list[tuple[int, str, str]]:
    """(lines, "path:line", qualified name) of every function under src/, largest first."""
    found = []
    for path in _sources(root):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        found += _functions(tree, path.relative_to(root).as_posix(), "")
    return sorted(found, key=lambda item: (-item[0], item[1]))


def module_lengths(root: Path = ROOT) -> dict[str, int]:
    """{path under src/: its lines} for every module."""
    return {path.relative_to(root).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
            for path in _sources(root)}


def long_functions(root: Path = ROOT, limit: int = FUNCTION_LINES) -> dict[str, int]:
    """{"path::qualified name": lines} of the functions longer than ``limit``."""
    return {f"{where.rsplit(':', 1)[0]}::{name}": lines
            for lines, where, name in function_lengths(root) if lines > limit}


def long_modules(root: Path = ROOT, limit: int = MODULE_LINES) -> dict[str, int]:
    """{path: lines} of the modules longer than ``limit``."""
    return {path: lines for path, lines in module_lengths(root).items() if lines > limit}


def docstring_lines(root: Path = ROOT) -> int:
    """Lines of module, class and function docstrings under src/."""
    total = 0
    for path in _sources(root):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                body = node.body
                if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                        and isinstance(body[0].value.value, str)):
                    first = body[0]
                    assert first.end_lineno is not None
                    total += first.end_lineno - first.lineno + 1
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=15, help="how many functions to list")
    parser.add_argument("--over", type=int, default=80, help="count the functions longer than this")
    parser.add_argument("--write", action="store_true",
                        help=f"rewrite {EXCEPTIONS.relative_to(ROOT)} with today's lengths")
    parser.add_argument("--docstrings", action="store_true", help="print docstring lines in src")
    args = parser.parse_args()
    if args.docstrings:
        print(f"{docstring_lines()} docstring lines in src")
        return
    lengths = function_lengths()
    for lines, where, name in lengths[:args.top]:
        print(f"{lines:5d}  {where:48s} {name}")
    print(f"{sum(1 for lines, _, _ in lengths if lines > args.over)} of {len(lengths)} functions "
          f"over {args.over} lines")
    modules = long_modules()
    print(f"{len(modules)} modules over {MODULE_LINES} lines: "
          + ", ".join(f"{path} {lines}" for path, lines in sorted(modules.items())))
    if args.write:
        data = {"modules": modules, "functions": long_functions()}
        EXCEPTIONS.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"-> {EXCEPTIONS.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
