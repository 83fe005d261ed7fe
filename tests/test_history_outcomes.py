"""Names said once: a liquidation call's outcome is an ``Outcome`` (``history/outcomes.py``),
and a liquidation mechanism's traits are its class's flags (``market/liquidation.py``), read
through ``LIQUIDATION_MECHANISMS``. No module compares either as a string of its own."""

from __future__ import annotations

import ast
from pathlib import Path

from msgstorm.history.outcomes import CLOSING, TOOK_PART, Outcome
from msgstorm.scenario.registry import LIQUIDATION_MECHANISMS

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "msgstorm"
OUTCOMES = frozenset(str(outcome) for outcome in Outcome)


def _literals(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [value for element in node.elts for value in _literals(element)]
    return []


def _compared(path: Path, names: frozenset[str], subject: tuple[str, ...]) -> list[str]:
    """Where ``path`` compares something called one of ``subject`` (a name or an attribute,
    ``outcome``, ``rule.mechanism``) with a literal among ``names``, or assigns one to it."""
    def called(node: ast.AST) -> bool:
        return (isinstance(node, ast.Name) and node.id in subject) or (
            isinstance(node, ast.Attribute) and node.attr in subject)

    shown = path.relative_to(PACKAGE) if path.is_relative_to(PACKAGE) else path.name
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Compare):
            operands = [node.left, *node.comparators]
            if any(called(o) for o in operands) and any(v in names for o in operands for v in _literals(o)):
                found.append(f"{shown}:{node.lineno}")
        elif isinstance(node, ast.Assign) and any(called(t) for t in node.targets) and (
                set(_literals(node.value)) & names):
            found.append(f"{shown}:{node.lineno}")
    return found


def test_the_market_and_the_analysis_name_outcomes_through_the_enum() -> None:
    paths = [*sorted((PACKAGE / "market").glob("*.py")), *sorted((PACKAGE / "analysis").glob("*.py"))]
    assert [where for path in paths for where in _compared(path, OUTCOMES, ("outcome",))] == []


def test_no_module_compares_a_mechanism_by_name() -> None:
    names = frozenset(LIQUIDATION_MECHANISMS.names())
    assert [where for path in sorted(PACKAGE.rglob("*.py"))
            for where in _compared(path, names, ("mechanism",))] == []
    assert [where for path in sorted((PACKAGE / "market").glob("cross*.py"))
            for where in _compared(path, names, ("name",))] == []


def test_the_mechanisms_flags_say_what_the_names_said() -> None:
    flags = {name: (m.closes_whole, m.cross, m.english, m.auction, m.repeats)
             for name, m in LIQUIDATION_MECHANISMS.items()}
    assert flags == {"whole": (True, True, False, False, False), "partial": (False, True, False, False, False),
                     "close_factor": (False, False, False, False, True),
                     "dutch_auction": (False, False, False, True, False),
                     "english_auction": (False, False, True, True, False)}


def test_the_outcome_groups_are_outcomes_and_keep_their_strings() -> None:
    assert CLOSING <= TOOK_PART <= set(Outcome)
    assert {str(o) for o in CLOSING} == {"executed", "partial"}
    assert Outcome.ALREADY_LIQUIDATED == "already_liquidated" and Outcome.RECOVERED not in TOOK_PART


def test_the_check_sees_a_comparison_and_an_assignment(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('def f(rule):\n    outcome = "executed"\n    if rule.mechanism == "whole":\n'
                      '        return 1\n    return outcome != "bid"\n')
    assert _compared(module, OUTCOMES, ("outcome",)) == ["m.py:2", "m.py:5"]
    assert _compared(module, frozenset({"whole"}), ("mechanism",)) == ["m.py:3"]
