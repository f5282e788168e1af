"""Read assets straight onto a grid: windowed, one resampling, through GDAL's network drivers.

:class:`AssetReader` reads one band asset (a JP2 in a SAFE on S3, a COG over HTTP, a local
file) onto a target :class:`~sen12ms_build.geo.Grid` with GDAL's warper
(:class:`rasterio.vrt.WarpedVRT`): GDAL fetches only the blocks the grid needs (range
requests), resamples once from the native pixels, and excludes source nodata from the
kernels. It holds a host slot while reading (:func:`.access.host_slot`), signs Planetary
Computer hrefs just before opening and again after a 403, and sorts failures into two kinds:

* :class:`AssetProblem`: this asset is missing (404), truncated or undecodable -- the caller
  skips the acquisition and records item, asset and reason;
* :class:`SourceUnavailable`: the service is unreachable, keeps failing after GDAL's retries
  (429/5xx, timeouts) or refuses the credentials -- the run stops with one line and resumes
  later (finished scenes are kept).

:func:`read_stack` reads several bands of one acquisition concurrently and is all a
benchmark needs: band assets + grid -> (bands, H, W) array.
"""

from __future__ import annotations

import logging
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from ...errors import Sen12msError
from ...geo import Grid
from ...sar.product import read_radar_window
from . import access
from .credentials import redact
from .profiles import Profile

log = logging.getLogger(__name__)


class AssetProblem(Sen12msError, RuntimeError):
    """One asset could not be read (missing, truncated, undecodable); the acquisition is
    skipped and the problem recorded."""

    def __init__(self, item: str, asset: str, reason: str):
        self.item, self.asset, self.reason = item, asset, reason
        super().__init__(f"{item}: asset {asset}: {reason}")


class SourceUnavailable(Sen12msError, RuntimeError):
    """The source cannot be read now (unreachable, overloaded, refusing credentials): the
    run stops; run it again to resume."""


@dataclass(frozen=True)
class BandAsset:
    """One band of one acquisition to read.

    Attributes:
        item: the STAC item id (for problems).
        band: the dataset's band name.
        key: the asset key in the item.
        href: the asset's href as the item gives it (unsigned).
        resampling: rasterio resampling name onto the grid.
        offset_dn: added to valid DN after reading (Level-2A harmonization).
    """

    item: str
    band: str
    key: str
    href: str
    resampling: str = "bilinear"
    offset_dn: int = 0


_STATUS = re.compile(r"(?:HTTP (?:response )?code|HTTP error code|status)\D{0,5}(\d{3})",
                     re.IGNORECASE)
_UNREACHABLE = ("couldn't connect", "could not connect", "connection refused",
                "timed out", "timeout was reached", "failed to connect", "connection reset",
                "empty reply", "recv failure", "could not resolve", "server returned nothing")


def probe_status(url: str, timeout_s: float) -> int | str:
    """The HTTP status of a one-byte range GET of ``url`` (GDAL's errors rarely carry it),
    or the connection error's name."""
    import requests

    try:
        r = requests.get(url, headers={"Range": "bytes=0-0"}, timeout=timeout_s)
        r.close()
        return r.status_code
    except requests.exceptions.RequestException as exc:
        return type(exc).__name__


def classify(item: str, key: str, message: str, status: int | str | None = None
             ) -> Exception:
    """A GDAL error message (and the probed HTTP ``status``, when known) as
    :class:`AssetProblem` or :class:`SourceUnavailable`."""
    text = redact(message)
    low = text.lower()
    m = _STATUS.search(text)
    if isinstance(status, str):  # the probe could not connect either
        low += f" {status.lower()} could not connect"
        status = None
    elif status in (200, 206):  # the server has the file: it is damaged
        status = None
        low = low.replace("timed out", "").replace("connect", "")
    status = status or (int(m.group(1)) if m else None)
    if "accessdenied" in low.replace(" ", "") or "signaturedoesnotmatch" in low:
        status = 403
    if "nosuchkey" in low.replace(" ", ""):
        status = 404
    if status in (401, 403):
        return SourceUnavailable(f"{item}: asset {key}: access refused (HTTP {status}); "
                                 "check the profile's credentials")
    if status == 429 or (status is not None and status >= 500) or \
            any(s in low for s in _UNREACHABLE):
        return SourceUnavailable(f"{item}: asset {key}: source unavailable after retries "
                                 f"({text.splitlines()[0][:160]}); finished work is kept, "
                                 "run the same command again to resume")
    if status == 404 or "does not exist" in low or "no such file" in low:
        return AssetProblem(item, key, "missing (HTTP 404)" if status == 404 else "missing")
    return AssetProblem(item, key, f"unreadable ({text.splitlines()[0][:160]})")


