"""Errors meant for people.

Every mistake a user can make (a bad path, a bad value, a corrupt file) raises a subclass of
:class:`DistferError` whose message names the file or value and says how to fix it. The CLI
prints that message without a traceback and exits with status 2; anything else is a bug and
keeps its traceback.
"""

from __future__ import annotations


class DistferError(Exception):
    """Base class of user-facing errors (bad input, bad config, missing files)."""


class ConfigError(DistferError, ValueError):
    """A configuration key or value is unknown, of the wrong type, or out of range."""


class DataError(DistferError, ValueError):
    """An input dataset, store, embedding or checkpoint is missing, corrupt or inconsistent."""
