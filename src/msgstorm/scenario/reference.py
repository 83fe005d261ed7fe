"""The scenario reference (``docs/scenario.md``), rendered as Markdown from the schema.

Place in the pipeline: beside the schema, for people. Every table, field, type, bound and
default comes from the pydantic models of ``scenario/schema.py`` (and the distributions of
``scenario/distributions.py``); the SLO metrics come from ``scenario/slo.py`` and the
built-in names of the extension points from ``scenario/registry.py``. What a field means is
its ``Field(description=...)`` when the schema gives one, else the entry in ``DESCRIPTIONS``
(``scenario/descriptions.py``), keyed ``"ModelName.field"``. ``tests/test_docs.py`` fails when a field has neither,
when ``DESCRIPTIONS`` names a field the schema no longer has, and when the committed
``docs/scenario.md`` differs from this module's output. Regenerate it with::

    python -m msgstorm.scenario.reference > docs/scenario.md
"""

from __future__ import annotations

import functools
import math
import sys
import types
import typing
from collections.abc import Callable, Iterator
from typing import Any, Literal, Union

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from msgstorm.scenario import (
    control,
    crosschain,
    live,
    market,
    rollup,
    schema,
    security,
    spec,
    traffic,
)
from msgstorm.scenario import distributions as dists
from msgstorm.scenario.descriptions import DESCRIPTIONS
from msgstorm.scenario.regions import known_regions
from msgstorm.scenario.registry import (
    ARRIVAL_PROCESSES,
    BACKPRESSURE_MODES,
    CHECKERS,
    CONTROLLERS,
    FAULT_KINDS,
    QUEUE_POLICIES,
    TARGETS,
    TOXICS,
    Registry,
)
from msgstorm.scenario.slo import SLO_METRICS
from msgstorm.scenario.units import format_duration

__all__ = ["DESCRIPTIONS", "described_fields", "render", "main"]

# --- the parts of the schema, in the order the reference shows them ------------------------

# A plain table: (heading, model); a tagged union: (heading, its tag field, the union).
_Section = tuple[str, type[BaseModel]] | tuple[str, str, Any]
_SECTIONS: list[_Section] = [
    ("[run]", schema.RunSpec),
    ("[live]", live.LiveSpec),
    ("[live.nats]", live.NatsSpec),
    ("[live.jetstream]", live.JetStreamSpec),
    ("[live.redis]", live.RedisSpec),
    ("[live.zmq]", live.ZmqSpec),
    ("[live.mqtt]", live.MqttSpec),
    ("[live.rabbitmq]", live.RabbitMqSpec),
    ("[live.kafka]", live.KafkaSpec),
    ("[live.anvil]", live.AnvilSpec),
    ("[live.cometbft]", live.CometbftSpec),
    ("[network]", schema.NetworkSpec),
    ("[network.link]", schema.LinkModel),
    ("[[network.links]]", schema.LinkOverride),
    ("[network.relay]", schema.RelaySpec),
    ("[gossip]", schema.GossipSpec),
    ("[sequencer]", schema.SequencerSpec),
    ("[sequencer.batch_auction]", schema.BatchAuctionSpec),
    ("[sequencer.commit_reveal]", schema.CommitRevealSpec),
    ("[sequencer.fair_order]", schema.FairOrderSpec),
    ("[sequencer.lane]", control.LaneSpec),
    ("[blocks]", schema.BlocksSpec),
    ("[blocks.producers]", schema.ProducersSpec),
    ("[blocks.producers.tendermint]", schema.TendermintSpec),
    ("[backpressure]", "mode", schema.BackpressureSpec),
    ("[desync]", schema.DesyncSpec),
    ("[[agents]]", traffic.AgentSpec),
    ("Arrival processes", "process", traffic.ArrivalSpec),
    ("A phase of `phases`", traffic.Phase),
    ("[[faults]]", "kind", schema.FaultSpec),
    ("[[controllers]]", "kind", control.ControllerSpec),
    ("[market]", market.MarketSpec),
    ("[[market.instruments]]", market.InstrumentSpec),
    ("`shocks` of an instrument", market.ShockSpec),
    ("`jumps` of an instrument", market.JumpsSpec),
    ("[market.oracle]", market.OracleSpec),
    ("[[market.accounts]]", market.AccountsSpec),
    ("[[market.keepers]]", market.KeeperSpec),
    ("[[market.keepers.cap_raised]]", market.CapRaise),
    ("[market.topups]", market.TopUpSpec),
    ("[[market.frontrunners]]", market.FrontRunnerSpec),
    ("[market.orders]", market.AuctionOrdersSpec),
    ("[market.probes]", market.ProbeSpec),
    ("[market.liquidation]", market.LiquidationSpec),
    ("[market.liquidation.published]", market.PublishedSpec),
    ("[market.funding]", market.FundingSpec),
    ("[market.mark]", market.MarkSpec),
    ("[market.liquidity]", market.LiquiditySpec),
    ("[market.sentinel]", market.SentinelSpec),
    ("[security]", security.SecuritySpec),
    ("[crosschain]", crosschain.CrosschainSpec),
    ("[[crosschain.relayers]]", crosschain.RelayerSpec),
    ("[rollup]", rollup.RollupSpec),
    ("[rollup.batcher]", rollup.BatcherSpec),
    ("[rollup.l1]", rollup.L1Spec),
    ("[rollup.timeboost]", rollup.TimeboostSpec),
    ("[analysis]", schema.AnalysisSpec),
    ("[history]", schema.HistorySpec),
    ("[limits]", schema.LimitsSpec),
]
# Sections shown one level down, under the table they belong to.
_SUBSECTIONS = {"Arrival processes", "A phase of `phases`", "`shocks` of an instrument", "`jumps` of an instrument"}