class AssetReader:
    """Reads the assets of one profile's product kind (see the module doc).

    Args:
        profile: the source profile.
        kind: the product kind (its access settings: S3, credentials, rewrites).
        timeout_s, retries: GDAL's per-request timeout and retry count.
        max_concurrent: reads of one host at a time when the profile publishes no limit.
    """

    def __init__(self, profile: Profile, kind: str, timeout_s: float = 60.0,
                 retries: int = 5, max_concurrent: int = 8):
        self.profile, self.kind = profile, kind
        self.timeout_s = timeout_s
        self.options = access.gdal_options(profile, kind, timeout_s, retries)
        self.session = access.s3_session(profile, kind)
        access.guard_instance_metadata()
        self.rules = profile.rewrite_for(kind)
        self.limit = min(profile.quotas.concurrent or max_concurrent, max_concurrent)
        self.signer = access.Signer(profile.signing) if profile.signing else None
        self._pools: dict[int, ThreadPoolExecutor] = {}
        self._pools_lock = threading.Lock()

    def pool(self, threads: int) -> ThreadPoolExecutor:
        """A thread pool of ``threads`` workers kept for this reader's lifetime: its threads
        keep their GDAL state and HTTP connections from one acquisition to the next (a pool
        per call would open new connections each time)."""
        with self._pools_lock:
            if threads not in self._pools:
                self._pools[threads] = ThreadPoolExecutor(
                    max_workers=threads, thread_name_prefix=f"stac-read-{self.profile.name}")
            return self._pools[threads]

    def env(self) -> rasterio.Env:
        """The GDAL environment of a read: settings, S3 endpoint and keys (thread-local in a
        worker thread, see :func:`.access.s3_session`)."""
        return rasterio.Env(session=self.session, **self.options)

    def open_path(self, href: str, fresh: bool = False) -> str:
        """The GDAL path of ``href``, signed when the profile signs."""
        if self.signer is not None:
            href = self.signer.sign(href, fresh=fresh)
        return access.gdal_path(href, self.rules)

    def read(self, asset: BandAsset, grid: Grid, dtype: str, nodata: float) -> np.ndarray:
        """``asset`` resampled onto ``grid``: (H, W) of ``dtype``, ``nodata`` outside the
        asset's footprint; ``offset_dn`` added to valid pixels.

        Raises:
            AssetProblem, SourceUnavailable: see the module doc.
        """
        arr = self._opened(asset, lambda path: self._warp(path, grid, asset.resampling,
                                                          dtype, nodata))
        if asset.offset_dn:
            from .harmonize import apply_offset

            arr = apply_offset(arr, asset.offset_dn)
        return arr

    def read_window(self, asset: BandAsset, rows: slice, cols: slice) -> np.ndarray:
        """Rows and columns of ``asset``'s first band as stored, no georeferencing needed
        (a Sentinel-1 GRD measurement in radar geometry: GCPs, no CRS): (h, w) of the
        file's dtype. Only the blocks of the window are fetched.

        Raises:
            AssetProblem, SourceUnavailable: see the module doc; AssetProblem also for a
                window outside the raster.
        """
        def window(path: str) -> np.ndarray:
            try:
                return read_radar_window(path, rows, cols)
            except IndexError as exc:
                raise AssetProblem(asset.item, asset.key, str(exc)) from None

        return self._opened(asset, window)

    def _opened(self, asset: BandAsset, read: Any) -> np.ndarray:
        """``read(gdal_path)`` in the profile's GDAL environment while holding a host slot;
        signed again once after a 403; GDAL errors sorted (:func:`classify`)."""
        host = access.host_of(access.rewrite(asset.href, self.rules))
        for attempt in (0, 1):
            path = self.open_path(asset.href, fresh=attempt > 0)
            try:
                with access.host_slot(host, self.limit), self.env():
                    return read(path)
            except rasterio.errors.RasterioError as exc:
                url = path[len("/vsicurl/"):] if path.startswith("/vsicurl/") else None
                status = probe_status(url, self.timeout_s) if url else None
                err = classify(asset.item, asset.key, str(exc), status)
                if (attempt == 0 and self.signer is not None
                        and isinstance(err, SourceUnavailable) and "HTTP 403" in str(err)):
                    log.info("%s: asset %s: HTTP 403, signing again (token expired?)",
                             asset.item, asset.key)
                    continue
                raise err from None
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _warp(path: str, grid: Grid, method: str, dtype: str, nodata: float) -> np.ndarray:
        with rasterio.open(path) as src:
            if src.crs is None:
                raise rasterio.errors.RasterioIOError(f"{path}: no CRS (not georeferenced)")
            src_nodata = src.nodata if src.nodata is not None else nodata
            fast = aligned_read(src, grid, method, dtype, nodata)
            if fast is not None:
                return fast
            with WarpedVRT(src, crs=grid.crs, transform=grid.transform, width=grid.width,
                           height=grid.height, resampling=Resampling[method],
                           src_nodata=src_nodata, nodata=nodata, dtype=dtype,
                           warp_extras={"INIT_DEST": "NO_DATA"}) as vrt:
                return vrt.read(1)


