"""Live target against a real three-node RabbitMQ cluster (the OS package rabbitmq-server).

No mocks: msgstorm starts three nodes on loopback (names, ports, databases, one cookie of the
run), joins them with rabbitmqctl, and the faults act on named nodes: a crash and a pause
here; the partition (Erlang distribution cut through the fault proxy) is docs/examples.md's
example, run by tests/test_docs.py. After each run the audit queue is read back: every
confirmed message must be there.
"""

from __future__ import annotations

import json
import os
import re
import socket
from collections import Counter
from pathlib import Path

import pytest
from conftest import assert_none_left, report_in_process, require_program, sigkill_mid_run

from msgstorm.errors import TargetError
from msgstorm.history import read_history
from msgstorm.live.drivers.rabbitmq import RabbitMqDriver
from msgstorm.live.drivers.rabbitmq_cluster import cluster_config, dist_map, mirror_pattern
from msgstorm.runner import run
from msgstorm.scenario import ScenarioError, load_scenario, parse_scenario

INSTALL = "apt-get install rabbitmq-server"
GOOD = """target = "rabbitmq"
[run]
name = "r"
duration = "1s"
[live.rabbitmq]
queue = "orders"
nodes = 3
[[agents]]
name = "t"
arrival = { process = "constant", rate = "10/s" }
"""


# --- without a broker ---------------------------------------------------------------------------


def test_each_node_dials_the_others_at_the_route_the_proxy_holds_for_it() -> None:
    names, dist = ["msgstorm-1", "msgstorm-2", "msgstorm-3"], [101, 102, 103]
    routes = {(0, 1): 901, (0, 2): 902, (1, 0): 910, (1, 2): 912, (2, 0): 920, (2, 1): 921}
    # Its own port for itself; route-i-j for node j.
    assert dist_map(0, names, dist, routes) == "msgstorm-1:101,msgstorm-2:901,msgstorm-3:902"
    assert dist_map(2, names, dist, routes) == "msgstorm-1:920,msgstorm-2:921,msgstorm-3:103"
    # Without the proxy: every node at its own distribution port.
    assert dist_map(1, names, dist, {}) == "msgstorm-1:101,msgstorm-2:102,msgstorm-3:103"
    assert cluster_config("autoheal") == "cluster_partition_handling = autoheal\n"


def test_the_mirroring_policy_covers_the_queue_the_audit_queue_and_fanout_queues_only() -> None:
    pattern = re.compile(mirror_pattern("or.ders"))
    assert [bool(pattern.match(name)) for name in ("or.ders", "or.ders.audit", "or.ders.0", "or-ders", "or.ders2",
                                                   "xor.ders")] == [True, True, True, False, False, False]


def test_three_nodes_pause_a_minority_by_default_and_name_their_servers() -> None:
    scenario = parse_scenario(GOOD, source="r.toml")
    assert scenario.live.rabbitmq.handling == "pause_minority"
    assert RabbitMqDriver.server_names(scenario.live) == ["rabbit-0", "rabbit-1", "rabbit-2"]
    assert RabbitMqDriver.has_routes(scenario.live) is True
    two = parse_scenario(GOOD.replace("nodes = 3", "nodes = 2"), source="r.toml")
    assert two.live.rabbitmq.handling == "ignore" and RabbitMqDriver.server_names(two.live) == ["rabbit-0", "rabbit-1"]
    one = parse_scenario(GOOD.replace("nodes = 3\n", ""), source="r.toml")
    assert RabbitMqDriver.server_names(one.live) == ["rabbitmq"] and RabbitMqDriver.has_routes(one.live) is False
    # A scenario without the cluster's keys dumps as before (its hash unchanged).
    assert "nodes" not in one.live.rabbitmq.model_dump() and "partition_handling" not in one.live.rabbitmq.model_dump()