_DISTRIBUTIONS: list[type[BaseModel]] = [
    dists.Constant, dists.Uniform, dists.Normal, dists.Lognormal, dists.Pareto, dists.Exponential,
]

# The before-validators that give a plain number its unit (the alias types of the schema).
_VALIDATOR_UNITS: list[tuple[Any, str]] = [
    (dists.DurationNs, "duration"),
    (dists.SizeBytes, "size"),
    (spec.RatePerS, "rate"),
    (spec.Fraction, "fraction"),
    (spec.BandwidthBps, "bandwidth"),
    (dists.DurationDist, "duration distribution"),
    (dists.SizeDist, "size distribution"),
    (dists.NumberDist, "number distribution"),
    (market.Drift, "rate per time"),
    (market.PerSecond, "rate per time"),
    (market.Volatility, "volatility per sqrt(time)"),
    (market.SignedFraction, "fraction"),
    (crosschain.Share, "fraction"),
]


def _validator_funcs(alias: Any) -> list[Callable[..., Any]]:
    return [meta.func for meta in typing.get_args(alias)[1:] if hasattr(meta, "func")]


_UNIT_OF: dict[int, str] = {id(func): unit for alias, unit in _VALIDATOR_UNITS for func in _validator_funcs(alias)}


def _unit(metadata: list[Any]) -> str | None:
    for meta in metadata:
        func = getattr(meta, "func", None)
        if func is not None and id(func) in _UNIT_OF:
            return _UNIT_OF[id(func)]
    return None


# --- rendering types, bounds and values ----------------------------------------------------

_SCALARS = {int: "integer", float: "number", str: "string", bool: "boolean"}


def _bounds(metadata: list[Any]) -> str:
    parts: list[str] = []
    for meta in metadata:
        if isinstance(meta, annotated_types.Ge):
            parts.append(f"≥ {_number(meta.ge)}")
        elif isinstance(meta, annotated_types.Gt):
            parts.append(f"> {_number(meta.gt)}")
        elif isinstance(meta, annotated_types.Le):
            parts.append(f"≤ {_number(meta.le)}")
        elif isinstance(meta, annotated_types.Lt):
            parts.append(f"< {_number(meta.lt)}")
        elif isinstance(meta, annotated_types.MinLen) and meta.min_length > 0:
            parts.append(f"at least {meta.min_length}")
        elif getattr(meta, "pattern", None):
            parts.append(f"matching `{meta.pattern}`")
    return ", ".join(parts)


def _number(value: object) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int):
        if value >= 2**20 and value & (value - 1) == 0:
            return f"2^{value.bit_length() - 1}"
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) >= 1e9:
            return f"{value:.0e}".replace("e+0", "e").replace("e+", "e")
        return f"{value:g}" if not value.is_integer() else f"{int(value):,}"
    return str(value)


