"""How an asset href of a profile is read: the GDAL path and options, SAS signing, and a cap
on concurrent requests per host.

* :data:`GDAL_HTTP` is the one place of GDAL's network settings (retries, timeouts, no
  directory listing on open, allowed extensions, block and curl caches); :func:`gdal_options`
  adds a profile's S3 settings and credentials for one product.
* :func:`gdal_path` rewrites an href into what GDAL opens: the profile's prefix rewrites,
  then ``s3://bucket/key`` -> ``/vsis3/bucket/key`` and ``http(s)://`` -> ``/vsicurl/``.
* :class:`Signer` signs Planetary Computer blob hrefs just before a read, through the
  ``planetary-computer`` package's token client (its endpoint is the profile's, so a test
  points it at loopback), and signs again after a 403 (an expired or revoked token).
* :func:`s3_session` hands S3 keys to rasterio; :func:`guard_instance_metadata` keeps GDAL
  from ever asking an EC2 metadata service for credentials.
* :func:`host_slot` is a semaphore per host: at most ``concurrent`` reads of one host at a
  time (CDSE allows 4 connections).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Any, Iterator
from urllib.parse import urlparse

from . import credentials
from .profiles import Profile, Signing

#: GDAL's network settings for every read of this backend (GDAL configuration options).
GDAL_HTTP: dict[str, Any] = {
    # open a file without listing its directory (a listing is one more request, and S3
    # buckets hold millions of keys)
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    # only these files are read through /vsicurl/ (no probing for .aux.xml, .ovr, .msk ...)
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF,.jp2,.JP2",
    # retries of a failed range request (429, 502, 503, 504 and timeouts), GDAL's own
    # exponential backoff from this delay
    "GDAL_HTTP_MAX_RETRY": "5",
    "GDAL_HTTP_RETRY_DELAY": "1",
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_TIMEOUT": "60",
    # range requests: merge neighbouring ones, fetch several in one request
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_INGESTED_BYTES_AT_OPEN": "65536",  # a COG header in one request
    # caches: decoded blocks (bytes: rasterio sets it with GDALSetCacheMax64) and fetched
    # bytes of /vsicurl/ (per process)
    "GDAL_CACHEMAX": 256 * 2**20,
    "VSI_CACHE": "TRUE",
    "VSI_CACHE_SIZE": str(32 * 2**20),
    "CPL_VSIL_CURL_CACHE_SIZE": str(128 * 2**20),
    "CPL_VSIL_CURL_CHUNK_SIZE": str(64 * 1024),
    # decode in the reading thread: GDAL's own decoding threads would not see the reading
    # thread's options (rasterio sets them thread-local in worker threads)
    "GDAL_NUM_THREADS": "1",
    # never ask an EC2 instance metadata service for credentials (GDAL falls back to it
    # when a read has no keys): the profiles' keys come from the environment only
    "CPL_AWS_EC2_API_ROOT_URL": "http://127.0.0.1:9",
}
#: Where GDAL's instance-metadata lookup goes instead (:func:`guard_instance_metadata`).
IMDS_GUARD = "http://127.0.0.1:9"

_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def http_options(timeout_s: float, retries: int) -> dict[str, Any]:
    """:data:`GDAL_HTTP` with a run's read timeout and retry count."""
    return {**GDAL_HTTP, "GDAL_HTTP_TIMEOUT": str(max(1, int(round(timeout_s)))),
            "GDAL_HTTP_MAX_RETRY": str(int(retries))}


def gdal_options(profile: Profile, kind: str, timeout_s: float = 60.0,
                 retries: int = 5) -> dict[str, Any]:
    """GDAL configuration options to read ``kind`` of ``profile``: :func:`http_options`,
    the S3 endpoint settings and, for ``s3-keys``, the keys (from the environment; never
    logged)."""
    opts = http_options(timeout_s, retries)
    s3 = profile.s3_for(kind)
    if s3.endpoint:
        opts["AWS_S3_ENDPOINT"] = s3.endpoint
    opts["AWS_VIRTUAL_HOSTING"] = "TRUE" if s3.virtual_hosting else "FALSE"
    opts["AWS_HTTPS"] = "YES" if s3.https else "NO"
    if s3.region:
        opts["AWS_REGION"] = s3.region
    if s3.requester_pays:
        opts["AWS_REQUEST_PAYER"] = "requester"
    if profile.auth_for(kind).kind != "s3-keys":
        opts["AWS_NO_SIGN_REQUEST"] = "YES"
    return opts


