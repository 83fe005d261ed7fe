"""The package's layers: no import runs from a lower layer to a higher one.

Every ``import`` of every module counts, including those inside functions. Packages of one
rank do not import each other (the simulator and the analysis meet only in the history).
Some higher packages keep clear of lower ones too: the analysis and the report read what the
engines (traffic, market, simulator, live) wrote through the history, and a sweep or a
replay starts its runs through the runner. What they share with the engines sits at the bottom: the market's
formulas and the base-fee rule in ``rules/``, the process helpers in ``processes.py``.
The registries of ``scenario/registry.py`` load their built-in implementations by module
name when first asked, as a plugin loader does; that is the one way up, and it is not an
import statement.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "msgstorm"

RANK = {
    "jit": -1,
    "canon": 0, "draws": 0, "pcg64": 0, "progress": 0, "errors": 0, "heap": 0, "rules": 0, "processes": 0,
    "poisson_kernel": 1,
    "scenario": 1, "history": 1,
    "sampling": 2, "faults": 2, "security": 2,
    "traffic": 3, "market": 3,
    "sim": 4, "live": 4, "analysis": 4,
    "report": 5,
    "runner": 6,
    "sweep": 7, "replays": 7,
    "commands": 8,
    "cli": 9,
    "__init__": 10,
    "__main__": 11,
}

ENGINES = frozenset({"traffic", "market", "sim", "live"})
# Packages that import no engine although their rank is above them.
CLEAR_OF_ENGINES = ("analysis", "report", "sweep", "replays")


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "msgstorm":
            parts = node.module.split(".")
            found += [(node.lineno, parts[1])] if len(parts) > 1 else [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name.split(".")[1]) for a in node.names if a.name.startswith("msgstorm.")]
    return found


def _engine_imports(package: str) -> list[str]:
    return [f"{path.relative_to(PACKAGE)}:{line} imports msgstorm.{target}"
            for path in sorted((PACKAGE / package).rglob("*.py"))
            for line, target in _imports(path) if target in ENGINES]


def test_the_analysis_report_and_sweeps_import_no_engine() -> None:
    for package in CLEAR_OF_ENGINES:
        assert _engine_imports(package) == [], package


def test_the_engine_check_sees_an_engine_import(tmp_path: Path) -> None:
    """What the check above reads: the imports of each form, in a function too."""
    module = tmp_path / "m.py"
    module.write_text("from msgstorm.market.rules import equity\nimport msgstorm.live.servers\n"
                      "def f():\n    from msgstorm import sim\n    from msgstorm.rules.market import pnl\n")
    assert [target for _, target in _imports(module)] == ["market", "live", "sim", "rules"]


def test_every_package_has_a_rank() -> None:
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").is_file()))}
    assert names == set(RANK)


@pytest.mark.slow
def test_no_import_runs_upwards() -> None:
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        own = parts[0]
        for line, target in _imports(path):
            if target != own and RANK[target] >= RANK[own]:
                wrong.append(f"{path.relative_to(PACKAGE)}:{line} imports msgstorm.{target}")
    assert wrong == []
