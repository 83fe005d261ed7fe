"""Message kinds: one list, which the scenario's and the market's schemas both use."""

from __future__ import annotations

from typing import get_args, get_type_hints

from msgstorm.scenario.kinds import MESSAGE_KINDS, MessageKind
from msgstorm.scenario.market import FrontRunnerSpec
from msgstorm.scenario.schema import CommitRevealSpec, Scenario
from msgstorm.sim.policies import PolicyHost


def test_every_schema_takes_its_kinds_from_one_list() -> None:
    assert get_args(MessageKind) == MESSAGE_KINDS == ("order", "cancel", "quote", "liquidation", "price", "spam")
    assert FrontRunnerSpec.model_fields["kind"].annotation is MessageKind
    assert get_args(CommitRevealSpec.model_fields["kinds"].annotation) == (MessageKind,)


def test_a_policy_host_gives_the_typed_scenario() -> None:
    assert get_type_hints(PolicyHost)["scenario"] is Scenario
