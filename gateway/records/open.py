"""``open_archive(url)``: the archive backend a ``[archive] url`` names (not started: call ``start``)."""

from __future__ import annotations

import re
import urllib.parse

from gateway.errors import ConfigError
from gateway.records.archive import Archive

_SCHEMA = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def open_archive(url: str) -> Archive:
    """``sqlite:///PATH`` (an absolute path after the third slash, ``sqlite:////var/lib/gw.sqlite3``, or
    relative to the working directory; the config makes ``[archive] url`` absolute) or
    ``postgresql://user@host:port/db[?schema=NAME]``. Raises ConfigError (key ``archive.url``) for
    anything else.
    """
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if not path or "?" in path or "\x00" in path:
            raise ConfigError("archive.url", "sqlite:///PATH needs a file path (no query)")
        from gateway.records.sqlite import SqliteArchive

        return SqliteArchive(path)
    if url.startswith(("postgresql://", "postgres://")):
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        schema = ""
        for key, value in query:
            if key == "schema":
                if not _SCHEMA.fullmatch(value):
                    raise ConfigError("archive.url", f"schema must be a lower-case SQL name, got {value!r}")
                schema = value
        dsn = urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(
            [(k, v) for k, v in query if k != "schema"])))
        from gateway.records.postgres import PostgresArchive

        return PostgresArchive(dsn, schema)
    raise ConfigError("archive.url", f"must be sqlite:///PATH or postgresql://…, got {url[:60]!r}")
