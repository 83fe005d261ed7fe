"""Default one-way latencies between named cloud regions, used by the shadow network.

Values are half of typical median round-trip times between the matching AWS regions as
published by cloudping.co's inter-region latency grid (p50, rounded to the millisecond);
they are defaults to be overridden with ``network.latency`` when a user has measurements.
Region names are cloud-neutral: us-east (N. Virginia), us-west (Oregon), eu-west (Ireland),
eu-central (Frankfurt), ap-northeast (Tokyo), ap-southeast (Singapore), ap-south (Mumbai),
sa-east (Sao Paulo).
"""

from __future__ import annotations

__all__ = ["DEFAULT_RTT_MS", "default_one_way_ns", "known_regions"]

# Round-trip times in milliseconds (p50), symmetric.
DEFAULT_RTT_MS: dict[frozenset[str], float] = {
    frozenset({"us-east", "us-west"}): 62,
    frozenset({"us-east", "eu-west"}): 68,
    frozenset({"us-east", "eu-central"}): 90,
    frozenset({"us-east", "ap-northeast"}): 146,
    frozenset({"us-east", "ap-southeast"}): 214,
    frozenset({"us-east", "ap-south"}): 186,
    frozenset({"us-east", "sa-east"}): 115,
    frozenset({"us-west", "eu-west"}): 124,
    frozenset({"us-west", "eu-central"}): 142,
    frozenset({"us-west", "ap-northeast"}): 98,
    frozenset({"us-west", "ap-southeast"}): 164,
    frozenset({"us-west", "ap-south"}): 218,
    frozenset({"us-west", "sa-east"}): 176,
    frozenset({"eu-west", "eu-central"}): 25,
    frozenset({"eu-west", "ap-northeast"}): 204,
    frozenset({"eu-west", "ap-southeast"}): 170,
    frozenset({"eu-west", "ap-south"}): 122,
    frozenset({"eu-west", "sa-east"}): 178,
    frozenset({"eu-central", "ap-northeast"}): 226,
    frozenset({"eu-central", "ap-southeast"}): 158,
    frozenset({"eu-central", "ap-south"}): 112,
    frozenset({"eu-central", "sa-east"}): 202,
    frozenset({"ap-northeast", "ap-southeast"}): 70,
    frozenset({"ap-northeast", "ap-south"}): 128,
    frozenset({"ap-northeast", "sa-east"}): 256,
    frozenset({"ap-southeast", "ap-south"}): 58,
    frozenset({"ap-southeast", "sa-east"}): 326,
    frozenset({"ap-south", "sa-east"}): 300,
}


def known_regions() -> set[str]:
    """Region names that have built-in latencies to each other."""
    return {region for pair in DEFAULT_RTT_MS for region in pair}


def default_one_way_ns(a: str, b: str) -> int | None:
    """Half the default RTT between two regions in ns, or None when there is no default."""
    rtt_ms = DEFAULT_RTT_MS.get(frozenset({a, b}))
    if rtt_ms is None:
        return None
    return int(rtt_ms * 1_000_000 // 2)
