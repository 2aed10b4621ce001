"""Errors raised when a data set is missing, incomplete or corrupt.

Every message names the path that was looked at, the layout that was expected there
and how to obtain the data, so that a failed run tells the user what to do next.
Catch :class:`DatasetError` to handle both kinds.
"""

from __future__ import annotations


class DatasetError(Exception):
    """Base class: a data set could not be loaded from disk."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The data set (or one of its files) is not where it was looked for."""


class DatasetCorruptError(DatasetError, ValueError):
    """The files exist but do not have the expected content."""


class DatasetDependencyError(DatasetError, ImportError):
    """A package that a data set needs is not installed; the message names the extra."""
