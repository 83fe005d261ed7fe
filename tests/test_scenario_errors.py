"""Bad scenarios: exit 2 with a message naming file, line and field, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from msgstorm.cli import app
from msgstorm.scenario import ScenarioError, load_scenario, parse_scenario

GOOD = """\
[run]
name = "bad-input"
duration = "2s"

[network]
regions = ["us-east", "eu-west"]
nodes_per_region = 2

[[agents]]
name = "traders"
arrival = { process = "poisson", rate = "100/s" }

[[faults]]
kind = "partition"
at = "1s"
duration = "500ms"
groups = [["eu-west"]]
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenario.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("old, new, line, field, words", [
    ('nodes_per_region = 2', 'nodes_per_region = 2\nnodes_per_regoin = 3', 8, "network.nodes_per_regoin", "unknown field"),
    ('duration = "2s"', 'duration = "2 parsecs"', 3, "run.duration", "duration"),
    ('rate = "100/s"', 'rate = "-100/s"', 11, "agents[0].arrival.rate", "rate"),
    ('{ process = "poisson", rate = "100/s" }',
     '{ process = "hawkes", baseline = "10/s", branching = 1.2, decay = "10ms" }',
     11, "agents[0].arrival.branching", "less than 1"),
    ('groups = [["eu-west"]]', 'groups = [["mars-north"]]', 17, "faults[0].groups[0]", "unknown region"),
    ('{ process = "poisson", rate = "100/s" }',
     '{ process = "replay", path = "no-such-file.csv" }', 11, "agents[0].arrival.path", "not found"),
    ('nodes_per_region = 2', 'nodes_per_region = -2', 7, "network.nodes_per_region", "greater than or equal"),
    ('rate = "100/s" }', 'rate = "100/s" }\nfee = { dist = "normal", mean = inf, std = 1.0 }', 12,
     "agents[0].fee.mean", "finite number"),
    ('nodes_per_region = 2', 'nodes_per_region = 2\n[blocks]\ngas = { order = -5 }', 9, "blocks.gas.order",
     "greater than or equal"),
])
def test_bad_scenario_names_file_line_and_field(tmp_path, old, new, line, field, words) -> None:
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    issue = caught.value.issues[0]
    assert issue.file == str(path)
    assert issue.line == line
    assert issue.field == field
    assert words in issue.message
    result = CliRunner().invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert f"{path}:{line}: {field}" in result.output.replace("\n", "")
    assert "Traceback" not in result.output
    run = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run"), "-q"])
    assert run.exit_code == 2
    assert not (tmp_path / "run").exists()


def test_good_scenario_validates(tmp_path) -> None:
    result = CliRunner().invoke(app, ["validate", str(_write(tmp_path, GOOD))])
    assert result.exit_code == 0, result.output


