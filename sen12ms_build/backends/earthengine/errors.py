"""Exceptions of the Earth Engine backend. Messages carry Earth Engine's own error text and
never credentials."""

from __future__ import annotations

from ...errors import Sen12msError


class EarthEngineError(Sen12msError, RuntimeError):
    """Base class: something failed on the way to or on Earth Engine."""


class EarthEngineAuthError(EarthEngineError):
    """Credentials or project missing or rejected; the message says what to run."""


class EarthEngineRequestError(EarthEngineError):
    """Earth Engine refused a request in a way retrying cannot fix (400, 403, 404 ...)."""

    def __init__(self, status: int, message: str, what: str = "request"):
        self.status = status
        self.ee_message = message
        super().__init__(f"Earth Engine rejected the {what} (HTTP {status}): {message}")


class TransientError(EarthEngineError):
    """A failure worth retrying: 429, 5xx, timeout, dropped connection, truncated body."""

    def __init__(self, reason: str, retry_after: float | None = None):
        self.retry_after = retry_after
        super().__init__(reason)


class DownloadError(EarthEngineError):
    """A request still failed after every retry."""


class BatchTaskError(EarthEngineError):
    """An export task failed or was cancelled on Earth Engine."""


class ComputeLimitError(EarthEngineRequestError):
    """Earth Engine gave up on a request's computation (HTTP 400 "Computation timed out.",
    "User memory limit exceeded.", "Too many concurrent aggregations.", or a response
    above the 48 MiB limit): the same request fails again, a smaller one may not. The
    downloader splits the chunk in four (:mod:`.download`)."""


class QuotaExhaustedError(EarthEngineError):
    """The project's compute or request quota for the day or month is used up: nothing
    succeeds until it resets. Stops the run; the same command resumes it."""


class BatchFallback(EarthEngineError):
    """A chunk still hit a compute limit at the smallest allowed size: the scene must be
    exported by a batch task instead (see ``EarthEngineOptions.min_chunk_px``)."""


#: Earth Engine's own messages (HTTP 400, status INVALID_ARGUMENT) for computations that
#: exceed an interactive limit; each quoted from a public report:
#: "Computation timed out." (gee-community/geemap#1790, Open-EO/openeo-earthengine-driver#18),
#: "User memory limit exceeded." (gee-community/geemap#1465),
#: "Too many concurrent aggregations." (named by the Earth Engine issue of this project; not
#: found verbatim in the searched corpora, kept because it is the same kind of limit),
#: "Total request size (56623104 bytes) must be less than or equal to 50331648 bytes."
#: (google/Xee#50), "Earth Engine memory capacity exceeded." (openearth/hydro-engine#35).
COMPUTE_LIMIT_MESSAGES = (
    "computation timed out",
    "user memory limit exceeded",
    "too many concurrent aggregations",
    "total request size",
    "memory capacity exceeded",
)
#: Fragments of a 429 that will not clear by waiting minutes: a daily or monthly quota
#: (the Google API quota format quoted in gee-community/qgis-earthengine-plugin#202:
#: "Quota exceeded for quota metric 'Number of read requests' and limit 'Number of read
#: requests per minute per user' ..." -- a per-minute limit, hence retried -- with a daily
#: or monthly limit instead) or EECU compute time (the noncommercial monthly tiers).
QUOTA_EXHAUSTED_MESSAGES = ("per day", "per month", "eecu")


def classify(status: int, message: str) -> str:
    """Which kind of failure an Earth Engine HTTP error is.

    Returns:
        ``"retry"`` (429 rate limits, 408, 5xx: wait and repeat the same request),
        ``"split"`` (400 with a compute-limit message: a smaller request may succeed),
        ``"quota"`` (429 of a daily/monthly quota: stop the run, resume later),
        ``"auth"`` (401, 403) or ``"final"`` (anything else: bad asset, bad argument).
    """
    text = (message or "").lower()
    if status == 429:
        return "quota" if any(m in text for m in QUOTA_EXHAUSTED_MESSAGES) else "retry"
    if status in (408, 500, 502, 503, 504):
        return "retry"
    if status in (401, 403):
        return "auth"
    if status == 400 and any(m in text for m in COMPUTE_LIMIT_MESSAGES):
        return "split"
    return "final"
