"""The manual (README.md, docs/) says what the code does.

- docs/scenario.md is what ``msgstorm.scenario.reference`` renders from the schema, and every
  field of the schema has a description;
- every example, file and page the README and docs name exists, and the README's tour names
  every shipped example;
- every ``msgstorm`` command of the README's quick start parses, and docs/cli.md shows every
  command and option the command line has, and no other;
- the summary.json table explains every key of the summary model, and the history page lists
  every table's columns in order and every event kind;
- the numbers the README quotes for a sim example are those a run of it gives (sim runs are
  deterministic): each excerpt of a terminal summary is parsed row by row and compared with
  the run's summary, rounded as the excerpt shows it.
"""

from __future__ import annotations

import re
import shlex
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer.main

import msgstorm
from msgstorm.cli import app
from msgstorm.scenario import reference

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md")), ROOT / "benchmarks" / "README.md"]
PACKAGE = ROOT / "src" / "msgstorm"


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


# --- the generated scenario reference -------------------------------------------------------


def test_the_scenario_reference_is_the_one_the_schema_renders() -> None:
    committed = _text(DOCS / "scenario.md")
    assert committed == reference.render(), (
        "docs/scenario.md is out of date: python -m msgstorm.scenario.reference > docs/scenario.md")


def test_every_schema_field_is_described_and_every_description_names_a_field() -> None:
    shown = dict(reference.described_fields())
    missing = [key for key, info in shown.items() if not info.description and key not in reference.DESCRIPTIONS]
    assert missing == [], f"fields without a description (Field(description=...) or reference.DESCRIPTIONS): {missing}"
    stale = sorted(set(reference.DESCRIPTIONS) - set(shown))
    assert stale == [], f"DESCRIPTIONS of fields the schema no longer has: {stale}"


def test_the_reference_shows_a_new_field_and_its_default() -> None:
    # A deliberate change to the schema changes the page: the reference is read from it.
    text = reference.render()
    assert '| `drain` | duration | `"5s"` |' in text
    assert '| `service` | duration distribution | `{dist = "exponential", mean = "100us"}` |' in text
    assert "| `capacity.knee_rate` | rate | `capacity.knee_rate_per_s` |" in text


# --- names and paths ---------------------------------------------------------------------------

_PATH = re.compile(r"`((?:src|tests|benchmarks|examples|docs|\.ci)/[\w./-]+)`"
                   r"|`((?:sim|live|analysis|history|report|scenario|traffic|faults|msgstorm)/[\w./-]+\.py)`")
_EXAMPLE = re.compile(r"examples/[\w.-]+\.toml")
_LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def _exists(name: str) -> bool:
    name = name.split("::")[0].rstrip("/")
    return (ROOT / name).exists() or (PACKAGE / name).exists() or (PACKAGE.parent / name).exists()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_file_a_page_names_exists(page: Path) -> None:
    text = _text(page)
    named = {a or b for a, b in _PATH.findall(text)} | set(_EXAMPLE.findall(text))
    missing = sorted(name for name in named if not _exists(name))
    assert missing == [], f"{page.name} names files that do not exist: {missing}"
    links = [target for target, _ in _LINK.findall(text) if "://" not in target]
    broken = sorted(target for target in links if not (page.parent / target).exists())
    assert broken == [], f"{page.name} links to pages that do not exist: {broken}"


def test_every_heading_a_link_points_to_exists() -> None:
    def anchors(page: Path) -> set[str]:
        headings = re.findall(r"^#+ (.+)$", _text(page), re.M)
        return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}

    for page in PAGES:
        for target, anchor in _LINK.findall(_text(page)):
            if anchor and "://" not in target:
                linked = (page.parent / target).resolve()
                assert anchor[1:] in anchors(linked), f"{page.name}: {target}{anchor} has no such heading"


def test_the_readme_tours_every_shipped_example() -> None:
    named = set(_EXAMPLE.findall(_text(README)))
    shipped = {f"examples/{path.name}" for path in (ROOT / "examples").glob("*.toml")}
    assert shipped - named == set(), f"examples the README does not show: {sorted(shipped - named)}"


