"""Traffic: what is sent, and when — agents, arrival processes, the message mix.

The first stage after the scenario: ``generate_traffic`` turns a ``Scenario`` and a seed
into ``MessageBatch`` es of intended messages, window by window, for the sim engine and
the live scheduler alike; ``reactor`` is the extension point for agents that send while the
run goes (the simulator and the chain target drive them alike).
"""

from msgstorm.traffic.arrivals import ArrivalProcess, make_arrival
from msgstorm.traffic.generate import MessageBatch, generate_traffic

__all__ = ["ArrivalProcess", "MessageBatch", "generate_traffic", "make_arrival"]
