"""OpenMessaging Benchmark workloads as scenarios: ``msgstorm run WORKLOAD.yaml --target T``.

Place in the pipeline: the scenario layer, before validation. ``load_scenario`` hands a
``.yaml`` / ``.yml`` file here; ``omb_scenario_text`` turns the workload (OMB's ``Workload``
fields: topics, partitions, message size, producer rate and its ramp, subscriptions,
consumers, duration) into the TOML of the scenario that drives the same load, which is then
validated as any scenario file is. A workload names no broker (OMB's driver file does), so
the target comes from ``--target`` (or ``--set target=...``).

What maps and how (docs/cli.md, "OpenMessaging Benchmark workloads"):

- ``producerRate`` (messages a second over every producer) is the open-loop schedule's rate;
  with ``producerIncrementRate`` > 0, a step ramp from ``producerStartRate`` up by that much
  every ``producerIncrementSeconds`` to ``producerRate``. ``producerRate = 0`` asks OMB to
  search for the highest balanced rate: msgstorm's open loop needs a rate (its ramp finds the
  knee), so it is refused, naming the field.
- ``messageSize`` is each message's size; ``testDurationMinutes`` the run's duration.
- ``subscriptionsPerTopic`` x ``consumerPerSubscription`` are the consumers (``live.consumers``):
  how they share the messages is the target's (``docs/live.md``).
- ``keyDistributor``: ``NO_KEY`` sends one key (ordering checked over the whole stream), the
  others 100 keys.
- ``topics`` must be 1 (msgstorm drives one stream a run). ``partitionsPerTopic`` and the
  payload fields (``payloadFile``, ``useRandomizedPayloads``, ...) have no counterpart on the
  targets msgstorm drives (its payloads carry the message id); each is listed in ``notes``.
  ``consumerBacklogSizeGB`` > 0 (build a backlog, then drain it) is refused.

Errors name the file, the line and the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from msgstorm.scenario.errors import ScenarioError, ScenarioIssue

__all__ = ["OMB_FIELDS", "OmbScenario", "omb_scenario_text"]

# OMB's ``Workload`` fields (benchmark-framework's Workload.java) and their kind.
OMB_FIELDS: dict[str, str] = {
    "name": "str", "topics": "int", "partitionsPerTopic": "int", "keyDistributor": "str", "messageSize": "int",
    "useRandomizedPayloads": "bool", "randomBytesRatio": "float", "randomizedPayloadPoolSize": "int",
    "payloadFile": "str", "subscriptionsPerTopic": "int", "producersPerTopic": "int",
    "consumerPerSubscription": "int", "messageRateReceivedForSubscription": "int", "producerRate": "int",
    "producerStartRate": "int", "acceptableBacklog": "int", "producerIncrementRate": "int",
    "producerIncrementSeconds": "int", "consumerBacklogSizeGB": "int", "producerPauseBeforeDrain": "int",
    "producerPauseDuringDrain": "int", "testDurationMinutes": "int", "warmupDurationMinutes": "int",
}
_KEYS = ("NO_KEY", "KEY_ROUND_ROBIN", "RANDOM_NANO")
# OMB's defaults for the fields a workload may leave out.
_DEFAULTS: dict[str, Any] = {"topics": 1, "partitionsPerTopic": 1, "keyDistributor": "NO_KEY",
                             "subscriptionsPerTopic": 1, "producersPerTopic": 1, "consumerPerSubscription": 1,
                             "producerStartRate": 10_000, "producerIncrementRate": 0,
                             "producerIncrementSeconds": 60, "consumerBacklogSizeGB": 0}
_REQUIRED = ("messageSize", "producerRate", "testDurationMinutes")
# Fields with no counterpart: read, and said so.
_NO_COUNTERPART = {
    "payloadFile": "msgstorm's payloads carry each message's id and send time, of messageSize bytes",
    "useRandomizedPayloads": "msgstorm's payloads carry each message's id and send time",
    "randomBytesRatio": "msgstorm's payloads carry each message's id and send time",
    "randomizedPayloadPoolSize": "msgstorm's payloads carry each message's id and send time",
    "warmupDurationMinutes": "msgstorm measures from the first message (no warm-up phase)",
    "messageRateReceivedForSubscription": "every subscription is measured on every message",
    "acceptableBacklog": "it bounds OMB's rate search, which a fixed rate does not run",
    "producerPauseBeforeDrain": "it belongs to the backlog mode (consumerBacklogSizeGB), not run",
    "producerPauseDuringDrain": "it belongs to the backlog mode (consumerBacklogSizeGB), not run",
}


@dataclass
class OmbScenario:
    """A workload's scenario TOML and what of the workload it could not carry."""

    toml: str
    notes: list[str] = field(default_factory=list)