@pytest.mark.parametrize("old, new, field, words", [
    ("nodes = 3", 'nodes = 2\npartition_handling = "pause_minority"', "live.rabbitmq",
     "pause_minority needs 3 or more nodes (nodes is 2)"),
    ("nodes = 3", "nodes = 6", "live.rabbitmq.nodes", "less than or equal to 5"),
    ("nodes = 3", 'nodes = 3\npartition_handling = "pause_all"', "live.rabbitmq.partition_handling",
     "'ignore', 'pause_minority' or 'autoheal'"),
    ('rate = "10/s" }', 'rate = "10/s" }\n[[faults]]\nkind = "partition"\ngroups = [["rabbit-3"]]\nat = "0s"',
     "faults[0].groups[0]", "unknown server 'rabbit-3'; the cluster is ['rabbit-0', 'rabbit-1', 'rabbit-2']"),
    ('rate = "10/s" }', 'rate = "10/s" }\n[[faults]]\nkind = "crash"\nnode = "rabbitmq"\nat = "0s"',
     "faults[0].node", "rabbit-0"),
    ("nodes = 3", 'nodes = 1\n[[faults]]\nkind = "partition"\ngroups = [["rabbitmq"]]\nat = "0s"',
     "faults[0].kind", 'target "rabbitmq" with live.rabbitmq.nodes of 2 or more'),
    ("nodes = 3", "nodes = 3\nmirrored = true", "live.rabbitmq",
     'mirrored needs queue_type = "classic" and nodes of 2 or more (queue_type is "quorum", nodes 3)'),
    ("nodes = 3", 'nodes = 1\nqueue_type = "classic"\nmirrored = true', "live.rabbitmq",
     '(queue_type is "classic", nodes 1)'),
])
def test_bad_cluster_settings_name_file_line_and_field(tmp_path: Path, old: str, new: str, field: str,
                                                       words: str) -> None:
    path = tmp_path / "cluster.toml"
    text = GOOD.replace(old, new)
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    issue = caught.value.issues[0]
    assert (issue.file, issue.field) == (str(path), field), issue
    assert issue.line is not None and 1 <= issue.line <= len(text.splitlines())
    assert words in issue.message, issue.message


def test_a_cluster_with_a_url_of_the_users_is_refused_before_the_run(tmp_path: Path) -> None:
    scenario = parse_scenario(GOOD, source="r.toml")
    scenario = scenario.model_copy(update={"live": scenario.live.model_copy(update={"url": "amqp://127.0.0.1:5672"})})
    with pytest.raises(TargetError, match=r"live.rabbitmq.nodes = 3 starts a cluster of msgstorm's; with live.url"):
        run(scenario, tmp_path / "run")


# --- against rabbitmq-server --------------------------------------------------------------------


@pytest.mark.slow
def test_a_quorum_queue_on_three_nodes_loses_no_confirmed_message_across_a_crash_and_a_pause(tmp_path: Path) -> None:
    """rabbit-2 (consumer 1's node) SIGSTOPped from 1 s to 3 s (under the net tick time: no
    partition); rabbit-1 (consumer 0's) SIGKILLed 4 s in and started again 1 s later on its
    port and data (it rejoins the cluster from its database: seconds). The publisher on rabbit-0 keeps
    its confirms (two of three nodes hold the quorum throughout), and every confirmed message
    is in the audit queue read back after the run."""
    require_program("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server", install=INSTALL)
    text = GOOD.replace('duration = "1s"', 'duration = "12s"\ndrain = "3s"').replace(
        "nodes = 3", 'nodes = 3\nqueue_type = "quorum"').replace('rate = "10/s"', 'rate = "100/s"')
    text = text.replace('[live.rabbitmq]', '[live]\nconsumers = 2\nstart_timeout = "90s"\n[live.rabbitmq]') + """
[[faults]]
kind = "pause"
node = "rabbit-2"
at = "1s"
duration = "2s"

[[faults]]
kind = "crash"
node = "rabbit-1"
at = "4s"
restart_after = "1s"
"""
    result = run(parse_scenario(text, source="cluster.toml"), tmp_path / "run")
    summary = result.summary
    events = result.history.events.to_pylist()
    starts = [json.loads(str(e["detail"])) for e in events if e["kind"] == "server_start"]
    # The three nodes, distinct Erlang names and ports; rabbit-1 once more (its restart); the route proxy not
    # started (no partition in this schedule).
    first = [s for s in starts if s.get("node")]
    assert [s["name"] for s in first] == ["rabbit-0", "rabbit-1", "rabbit-2"]
    assert len({s["node"] for s in first}) == len({s["url"] for s in first}) == 3
    assert [s["name"] for s in starts[3:]] == ["rabbit-1"]
    kinds = Counter(e["kind"] for e in events)
    assert kinds["fault_start"] == kinds["fault_end"] == 2
    # Consumer 0 lost its node and came back; the publisher, on rabbit-0, never disconnected.
    assert summary["connections"]["clients"]["msgstorm-consumer-0"]["disconnects"] == 1
    assert "msgstorm-publisher" not in summary["connections"]["clients"]
    messages = result.history.messages.to_pylist()
    acked = {m["msg_id"] for m in messages if m["seq_no"] is not None}
    assert len(acked) >= 0.9 * summary["messages"]["sent"] > 0
    delivery = summary["delivery"]
    assert delivery["stream"]["acked_missing"] == 0, "no confirmed message lost"
    assert delivery["stream"]["stored"] >= len(acked)
    assert summary["connections"]["cleanup"]["verified"] is True
    # Every node's process group gone, its AMQP port closed.
    for start in first:
        pid = int((result.run_dir / "servers" / "rabbitmq" / f"{start['name']}.pid").read_text())
        with pytest.raises(ProcessLookupError):
            os.killpg(pid, 0)
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", int(start["url"].rsplit(":", 1)[1]))) != 0
    assert read_history(result.run_dir).events.num_rows == len(events)


