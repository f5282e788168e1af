"""Credentials of the STAC profiles: read from the environment or ``.netrc``, never printed.

A profile's :class:`~.profiles.Auth` names the environment variables (or the ``.netrc``
machine) it needs; :func:`missing` says, in one line, what to set when they are absent (the
config loader turns that into a ``ConfigError``), :func:`values` hands the secrets to GDAL or
an HTTP session and nothing else. :func:`redact` is applied to every text this backend
writes or logs that may hold a URL or an error message: query strings (SAS tokens, signed
parameters) and user info are cut from URLs, and any known secret value is masked.
"""

from __future__ import annotations

import logging
import netrc
import os
import re
import threading
from pathlib import Path

from .profiles import Auth

REDACTED = "<redacted>"
_SEEN: set[str] = set()  # secret values met so far (env values, netrc passwords, tokens)
_LOCK = threading.Lock()
_URL = re.compile(r"((?:https?|s3)://)([^/\s?#@]+@)?([^\s?#\"'<>]*)(\?[^\s\"'<>]*)?")


def netrc_path() -> Path:
    """The ``.netrc`` file in use (``NETRC`` if set, else ``~/.netrc``)."""
    return Path(os.environ.get("NETRC") or Path.home() / ".netrc")


def netrc_entry(host: str) -> tuple[str, str] | None:
    """(login, password) of ``host`` in the ``.netrc`` file, or ``None``."""
    path = netrc_path()
    if not path.is_file():
        return None
    try:
        entry = netrc.netrc(str(path)).authenticators(host)
    except (netrc.NetrcParseError, OSError):
        return None
    if not entry or not entry[2]:
        return None
    remember(entry[2])
    return entry[0] or "", entry[2]


def missing(auth: Auth) -> str | None:
    """``None`` when ``auth`` is satisfied here, else what to set (one clause, no values)."""
    if auth.kind == "none":
        return None
    unset = [var for var in auth.env.values() if not os.environ.get(var)]
    if not unset:
        return None
    if auth.netrc_host and netrc_entry(auth.netrc_host):
        return None
    what = " and ".join(unset)
    alt = f" (or a {auth.netrc_host} entry in {netrc_path()})" if auth.netrc_host else ""
    return f"set {what}{alt}"


def values(auth: Auth) -> dict[str, str]:
    """role -> secret value for ``auth`` (from the environment, else ``.netrc``: for
    ``earthdata`` the netrc login and password as ``username``/``password``). The values are
    remembered for :func:`redact`."""
    out = {role: os.environ[var] for role, var in auth.env.items() if os.environ.get(var)}
    if len(out) < len(auth.env) and auth.netrc_host:
        entry = netrc_entry(auth.netrc_host)
        if entry:
            out = {"username": entry[0], "password": entry[1]}
    for v in out.values():
        remember(v)
    return out


def remember(secret: str) -> None:
    """Mask ``secret`` in everything :func:`redact` sees from now on."""
    if secret and len(secret) >= 4:
        with _LOCK:
            _SEEN.add(secret)


def strip_url(url: str) -> str:
    """``url`` without its query string and user info (``https://a/b.tif?sig=..`` ->
    ``https://a/b.tif``)."""
    return _URL.sub(lambda m: m.group(1) + m.group(3), url)


def redact(text: str) -> str:
    """``text`` with every URL's query string and user info removed and every known secret
    value replaced by ``<redacted>``."""
    text = _URL.sub(lambda m: m.group(1) + m.group(3), str(text))
    with _LOCK:
        secrets = sorted(_SEEN, key=len, reverse=True)
    for s in secrets:
        text = text.replace(s, REDACTED)
    return text


#: Loggers of the libraries this backend drives that may log a header, a URL or a token at
#: debug level (pystac-client logs every request's headers).
THIRD_PARTY_LOGGERS = ("pystac_client", "pystac_client.stac_api_io", "urllib3",
                       "urllib3.connectionpool", "earthaccess", "earthaccess.auth",
                       "earthaccess.store", "planetary_computer", "requests", "botocore",
                       "rasterio", "rasterio._env", "rasterio._base", "rasterio._io")


class RedactingFilter(logging.Filter):
    """Rewrites a record's message through :func:`redact` (query strings, known secrets)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            msg = record.getMessage()
        except Exception:  # pragma: no cover - a broken record stays as it is
            return True
        clean = redact(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactingFilter()


def install_log_filter() -> None:
    """Redact every record of this backend and of :data:`THIRD_PARTY_LOGGERS` (a filter on
    each logger: records are filtered where they are made)."""
    for name in ("sen12ms_build", "sen12ms_build.backends.stac", *THIRD_PARTY_LOGGERS):
        lg = logging.getLogger(name)
        if _FILTER not in lg.filters:
            lg.addFilter(_FILTER)
