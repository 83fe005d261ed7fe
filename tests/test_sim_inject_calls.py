"""Calls of ``kernel.inject`` by the interpreter until a run made enough (``sim/inject_calls.py``)."""

from __future__ import annotations

from msgstorm.history import read_history
from msgstorm.sim import inject_calls

# Blocks from the leader every 100 ms: items the simulator starts by ``kernel.inject``.
INJECTED = """
[run]
name = "injected"
seed = 11
duration = "700ms"
drain = "300ms"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 3
link = { dist = "normal", jitter = "2ms" }

[blocks]
interval = "100ms"

[[agents]]
name = "traders"
count = 4
arrival = { process = "poisson", rate = "200/s" }
"""


def test_an_interpreted_inject_writes_the_compiled_ones_history(  # type: ignore[no-untyped-def]
        run_scenario, scenario_from, monkeypatch) -> None:
    """A run too small to compile ``kernel.inject`` starts its items by the interpreter, a
    batch of ``INJECT_BATCH`` at a time (asking ``draws.uncompiled`` before each): the
    history is the one the compiled inject writes."""
    asks: list[int] = []

    def interpreter(loop, args, n, budget):  # type: ignore[no-untyped-def]
        asks.append(n)
        return True

    compiled = run_scenario(scenario_from(INJECTED), "compiled")
    monkeypatch.setattr(inject_calls, "uncompiled", interpreter)
    monkeypatch.setattr(inject_calls, "INJECT_BATCH", 2)
    by_interpreter = run_scenario(scenario_from(INJECTED), "interpreted")
    # About ten blocks, a batch of two each: a new batch asked for every two items.
    assert len(asks) >= 4 and set(asks) == {2}
    for table in ("messages", "events", "deliveries"):
        assert (read_history(compiled.run_dir).table(table).to_pydict()
                == read_history(by_interpreter.run_dir).table(table).to_pydict()), table