def aligned_read(src: Any, grid: Grid, method: str, dtype: str, nodata: float
                 ) -> np.ndarray | None:
    """``src`` band 1 on ``grid`` without GDAL's warper, when the warper would only copy or
    repeat whole source pixels: the same CRS, both grids north-up, the source pixel ``k``
    target pixels wide (``k`` a whole number), the target's pixel edges on the source's
    10 m lattice, and ``nearest`` resampling (or any, when ``k`` is 1: a kernel centred on
    a source pixel is that pixel). The blocks of the window are read once and each pixel
    repeated ``k`` x ``k`` times: exactly what the warper gives (tests compare the two),
    with a fraction of its work. ``None`` when the grids do not line up so.

    Returns:
        (H, W) of ``dtype``, ``nodata`` outside the source and on its nodata pixels.
    """
    s, g = src.transform, grid.transform
    if s.b or s.d or g.b or g.d or s.a <= 0 or s.e >= 0 or g.a <= 0 or g.e >= 0:
        return None
    if not np.can_cast(np.dtype(src.dtypes[0]), np.dtype(dtype), "safe"):
        return None
    kx, ky = s.a / g.a, -s.e / -g.e
    k = round(kx)
    if k < 1 or abs(kx - k) > 1e-9 or abs(ky - k) > 1e-9 or (k > 1 and method != "nearest"):
        return None
    ox, oy = (g.c - s.c) / g.a, (s.f - g.f) / -g.e  # target origin in target pixels
    if abs(ox - round(ox)) > 1e-6 or abs(oy - round(oy)) > 1e-6:
        return None
    if src.crs != rasterio.crs.CRS.from_user_input(grid.crs):
        return None
    ox, oy = int(round(ox)), int(round(oy))
    # source pixels covering the target (in source pixels), clipped to the raster
    c0, r0 = ox // k, oy // k
    c1, r1 = -(-(ox + grid.width) // k), -(-(oy + grid.height) // k)
    cc0, rr0 = max(c0, 0), max(r0, 0)
    cc1, rr1 = min(c1, src.width), min(r1, src.height)
    out = np.full(grid.shape, nodata, dtype)
    if cc1 <= cc0 or rr1 <= rr0:
        return out
    from rasterio.windows import Window

    block = src.read(1, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
    src_nodata = src.nodata
    if k > 1:  # each source pixel k x k times, in one copy
        h, w = block.shape
        block = np.broadcast_to(block[:, None, :, None], (h, k, w, k)).reshape(h * k, w * k)
    # where the read block lands in the target, in target pixels
    x0, y0 = cc0 * k - ox, rr0 * k - oy
    tx0, ty0 = max(x0, 0), max(y0, 0)
    tx1, ty1 = min(x0 + block.shape[1], grid.width), min(y0 + block.shape[0], grid.height)
    part = block[ty0 - y0:ty1 - y0, tx0 - x0:tx1 - x0]
    if src_nodata is not None and not (src_nodata == nodata or
                                       (np.isnan(src_nodata) and np.isnan(nodata))):
        part = np.where(part == src_nodata if not np.isnan(src_nodata) else np.isnan(part),
                        nodata, part)
    out[ty0:ty1, tx0:tx1] = part
    return out


def read_stack(reader: AssetReader, assets: Sequence[BandAsset], grid: Grid,
               dtype: str = "uint16", nodata: float = 0, threads: int = 4) -> np.ndarray:
    """Every asset of one acquisition onto ``grid``, concurrently (at most ``threads`` at a
    time, and at most the host's slots): (len(assets), H, W) of ``dtype``.

    Raises:
        AssetProblem, SourceUnavailable: the first failure, in band order.
    """
    out = np.empty((len(assets), *grid.shape), dtype)
    pool = reader.pool(max(1, threads))
    futures = [pool.submit(reader.read, a, grid, dtype, nodata) for a in assets]
    try:
        for i, fut in enumerate(futures):
            out[i] = fut.result()
    finally:
        for fut in futures:  # a failure: the rest need not run
            fut.cancel()
    return out


def read_acquisitions(reader: AssetReader, stacks: Sequence[Sequence[BandAsset]], grid: Grid,
                      dtype: str = "uint16", nodata: float = 0, threads: int = 8
                      ) -> np.ndarray:
    """Every band of several acquisitions onto ``grid``, all in one pool (at most
    ``threads`` reads at a time, and at most the host's slots): (acquisitions, bands, H, W)
    of ``dtype``.

    Raises:
        AssetProblem, SourceUnavailable: the first failure, in acquisition and band order.
    """
    n = max((len(s) for s in stacks), default=0)
    out = np.full((len(stacks), n, *grid.shape), nodata, dtype)
    pool = reader.pool(max(1, threads))
    futures = [(i, k, pool.submit(reader.read, a, grid, dtype, nodata))
               for i, s in enumerate(stacks) for k, a in enumerate(s)]
    try:
        for i, k, fut in futures:
            out[i, k] = fut.result()
    finally:
        for _, _, fut in futures:
            fut.cancel()
    return out