def test_a_run_directory_with_a_space_is_refused_before_a_node_starts(tmp_path: Path) -> None:
    scenario = parse_scenario(GOOD, source="r.toml")
    with pytest.raises(TargetError, match=r"may not hold a space \(rabbitmq-server splits the Erlang arguments"):
        run(scenario, tmp_path / "my runs" / "run")
    assert not (tmp_path / "my runs" / "run" / "servers" / "rabbitmq" / "rabbit-0.pid").exists()


@pytest.mark.slow
def test_a_cluster_runs_from_a_directory_whose_path_begins_its_run_directorys(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """``--out /x/proj-runs`` run from ``/x/proj``: the port-mapper module compiles (the
    compiler shortens a path that starts with its working directory's by the string), the two
    nodes join, and every confirmed message is in the audit queue read back."""
    require_program("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server", install=INSTALL)
    (tmp_path / "proj").mkdir()
    monkeypatch.chdir(tmp_path / "proj")
    text = GOOD.replace("nodes = 3", "nodes = 2").replace(
        '[live.rabbitmq]', '[live]\nstart_timeout = "90s"\n[live.rabbitmq]')
    result = run(parse_scenario(text, source="cluster.toml"), tmp_path / "proj-runs")
    assert (tmp_path / "proj-runs" / "servers" / "rabbitmq" / "msgstorm_epmd.beam").is_file()
    summary = result.summary
    sent = summary["messages"]["sent"]
    assert sent >= 9 and summary["messages"]["committed"] == sent
    stream = summary["delivery"]["stream"]
    assert stream["acked_missing"] == 0 and stream["stored"] == sent


@pytest.mark.slow
def test_a_sigkilled_cluster_run_leaves_no_node_and_no_port_mapper_and_report_reads_its_history(tmp_path: Path) -> None:
    """Two nodes joined, msgstorm SIGKILLed a second into the run: every node (the Erlang VM
    itself), its helpers and the run's ``epmd``, which the nodes and ``rabbitmqctl`` used,
    are gone within 5 s; ``msgstorm report`` reads what the run left (cut off: exit 3)."""
    require_program("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server", install=INSTALL)
    scenario = tmp_path / "cluster.toml"
    scenario.write_text(GOOD.replace('duration = "1s"', 'duration = "60s"').replace("nodes = 3", "nodes = 2").replace(
        '[live.rabbitmq]', '[live]\nstart_timeout = "90s"\n[live.rabbitmq]'), encoding="utf-8")
    run_dir = tmp_path / "run"
    # Two nodes started one after another, each within its start_timeout (90 s), then joined.
    processes = sigkill_mid_run(scenario, run_dir, settle_s=1.0, starts_within_s=300)
    servers = run_dir / "servers" / "rabbitmq"
    for name in ("rabbit-0", "rabbit-1"):
        pid = int((servers / f"{name}.pid").read_text())
        assert processes[pid].split()[0].endswith("/beam.smp"), processes[pid]
    epmd = int((servers / "epmd.pid").read_text())
    assert "-daemon" not in processes[epmd] and sum("epmd" in command.split()[0] for command in processes.values()) == 1
    assert_none_left(processes)
    done = report_in_process(run_dir)
    assert done.returncode == 3 and "Traceback" not in done.stderr + done.stdout, done.stderr
    assert json.loads((run_dir / "summary.json").read_text())["cut_off"] is True