def _type_text(annotation: Any, metadata: list[Any] | None = None) -> str:
    """A short human name of a field's type, with its unit."""
    unit = _unit(metadata or [])
    if unit is not None:
        return unit
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        inner = _type_text(args[0], list(args[1:]))
        return _with_bounds(inner, _bounds(list(args[1:])))
    if origin is Literal:
        if set(args) == set(schema.MESSAGE_KINDS):
            return "message kind"
        return " \\| ".join(f'`"{a}"`' if isinstance(a, str) else f"`{a}`" for a in args)
    if origin in (Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        if all(isinstance(a, type) and issubclass(a, BaseModel) for a in present):
            text = "table"  # a tagged union: the tag's section lists the choices
        else:
            text = " \\| ".join(_type_text(a) for a in present)
        return f"{text} or none" if len(present) < len(args) else text
    if origin is list:
        item = _type_text(args[0])
        return f"list of {item}s" if item == "table" else f"list of {item}"
    if origin is tuple:
        return "[" + ", ".join(_type_text(a) for a in args) + "]"
    if origin is dict:
        return f"table of {_type_text(args[0])} → {_type_text(args[1])}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "table"
    if annotation in _SCALARS:
        return _SCALARS[annotation]
    return str(annotation)


def _with_bounds(type_text: str, bounds: str) -> str:
    if not bounds:
        return type_text
    if type_text.endswith(" or none"):
        return f"{type_text.removesuffix(' or none')} {bounds}, or none"
    return f"{type_text} {bounds}"


def _value_text(value: Any, annotation: Any, metadata: list[Any] | None = None) -> str:
    """A value as it would be written in a scenario file, in the field's unit."""
    unit = _unit(metadata or [])
    if value is None:
        return "none"
    if unit == "duration":
        return "0" if value == 0 else f'"{format_duration(int(value))}"'
    if unit == "fraction":
        return f'"{value * 100:g}%"'
    if unit == "size":
        return f'"{value}B"'
    if unit == "rate":
        return f'"{value:g}/s"'
    if unit == "bandwidth":
        return '"unlimited"' if value == 0 else _bandwidth(float(value))
    if unit is not None and unit.endswith("distribution"):
        return _distribution_text(value, unit)
    if isinstance(value, BaseModel):
        fields = value.model_dump()
        if len(fields) == 1:  # a tagged table with nothing but its tag, e.g. {mode = "unbounded"}
            ((tag, name),) = fields.items()
            return f'{{{tag} = "{name}"}}'
        return "see below"
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _value_text(value, args[0], list(args[1:]))
    if origin in (Union, types.UnionType):
        present = [a for a in args if a is not type(None)]
        return _value_text(value, present[0]) if len(present) == 1 else _toml(value)
    if origin is dict:
        items = ", ".join(f"{k} = {_value_text(v, args[1])}" for k, v in value.items())
        return "{" + items + "}" if items else "{}"
    if origin is list:
        return "[" + ", ".join(_value_text(v, args[0]) for v in value) + "]"
    return _toml(value)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, int):
        return f"{value:_}" if value >= 10_000 else str(value)
    if isinstance(value, float):
        return _number(value)
    return repr(value)


def _bandwidth(bps: float) -> str:
    for unit, size in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= size and math.isclose(bps / size, round(bps / size)):
            return f'"{bps / size:g}{unit}"'
    return f'"{bps:g}bit/s"'


def _distribution_text(dist: BaseModel, unit: str) -> str:
    quantity: Callable[[float], str]
    if unit.startswith("duration"):
        quantity = lambda v: f'"{format_duration(int(v))}"'  # noqa: E731
    elif unit.startswith("size"):
        quantity = lambda v: f'"{int(v)}B"'  # noqa: E731
    else:
        quantity = _number
    fields = dist.model_dump(by_alias=True)
    tag = fields.pop("dist")
    # The fields the distribution's own validator parses in the quantity's unit.
    if tag == "constant":
        return quantity(fields["value"])
    inner = ", ".join(f"{k} = {quantity(v) if k in dists._QUANTITY_FIELDS else _number(v)}"
                      for k, v in fields.items())
    return f'{{dist = "{tag}", {inner}}}'


# --- the document ----------------------------------------------------------------------------


def described_fields() -> Iterator[tuple[str, FieldInfo]]:
    """Every ``"Model.field"`` the reference shows, with its pydantic field."""
    seen: set[str] = set()
    models: list[type[BaseModel]] = [schema.Scenario, *_DISTRIBUTIONS]
    for section in _SECTIONS:
        models += _union_members(section[2]) if len(section) == 3 else [section[1]]
    for model in models:
        for name, info in model.model_fields.items():
            key = f"{model.__name__}.{name}"
            if model in _DISTRIBUTIONS and name == "dist":
                continue  # the tag, shown as the distribution's heading
            if key not in seen:
                seen.add(key)
                yield key, info


