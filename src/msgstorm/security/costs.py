"""What signing and verifying one message costs on this machine: measured, stored, looked up.

Place in the pipeline: ``msgstorm calibrate crypto`` -> **measure** -> a JSON file
(``costs_path``); a run with ``[security]`` and no ``verify_cost`` reads it (``verify_cost_ns``)
and writes the cost it used into its history (a ``security`` event), so the summary shows
it and the run is analysed again without this machine.

The measurement times the calls ``security/crypto.py`` makes, with the library's real keys,
on messages of ``body_bytes`` in the CPU time of the thread that makes them
(``time.thread_time_ns``: what a node's CPU spends, not the wall time a busy machine adds
while other processes have the CPU): the median of ``rounds`` rounds of ``per_round`` calls
each, so a round disturbed otherwise (caches another process emptied) does not set the cost.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from msgstorm.errors import DataFileError
from msgstorm.security.crypto import SCHEME_CLASSES, signed_bytes

__all__ = ["COSTS_ENV", "CostSource", "CryptoCosts", "SchemeCost", "costs_path", "load_costs", "measure",
           "resolve_verify_cost", "save_costs"]

COSTS_ENV = "MSGSTORM_CRYPTO_COSTS"


class SchemeCost(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sign_ns: float
    verify_ns: float


class CryptoCosts(BaseModel):
    """One calibration: per scheme, the median time to sign and to verify one message."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    measured_at: str
    machine: str
    library: str
    body_bytes: int
    schemes: dict[str, SchemeCost]


class CostSource(BaseModel):
    """The verification cost a run uses and where it came from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    verify_ns: int
    sign_ns: int | None  # known from a calibration only
    source: str  # "scenario" or the calibration file's path


def costs_path() -> Path:
    """Where calibrations are stored: ``$MSGSTORM_CRYPTO_COSTS``, else the user's cache."""
    named = os.environ.get(COSTS_ENV)
    if named:
        return Path(named).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "msgstorm" / "crypto-costs.json"


def _median_ns(call: object, per_round: int, rounds: int) -> float:
    assert callable(call)
    times = []
    for _ in range(rounds):
        start = time.thread_time_ns()
        for _ in range(per_round):
            call()
        times.append((time.thread_time_ns() - start) / per_round)
    return float(statistics.median(times))


def measure(body_bytes: int = 128, per_round: int = 500, rounds: int = 7) -> CryptoCosts:
    """Time signing and verifying one message of ``body_bytes`` with each scheme."""
    import cryptography

    data = signed_bytes(1, 0, 0, bytes(body_bytes))
    schemes: dict[str, SchemeCost] = {}
    for name, scheme_class in SCHEME_CLASSES.items():
        scheme = scheme_class(0)
        tag = scheme.sign(0, data)
        assert scheme.verify(0, data, tag)
        sign = _median_ns(lambda scheme=scheme: scheme.sign(0, data), per_round, rounds)
        verify = _median_ns(lambda scheme=scheme, tag=tag: scheme.verify(0, data, tag), per_round, rounds)
        schemes[name] = SchemeCost(sign_ns=sign, verify_ns=verify)
    return CryptoCosts(measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
                       machine=f"{platform.machine()} {platform.processor() or platform.platform()}",
                       library=f"cryptography {cryptography.__version__}", body_bytes=body_bytes, schemes=schemes)


def save_costs(costs: CryptoCosts, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(costs.model_dump_json(indent=2) + "\n")
    partial.replace(path)
    return path


def load_costs(path: Path) -> CryptoCosts | None:
    """The calibration stored at ``path``; None when there is none. A file that is not one
    raises DataFileError naming it."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return CryptoCosts.model_validate(json.loads(text))
    except (ValueError, ValidationError) as error:
        raise DataFileError(f"{path}: not a crypto calibration ({error}); run `msgstorm calibrate crypto` "
                         "again") from None


def resolve_verify_cost(scheme: str, verify_cost_ns: int | None, path: Path | None = None) -> CostSource:
    """The cost a run with ``scheme`` uses: the scenario's ``verify_cost`` when given, else
    the stored calibration's; DataFileError (exit 2) saying what to do when there is neither."""
    if scheme == "none":
        return CostSource(verify_ns=0, sign_ns=0, source="scenario")
    if verify_cost_ns is not None:
        return CostSource(verify_ns=verify_cost_ns, sign_ns=None, source="scenario")
    path = costs_path() if path is None else path
    costs = load_costs(path)
    if costs is None or scheme not in costs.schemes:
        raise DataFileError(f"security.verify_cost: not given, and no calibration of {scheme!r} at {path}: run "
                         "`msgstorm calibrate crypto` on this machine, or give security.verify_cost")
    cost = costs.schemes[scheme]
    return CostSource(verify_ns=round(cost.verify_ns), sign_ns=round(cost.sign_ns), source=str(path))
