"""House rules the code keeps (``pyproject.toml``): lines within the column limit, functions
within ruff's complexity bound, and fewer untyped values than before.

The excess that was there when each rule came is listed as named exceptions to shrink:
``tests/data/long_lines.json`` (each file's lines over the limit, written by
``scripts/long_lines.py``) and the ``# noqa: C901`` of the functions over the complexity bound.
A file may lose long lines, never gain them; a file not listed has none.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXCEPTIONS = ROOT / "tests" / "data" / "long_lines.json"
# ``Any`` and ``dict[str, Any]`` lines in src/: the counts when they were last lowered.
ANY_BOUND = 890
DICT_ANY_BOUND = 383


def _long_lines() -> dict[str, int]:
    spec = importlib.util.spec_from_file_location("long_lines", ROOT / "scripts" / "long_lines.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    counts: dict[str, int] = module.long_lines(ROOT)
    return counts


def test_no_file_has_more_lines_over_the_limit_than_its_named_exception() -> None:
    listed: dict[str, int] = json.loads(EXCEPTIONS.read_text(encoding="utf-8"))
    grown = {path: (count, listed.get(path, 0)) for path, count in _long_lines().items()
             if count > listed.get(path, 0)}
    assert grown == {}, ("lines over pyproject's line-length (now, allowed): wrap them, or for a file "
                         f"that only lost some run scripts/long_lines.py: {grown}")


def test_the_exceptions_name_files_that_exist() -> None:
    listed: dict[str, int] = json.loads(EXCEPTIONS.read_text(encoding="utf-8"))
    assert [path for path in listed if not (ROOT / path).is_file()] == []


def test_untyped_values_do_not_grow() -> None:
    lines = [line for path in (ROOT / "src" / "msgstorm").rglob("*.py")
             for line in path.read_text(encoding="utf-8").splitlines()]
    anys = sum(1 for line in lines if re.search(r"\bAny\b", line))  # lines, as ``git grep -c`` counts
    dicts = sum(1 for line in lines if "dict[str, Any]" in line)
    assert anys <= ANY_BOUND and dicts <= DICT_ANY_BOUND, (anys, dicts)
