"""The one base of every user-facing error (the way ``optuna.exceptions.OptunaError`` is).

Each layer defines its own errors next to the code that raises them (``GraphError`` in the IR,
``ConfigError`` in the search space, ``DataError`` in the evaluators, ``SearchError`` in the
engine); all derive from :class:`GradpathError`, so the CLI catches that one type and prints its
message as one line with exit status 2. They are also ``ValueError``\\ s, so plain Python callers
that expect one keep working.

>>> issubclass(UsageError, GradpathError) and issubclass(UsageError, ValueError)
True
"""

from __future__ import annotations


class GradpathError(ValueError):
    """A problem with the user's input; its message is one line meant for the user."""


class UsageError(GradpathError):
    """Bad input anywhere under the CLI (a flag, a path, a factory)."""
