"""The version of lcam-jax: the one place it is defined (its pyproject.toml reads it)."""

__version__ = "0.1.0"
"""The installed version of lcam-jax."""
