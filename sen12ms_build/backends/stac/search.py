"""STAC item search with ``pystac-client``: a bounding box and a period, paged, retried.

:func:`search` pages through ``/search`` (POST, as STAC APIs prefer) with
:class:`pystac_client.stac_api_io.StacApiIO`: its requests session retries with urllib3's
:class:`~urllib3.util.Retry` -- connection errors, read timeouts and HTTP 429/500/502/503/504,
with exponential backoff, honouring ``Retry-After`` -- on every method (a search is a POST).
Item ids stay unique across pages (a page boundary that moves while paging repeats items),
and :func:`.dedup.drop_duplicates` then keeps one item per acquisition. A search that still
fails is one :class:`SearchError` line naming the endpoint and collection (credentials and
query strings stripped).
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ...errors import Sen12msError
from .credentials import redact
from .dedup import Dropped, drop_duplicates

log = logging.getLogger(__name__)

#: HTTP statuses a search retries (429 too many requests, 5xx server trouble).
RETRY_STATUSES = (429, 500, 502, 503, 504)
#: Backoff: ``factor * 2 ** (retry - 1)`` seconds, at most ``BACKOFF_MAX_S`` (a
#: ``Retry-After`` header wins).
BACKOFF_FACTOR = 0.5
BACKOFF_MAX_S = 60.0


class SearchError(Sen12msError, RuntimeError):
    """A STAC search failed after its retries (one line)."""


@dataclass
class SearchResult:
    """Items found (one per acquisition, in the API's order) and what was left out."""

    items: list[Mapping[str, Any]]
    dropped: list[Dropped] = field(default_factory=list)
    repeated: int = 0  # items a later page repeated
    pages: int = 0


def _cause(text: str) -> str:
    """The short cause inside a wrapped connection error (``Connection refused``,
    ``Read timed out`` ...)."""
    import re

    m = re.search(r"\[Errno -?\d+\] ([^\"')]+)", text) or \
        re.search(r"(Read timed out|Connection aborted|Connection reset[^\"')]*)", text)
    return m.group(1).strip() if m else redact(text.splitlines()[0] if text else "")[:120]


def retry_policy(retries: int) -> Any:
    """The urllib3 :class:`Retry` of every STAC request (see the module doc)."""
    from urllib3.util import Retry

    return Retry(total=retries, connect=retries, read=retries, status=retries,
                 backoff_factor=BACKOFF_FACTOR, backoff_max=BACKOFF_MAX_S,
                 status_forcelist=RETRY_STATUSES, allowed_methods=None,
                 respect_retry_after_header=True, raise_on_status=False)


def stac_io(timeout_s: float, retries: int, headers: Mapping[str, str] | None = None) -> Any:
    """A :class:`pystac_client.stac_api_io.StacApiIO` with :func:`retry_policy`, a
    (connect, read) timeout and optional headers (e.g. an Earthdata bearer token)."""
    from pystac_client.stac_api_io import StacApiIO

    return StacApiIO(headers=dict(headers or {}), timeout=(min(timeout_s, 10.0), timeout_s),
                     max_retries=retry_policy(retries))


def datetime_range(start: dt.date, end: dt.date) -> str:
    """``[start, end]`` (inclusive dates, UTC) as a STAC datetime interval."""
    return f"{start.isoformat()}T00:00:00Z/{end.isoformat()}T23:59:59Z"


def search(endpoint: str, collection: str, bbox: Sequence[float], start: dt.date,
           end: dt.date, *, timeout_s: float = 30.0, retries: int = 5, page_size: int = 100,
           headers: Mapping[str, str] | None = None, dedup: bool = True) -> SearchResult:
    """Every item of ``collection`` intersecting ``bbox`` (lon/lat) sensed in
    ``[start, end]``, paged.

    Returns:
        :class:`SearchResult`; items in the API's order, one per acquisition when
        ``dedup``.

    Raises:
        SearchError: the API could not be reached or kept failing after ``retries``.
    """
    import requests
    from pystac_client import Client
    from pystac_client.exceptions import APIError

    where = f"STAC search at {redact(endpoint)} ({collection})"
    seen: dict[str, Mapping[str, Any]] = {}
    repeated = pages = 0
    try:
        client = Client.open(endpoint, stac_io=stac_io(timeout_s, retries, headers))
        found = client.search(collections=[collection], bbox=list(bbox),
                              datetime=datetime_range(start, end), limit=page_size,
                              method="POST")
        for page in found.pages_as_dicts():
            pages += 1
            for feat in page.get("features", []):
                if feat["id"] in seen:
                    repeated += 1
                    continue
                seen[feat["id"]] = feat
    except APIError as exc:
        status = getattr(exc, "status_code", None)
        if status is None:  # pystac-client wraps connection errors and timeouts too
            raise SearchError(f"{where} failed after {retries} retries: unreachable "
                              f"({_cause(str(exc))}); finished work is kept, run the same "
                              "command again to resume") from None
        detail = redact(str(exc).splitlines()[0] if str(exc).strip() else "")[:200]
        raise SearchError(f"{where} failed (HTTP {status} after {retries} retries"
                          f"{': ' + detail if detail.strip() else ''}); finished work is "
                          "kept, run the same command again to resume") from None
    except requests.exceptions.RequestException as exc:
        raise SearchError(f"{where} failed after {retries} retries: "
                          f"{type(exc).__name__}: {redact(str(exc))[:200]}") from None
    items = list(seen.values())
    if repeated:
        log.info("%s: %d item(s) repeated across pages, kept once", where, repeated)
    dropped: list[Dropped] = []
    if dedup:
        items, dropped = drop_duplicates(items)
        for d in dropped:
            log.info("%s: dropped %s", where, d.line())
    return SearchResult(items, dropped, repeated, pages)
