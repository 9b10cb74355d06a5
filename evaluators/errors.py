"""Error types of the proxy task.

One class for bad user input (missing files, unreadable annotation JSON) so that the CLI can turn
every such failure into a one-line message with exit status 2 instead of a traceback.
"""

from __future__ import annotations

from nas.core.errors import GradpathError


class DataError(GradpathError):
    """A dataset path or file that cannot be used (missing, unreadable, not COCO format)."""
