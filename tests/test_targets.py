"""Targets as plugins (``targets/``, ``TARGETS`` in ``scenario/registry.py``): the worked
target of docs/extending.md, registered from the page's own code, runs a scenario through
the public path, its checks and its estimate coming from it; the built-in targets are
the registry's entries, and nothing else tells them apart; a driver of one's own declares
its URL scheme and its generators' names as a built-in does."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import msgstorm
from msgstorm.scenario.budget import estimate_live, estimate_simulated, estimate_work
from msgstorm.scenario.errors import ScenarioError
from msgstorm.scenario.generators import distributed_targets, generator_live
from msgstorm.scenario.live import LiveSpec
from msgstorm.scenario.registry import TARGETS, load_extensions
from msgstorm.scenario.target_option import target_overrides

ROOT = Path(__file__).resolve().parent.parent
SCENARIO = """
target = "wire"
[run]
name = "wire"
seed = 3
duration = "2s"
drain = "1s"
[[agents]]
name = "traders"
arrival = { process = "poisson", rate = "500/s" }
size = "100B"
"""


@pytest.fixture(scope="module")
def wire(tmp_path_factory: pytest.TempPathFactory) -> object:
    """The page's target, loaded as a user would (a file named in MSGSTORM_EXTENSIONS)."""
    page = (ROOT / "docs" / "extending.md").read_text(encoding="utf-8")
    section = page[page.index("## A new target"):]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None
    path = tmp_path_factory.mktemp("extension") / "wire.py"
    path.write_text(code.group(1), encoding="utf-8")
    if "wire" not in TARGETS:
        load_extensions(str(path))
    return TARGETS["wire"]


def test_a_target_of_ones_own_runs_a_scenario_through_the_public_path(wire: object, tmp_path: Path) -> None:
    scenario = msgstorm.parse_scenario(SCENARIO, source="wire.toml")
    result = msgstorm.run(scenario, tmp_path / "run")
    messages = result.history.table("messages").to_pylist()
    assert 800 < len(messages) < 1200  # 500/s for 2 s
    assert {m["status"] for m in messages} == {"committed"}
    assert all(m["t_committed"] - m["t_intended"] == 2_000_000 for m in messages)
    summary = result.summary
    assert summary["target"] == "wire"
    latency = summary["latency_ms"]
    assert isinstance(latency, dict) and latency["p50"] == pytest.approx(2.0, abs=0.01)
    assert result.history.table("run").column("target").to_pylist() == ["wire", "wire"]  # started, ended


def test_its_checks_and_its_estimate_are_its_own(wire: object) -> None:
    with pytest.raises(ScenarioError) as error:
        msgstorm.parse_scenario(SCENARIO + '[market]\n[[market.instruments]]\nname = "ETH"\nprice = 100.0\n',
                                source="wire.toml")
    assert "market: a wire runs no market" in str(error.value)
    scenario = msgstorm.parse_scenario(SCENARIO, source="wire.toml")
    assert estimate_work(scenario) == estimate_live(scenario)
    assert estimate_work(scenario) != estimate_simulated(scenario)
    simulated = msgstorm.parse_scenario(SCENARIO.replace('target = "wire"\n', ""), source="sim.toml")
    assert estimate_work(simulated) == estimate_simulated(simulated)


def test_a_fault_on_a_target_that_drives_no_live_system_is_refused_naming_the_entry(wire: object) -> None:
    with pytest.raises(ScenarioError) as error:
        msgstorm.parse_scenario(SCENARIO + '[[faults]]\nkind = "crash"\nat = "1s"\nnode = "wire"\n', source="wire.toml")
    said = str(error.value)
    assert "faults[0].kind" in said or "faults.0.kind" in said, said
    assert "target 'wire' drives no live system, so it applies no fault" in said


def test_an_unknown_target_names_the_registrys_targets(wire: object) -> None:
    with pytest.raises(ScenarioError) as error:
        msgstorm.parse_scenario(SCENARIO.replace('"wire"', '"wirex"'), source="wire.toml")
    said = str(error.value)
    assert "unknown target 'wirex'" in said and "did you mean 'wire'" in said and "'kafka'" in said


def test_the_built_in_targets_are_the_registrys_and_say_what_they_run() -> None:
    assert set(TARGETS.builtin_names) == {"sim", "nats", "jetstream", "zmq", "redis", "mqtt", "rabbitmq", "kafka",
                                          "anvil", "cometbft"}
    assert [name for name in TARGETS.builtin_names if TARGETS[name].simulated] == ["sim"]
    assert {name for name in TARGETS.builtin_names if "rollup" in TARGETS[name].sections} == {"sim", "anvil"}
    assert {name for name in TARGETS.builtin_names if "crosschain" in TARGETS[name].sections} == {"sim"}
    assert not TARGETS["sim"].analyse_apart and TARGETS["kafka"].analyse_apart


def test_no_sim_literal_decides_outside_the_sim_target() -> None:
    """The scenario layer, the runner and the commands ask the registry what a target is."""
    pattern = re.compile(r"""target\s*[!=]=\s*["']sim["']|["']sim["']\s*[!=]=\s*\S*target""")
    places = [*(ROOT / "src" / "msgstorm" / "scenario").rglob("*.py"), ROOT / "src" / "msgstorm" / "runner.py",
              *(ROOT / "src" / "msgstorm" / "commands").rglob("*.py")]
    found = [f"{path.relative_to(ROOT)}:{n}" for path in places
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if pattern.search(line)]
    assert found == []


# A broker driver msgstorm does not ship, loaded as a user would (MSGSTORM_EXTENSIONS): it
# declares its own URL scheme and its generators' own names, as the built-in drivers do.
PIPE = '''
from typing import Any, ClassVar

from msgstorm.scenario.registry import LIVE_DRIVERS, TARGETS
from msgstorm.targets.live import LiveRun


@LIVE_DRIVERS.register("pipe")
class PipeDriver:
    url_schemes: ClassVar[dict[str, str]] = {"pipe": "tcp", "nats": "tcp"}  # nats:// stays the built-in's

    @staticmethod
    def generator_names(live: Any, index: int) -> dict[str, Any]:
        return {"subject": f"{live.subject}.pipe{index}"}


TARGETS.register("pipe")(LiveRun("pipe"))
'''


def test_a_driver_of_ones_own_declares_its_url_scheme_and_its_generators_names(tmp_path: Path) -> None:
    path = tmp_path / "pipe.py"
    path.write_text(PIPE, encoding="utf-8")
    if "pipe" not in TARGETS:
        load_extensions(str(path))
    assert target_overrides("pipe://127.0.0.1:7000") == ['target="pipe"', 'live.url="tcp://127.0.0.1:7000"']
    assert target_overrides("nats://127.0.0.1:4222")[0] == 'target="nats"'
    with pytest.raises(ValueError, match=r"unknown URL scheme 'pipes'; expected one of nats://, .*pipe://"):
        target_overrides("pipes://127.0.0.1:7000")
    live = LiveSpec(generators=2)
    assert "pipe" in distributed_targets(live) and "zmq" not in distributed_targets(live)
    spec = generator_live(live, "pipe", 1, "tcp://127.0.0.1:7000")
    assert (spec.subject, spec.url, spec.generators) == (f"{live.subject}.pipe1", "tcp://127.0.0.1:7000", 1)
