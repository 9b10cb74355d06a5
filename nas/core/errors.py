"""User-facing error types: the CLI prints their message as one line and exits 2 (``nas.cli``).
Both are ValueErrors, so the functions behind the subcommands can raise them where plain Python
callers expect one."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input anywhere under the CLI (a flag, a path, a factory)."""


class SearchError(ValueError):
    """A user-facing search problem (bad options, storage that cannot be used, run in use)."""
