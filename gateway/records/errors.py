"""The one archive error callers handle: the database could not be reached or used (try again later)."""

from __future__ import annotations


class ArchiveUnavailable(Exception):
    """The archive's database cannot be reached or used now; nothing was written. Retry later."""