def test_missing_file_exits_2(tmp_path) -> None:
    result = CliRunner().invoke(app, ["run", str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "no such scenario file" in result.output


def test_toml_syntax_error_names_line(tmp_path) -> None:
    path = _write(tmp_path, GOOD.replace('name = "traders"', 'name = "traders'))
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert caught.value.issues[0].line == 10


def test_override_errors_name_the_override(tmp_path) -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario(_write(tmp_path, GOOD), ["run.duration=fast"])
    assert caught.value.issues[0].file == "--set"
    assert caught.value.issues[0].field == "run.duration"


def test_override_changes_value(tmp_path) -> None:
    scenario = load_scenario(_write(tmp_path, GOOD), ["run.seed=99", "agents.0.count=3"])
    assert scenario.run.seed == 99
    assert scenario.agents[0].count == 3


def test_every_example_validates() -> None:
    examples = Path(__file__).resolve().parent.parent / "examples"
    paths = sorted(path for path in examples.glob("*.toml") if path.name != "bad.toml")  # bad on purpose
    assert {p.name for p in paths} >= {"quickstart.toml", "flash-crash.toml", "ramp.toml"}
    for path in paths:
        load_scenario(path)


@pytest.mark.parametrize("entry, words", [
    ('"latency.p99" = "< 2000/s"', "latency.p99"),
    ('"latency.p77" = "< 2ms"', "unknown SLO metric"),
    ('"latency.p99" = "< 800"', "a duration needs its unit, such as '800ms' or '800s', got '800'"),
    ('"throughput" = ">= 2000"', "a rate needs its unit, such as '2000/s' or '2000/min', got '2000'"),
])
def test_bad_slo_entries_are_rejected_at_load(tmp_path, entry, words) -> None:
    path = _write(tmp_path, GOOD + f"\n[slo]\n{entry}\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    issue = caught.value.issues[0]
    assert issue.line == GOOD.count("\n") + 3
    assert issue.field.startswith("slo.")
    assert words in issue.message


def test_second_array_table_and_nested_phase_fields_are_located(tmp_path) -> None:
    text = GOOD + """
[[agents]]
name = "second"
count = 0
arrival = { process = "phases", phases = [{ duration = "1s", arrival = { process = "poisson", rate = "ten/s" } }] }
"""
    path = _write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    issues = {issue.field: issue for issue in caught.value.issues}
    base = GOOD.count("\n")
    assert issues["agents[1].count"].line == base + 4
    assert issues["agents[1].arrival.phases[0].arrival.rate"].line == base + 5


def test_quoted_override_keys_keep_their_dots(tmp_path) -> None:
    scenario = load_scenario(_write(tmp_path, GOOD + '\n[slo]\n"latency.p99" = "< 5s"\n'),
                             ['slo."latency.p99"="< 1s"'])
    assert scenario.slo == {"latency.p99": "< 1s"}


@pytest.mark.parametrize("override, words", [
    ('faults.0.groups=[["eu-west"], ["eu-west-1"]]', "two groups"),
])
def test_faults_that_cannot_happen_as_written(tmp_path, override, words) -> None:
    with pytest.raises(ScenarioError, match=words):
        load_scenario(_write(tmp_path, GOOD), [override])


def test_replay_with_a_missing_column_fails_validation(tmp_path) -> None:
    (tmp_path / "times.csv").write_text("t\n0\n1000\n")
    text = GOOD.replace('{ process = "poisson", rate = "100/s" }',
                        '{ process = "replay", path = "times.csv", column = "time" }')
    with pytest.raises(ScenarioError) as caught:
        load_scenario(_write(tmp_path, text))
    issue = caught.value.issues[0]
    assert issue.line == 11 and issue.field == "agents[0].arrival.column"
    assert "no column 'time'" in issue.message


def test_run_refuses_an_out_path_that_is_a_file(tmp_path) -> None:
    target = tmp_path / "taken"
    target.write_text("")
    result = CliRunner().invoke(app, ["run", str(_write(tmp_path, GOOD)), "--out", str(target), "-q"])
    assert result.exit_code == 2
    assert "not a directory" in result.output


def test_report_on_a_corrupt_history_exits_2(tmp_path) -> None:
    history = tmp_path / "run" / "history"
    history.mkdir(parents=True)
    for table in ("messages", "deliveries", "events", "run"):
        (history / f"{table}.parquet").write_bytes(b"junk")
    result = CliRunner().invoke(app, ["report", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "history unreadable" in result.output
    assert "Traceback" not in result.output


def test_strict_fails_an_slo_that_cannot_be_judged(tmp_path) -> None:
    # A one-second run in which the only node is down: nothing commits, p99 is unknown.
    text = GOOD.replace('nodes_per_region = 2', 'nodes_per_region = 1').replace(
        'regions = ["us-east", "eu-west"]', 'regions = ["us-east"]')
    text = text[:text.index("[[faults]]")] + (
        '[[faults]]\nkind = "crash"\nat = "0s"\nnode = "us-east-0"\n\n[slo]\n"latency.p99" = "< 1s"\n')
    path = _write(tmp_path, text)
    lenient = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "a"), "-q"])
    strict = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "b"), "-q", "--strict"])
    assert lenient.exit_code == 0, lenient.output
    assert strict.exit_code == 1, strict.output


def test_the_shipped_bad_example_gives_the_errors_the_readme_shows() -> None:
    readme = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text(encoding="utf-8")
    shown = [line for line in readme.splitlines() if line.startswith("error: examples/bad.toml:")]
    assert len(shown) == 3
    bad = Path(__file__).resolve().parent.parent / "examples" / "bad.toml"
    result = CliRunner().invoke(app, ["validate", str(bad)])
    assert result.exit_code == 2
    printed = [line.replace(str(bad), "examples/bad.toml") for line in result.output.splitlines()]
    assert printed == shown


def test_an_error_caused_by_set_is_blamed_on_set() -> None:
    quickstart = Path(__file__).resolve().parent.parent / "examples" / "quickstart.toml"
    result = CliRunner().invoke(app, ["validate", str(quickstart), "--set", "network.regions.0=mars"])
    assert result.exit_code == 2
    assert "error: --set: network.regions: no built-in latency between 'mars' and 'eu-west'" in result.output


