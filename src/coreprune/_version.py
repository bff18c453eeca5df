"""The version of coreprune (read by pyproject.toml and recorded in every checkpoint)."""

__version__ = "0.4.0"
