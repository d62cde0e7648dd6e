"""DATABASE_URL for PostgreSQL: the asyncpg form, and the pool settings it may carry."""

from __future__ import annotations

from typing import Final

from sqlalchemy.engine import URL, make_url

# Pool settings, overridable by DATABASE_URL query parameters of the same name.
POOL_DEFAULTS: Final[dict[str, float]] = {
    "pool_size": 10,
    "max_overflow": 5,
    "pool_timeout": 10.0,
    "pool_recycle": 1800.0,
    "connect_timeout": 5.0,
    "command_timeout": 60.0,
}
_INT_SETTINGS: Final = ("pool_size", "max_overflow")


def driver_url(url: str) -> tuple[URL, dict[str, float]]:
    """The asyncpg form of a ``postgresql://`` or ``postgres://`` URL, and the pool settings it carries.

    ``sslmode`` (libpq's name) becomes asyncpg's ``ssl``; pool settings are taken out of the query.
    """
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    query = dict(parsed.query)
    settings = dict(POOL_DEFAULTS)
    for key in POOL_DEFAULTS:
        if key in query:
            raw = query.pop(key)
            value = raw[-1] if isinstance(raw, tuple) else raw
            try:
                settings[key] = int(value) if key in _INT_SETTINGS else float(value)
            except ValueError:
                raise ValueError(f"DATABASE_URL: {key} must be a number, not {value!r}") from None
    if "sslmode" in query:
        query["ssl"] = query.pop("sslmode")
    return parsed.set(drivername="postgresql+asyncpg", query=query), settings


def listener_dsn(url: URL) -> tuple[str, str | None]:
    """The plain libpq form of an asyncpg URL (for a bare asyncpg connection), and its ``ssl``."""
    query = dict(url.query)
    ssl = query.pop("ssl", None)
    dsn = url.set(drivername="postgresql", query=query).render_as_string(hide_password=False)
    return dsn, None if ssl is None else str(ssl[-1] if isinstance(ssl, tuple) else ssl)
