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
