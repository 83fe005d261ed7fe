"""Write tests/data/long_lines.json: each source file's lines over the column limit.

The house rule is pyproject's ``line-length`` (100 columns); the files over it are named
exceptions, each with its count, which ``tests/test_house_rules.py`` lets shrink and never
grow. Run it after shortening lines to record the new, lower counts:
``python scripts/long_lines.py``.
"""

from __future__ import annotations

import json
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def limit() -> int:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return int(config["tool"]["ruff"]["line-length"])


def long_lines(root: Path = ROOT) -> dict[str, int]:
    """{path under src/: lines longer than the limit} for every file that has any."""
    width = limit()
    counts = {}
    for path in sorted((root / "src" / "msgstorm").rglob("*.py")):
        over = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if len(line) > width)
        if over:
            counts[path.relative_to(root).as_posix()] = over
    return counts


if __name__ == "__main__":
    counts = long_lines()
    out = ROOT / "tests" / "data" / "long_lines.json"
    out.write_text(json.dumps(counts, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"{sum(counts.values())} lines over {limit()} columns in {len(counts)} files -> {out.relative_to(ROOT)}",
          file=sys.stderr)
