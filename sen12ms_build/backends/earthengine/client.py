"""A small client for the two Earth Engine REST methods of direct download:
``projects.value.compute`` and ``projects.image.computePixels``.

It speaks the same REST calls as ``ee.data.computeValue`` / ``ee.data.computePixels`` (the
body is the Cloud API ``Expression`` from ``ee.serializer.encode``) but keeps control of
what those hide: the HTTP status (429 vs 400), per-request timeouts, streaming with a size
cap, bounded concurrency across threads and retries with exponential backoff and full
jitter (honouring ``Retry-After``). Authorization comes from the ``requests`` session
(``google.auth.transport.requests.AuthorizedSession`` in production); headers and tokens are
never logged.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import requests
from urllib3.exceptions import HTTPError as Urllib3HTTPError

from .errors import (ComputeLimitError, DownloadError, EarthEngineAuthError,
                     EarthEngineRequestError, QuotaExhaustedError, TransientError, classify)

log = logging.getLogger(__name__)

#: The endpoint Google recommends for many parallel computePixels requests.
HIGH_VOLUME_URL = "https://earthengine-highvolume.googleapis.com"
API_VERSION = "v1"
#: HTTP statuses worth retrying: rate limit, server errors, gateway timeouts.
RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_ERROR_BODY_LIMIT = 65_536


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of one request.

    Attributes:
        max_retries: retries after the first attempt (so ``max_retries + 1`` attempts).
        backoff_base: seconds; attempt ``k`` (0-based) waits uniformly in
            ``[0, min(backoff_max, backoff_base * 2**k)]`` ("full jitter"), or at least the
            server's ``Retry-After``.
        backoff_max: seconds, cap of one wait.
        timeout: seconds to connect and between received bytes (``requests`` read timeout).
        max_timeout_retries: retries after a read time-out (at most ``max_retries``): a
            request that produced no byte for ``timeout`` seconds is likely too heavy, and
            every repeat burns the same compute, so few (default 1).
    """

    max_retries: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 64.0
    timeout: float = 300.0
    max_timeout_retries: int = 1

    def delay(self, attempt: int, retry_after: float | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait before retry number ``attempt + 1``."""
        cap = min(self.backoff_max, self.backoff_base * (2 ** attempt))
        wait = (rng or random).uniform(0.0, cap)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.backoff_max))
        return wait


def _error_message(body: bytes) -> str:
    """Earth Engine's message from a Google API error body, else the text itself."""
    text = body.decode("utf-8", "replace").strip()
    try:
        err = json.loads(text).get("error", {})
        return str(err.get("message") or err.get("status") or text)[:2000]
    except (ValueError, AttributeError):
        return text[:500] or "(empty response)"


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _read_body(resp: requests.Response, limit: int) -> bytes:
    """The whole body, checked against ``Content-Length`` and capped at ``limit`` bytes."""
    parts, n = [], 0
    for block in resp.iter_content(chunk_size=1 << 20):
        n += len(block)
        if n > limit:
            raise EarthEngineRequestError(resp.status_code, f"response exceeds {limit} bytes")
        parts.append(block)
    data = b"".join(parts)
    expected = resp.headers.get("Content-Length")
    if expected is not None and resp.headers.get("Content-Encoding") in (None, "identity"):
        if int(expected) != len(data):
            raise TransientError(f"truncated response: {len(data)} of {expected} bytes")
    return data


class RestClient:
    """``value:compute`` and ``image:computePixels`` against ``base_url`` for ``project``.

    Thread-safe: at most ``max_concurrency`` requests are in flight across all threads that
    share the client (a bounded semaphore), which keeps a run below the project's
    concurrent-request quota whatever the caller's thread count.
    """

    def __init__(self, base_url: str, project: str, session: requests.Session | None = None,
                 *, policy: RetryPolicy = RetryPolicy(), max_concurrency: int = 8,
                 workload_tag: str | None = None, api_version: str = API_VERSION,
                 user_agent: str | None = None, rng: random.Random | None = None,
                 sleep: Callable[[float], None] = time.sleep):
        self.base_url = base_url.rstrip("/")
        self.project = project
        self.session = session or requests.Session()
        self.policy = policy
        self.workload_tag = workload_tag
        self.api_version = api_version
        self._slots = threading.BoundedSemaphore(max(1, int(max_concurrency)))
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._headers = {"X-Goog-User-Project": project}
        try:
            import ee

            self._headers["X-Goog-Api-Client"] = f"ee-py/{ee.__version__} sen12ms-build"
        except ImportError:  # pragma: no cover - ee is a dependency
            pass
        if user_agent:
            self._headers["User-Agent"] = user_agent
        self.stats = {"requests": 0, "retries": 0, "bytes": 0}
        self._stats_lock = threading.Lock()

    def url(self, method: str) -> str:
        return f"{self.base_url}/{self.api_version}/projects/{self.project}/{method}"

    # -- public calls -----------------------------------------------------------------------

    def compute_value(self, expression: dict, what: str = "value:compute") -> Any:
        """The JSON ``result`` of evaluating ``expression``."""
        body = {"expression": expression}
        if self.workload_tag:
            body["workloadTag"] = self.workload_tag

        def parse(data: bytes) -> Any:
            try:
                return json.loads(data)["result"]
            except (ValueError, KeyError) as exc:
                raise TransientError(f"malformed value:compute response ({exc})") from None

        return self._call("value:compute", body, what, limit=64 << 20, parse=parse)

    def compute_pixels(self, expression: dict, grid: dict, *, what: str = "chunk",
                       limit: int = 64 << 20,
                       check: Callable[[bytes], None] | None = None) -> bytes:
        """GeoTIFF bytes of ``expression`` on ``grid`` (a REST ``PixelGrid``).

        ``check`` validates the bytes (complete GeoTIFF, expected shape) and raises
        :class:`TransientError` to have the request retried.
        """
        body = {"expression": expression, "fileFormat": "GEO_TIFF", "grid": grid}
        if self.workload_tag:
            body["workloadTag"] = self.workload_tag

        def parse(data: bytes) -> bytes:
            if check is not None:
                check(data)
            return data

        return self._call("image:computePixels", body, what, limit=limit, parse=parse)

    # -- the retry loop ---------------------------------------------------------------------

    def _attempt(self, method: str, body: dict, what: str, limit: int) -> bytes:
        with self._slots:
            with self._stats_lock:
                self.stats["requests"] += 1
            try:
                resp = self.session.post(self.url(method), json=body, headers=self._headers,
                                         timeout=(min(30.0, self.policy.timeout),
                                                  self.policy.timeout),
                                         stream=True)
            except requests.Timeout as exc:
                err = TransientError(f"timeout ({type(exc).__name__})")
                err.timeout = True  # type: ignore[attr-defined]
                raise err from None
            except requests.ConnectionError as exc:
                raise TransientError(f"connection failed ({type(exc).__name__})") from None
            try:
                if resp.status_code != 200:
                    msg = _error_message(resp.raw.read(_ERROR_BODY_LIMIT, decode_content=True)
                                         if resp.raw is not None else b"")
                    kind = classify(resp.status_code, msg)
                    if kind == "retry":
                        raise TransientError(f"HTTP {resp.status_code}: {msg}",
                                             _retry_after(resp))
                    if kind == "quota":
                        raise QuotaExhaustedError(
                            f"Earth Engine quota exhausted (HTTP {resp.status_code}): {msg}")
                    if kind == "split":
                        raise ComputeLimitError(resp.status_code, msg, what)
                    if kind == "auth":
                        raise EarthEngineAuthError(
                            f"Earth Engine refused the {what} (HTTP {resp.status_code}): {msg}. "
                            "Check the credentials (`earthengine authenticate`, or the "
                            "service-account key) and that the project is registered for "
                            "Earth Engine.")
                    raise EarthEngineRequestError(resp.status_code, msg, what)
                try:
                    data = _read_body(resp, limit)
                except (requests.RequestException, Urllib3HTTPError) as exc:
                    raise TransientError(f"download interrupted ({type(exc).__name__})") \
                        from None
            finally:
                resp.close()
        with self._stats_lock:
            self.stats["bytes"] += len(data)
        return data

    def _call(self, method: str, body: dict, what: str, *, limit: int,
              parse: Callable[[bytes], Any]) -> Any:
        last: TransientError | None = None
        timeouts = 0
        for attempt in range(self.policy.max_retries + 1):
            try:
                return parse(self._attempt(method, body, what, limit))
            except TransientError as exc:
                last = exc
                timeouts += bool(getattr(exc, "timeout", False))
                if attempt == self.policy.max_retries:
                    break
                if timeouts > self.policy.max_timeout_retries:
                    # a request that keeps producing nothing is too heavy: treat it as a
                    # compute limit (the downloader splits the chunk) instead of repeating it
                    raise ComputeLimitError(
                        408, f"{timeouts} read time-out(s) of {self.policy.timeout:g} s "
                        "(not retried further: each repeat burns the same compute)",
                        what) from None
                wait = self.policy.delay(attempt, exc.retry_after, self._rng)
                with self._stats_lock:
                    self.stats["retries"] += 1
                log.warning("%s: %s; retry %d/%d in %.1f s", what, exc, attempt + 1,
                            self.policy.max_retries, wait)
                self._sleep(wait)
        raise DownloadError(f"{what}: failed after {self.policy.max_retries + 1} attempt(s); "
                            f"last error: {last}")
