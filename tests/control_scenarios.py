"""A scenario the controller tests share (tests/test_sim_control.py, tests/test_report_control.py):
traders at 300/s and a flood of spam at 1,500/s on one node whose one worker serves 1,000/s,
with a throttle that may shed the spam. Formatted with ``duration_s`` and ``bots_stop`` (a
``stop = "..."`` line for the flood, or "")."""

from __future__ import annotations

__all__ = ["OVERLOAD_TOML"]

OVERLOAD_TOML = """
[run]
name = "throttle"
seed = 3
duration = "{duration_s}s"
drain = "0s"
sample_interval = "100ms"

[network]
regions = ["us-east"]
nodes_per_region = 1
intra_region_latency = "0ns"
processing = "0ns"
bandwidth = "unlimited"

[sequencer]
workers = 1
service = {{ dist = "exponential", mean = "1ms" }}

[blocks]
interval = "100ms"
max_messages = 1000000

[history]
delivery_sample = "0%"

[[agents]]
name = "traders"
mix = {{ order = 4, cancel = 1, quote = 1 }}
arrival = {{ process = "poisson", rate = "300/s" }}

[[agents]]
name = "bots"
role = "flooder"
mix = {{ spam = 1 }}
arrival = {{ process = "poisson", rate = "1500/s" }}
{bots_stop}

[[controllers]]
kind = "throttle"
nonessential = ["spam"]
target = 200
"""
