"""Database and webhook URLs as users type them: the asyncio driver filled in, secrets masked for logs.

Pure string work (no database library): the configuration loader, the store and the commands share it.
"""

from __future__ import annotations

import re
import urllib.parse

_DRIVERS = {"sqlite": "sqlite+aiosqlite", "sqlite+aiosqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
            "postgres": "postgresql+asyncpg", "postgresql+asyncpg": "postgresql+asyncpg"}


def db_url(text: str) -> str:
    """A database URL from what a user typed: a plain path is an SQLite file; ``sqlite://``/``postgresql://``
    get their asyncio driver. Anything else is returned as it is (and rejected by :func:`validate`)."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return f"sqlite+aiosqlite:///{text}" if text else text
    driver = _DRIVERS.get(scheme.lower())
    return f"{driver}://{rest}" if driver else text


def sqlite_path(url: str) -> str | None:
    """The file of an SQLite URL (None for other databases and for ``:memory:``)."""
    scheme, _, rest = db_url(url).partition("://")
    if scheme != "sqlite+aiosqlite" or not rest.startswith("/"):
        return None
    path = rest[1:].partition("?")[0]
    return None if path in ("", ":memory:") or path.startswith("file:") else path


def check_url(url: str) -> list[str]:
    """Problems with a database URL (``store.url: ...`` lines); empty when it is usable."""
    scheme, sep, _ = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return [f"store.url: not a database URL: {mask_url(url)!r}"]
    if scheme not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        return [f"store.url: driver {scheme!r} unsupported: use sqlite+aiosqlite:// or postgresql+asyncpg://"]
    if scheme == "postgresql+asyncpg":
        try:
            urllib.parse.urlsplit(url).port  # noqa: B018 - evaluated for its ValueError on a bad port
        except ValueError:
            netloc = urllib.parse.urlsplit(url).netloc.rpartition("@")[2]
            return [f"store.url: bad port in {netloc!r}: a number from 1 to 65535"]
    return []


_QUERY_SECRET = re.compile(r"([?&](?:password|passwd|pwd|secret|token|sslpassword)=)[^&#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with its password (``user:password@`` or a ``?password=`` parameter) replaced by ``***``."""
    url = _QUERY_SECRET.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    colon = rest.find(":")
    if not sep or at < 0 or not 0 <= colon < at:  # no user:password@ part
        return url
    return f"{scheme}://{rest[:colon]}:***{rest[at:]}"


def mask_webhook(url: str) -> str:
    """Only scheme and host of a webhook URL: chat webhooks carry their credential in the path."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***" if url else ""
    return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}/***"