# --- the quick start's commands ------------------------------------------------------------------


def _quick_start_commands() -> list[list[str]]:
    text = _text(README)
    section = text[text.index("## Quick start"):text.index("\n## ", text.index("## Quick start") + 1)]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        for line in block.splitlines():
            for part in line.split("#")[0].split("&&"):
                words = shlex.split(part)
                if words and words[0] == "msgstorm":
                    commands.append(words[1:])
    return commands


def test_every_msgstorm_command_of_the_quick_start_parses() -> None:
    commands = _quick_start_commands()
    assert ["run", "examples/quickstart.toml"] in commands
    group = typer.main.get_command(app)
    for words in commands:
        context = group.make_context("msgstorm", list(words))
        protected = list(getattr(context, "protected_args", None) or getattr(context, "_protected_args", []))
        name, command, rest = group.resolve_command(context, protected + context.args)
        assert command is not None, words
        command.make_context(name or "", rest, parent=context)  # raises on an unknown option or a bad value


def test_the_command_line_page_names_every_command_and_option_and_no_other() -> None:
    text = _text(DOCS / "cli.md")
    section = text[text.index("## Commands"):text.index("## Exit codes")]
    group = typer.main.get_command(app)
    context = group.make_context("msgstorm", ["--help"], resilient_parsing=True)
    known: set[str] = {"--help", *(opt for param in group.params for opt in param.opts)}  # --version
    for name in group.list_commands(context):  # type: ignore[attr-defined]
        command = group.get_command(context, name)  # type: ignore[attr-defined]
        assert re.search(rf"`msgstorm {name}[ `]", section), f"docs/cli.md does not show `msgstorm {name}`"
        for param in command.params:
            known.update(param.opts)
            if any(opt.startswith("-") for opt in param.opts):
                shown = any(re.search(rf"(?<![\w-]){re.escape(opt)}(?![\w-])", section) for opt in param.opts)
                assert shown, f"docs/cli.md does not show {name} {param.opts}"
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]*", section))
    assert named - known == set(), f"docs/cli.md shows options no command has: {sorted(named - known)}"


def test_the_summary_table_names_every_key_of_summary_json() -> None:
    from msgstorm.analysis.summary_model import Summary

    text = _text(DOCS / "run-directory.md")
    rows = [line for line in text[text.index("## summary.json"):].splitlines() if line.startswith("| `")]
    shown = {key for row in rows for key in re.findall(r"`(\w+)`", row.split("|")[1])}
    shown |= {key for row in rows for key in re.findall(r"`(\w+)`: \{", row)}  # keys named inside a row
    unexplained, unknown = set(Summary.model_fields) - shown, shown - set(Summary.model_fields)
    assert unexplained == set(), f"summary keys docs/run-directory.md does not explain: {sorted(unexplained)}"
    assert unknown == set(), f"docs/run-directory.md explains keys the summary lacks: {sorted(unknown)}"


