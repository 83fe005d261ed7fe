"""The fault kinds a live target applies, one class a module (``base.py``: their interface).

Place in the pipeline: under the live nemesis (``live/nemesis.py``), which only schedules
them. Each module registers its kind in ``LIVE_FAULT_KINDS`` on import; the registry imports
them in its own order (``scenario/registry.py``).
"""