def s3_keys(profile: Profile, kind: str) -> dict[str, str]:
    """GDAL's ``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY`` of a product with
    ``s3-keys`` auth (from the environment; never logged), else nothing."""
    auth = profile.auth_for(kind)
    return credentials.values(auth) if auth.kind == "s3-keys" else {}


def s3_session(profile: Profile, kind: str) -> Any:
    """A rasterio session carrying the product's S3 keys (``s3-keys`` auth), else a session
    with none. rasterio takes AWS keys only through a session; it sets them, as every option
    of a :class:`rasterio.Env` entered in a worker thread, as *thread-local* GDAL options, so
    concurrent readers never see or clear each other's (hence ``GDAL_NUM_THREADS=1`` in
    :data:`GDAL_HTTP`: a GDAL decoding thread would not see them)."""
    from rasterio.session import DummySession, Session

    keys = s3_keys(profile, kind)
    if not keys:
        return DummySession()

    class KeySession(Session):
        """GDAL's AWS_* credential options from the profile's environment variables."""

        @classmethod
        def hascreds(cls, config: dict) -> bool:
            return True

        @property
        def credentials(self) -> dict:
            return dict(keys)

        def get_credential_options(self) -> dict:
            return dict(keys)

    return KeySession()


def guard_instance_metadata() -> None:
    """Point GDAL's EC2 instance-metadata lookup (its last resort when a ``/vsis3/`` read
    has no keys) at a closed loopback port, process-wide (an environment variable, which
    every GDAL thread reads): credentials come from the profiles only, and no request leaves
    for 169.254.169.254."""
    os.environ.setdefault("CPL_AWS_EC2_API_ROOT_URL", IMDS_GUARD)


def rewrite(href: str, rules: tuple[tuple[str, str], ...]) -> str:
    """``href`` with the first matching prefix rule applied."""
    for old, new in rules:
        if href.startswith(old):
            return new + href[len(old):]
    return href


def gdal_path(href: str, rules: tuple[tuple[str, str], ...] = ()) -> str:
    """What GDAL opens for ``href`` (see the module doc); a local path stays as it is."""
    href = rewrite(href, rules)
    if href.startswith("s3://"):
        return "/vsis3/" + href[len("s3://"):]
    if href.startswith(("http://", "https://")):
        return "/vsicurl/" + href
    if href.startswith("file://"):
        return href[len("file://"):]
    return href


def host_of(href: str) -> str:
    """The host an href is fetched from (``s3://bucket`` counts as the bucket's host)."""
    p = urlparse(href)
    return p.netloc or "local"


@contextlib.contextmanager
def host_slot(host: str, limit: int) -> Iterator[None]:
    """Hold one of ``limit`` slots of ``host`` while reading (blocks when all are taken)."""
    with _SLOTS_LOCK:
        sem = _SLOTS.get(f"{host}#{limit}")
        if sem is None:
            sem = _SLOTS[f"{host}#{limit}"] = threading.BoundedSemaphore(limit)
    with sem:
        yield


class Signer:
    """SAS signing of blob hrefs (Planetary Computer) with the ``planetary-computer``
    package's token client and cache (see the module doc)."""

    def __init__(self, signing: Signing):
        self.signing = signing
        self._lock = threading.Lock()

    def _container(self, href: str) -> tuple[str, str] | None:
        p = urlparse(href)
        parts = [x for x in p.path.split("/") if x]
        if self.signing.path_style:
            return (parts[0], parts[1]) if len(parts) >= 2 else None
        if not p.netloc.endswith(".blob.core.windows.net") or not parts:
            return None
        return p.netloc.split(".")[0], parts[0]

    def _settings(self) -> None:
        from planetary_computer.settings import Settings

        Settings.get().sas_url = self.signing.endpoint

    def sign(self, href: str, fresh: bool = False) -> str:
        """``href`` with a SAS token (a cached one unless ``fresh``); hrefs outside blob
        storage come back as they are. The token is remembered for redaction."""
        which = self._container(href)
        if which is None:
            return href
        from planetary_computer import sas

        with self._lock:
            self._settings()
            if fresh:
                sas.TOKEN_CACHE.pop(f"{self.signing.endpoint}/{which[0]}/{which[1]}", None)
            token = sas.get_token(*which)
        credentials.remember(token.token)
        for part in token.token.split("&"):  # the signature alone too
            if part.startswith("sig="):
                credentials.remember(part[4:])
        return f"{href.split('?', 1)[0]}?{token.token}"
