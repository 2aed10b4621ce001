"""The version of lcam: the one place it is defined (pyproject.toml reads it)."""

__version__ = "0.1.0"
"""The installed version of lcam (``lcam --version`` prints it)."""
