"""Each generator's own names in a run spread over a Ray cluster (``live/distributed.py``).

Place in the pipeline: ``scenario/refs.py`` refuses a scenario with ``live.generators``
above 1 whose target is not here (``DISTRIBUTED_TARGETS`` is this table's keys);
``live/distributed.py`` gives generator k the ``[live]`` section ``generator_live`` makes.
Generator k publishes to a subject, stream, topic or queue of its own, which its own
consumers read and which its driver reads back after the run, so each generator's run is an
ordinary one-generator run on the one server, and the broker-side audits of the generators
cover disjoint shares. Each name is spelt within its broker's rules, checked against the
scenario's own patterns (``scenario/live.py``):

- ``nats``: the subject ``live.subject`` + ``.gK`` (a subject's tokens are dot-separated).
- ``jetstream``: that subject, in the stream ``live.jetstream.stream`` + ``_gK`` (a stream's
  name has no dot).
- ``redis``: the stream key ``live.redis.stream`` + ``.gK``; its consumer group is the
  key's own, so the group's name stays.
- ``kafka``: the topic ``live.kafka.topic`` + ``.gK`` and the consumer group
  ``live.kafka.group`` + ``.gK`` (one group across topics would rebalance every
  generator's consumers whenever another's join).
- ``rabbitmq``: the queue ``live.rabbitmq.queue`` + ``.gK`` (its exchange ``<queue>.x``, its
  consumers' and audit queues follow from it).
- ``mqtt``: the topic ``live.mqtt.topic`` + ``/gK`` (MQTT's level separator), and every
  client's id + ``-gK`` (``live.mqtt.client_id_suffix``): a second connection with a
  client's id takes its session over, so the generators' clients need ids of their own.

Not here: ``zmq`` (brokerless: msgstorm binds the sockets it sends on, no server to share),
and the chain and validator targets (their messages are transactions, each account's
nonces one sender's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from msgstorm.scenario.live import LiveSpec

__all__ = ["DISTRIBUTED_TARGETS", "GENERATOR_NAMES", "generator_live", "name_problems"]


def _subject(live: LiveSpec, index: int) -> dict[str, Any]:
    return {"subject": f"{live.subject}.g{index}"}


def _jetstream(live: LiveSpec, index: int) -> dict[str, Any]:
    return {**_subject(live, index), "jetstream": {"stream": f"{live.jetstream.stream}_g{index}"}}


def _redis(live: LiveSpec, index: int) -> dict[str, Any]:
    return {"redis": {"stream": f"{live.redis.stream}.g{index}"}}


def _kafka(live: LiveSpec, index: int) -> dict[str, Any]:
    return {"kafka": {"topic": f"{live.kafka.topic}.g{index}", "group": f"{live.kafka.group}.g{index}"}}


def _mqtt(live: LiveSpec, index: int) -> dict[str, Any]:
    mqtt = live.mqtt
    return {"mqtt": {"topic": f"{mqtt.topic}/g{index}", "client_id_suffix": f"{mqtt.client_id_suffix}-g{index}"}}


def _rabbitmq(live: LiveSpec, index: int) -> dict[str, Any]:
    return {"rabbitmq": {"queue": f"{live.rabbitmq.queue}.g{index}"}}


# target -> the [live] fields generator k names on its own (a driver's section: the fields
# of it that change).
GENERATOR_NAMES: dict[str, Callable[[LiveSpec, int], dict[str, Any]]] = {
    "nats": _subject, "jetstream": _jetstream, "redis": _redis, "kafka": _kafka, "rabbitmq": _rabbitmq, "mqtt": _mqtt}

# The targets whose runs can be spread over generators on a Ray cluster.
DISTRIBUTED_TARGETS = tuple(GENERATOR_NAMES)


def generator_live(live: LiveSpec, target: str, index: int, url: str | None) -> LiveSpec:
    """Generator ``index``'s ``[live]``: an ordinary one-generator run against ``url`` (the
    one server), on names of its own, each validated as the scenario's own are (a
    ``pydantic.ValidationError`` for a name the suffix makes too long: ``name_problems``
    finds it at load time)."""
    update: dict[str, Any] = {"url": url, "generators": 1}
    for name, value in GENERATOR_NAMES[target](live, index).items():
        if isinstance(value, dict):  # a driver's section: the fields of it that change
            section = getattr(live, name).model_copy()
            for field, named in value.items():
                type(section).__pydantic_validator__.validate_assignment(section, field, named)
            update[name] = section
        else:
            checked = live.model_copy()
            type(live).__pydantic_validator__.validate_assignment(checked, name, value)
            update[name] = getattr(checked, name)
    return live.model_copy(update=update)


def name_problems(live: LiveSpec, target: str) -> list[tuple[tuple[str | int, ...], str]]:
    """The names the last generator's suffix (the longest) makes invalid: (field path under
    ``live``, why)."""
    problems: list[tuple[tuple[str | int, ...], str]] = []
    last = live.generators - 1
    try:
        generator_live(live, target, last, live.url)
    except ValidationError as error:
        sections = {type(spec).__name__: name for name, spec in live if isinstance(spec, BaseModel)}
        for said in error.errors():
            where = (*([sections[error.title]] if error.title in sections else []), *said["loc"])
            problems.append((where, f"{said['input']!r}, generator {last}'s name (this name with the suffix that "
                                    f"generator adds): {said['msg']}; shorten it"))
    return problems
