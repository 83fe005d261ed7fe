"""The fault schedule: plain entries, a nemesis's seeded draws and a script's steps, expanded."""

from __future__ import annotations

import pytest

from msgstorm.faults.schedule import concrete_faults, fault_schedule
from msgstorm.runner import run
from msgstorm.scenario import ScenarioError, parse_scenario

BASE = """
[run]
name = "schedule"
duration = "10s"
drain = "1s"

[network]
regions = ["us-east"]
nodes_per_region = 3

[[agents]]
name = "t"
arrival = { process = "constant", rate = "100/s" }
"""

NEMESIS = """
[[faults]]
kind = "degrade"
at = "500ms"
duration = "100ms"
nodes = ["us-east-0"]
latency = "5ms"

[[faults]]
kind = "nemesis"
at = "1s"
every = "2s"
until = "9s"
seed = 7
mix = [
  { weight = 3, fault = { kind = "crash", node = "us-east-1", at = "0s", restart_after = "500ms" } },
  { weight = 1, fault = { kind = "partition", at = "100ms", duration = "1s", groups = [["us-east-2"]] } },
]

[[faults]]
kind = "script"
at = "2s"
every = "4s"
times = 2
steps = [
  { kind = "partition", at = "0s", duration = "1s", groups = [["us-east-0"]] },
  { kind = "crash", node = "us-east-2", at = "500ms", restart_after = "1s" },
]
"""


def test_a_nemesis_draws_the_same_faults_from_its_seed_and_a_script_repeats_its_steps() -> None:
    scenario = parse_scenario(BASE + NEMESIS, source="n.toml")
    faults = concrete_faults(scenario)
    assert faults == concrete_faults(parse_scenario(BASE + NEMESIS, source="n.toml"))
    plain, drawn, script = faults[0], [f for f in faults if f[1] == 1], [f for f in faults if f[1] == 2]
    assert plain == (scenario.faults[0], None)
    # Draws at 1, 3, 5, 7 s (9 s is `until`); each a crash at the draw or a partition 100 ms after.
    assert len(drawn) == 4
    for k, (spec, _) in enumerate(drawn):
        assert spec.at == (1 + 2 * k) * 10**9 + (100_000_000 if spec.kind == "partition" else 0)
    assert {spec.kind for spec, _ in drawn} <= {"crash", "partition"}
    assert [(s.kind, s.at) for s, _ in script] == [("partition", 2 * 10**9), ("crash", int(2.5e9)),
                                                    ("partition", 6 * 10**9), ("crash", int(6.5e9))]
    ops = fault_schedule(scenario)
    assert sorted({op.fault_id for op in ops}) == list(range(len(faults)))
    assert [op.t_ns for op in ops] == sorted(op.t_ns for op in ops)


def test_the_simulator_applies_a_nemesis_and_a_script_with_every_window_in_the_history(tmp_path) -> None:
    scenario = parse_scenario(BASE + NEMESIS, source="n.toml")
    result = run(scenario, tmp_path / "run")
    faults = result.summary["faults"]
    assert len(faults) == len(concrete_faults(scenario))
    assert [f["kind"] for f in faults] == [s.kind for s, _ in sorted(concrete_faults(scenario), key=lambda f: f[0].at)]
    events = [e for e in result.history.events.to_pylist() if e["kind"] == "fault_start"]
    assert sum('"from_entry": 2' in e["detail"] for e in events) == 4


def test_a_drawn_fault_the_target_cannot_apply_is_refused_naming_where_it_is() -> None:
    text = BASE + NEMESIS.replace('kind = "crash", node = "us-east-1", at = "0s", restart_after = "500ms"',
                                  'kind = "pause", node = "us-east-1", at = "0s", duration = "1s"')
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(text, source="n.toml")
    said = [str(issue) for issue in raised.value.issues]
    assert any("faults[1].mix[0].fault.kind" in m and "applies to live targets only" in m for m in said), said


RAMP_UNDER_FAULTS = """
[run]
name = "ramp-mix"
duration = "8s"
drain = "2s"

[network]
regions = ["us-east"]
nodes_per_region = 3

[[agents]]
name = "ramp"
arrival = { process = "step_ramp", start = "200/s", step = "200/s", every = "1s", steps = 8 }

[[faults]]
kind = "nemesis"
at = "500ms"
every = "1s"
seed = 3
mix = [
  { weight = 1, fault = { kind = "degrade", nodes = ["us-east-1"], latency = "5ms", at = "0s", duration = "300ms" } },
  { weight = 1, fault = { kind = "crash", node = "sequencer", at = "0s", restart_after = "200ms" } },
]
"""


def test_the_failure_threshold_under_a_fixed_fault_mix_is_the_step_of_the_first_loss(tmp_path) -> None:
    """A step ramp under a nemesis: a slowed link loses nothing, a crashed sequencer drops
    what it held; the failure threshold is the ramp step in which the first crash falls."""
    scenario = parse_scenario(RAMP_UNDER_FAULTS, source="ramp.toml")
    first_crash_ns = min(spec.at for spec, _ in concrete_faults(scenario) if spec.kind == "crash")
    result = run(scenario, tmp_path / "run")
    failure = result.summary["failure_threshold"]
    assert failure["reason"] == "loss"
    assert failure["t_ns"] == first_crash_ns // 10**9 * 10**9, (failure, first_crash_ns)
    assert result.summary["messages"]["lost"] > 0