def _lines(text: str) -> dict[str, int]:
    """Each top-level key's line (1-based)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return {}
    if not isinstance(node, yaml.MappingNode):
        return {}
    return {str(key.value): key.start_mark.line + 1 for key, _ in node.value}


def _checked(source: str, text: str) -> tuple[dict[str, Any], dict[str, int]]:
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise ScenarioError([ScenarioIssue(source, None if mark is None else mark.line + 1, "",
                                           f"not valid YAML: {error}")]) from None
    if not isinstance(values, dict):
        raise ScenarioError([ScenarioIssue(source, None, "", "an OpenMessaging Benchmark workload is a YAML "
                                           "mapping (topics, messageSize, producerRate, ...)")])
    lines = _lines(text)
    issues = []
    for key, value in values.items():
        kind = OMB_FIELDS.get(str(key))
        where = lines.get(str(key))
        if kind is None:
            issues.append(ScenarioIssue(source, where, str(key), f"not a field of an OpenMessaging Benchmark "
                                        f"workload (one of {', '.join(OMB_FIELDS)})"))
        elif kind == "int" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            issues.append(ScenarioIssue(source, where, str(key), f"expected a whole number of 0 or more, got {value!r}"))
        elif kind == "float" and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not math.isfinite(value)):
            issues.append(ScenarioIssue(source, where, str(key), f"expected a number, got {value!r}"))
        elif kind == "bool" and not isinstance(value, bool):
            issues.append(ScenarioIssue(source, where, str(key), f"expected true or false, got {value!r}"))
        elif kind == "str" and not isinstance(value, str):
            issues.append(ScenarioIssue(source, where, str(key), f"expected text, got {value!r}"))
    for key in _REQUIRED:
        if key not in values:
            issues.append(ScenarioIssue(source, None, key, "missing: a workload gives messageSize, producerRate and "
                                        "testDurationMinutes"))
    if issues:
        raise ScenarioError(issues)
    return {**_DEFAULTS, **values}, lines


def omb_scenario_text(text: str, source: str) -> OmbScenario:
    """The scenario TOML that drives ``text``'s workload (its target left to ``--target``);
    ScenarioError naming ``source``, the line and the field of what cannot be run."""
    work, lines = _checked(source, text)

    def refuse(key: str, why: str) -> ScenarioError:
        return ScenarioError([ScenarioIssue(source, lines.get(key), key, why)])

    if work["topics"] != 1:
        raise refuse("topics", f"{work['topics']}: msgstorm drives one stream a run (topics = 1); run one "
                               "workload a topic")
    if work["producerRate"] == 0:
        raise refuse("producerRate", "0 asks for a search of the highest balanced rate; msgstorm's open loop "
                                     "sends at a rate: give one, or a ramp (producerStartRate, "
                                     "producerIncrementRate) to read the knee")
    if work["consumerBacklogSizeGB"] > 0:
        raise refuse("consumerBacklogSizeGB", f"{work['consumerBacklogSizeGB']}: building a backlog before "
                                              "consuming it is not a mode msgstorm runs; use 0")
    if work["keyDistributor"] not in _KEYS:
        raise refuse("keyDistributor", f"{work['keyDistributor']!r}: expected one of {', '.join(_KEYS)}")
    for key in ("messageSize", "testDurationMinutes", "producersPerTopic", "subscriptionsPerTopic",
                "consumerPerSubscription"):
        if work[key] < 1:
            raise refuse(key, f"{work[key]}: expected at least 1")
    consumers = work["subscriptionsPerTopic"] * work["consumerPerSubscription"]
    if consumers > 64:
        raise refuse("consumerPerSubscription", f"{consumers} consumers in all (subscriptionsPerTopic x "
                                                "consumerPerSubscription): at most 64 (live.consumers)")
    notes = [f"{key}: not used: {why}" for key, why in _NO_COUNTERPART.items() if key in work]
    if work["partitionsPerTopic"] != 1:
        notes.append(f"partitionsPerTopic: {work['partitionsPerTopic']}: not used: the target's stream has no "
                     "partitions")
    rate, increment = work["producerRate"], work["producerIncrementRate"]
    if increment > 0:
        start = work["producerStartRate"]
        if not 0 < start <= rate:
            raise refuse("producerStartRate", f"{start}: a ramp starts above 0 and at most producerRate ({rate})")
        steps = (rate - start) // increment + 1
        arrival = (f'{{ process = "step_ramp", start = "{start}/s", step = "{increment}/s", '
                   f'every = "{work["producerIncrementSeconds"]}s", steps = {steps} }}')
    else:
        arrival = f'{{ process = "constant", rate = "{rate}/s" }}'
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(work.get("name") or "omb-workload")).strip("-") or "omb-workload"
    toml = "\n".join([
        f"# From the OpenMessaging Benchmark workload {source}.",
        "[run]",
        f'name = "{name}"',
        f'duration = "{work["testDurationMinutes"]}min"',
        'window = "1s"',
        "",
        "[live]",
        f"consumers = {consumers}",
        "",
        "[[agents]]",
        'name = "producers"',
        'role = "trader"',
        "mix = { order = 1.0 }",
        f"arrival = {arrival}",
        f'size = "{work["messageSize"]}B"',
        f"keys = {1 if work['keyDistributor'] == 'NO_KEY' else 100}",
        "",
    ])
    return OmbScenario(toml, notes)
