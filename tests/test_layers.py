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
import inspect
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "msgstorm"

RANK = {
    "jit": -1,
    "canon": 0, "version": 0, "draws": 0, "pcg64": 0, "progress": 0, "errors": 0, "heap": 0, "rules": 0, "processes": 0,
    "poisson_kernel": 1,
    "scenario": 1, "history": 1,
    "sampling": 2, "faults": 2, "security": 2,
    "traffic": 3, "market": 3,
    "sim": 4, "live": 4, "analysis": 4,
    "report": 5,
    "targets": 6,
    "runner": 7,
    "sweep": 8, "replays": 8,
    "commands": 9,
    "cli": 10,
    "__init__": 11,
    "__main__": 12,
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


def _package_imports(path: Path) -> list[int]:
    """Lines of ``path`` that import the package's face: ``import msgstorm`` or ``from
    msgstorm import name`` of a name that is no module of the package."""
    modules = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()}
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import) and any(a.name == "msgstorm" for a in node.names):
            found.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "msgstorm" and any(
                a.name not in modules for a in node.names):
            found.append(node.lineno)
    return found


def test_nothing_below_the_face_imports_the_package() -> None:
    """The version and the package's folder come from ``version.py``, the bottom layer."""
    wrong = [f"{path.relative_to(PACKAGE)}:{line}" for path in sorted(PACKAGE.rglob("*.py"))
             if path.name != "__init__.py" or path.parent != PACKAGE for line in _package_imports(path)]
    assert wrong == []


def test_the_face_check_sees_an_import_of_the_package(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("import msgstorm\nfrom msgstorm import draws\ndef f():\n    from msgstorm import __version__\n")
    assert _package_imports(module) == [1, 4]


# What a live fault kind may import of the live wing: the handle and the capabilities it acts
# through and the tools every kind shares; never a target, a driver, the nemesis, or the run
# around them.
FAULT_KIND_IMPORTS = ("msgstorm.live.faults", "msgstorm.live.drivers.capabilities", "msgstorm.live.toxics",
                      "msgstorm.live.payload", "msgstorm.live.servers", "msgstorm.live.proxy")


def _live_imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("msgstorm."):
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("msgstorm.")]
    return found


def test_fault_kinds_import_no_target() -> None:
    """A live fault kind acts through the capabilities its target declares
    (``live/drivers/capabilities.py``): it imports no target class (``live/chain``, a driver)."""
    wrong = [f"{path.relative_to(PACKAGE)}:{line} imports {module}"
             for path in sorted((PACKAGE / "live" / "faults").glob("*.py"))
             for line, module in _live_imports(path)
             if module.startswith(("msgstorm.live.", "msgstorm.sim")) and not module.startswith(FAULT_KIND_IMPORTS)]
    assert wrong == []
    assert len(list((PACKAGE / "live" / "faults").glob("*.py"))) >= 8


def test_fault_kinds_act_through_the_handle_alone() -> None:
    """Every live fault kind's start and end takes the ``FaultHandle`` (``live/faults/handle.py``),
    as Jepsen's nemesis acts through a client: never the nemesis itself."""
    from msgstorm.live.faults.handle import FaultHandle
    from msgstorm.scenario.registry import LIVE_FAULT_KINDS

    given = {f"{name}.{step}": inspect.signature(getattr(LIVE_FAULT_KINDS[name], step)).parameters
             for name in LIVE_FAULT_KINDS.names() for step in ("start", "end")}
    assert len(given) >= 16
    wrong = {where: str(list(parameters.values())[0]) for where, parameters in given.items()
             if list(parameters.values())[0].annotation not in ("FaultHandle", FaultHandle)}
    assert wrong == {}


def _class_bases(path: Path) -> list[tuple[int, str, list[str]]]:
    return [(node.lineno, node.name, [base.id for base in node.bases if isinstance(base, ast.Name)])
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(node, ast.ClassDef)]


def test_the_live_run_loop_is_composed_not_inherited() -> None:
    """Every live target's run is ``Lifecycle(state, steps)`` (``live/lifecycle.py``): a
    target gives its steps; no class extends the run loop."""
    wrong = [f"{path.relative_to(PACKAGE)}:{line} {name}" for path in sorted(PACKAGE.rglob("*.py"))
             for line, name, bases in _class_bases(path) if "Lifecycle" in bases]
    assert wrong == []