@pytest.mark.parametrize(("until", "field"), [('until = "60s"', "faults[1]"), ("", "faults[1].every")])
def test_a_nemesis_drawing_more_faults_than_the_cap_is_refused_naming_it(until: str, field: str) -> None:
    """One fault every microsecond for a minute is 60 million faults: refused at validation,
    before any is built (with ``until``, or until the run's end without it)."""
    text = BASE.replace('duration = "10s"', 'duration = "60s"') + NEMESIS.split("[[faults]]\nkind = \"script\"")[0]
    text = text.replace('every = "2s"\nuntil = "9s"', f'every = "1us"\n{until}')
    with pytest.raises(ScenarioError) as raised:
        parse_scenario(text, source="n.toml")
    said = [str(issue) for issue in raised.value.issues]
    assert any("n.toml:" in m and field in m and "at most 10000" in m for m in said), said


# BASE's run ends at 11 s (run.duration 10 s + run.drain 1 s): nothing starts at or after it.
LATE = """
[[faults]]
kind = "degrade"
at = "{at}"
duration = "100ms"
nodes = ["us-east-0"]
latency = "5ms"
"""


def test_a_fault_after_the_run_ends_is_refused_naming_its_line_and_field() -> None:
    text = BASE + LATE.format(at="11s")
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, source="late.toml")
    [issue] = caught.value.issues
    assert (issue.file, issue.field) == ("late.toml", "faults[0].at")
    assert text.splitlines()[issue.line - 1] == 'at = "11s"'
    assert "starts at 11s" in issue.message and "ends at 11s (run.duration 10s + run.drain 1s)" in issue.message
    assert "move it earlier, lengthen run.duration or run.drain, or drop the entry" in issue.message
    # One nanosecond before the end it still fires (inside the drain): accepted.
    assert parse_scenario(BASE + LATE.format(at="10999999999ns")).faults[0].at == 10_999_999_999


def test_a_script_step_or_repetition_after_the_run_ends_is_refused_naming_it() -> None:
    # Steps at 2 s + 0 s and 2 s + 9 s (= 11 s, the end); repetitions at 2, 6, 10 and 14 s:
    # the one at 14 s starts after the end, so times = 3 fit ((11 s - 1 ns - 2 s) // 4 s + 1).
    script = ('\n[[faults]]\nkind = "script"\nat = "2s"\nevery = "4s"\ntimes = 4\nsteps = [\n'
              '  { kind = "crash", node = "us-east-2", at = "0s", restart_after = "1s" },\n'
              '  { kind = "crash", node = "us-east-1", at = "9s", restart_after = "1s" },\n]\n')
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(BASE + script, source="script.toml")
    fields = {issue.field: issue.message for issue in caught.value.issues}
    assert set(fields) == {"faults[0].steps[1].at", "faults[0].times"}
    assert "this step starts at 11s" in fields["faults[0].steps[1].at"]
    assert "last repetition starts at 14s" in fields["faults[0].times"] and "(times = 3 fit)" in fields["faults[0].times"]


def test_a_run_shortened_by_set_keeps_the_faults_it_cuts_off_and_says_they_will_not_fire() -> None:
    from msgstorm.scenario.refs import fault_time_problems

    text = BASE + LATE.format(at="6s")
    shortened = parse_scenario(text, overrides=['run.duration="3s"'])  # ends at 4 s: the fault is cut off
    assert shortened.faults[0].at == 6_000_000_000
    [(loc, note)] = fault_time_problems(shortened, shortened=True)
    assert loc == ("faults", 0, "at") and "shortened by --set, ends at 4s" in note and "will not fire" in note
    # A fault the options write themselves must fit the run they set.
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(text, overrides=['run.duration="3s"', 'faults.0.at="5s"'])
    assert caught.value.issues[0].field == "faults[0].at" and caught.value.issues[0].file == "--set"


def test_validate_notes_each_fault_a_shortened_run_cuts_off(tmp_path) -> None:
    from test_cli_errors import EXAMPLES, _invoke

    # quickstart's degrade fault starts at 6 s; shortened to 3 s + 2 s the run ends at 5 s.
    code, output = _invoke("validate", str(EXAMPLES / "quickstart.toml"), "--set", 'run.duration="3s"',
                           "--set", 'run.drain="2s"')
    assert code == 0
    assert ("note: faults[0].at: this fault starts at 6s and the run, shortened by --set, ends at 5s (run.duration "
            "3s + run.drain 2s): it will not fire in this run") in " ".join(output.split())
    code, output = _invoke("validate", str(EXAMPLES / "quickstart.toml"))
    assert code == 0 and "note:" not in output
