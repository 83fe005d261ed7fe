"""Extension points (scenario/registry.py): what docs/extending.md shows.

A toy queue policy written in one file outside the package, loaded through
``MSGSTORM_EXTENSIONS``, is accepted by the scenario and serves messages in its own order.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import typing
from pathlib import Path

import pyarrow.compute as pc
import pytest

from msgstorm.scenario import ScenarioError, parse_scenario
from msgstorm.scenario.registry import (
    ARRIVAL_PROCESSES,
    BACKPRESSURE_MODES,
    CHECKERS,
    FAULT_KINDS,
    LIVE_FAULT_KINDS,
    QUEUE_POLICIES,
)
from msgstorm.scenario.schema import (
    COMPOSITE_FAULT_KINDS,
    MESSAGE_KINDS,
    BackpressureSpec,
    FaultSpec,
)
from msgstorm.scenario.traffic import ROLE_MIX, AgentSpec, ArrivalSpec

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "docs" / "extending.md"


def _readme_block(after: str, language: str) -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(after):]
    return re.search(rf"```{language}\n(.*?)```", section, re.S).group(1)  # type: ignore[union-attr]


def test_every_schema_variant_has_a_registered_implementation() -> None:
    def literals(union: object, field: str) -> set[str]:
        args = typing.get_args(typing.get_args(union)[0]) if typing.get_origin(union) is typing.Annotated else ()
        return {typing.get_args(model.model_fields[field].annotation)[0] for model in args}

    assert literals(BackpressureSpec, "mode") == set(BACKPRESSURE_MODES)
    # Every fault kind is applied by the simulator, by live targets, or by both.
    assert literals(FaultSpec, "kind") == set(FAULT_KINDS) | set(LIVE_FAULT_KINDS) | set(COMPOSITE_FAULT_KINDS)
    assert literals(ArrivalSpec, "process") == set(ARRIVAL_PROCESSES)
    assert {"fifo", "fee_priority"} <= set(QUEUE_POLICIES)
    assert list(CHECKERS)[:4] == ["conservation", "ordering", "committed-implies-sequenced", "stage-order"]
    # A kind's place in MESSAGE_KINDS is its code in the simulator's records and the history's
    # dictionary: the kinds so far keep their places (a new one goes at the end). Every agent
    # role sends known kinds only, and every kind has a role that sends it.
    assert MESSAGE_KINDS[:6] == ("order", "cancel", "quote", "liquidation", "price", "spam")
    assert set(ROLE_MIX) == set(typing.get_args(AgentSpec.model_fields["role"].annotation))
    assert set().union(*ROLE_MIX.values()) == set(MESSAGE_KINDS)


def test_the_names_a_registry_declares_built_in_are_the_ones_its_modules_register() -> None:
    """Validation asks the fault and policy registries about built-in names without importing the engines
    (registry.py); the declaration must say what the modules register, or loading fails."""
    for registry in (FAULT_KINDS, LIVE_FAULT_KINDS, QUEUE_POLICIES):
        assert registry.builtin_names and registry.builtin_names <= set(registry.names())
    from msgstorm.scenario.registry import Registry

    wrong = Registry("fault kind", (), ("earthquake",))
    assert "earthquake" in wrong  # answered from the declaration, before anything is loaded
    with pytest.raises(RuntimeError, match=r"\['earthquake'\] declared built in"):
        wrong.names()


def test_an_unknown_policy_names_the_registered_ones() -> None:
    with pytest.raises(ScenarioError) as error:
        parse_scenario(_readme_block("# Extending msgstorm", "toml"), source="lifo.toml")
    # The message the README quotes, word for word.
    quoted = re.search(r"refused: `(.*?)`", README.read_text(encoding="utf-8").replace("\n", " "), re.S)
    assert quoted is not None and quoted.group(1) in str(error.value)


@pytest.mark.slow
def test_the_readme_lifo_policy_runs_from_one_file(tmp_path: Path) -> None:
    (tmp_path / "lifo.py").write_text(_readme_block("# Extending msgstorm", "python"), encoding="utf-8")
    (tmp_path / "lifo.toml").write_text(_readme_block("# Extending msgstorm", "toml"), encoding="utf-8")
    env = {**os.environ, "MSGSTORM_EXTENSIONS": str(tmp_path / "lifo.py")}
    done = subprocess.run([sys.executable, "-c", "from msgstorm.cli import main; main()", "run",
                           str(tmp_path / "lifo.toml"),
                           "--out", str(tmp_path / "run")], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    from msgstorm.history import read_history

    messages = read_history(tmp_path / "run").messages
    served = messages.filter(pc.is_valid(messages["t_dequeued"])).sort_by("t_dequeued")
    received = served["t_received"].to_numpy()
    dequeued = served["t_dequeued"].to_numpy()
    # Last come, first served: whenever a worker picks from a queue of several, it takes
    # the newest arrival, so some message is served before one that arrived earlier and
    # waited, and no message waits while a later one is taken from the same queue first
    # in arrival order (which FIFO would do).
    overtaken = (received[1:] < received[:-1]).sum()
    assert overtaken > 100
    assert (dequeued >= received).all()