# The step classes of the live targets, and the parts they hold: each is composed, never extended.
STEP_CLASSES = frozenset({"LiveTarget", "LiveSender", "ChainTarget", "ChainSender", "CometTarget", "GeneratorTarget"})


def _extends_a_step_class(bases: list[str]) -> list[str]:
    return [base for base in bases if base in STEP_CLASSES or base.endswith(("Target", "Sender"))]


def test_no_live_target_extends_another() -> None:
    """One target's steps are one object (``Steps``), with the parts it holds (a sender, a
    start gate): no class in ``live/`` or ``targets/`` extends a target or a sender."""
    paths = [*sorted((PACKAGE / "live").rglob("*.py")), *sorted((PACKAGE / "targets").rglob("*.py"))]
    wrong = [f"{path.relative_to(PACKAGE)}:{line} {name}({', '.join(found)})" for path in paths
             for line, name, bases in _class_bases(path) if (found := _extends_a_step_class(bases))]
    assert wrong == []
    assert _extends_a_step_class(["NoSteps", "ChainSender"]) == ["ChainSender"]
    assert _extends_a_step_class(["RelayTarget"]) == ["RelayTarget"] and _extends_a_step_class(["Protocol"]) == []


def test_the_runner_and_the_targets_tell_no_class_apart() -> None:
    """The registry's entry says what a target is: no ``issubclass`` dispatch on a driver."""
    paths = [PACKAGE / "runner.py", *sorted((PACKAGE / "targets").glob("*.py"))]
    wrong = [f"{path.relative_to(PACKAGE)}" for path in paths if "issubclass(" in path.read_text(encoding="utf-8")]
    assert wrong == []


# The targets msgstorm ships, by name: only the registry says them in the scenario layer.
TARGET_NAMES = frozenset({"sim", "nats", "jetstream", "zmq", "redis", "mqtt", "rabbitmq", "kafka", "anvil",
                          "cometbft"})


def _names_a_target(node: ast.AST) -> bool:
    """A literal target name, or a collection of them."""
    if isinstance(node, ast.Constant):
        return node.value in TARGET_NAMES
    return isinstance(node, ast.Tuple | ast.List | ast.Set) and any(_names_a_target(e) for e in node.elts)


def _target_names(path: Path) -> list[str]:
    """Where ``path`` names a target by a literal: compared with something (``target ==
    "nats"``), or any other string that is a target's name, save docstrings and field paths
    (``("live", "nats", "consumer_processes")``: the ``[live.nats]`` table)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
            skipped.add(id(body[0].value))  # a docstring
        if isinstance(node, ast.Tuple) and node.elts and isinstance(node.elts[0], ast.Constant) and (
                node.elts[0].value == "live"):
            skipped.update(id(e) for e in node.elts)  # a field path under [live]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(_names_a_target(o) for o in [node.left, *node.comparators]):
            found.append(f"{node.lineno}: compares with {ast.unparse(node)}")
            skipped.update(id(inner) for inner in ast.walk(node))
    found += [f"{node.lineno}: {node.value!r}" for node in ast.walk(tree)
              if isinstance(node, ast.Constant) and node.value in TARGET_NAMES and id(node) not in skipped]
    return found


def test_the_scenario_layer_names_no_target_but_through_the_registry() -> None:
    """A target's own checks, estimate and sections are its entry's in ``TARGETS``
    (``targets/``): the scenario layer asks the registry, never compares a target's name."""
    wrong = {f"{path.relative_to(PACKAGE)}:{said}" for path in sorted((PACKAGE / "scenario").glob("*.py"))
             if path.name != "registry.py" for said in _target_names(path)}
    assert wrong == set()


def test_the_target_name_check_sees_a_comparison_and_a_literal(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text('"""Runs on "nats"."""\ndef f(scenario):\n    if scenario.target == "nats":\n'
                      '        return ("live", "nats", "x")\n    return scenario.target in ("sim", "anvil") or "kafka"\n')
    assert _target_names(module) == ["3: compares with scenario.target == 'nats'",
                                     "5: compares with scenario.target in ('sim', 'anvil')", "5: 'kafka'"]
