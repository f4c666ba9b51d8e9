"""Single source of the version string (read by pyproject.toml)."""

__version__ = "0.1.0"
