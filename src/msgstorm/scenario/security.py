"""The ``[security]`` section: how messages are authenticated, and what verifying one costs.

Place in the pipeline: the scenario layer. The simulator adds the verification cost to every
receiving node's processing time (``sim/integrity.py``) and judges tampered and replayed
messages by the scheme (``tamper`` and ``replay`` faults); a live run signs in the generator
and verifies in the consumers (``live/signing.py``). The cost per message comes from
``verify_cost`` when the scenario gives it (the same on every machine), else from what
``msgstorm calibrate crypto`` measured on this machine (``security/costs.py``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from msgstorm.scenario.distributions import DurationNs
from msgstorm.scenario.spec import Spec

__all__ = ["SCHEMES", "SecuritySpec"]

SCHEMES = ("none", "hmac-sha256", "ed25519")


class SecuritySpec(Spec):

    scheme: Literal["none", "hmac-sha256", "ed25519"] = Field(
        default="none", description="how each message is authenticated: none, an HMAC-SHA256 tag (a key "
        "shared per sender) or an Ed25519 signature; the signed bytes hold the chain id and the sender's nonce")
    verify: Literal["model", "real"] = Field(
        default="model", description="model: the verification cost is a processing time and a tampered or "
        "replayed message is judged by the scheme's rule; real: every message is also signed and verified "
        "with the crypto library as it goes (the same outcome, at the library's cost in wall time)")
    chain_id: int = Field(default=1, ge=0, lt=2**63, description="the chain id every signed message carries; "
                          "a message replayed from another chain carries another one")
    verify_cost: DurationNs | None = Field(
        default=None, description="CPU time a receiving node spends verifying one message; default: what "
        "`msgstorm calibrate crypto` measured on this machine for the scheme; not used under scheme `none` "
        "(nothing is verified: the summary's cost is null)")
