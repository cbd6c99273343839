"""Configuration: defaults in ``default.py``, overridable by the environment (DESIGN §5)."""
