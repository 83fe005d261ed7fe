"""Live drivers: one file per messaging system, each a ``Driver`` registered in
``LIVE_DRIVERS`` (``scenario/registry.py``) under the name a scenario's ``target`` uses."""
