"""Builders of small synthetic histories for the analysis tests (and tests of the builders).

Other ``test_analysis_*`` modules import ``write_history``, ``message`` and ``event`` from here:
histories are written with the real ``HistoryWriter`` and read back with ``read_history``,
so analysis is tested through the same contract a run uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from msgstorm.history import History, HistoryWriter, read_history
from msgstorm.history.schema import TABLES
from msgstorm.scenario import parse_scenario

MS = 1_000_000
S = 1_000_000_000

BASE_SCENARIO = """
[run]
name = "analysis-test"
duration = "5s"
window = "1s"

[[agents]]
name = "traders"
arrival = { process = "constant", rate = "100/s" }
"""


def scenario_dict(toml_text: str = BASE_SCENARIO) -> dict[str, Any]:
    """A validated scenario as ``History.scenario`` holds it (units normalised)."""
    dumped: dict[str, Any] = parse_scenario(toml_text, source="test.toml").model_dump(mode="json")
    return dumped


def message(
    msg_id: int,
    t_intended: int,
    *,
    latency_ns: int | None = None,
    stages_ns: tuple[int, int, int, int] | None = None,
    status: str | None = None,
    seq_no: int | None = None,
    agent: str = "trader-0",
    **columns: Any,
) -> dict[str, Any]:
    """One ``messages`` row. Give ``latency_ns`` (all of it propagation) or ``stages_ns``
    (propagation, queue_wait, service, block_wait) for a committed message; otherwise the
    message only has ``t_sent`` and the given status (default pending)."""
    row: dict[str, Any] = {name: None for name in TABLES["messages"].names}
    row.update(
        msg_id=msg_id,
        kind="order",
        agent=agent,
        node="n0",
        key=0,
        size=100,
        fee=1.0,
        t_intended=t_intended,
        t_sent=t_intended,
        status=status or "pending",
    )
    if stages_ns is None and latency_ns is not None:
        stages_ns = (latency_ns, 0, 0, 0)
    if stages_ns is not None:
        propagation, queue_wait, service, block_wait = stages_ns
        row["t_received"] = t_intended + propagation
        row["t_dequeued"] = row["t_received"] + queue_wait
        row["t_sequenced"] = row["t_dequeued"] + service
        row["t_committed"] = row["t_sequenced"] + block_wait
        row["seq_no"] = msg_id if seq_no is None else seq_no
        row["block"] = 1
        row["status"] = status or "committed"
    row.update(columns)
    return row


def event(
    t: int,
    kind: str,
    /,
    *,
    node: str | None = None,
    value: float | None = None,
    height: int | None = None,
    **detail: Any,
) -> dict[str, Any]:
    """One ``events`` row; keyword arguments become the JSON detail."""
    return {
        "t": t,
        "kind": kind,
        "node": node,
        "value": value,
        "height": height,
        "detail": json.dumps(detail) if detail else None,
    }


def _columns(rows: Sequence[dict[str, Any]], table: str) -> dict[str, list[Any]]:
    names = TABLES[table].names
    return {name: [row.get(name) for row in rows] for name in names}


def write_history(
    run_dir: Path,
    messages: Sequence[dict[str, Any]] = (),
    events: Sequence[dict[str, Any]] = (),
    deliveries: Sequence[dict[str, Any]] = (),
    *,
    scenario: dict[str, Any] | None = None,
    t_end: int = 5 * S,
    nodes: Sequence[dict[str, str]] = ({"name": "n0", "region": "us-east"},),
    target: str = "sim",
    interrupted: bool = False,
    host: str = "{}",
    tables: dict[str, Sequence[dict[str, Any]]] | None = None,
) -> History:
    """Write the rows with ``HistoryWriter`` under ``run_dir`` and read them back;
    ``tables``: rows of any other table (the market's, say) by table name."""
    scenario = scenario if scenario is not None else scenario_dict()
    writer = HistoryWriter(run_dir / "history")
    writer.append("messages", _columns(messages, "messages"))
    writer.append("events", _columns(events, "events"))
    writer.append("deliveries", _columns(deliveries, "deliveries"))
    for table, rows in (tables or {}).items():
        writer.append(table, _columns(rows, table))
    writer.append(
        "run",
        {
            "scenario_name": [scenario["run"]["name"]],
            "scenario_hash": ["abc123"],
            "scenario_json": [json.dumps(scenario)],
            "seed": [7],
            "msgstorm_version": ["0.1.0"],
            "target": [target],
            "nodes_json": [json.dumps(list(nodes))],
            "t_end": [t_end],
            "interrupted": [interrupted],
            "host": [host],
            "completed": [True],
        },
    )
    writer.close()
    return read_history(run_dir)


def test_written_history_reads_back(tmp_path: Path) -> None:
    history = write_history(
        tmp_path,
        [message(2, 10 * MS, latency_ns=3 * MS), message(1, 0, status="dropped")],
        [event(5, "queue_depth", value=4.0)],
    )
    assert history.messages.column("msg_id").to_pylist() == [2, 1]
    assert history.messages.column("t_committed").to_pylist() == [13 * MS, None]
    assert history.scenario["run"]["duration"] == 5 * S
    assert history.events.column("value").to_pylist() == [4.0]


def test_committed_message_stages_add_up() -> None:
    row = message(1, 100, stages_ns=(1, 2, 3, 4))
    assert (row["t_received"], row["t_dequeued"], row["t_sequenced"], row["t_committed"]) == (
        101,
        103,
        106,
        110,
    )
    assert row["status"] == "committed"


def test_analysis_and_report_never_load_a_whole_message_table(tmp_path: Path) -> None:
    """Memory: analysis reads the columns each metric needs, never every column of every row
    (at ten million messages the whole table alone is over a gigabyte)."""
    import msgstorm
    from msgstorm.analysis import analyse
    from msgstorm.history.reader import History
    from msgstorm.report import write_run_files

    scenario = msgstorm.load_scenario(Path(__file__).resolve().parent.parent / "examples" / "quickstart.toml",
                                      ['run.duration="1s"', 'run.drain="1s"'])
    run_dir = msgstorm.run(scenario, tmp_path / "run").run_dir
    expected = json.loads((run_dir / "summary.json").read_text())

    class ColumnsOnly(History):
        def table(self, name: str) -> pa.Table:
            assert name not in ("messages", "deliveries"), f"the whole {name} table was loaded"
            return super().table(name)

    history = ColumnsOnly(directory=run_dir / "history")
    analysis = analyse(history)
    write_run_files(run_dir, history, analysis)
    expected.pop("wall_s", None)
    assert analysis.summary == expected
