"""Live targets: the scenario's traffic sent to a real messaging system.

Place in the pipeline: a target beside the simulator. ``LiveTarget`` (``target.py``) runs
the open-loop generator and the consumers against a driver (``drivers/``, one file per
broker, registered in ``LIVE_DRIVERS``; the EVM node and validators are targets of their own,
``chain/``), starting the broker itself when the scenario
names no URL (``servers.py``), and writes the same history tables the simulator writes.
"""