def test_the_history_page_lists_every_table_column_and_event_kind() -> None:
    from msgstorm.history import schema as history_schema
    from msgstorm.history.events import EVENT_KINDS

    text = _text(DOCS / "history.md")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| `([^`]*)`", text, re.M)}
    for table in history_schema.TABLES:
        columns = history_schema.TABLES[table].names
        shown = [c.split(" ")[0] for c in rows.get(table, "").split(", ")]
        assert shown == columns, f"docs/history.md, table {table}: shows {shown}, the schema has {columns}"
    kinds = text[text.index("**Event kinds**"):text.index("How a live target fills")]
    missing = [kind for kind in EVENT_KINDS if f"`{kind}`" not in kinds]
    assert missing == [], f"event kinds docs/history.md does not list: {missing}"


# --- the numbers of the sim examples ----------------------------------------------------------

# Terminal summary rows: label -> the summary keys of its numbers, in order.
_ROWS: dict[str, list[tuple[str, ...]]] = {
    "offered rate": [("offered_rate_per_s",)],
    "throughput": [("throughput_per_s",)],
    "latency p50 / p99 / p99.9": [("latency_ms", "p50"), ("latency_ms", "p99"), ("latency_ms", "p999")],
    "latency max / mean": [("latency_ms", "max"), ("latency_ms", "mean")],
    "jitter stddev / p99−p50": [("jitter_ms", "stddev"), ("jitter_ms", "p99_minus_p50")],
    "capacity (knee)": [("capacity", "knee_rate_per_s")],
    "failure threshold": [("failure_threshold", "rate_per_s")],
    "queue depth max / mean": [("queue", "max_depth"), ("queue", "mean_depth")],
    "desync episodes / max gap": [("desync", "episodes"), ("desync", "max_height_gap")],
    "liquidations": [("market", "liquidations", key)
                     for key in ("eligible", "triggered", "executed", "late", "no_op", "not_attempted")],
    "liquidation delay p50 / p99 / max": [("market", "liquidation_delay_ms", key) for key in ("p50", "p99", "max")],
    "delay split (mean)": [("market", "liquidation_delay_ms", "split", key)
                           for key in ("oracle", "keeper", "messaging")],
    "bad debt": [("market", "bad_debt", "absolute"), ("market", "bad_debt", "pct_of_open_interest"),
                 ("market", "open_interest"), ("market", "bad_debt", "accounts")],
    "price staleness p50 / p99 / max": [("market", "price_staleness_ms", key) for key in ("p50", "p99", "max")],
    "front-running": [("fairness", "front_run_successes"), ("fairness", "front_run_attempts"),
                      ("fairness", "extracted_value")],
    "order inversions": [("fairness", "inversions"), ("fairness", "pairs"), ("fairness", "gamma")],
}
_STAGES = ("propagation", "queue_wait", "service", "block_wait")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _tour_excerpts() -> dict[str, list[list[str]]]:
    """Example name -> the table rows (cells) of its output excerpt in the README."""
    excerpts: dict[str, list[list[str]]] = {}
    for block in re.findall(r"```\n(\$ msgstorm run examples/.*?)```", _text(README), re.S):
        first, *lines = block.splitlines()
        name = re.search(r"examples/([\w-]+)\.toml", first).group(1)  # type: ignore[union-attr]
        excerpts[name] = [[cell.strip() for cell in line.strip().strip("│").split("│")]
                          for line in lines if line.startswith("│")]
    return excerpts


def _at(summary: dict[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = summary
    for key in path:
        value = None if value is None else value[key]
    return value


def _matches(shown: str, actual: float) -> bool:
    """Whether ``actual`` shows as ``shown`` when rounded to the decimals shown."""
    number = Decimal(shown.replace(",", ""))
    places = max(0, -number.as_tuple().exponent)  # type: ignore[operator]
    return abs(Decimal(repr(float(actual))) - number) <= Decimal(5) / Decimal(10) ** (places + 1)


def _check_row(cells: list[str], summary: dict[str, Any]) -> list[str]:
    """The differences between one excerpt row and the summary (empty: it matches)."""
    label, *values = cells
    text = " ".join(values)
    if label in _ROWS:
        paths = _ROWS[label]
        shown = _NUMBER.findall(text)
        actual = [_at(summary, path) for path in paths]
        if all(a is None for a in actual):
            return [] if not shown else [f"{label}: shows {shown}, the run has none"]
        problems = [f"{label}: shows {s}, the run gives {a}" for s, a in zip(shown, actual, strict=False)
                    if a is None or not _matches(s, a)]
        if len(shown) != len(paths):
            problems.append(f"{label}: shows {len(shown)} numbers, expected {len(paths)}")
        if label == "failure threshold" and summary["failure_threshold"] is not None:
            if f"({summary['failure_threshold']['reason']})" not in text:
                problems.append(f"{label}: reason is {summary['failure_threshold']['reason']}")
        return problems
    if label == "messages":
        found = dict(re.findall(r"(\w+) ([\d,]+)", text))
        return [f"messages.{k}: shows {v}, the run gives {summary['messages'][k]}"
                for k, v in found.items() if int(v.replace(",", "")) != summary["messages"][k]]
    if label in _STAGES:
        stage = summary["latency_stages_ms"][label]
        return [f"stage {label}: shows {s}, the run gives {a}"
                for s, a in zip(_NUMBER.findall(text), (stage["p50"], stage["p99"]), strict=True)
                if not _matches(s, a)]
    slo = next((row for row in summary["slo"] if row["name"] == label), None)
    if slo is not None:
        threshold, value, verdict = values
        problems = [] if _matches(value, slo["value"]) else [f"SLO {label}: shows {value}, the run gives {slo['value']}"]
        return problems + ([] if verdict == slo["verdict"] else [f"SLO {label}: shows {verdict}, the run {slo['verdict']}"])
    return [f"a row the test cannot check: {cells}"]


def test_the_tour_shows_an_excerpt_of_each_sim_example() -> None:
    assert set(_tour_excerpts()) == set(SIM_TOUR)


SIM_TOUR = ["quickstart", "ramp", "flash-crash", "matching-engine", "black-thursday", "black-thursday-fee-aware",
            "front-running", "black-thursday-lane", "self-healing", "solana-spam"]


@pytest.mark.parametrize("name", SIM_TOUR)
def test_the_numbers_the_readme_quotes_are_a_runs(name: str, tmp_path: Path) -> None:
    scenario = msgstorm.load_scenario(ROOT / "examples" / f"{name}.toml")
    assert scenario.target == "sim"
    summary = msgstorm.run(scenario, tmp_path / name).summary
    rows = _tour_excerpts()[name]
    assert rows, f"no excerpt of {name} in the README"
    problems = [problem for cells in rows for problem in _check_row(cells, summary)]
    assert problems == [], f"README's excerpt of examples/{name}.toml: {problems}"


def test_a_changed_number_in_an_excerpt_fails_the_check() -> None:
    summary = {"latency_ms": {"p50": 344.206, "p99": 552.535, "p999": 598.584}}
    row = ["latency p50 / p99 / p99.9", "344.206 / 552.535 / 598.584 ms"]
    assert _check_row(row, summary) == []
    assert _check_row(["latency p50 / p99 / p99.9", "344.206 / 552.536 / 598.584 ms"], summary) != []
    assert _check_row(["latency p50 / p99 / p99.9", "344.2 / 552.5 / 598.6 ms"], summary) == []  # rounded
    assert _check_row(["latency p50 / p99 / p99.9", "344.3 / 552.5 / 598.6 ms"], summary) != []


def _ordering_table() -> dict[str, list[str]]:
    """The README's table of front-running under each queue policy: policy -> its cells."""
    text = _text(README)
    rows = re.findall(r"^\| `(\w+)` \| (\d+ of \d+) \| ([\d,]+) \| ([\d,]+ of [\d,]+) \| ([\d.,]+ / [\d.,]+) ms \|$",
                      text, re.M)
    return {policy: list(cells) for policy, *cells in rows}


def test_the_ordering_table_shows_the_five_policies() -> None:
    assert sorted(_ordering_table()) == ["batch_auction", "commit_reveal", "fair_order", "fee_priority", "fifo"]


@pytest.mark.parametrize("policy", ["fifo", "fee_priority", "fair_order", "commit_reveal", "batch_auction"])
def test_the_ordering_table_is_what_a_run_gives(policy: str, tmp_path: Path) -> None:
    scenario = msgstorm.load_scenario(ROOT / "examples" / "front-running.toml", [f'sequencer.policy="{policy}"'])
    summary = msgstorm.run(scenario, tmp_path / policy).summary
    won, value, inversions, latency = _ordering_table()[policy]
    fairness = summary["fairness"]
    numbers = [float(n.replace(",", "")) for n in _NUMBER.findall(f"{won} {value} {inversions}")]
    assert numbers == [fairness["front_run_successes"], fairness["front_run_attempts"], fairness["extracted_value"],
                       fairness["inversions"], fairness["pairs"]]
    p50, p99 = _NUMBER.findall(latency)
    assert _matches(p50, summary["latency_ms"]["p50"]) and _matches(p99, summary["latency_ms"]["p99"])