def test_an_error_caused_by_grid_is_blamed_on_grid(tmp_path) -> None:
    quickstart = Path(__file__).resolve().parent.parent / "examples" / "quickstart.toml"
    result = CliRunner().invoke(app, ["sweep", str(quickstart), "--grid", "sequencer.wrokers=1,2",
                                      "--set", "sequencer.workers=2", "--out", str(tmp_path / "sweep"), "-q"])
    assert result.exit_code == 2, result.output
    assert "error: --grid: sequencer.wrokers: unknown field: did you mean 'workers'?" in result.output
    assert not (tmp_path / "sweep").exists()
    # A key both set and gridded: the grid's value is the one validated, and blamed.
    with pytest.raises(ScenarioError) as caught:
        load_scenario(quickstart, ["agents.0.count=3", ("--grid", "agents.0.count=0")])
    assert [(issue.file, issue.field) for issue in caught.value.issues] == [("--grid", "agents[0].count")]


@pytest.mark.parametrize("example", ["byzantine", "oracle-attack", "rollup-outage", "live-kafka-acks1-loss"])
def test_an_error_set_causes_in_a_fault_of_any_kind_is_blamed_on_set(example: str) -> None:
    """A fault's kind is a tag in pydantic's error path (``faults.0.oracle.duration``); the
    path is read against the table as written, so the error names --set, not the fault's
    line in the file, whatever the kind."""
    examples = Path(__file__).resolve().parent.parent / "examples"
    with pytest.raises(ScenarioError) as caught:
        load_scenario(examples / f"{example}.toml", ['faults[0].duration="-30min"'])
    [issue] = caught.value.issues
    assert (issue.file, issue.line, issue.field) == ("--set", None, "faults[0].duration"), issue
    assert "a duration cannot be negative, got '-30min'" in issue.message


def test_a_field_spelt_right_in_a_kind_without_it_says_the_kind_has_none() -> None:
    """A restart fault has no duration: the error says so, not "did you mean 'duration'?"."""
    examples = Path(__file__).resolve().parent.parent / "examples"
    with pytest.raises(ScenarioError) as caught:
        load_scenario(examples / "live-mqtt.toml", ['faults[0].duration="1s"'])
    [issue] = caught.value.issues
    assert (issue.file, issue.field) == ("--set", "faults[0].duration"), issue
    assert issue.message == "'restart' has no field 'duration' (see docs/scenario.md for its fields)"


@pytest.mark.parametrize("override, words", [
    ('slo={"latency.p99"="< 1s"',
     """slo: '{"latency.p99"="< 1s"' is not valid TOML: Unclosed inline table (at end of document)"""),
    ("agents.0.mix=[0.5,", "agents.0.mix: '[0.5,' is not valid TOML: "),
    ('run..duration="1s"', "bad key 'run..duration': a part of it is empty (two dots in a row, or a dot at an end); "
                           "did you mean 'run.duration'?"),
    ('.run.duration="1s"', "bad key '.run.duration': a part of it is empty"),
    ('faults.0.at="-1s"', "a duration cannot be negative, got '-1s'"),
    ('agents.0.arrival.rate="-5k/s"', "a rate cannot be negative, got '-5k/s'"),
])
def test_a_broken_set_says_what_is_broken(override: str, words: str) -> None:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(GOOD, source="scenario.toml", overrides=[override])
    [issue] = caught.value.issues
    assert issue.file == "--set"
    assert words in issue.message, issue.message


def test_a_bare_word_in_set_is_still_a_string() -> None:
    scenario = parse_scenario(GOOD, source="scenario.toml", overrides=["sequencer.policy=fee_priority"])
    assert scenario.sequencer.policy == "fee_priority"


def test_report_on_a_missing_directory_says_it_is_missing(tmp_path) -> None:
    result = CliRunner().invoke(app, ["report", str(tmp_path / "no-such-run")])
    assert result.exit_code == 2
    assert f"error: {tmp_path / 'no-such-run'}: no such directory" in result.output.replace("\n", "")
    (tmp_path / "a-file").write_text("")
    result = CliRunner().invoke(app, ["report", str(tmp_path / "a-file")])
    assert result.exit_code == 2
    assert "not a directory" in result.output


def test_set_takes_a_list_element_as_agents_0_or_agents_bracket_0() -> None:
    quickstart = Path(__file__).resolve().parent.parent / "examples" / "quickstart.toml"
    text = quickstart.read_text(encoding="utf-8")
    dotted = parse_scenario(text, overrides=["agents.1.count=7"])
    bracketed = parse_scenario(text, overrides=["agents[1].count=7"])
    assert dotted.agents[1].count == bracketed.agents[1].count == 7
    assert dotted == bracketed
    result = CliRunner().invoke(app, ["validate", str(quickstart), "--set", "agents[0].count=0"])
    assert result.exit_code == 2
    assert "error: --set: agents[0].count: Input should be greater than or equal to 1" in result.output
    result = CliRunner().invoke(app, ["validate", str(quickstart), "--set", "agents[x].count=3"])
    assert result.exit_code == 2
    assert "bad key 'agents[x].count': a list element is agents.0 or agents[0]" in result.output