def _union_members(union: Any) -> list[type[BaseModel]]:
    inner = typing.get_args(union)[0] if typing.get_origin(union) is typing.Annotated else union
    return [m for m in typing.get_args(inner) if isinstance(m, type) and issubclass(m, BaseModel)]


def _description(model: type[BaseModel], name: str, info: FieldInfo) -> str:
    text = info.description or DESCRIPTIONS.get(f"{model.__name__}.{name}")
    if text is None:
        raise KeyError(f"{model.__name__}.{name} has no description: add Field(description=...) in "
                       "scenario/schema.py or an entry to DESCRIPTIONS in scenario/descriptions.py")
    for placeholder, names in _names().items():  # not str.format: the texts hold braces
        text = text.replace("{" + placeholder + "}", names)
    return text


def _builtin_names(registry: Registry[Any]) -> str:
    names = [n for n in registry.names() if getattr(registry[n], "__module__", "").startswith("msgstorm.")]
    return ", ".join(f"`{n}`" for n in names)


def _live_targets() -> str:
    """The live targets msgstorm ships (brokers, the EVM node, the validators), by name."""
    names = sorted(name for name in TARGETS.builtin_names if not TARGETS[name].simulated)
    return ", ".join(f"`{n}`" for n in names)


def _region_names() -> str:
    return ", ".join(f"`{r}`" for r in sorted(known_regions()))


@functools.cache
def _names() -> dict[str, str]:
    """The names a description lists, read from where they are defined."""
    return {
        "live_drivers": _live_targets(),
        "queue_policies": _builtin_names(QUEUE_POLICIES),
        "toxics": "; ".join(f"`{name}`: {toxic.summary}" for name, toxic in TOXICS.items()),
        "connection_toxics": ", ".join(name for name, toxic in TOXICS.items() if toxic.on_connections),
        "regions": _region_names(),
        "roles": "; ".join(f"`{role}` {{{', '.join(f'{k} {v:g}' for k, v in mix.items())}}}"
                           for role, mix in traffic.ROLE_MIX.items()),
    }


