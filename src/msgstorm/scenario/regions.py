"""Default one-way latencies between named cloud regions, used by the shadow network, and
the region latency matrix a network's settings make of them.

Values are half of typical median round-trip times between the matching AWS regions as
published by cloudping.co's inter-region latency grid (p50, rounded to the millisecond);
they are defaults to be overridden with ``network.latency`` when a user has measurements.
Region names are cloud-neutral: us-east (N. Virginia), us-west (Oregon), eu-west (Ireland),
eu-central (Frankfurt), ap-northeast (Tokyo), ap-southeast (Singapore), ap-south (Mumbai),
sa-east (Sao Paulo).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from msgstorm.scenario.schema import NetworkSpec

__all__ = ["DEFAULT_RTT_MS", "default_one_way_ns", "known_regions", "region_base_ns"]

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


def region_base_ns(network: NetworkSpec) -> list[list[int]]:
    """The one-way base latency (ns) from each region to each, in ``network.regions`` order:
    ``latency``'s pairs, then a region pair's ``links`` entry (one way or both), else the
    intra-region latency within a region and the built-in default between two."""
    regions = list(network.regions)
    index = {region: i for i, region in enumerate(regions)}
    explicit: dict[frozenset[str], int] = {}
    for key, latency in network.latency.items():
        a, b = (part.strip() for part in key.split("/"))
        explicit[frozenset({a, b})] = latency
    for link in network.links:  # a region pair's link sets its latency below; it needs no default
        if set(link.between) <= set(regions) and not link.one_way:
            explicit.setdefault(frozenset(link.between), link.latency)
    base_ns: list[list[int]] = []
    for a in regions:
        row = []
        for b in regions:
            if frozenset({a, b}) in explicit:
                row.append(explicit[frozenset({a, b})])
            elif a == b:
                row.append(network.intra_region_latency)
            else:
                default = default_one_way_ns(a, b)
                if default is None:  # refs.check_references rejects this earlier
                    raise ValueError(f"no latency between {a} and {b}")
                row.append(default)
        base_ns.append(row)
    for link in network.links:
        a, b = link.between
        if a in index and b in index:
            base_ns[index[a]][index[b]] = link.latency
            if not link.one_way:
                base_ns[index[b]][index[a]] = link.latency
    return base_ns