def _field_rows(model: type[BaseModel], skip: tuple[str, ...] = ()) -> list[str]:
    rows = ["| field | type | default | meaning |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        shown = info.alias or name
        metadata = list(info.metadata)
        type_text = _with_bounds(_type_text(info.annotation, metadata), _bounds(metadata))
        if info.is_required():
            default = "required"
        else:
            value = info.get_default(call_default_factory=True)
            shown_value = _value_text(value, info.annotation, metadata)
            default = "see its table" if shown_value == "see below" else f"`{shown_value}`"
        rows.append(f"| `{shown}` | {type_text} | {default} | {_description(model, name, info)} |")
    return rows


def render() -> str:
    """The whole reference, as Markdown."""
    out: list[str] = [
        "# Scenario reference",
        "",
        "For anyone writing or reading a scenario file: every table and field, its type,",
        "default and meaning, the units and distributions, the arrival processes, faults and",
        "SLO metrics.",
        "",
        "<!-- Generated by `python -m msgstorm.scenario.reference > docs/scenario.md` from",
        "     src/msgstorm/scenario/schema.py; edit the schema or reference.py, not this file. -->",
        "",
        "A scenario is one TOML file. Every table below is optional except `[run]` and",
        "`[[agents]]`; unknown fields are errors, and every error names the file, line and field",
        "(`msgstorm validate SCENARIO.toml`). Any field can be overridden on the command line with",
        "`--set dotted.key=value` (TOML values; list elements by index: `agents.0.count=500`).",
        "",
        "## Units",
        "",
        "| type | written as | stored as |",
        "|---|---|---|",
        "| duration | `\"50us\"`, `\"2ms\"`, `\"1.5s\"`, `\"1min\"` (ns, us, ms, s, min, h); bare `0` | "
        "integer nanoseconds (at most about 292 years) |",
        "| rate | `\"2000/s\"`, `\"5k/s\"`, `\"120/min\"` | messages per second |",
        "| fraction | `\"10%\"` or `0.1` | a number |",
        "| size | `\"250B\"`, `\"4KiB\"`, `\"1KB\"` | bytes (at most 2 GiB) |",
        "| bandwidth | `\"1Gbit/s\"`, `\"100MB/s\"`, `\"unlimited\"` | bits per second |",
        "| *X* distribution | a bare *X* (constant) or a table, below | |",
        "",
        "### Distributions",
        "",
        "A distribution is a bare quantity (a constant) or a table with a `dist` tag, e.g.",
        "`{dist = \"lognormal\", median = \"50us\", sigma = 0.5}`; quantities take the field's unit.",
        "",
    ]
    for model in _DISTRIBUTIONS:
        tag = typing.get_args(model.model_fields["dist"].annotation)[0]
        doc = (model.__doc__ or "").strip()
        out += [f"#### `dist = \"{tag}\"`", ""] + ([_clean(doc), ""] if doc else [])
        out += _field_rows(model, skip=("dist",)) + [""]

    out += ["## Top level", ""] + _field_rows(schema.Scenario) + [""]
    for section in _SECTIONS:
        level = "###" if section[0] in _SUBSECTIONS else "##"
        heading = f"`{section[0]}`" if section[0].startswith("[") else section[0]
        out += [f"{level} {heading}", ""]
        if len(section) == 3:
            out += _union_section(section[1], section[2], level, section[0])
            continue
        doc = (section[1].__doc__ or "").strip()
        out += ([_clean(doc), ""] if doc else []) + _field_rows(section[1]) + [""]
    out += _slo_section()
    return "\n".join(out).rstrip() + "\n"


def _union_section(key: str, union: Any, level: str, heading: str) -> list[str]:
    registry = {"[backpressure]": BACKPRESSURE_MODES, "Arrival processes": ARRIVAL_PROCESSES,
                "[[faults]]": FAULT_KINDS, "[[controllers]]": CONTROLLERS}[heading]
    out = [f"`{key}` chooses one of: {_builtin_names(registry)}.", ""]
    if heading == "[[faults]]":
        out += ["Every fault starts before the run ends (`at` earlier than `run.duration` + `run.drain`, and so "
                "does each step and repetition of a script): a later one would never fire, and is refused naming "
                "its `at`. A run shortened with `--set run.duration=...` (or `run.drain`) keeps the faults it cuts "
                "off, and `validate` and `run` note each one that will not fire.", ""]
    for model in _union_members(union):
        info = model.model_fields[key]
        tag = typing.get_args(info.annotation)[0]
        out += [f"{level}# `{key} = \"{tag}\"`", "", _description(model, key, info), ""]
        if len(model.model_fields) > 1:
            out += _field_rows(model, skip=(key,)) + [""]
    return out


def _slo_section() -> list[str]:
    units = {"ms": "duration (compared in ms)", "per_s": "rate", "fraction": "fraction", "count": "count"}
    rows = ["## `[slo]`", "",
            "`\"metric\" = \"op value\"`, e.g. `\"latency.p99\" = \"< 250ms\"`, "
            "`\"capacity.knee_rate\" = \">= 3000/s\"`, `\"delivery.lost\" = \"== 0\"`. Operators: "
            "`<`, `<=`, `>`, `>=`, `==`, `!=`. A duration or a rate is written with its unit (`< 800` "
            "is refused: `< 800ms`); a fraction as a percentage or a plain number, a count as a "
            "plain number. A failed SLO makes `msgstorm run` exit 1; one that "
            "cannot be judged for lack of data is `unknown` (a failure with `--strict`). A ramp that "
            "passed every step reached no knee: `capacity.knee_rate` is then only a lower bound "
            "(`capacity.knee_reached` false), and its SLO is `unknown`, not judged, unless the bound "
            "decides it (`>= 2000/s` passes on a ramp that passed every step up to 2,963/s; "
            "`>= 3000/s` is not judged), with `bound` and `reason` in summary.json. Metrics "
            "of a live run only (`delivery.*`, `connections.*`, `generator.*`) are unknown on sim. "
            f"Checks run on every run: {_builtin_names(CHECKERS)}.",
            "",
            "| metric | unit | summary.json |",
            "|---|---|---|"]
    for name, (path, unit) in SLO_METRICS.items():
        rows.append(f"| `{name}` | {units[unit]} | `{'.'.join(path)}` |")
    return rows + [""]


def _clean(doc: str) -> str:
    return " ".join(line.strip() for line in doc.replace("``", "`").splitlines() if line.strip())


def main() -> None:
    """Print the reference (``python -m msgstorm.scenario.reference > docs/scenario.md``)."""
    sys.stdout.write(render())


if __name__ == "__main__":
    main()
