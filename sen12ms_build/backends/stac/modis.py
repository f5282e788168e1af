"""MODIS MCD12Q1 land cover from NASA Earthdata: whole HDF4 granules, cached by checksum, the
paper's four layers read with ``pyhdf`` on the sinusoidal grid of the file's own metadata.

HDF4 cannot be read by ranges over HTTP and rasterio's wheels carry no HDF4 driver, so a
granule is downloaded whole (an authenticated ``requests`` session from ``earthaccess``:
an ``EARTHDATA_TOKEN``, or the ``.netrc`` login) into the cache, atomically, and kept under
its SHA-256 (:class:`GranuleCache`); a later scene or run reuses it without a request.
:func:`read_granule` reads a window of ``LC_Type1``, ``LC_Prop1``, ``LC_Prop2`` and
``LC_Prop3`` (:data:`~sen12ms_build.products.LC_MODIS_BANDS`) and georeferences it from the
HDF-EOS2 ``StructMetadata.0`` (``UpperLeftPointMtrs``, ``LowerRightMtrs``, ``XDim``,
``YDim``, ``ProjParams``' sphere radius); :func:`lc_on_grid` warps the granules with nearest
onto the scene grid.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from affine import Affine
from pyproj import Transformer

from ...geo import Grid
from ...products import LC, LC_MODIS_BANDS
from ...raster.io import atomic_path, atomic_write_text
from .credentials import redact, strip_url
from .reader import AssetProblem, SourceUnavailable

log = logging.getLogger(__name__)

#: MCD12Q1's fill value (uint8), the land cover's nodata.
FILL = 255
CHUNK = 1 << 20


@dataclass(frozen=True)
class SinusoidalGrid:
    """A granule's grid from its StructMetadata: size, upper-left corner and pixel size in
    metres, and the sphere's radius."""

    width: int
    height: int
    ul: tuple[float, float]
    lr: tuple[float, float]
    radius: float

    @property
    def crs(self) -> str:
        return f"+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R={self.radius} +units=m +no_defs"

    @property
    def transform(self) -> Affine:
        rx = (self.lr[0] - self.ul[0]) / self.width
        ry = (self.ul[1] - self.lr[1]) / self.height
        return Affine(rx, 0.0, self.ul[0], 0.0, -ry, self.ul[1])


def parse_struct_metadata(text: str) -> SinusoidalGrid:
    """The grid of an HDF-EOS2 ``StructMetadata.0`` (first grid).

    Raises:
        ValueError: not a sinusoidal HDF-EOS grid.
    """
    def one(pattern: str) -> str:
        m = re.search(pattern, text)
        if not m:
            raise ValueError(f"StructMetadata has no {pattern.split('=')[0]}")
        return m.group(1)

    proj = one(r"Projection=(\w+)")
    if proj not in ("GCTP_SNSOID", "HDFE_SNSOID"):
        raise ValueError(f"StructMetadata: projection {proj}, expected GCTP_SNSOID")
    ul = tuple(float(v) for v in one(r"UpperLeftPointMtrs=\(([^)]*)\)").split(","))
    lr = tuple(float(v) for v in one(r"LowerRightMtrs=\(([^)]*)\)").split(","))
    radius = float(one(r"ProjParams=\(([^,)]*)"))
    return SinusoidalGrid(int(one(r"XDim=(\d+)")), int(one(r"YDim=(\d+)")),
                          (ul[0], ul[1]), (lr[0], lr[1]), radius)


def read_granule(path: Path, grid: Grid | None = None, margin_px: int = 2
                 ) -> tuple[np.ndarray, Affine, str]:
    """The four layers of an MCD12Q1 granule: (4, h, w) uint8 (255 fill), its transform and
    CRS. With ``grid``, only the window covering it (plus ``margin_px``) is read.

    Raises:
        AssetProblem: not an MCD12Q1 HDF4 file, or a layer is missing.
    """
    from pyhdf.error import HDF4Error
    from pyhdf.SD import SD, SDC

    try:
        sd = SD(str(path), SDC.READ)
    except HDF4Error as exc:
        raise AssetProblem(path.name, "data", f"not a readable HDF4 file ({exc})") from None
    try:
        attrs = sd.attributes()
        meta = "".join(str(attrs[k]) for k in sorted(attrs) if k.startswith("StructMetadata"))
        try:
            g = parse_struct_metadata(meta)
        except ValueError as exc:
            raise AssetProblem(path.name, "data", str(exc)) from None
        r0, r1, c0, c1 = 0, g.height, 0, g.width
        if grid is not None:
            to = Transformer.from_crs(grid.crs, g.crs, always_xy=True)
            left, bottom, right, top = grid.bounds
            xs = np.r_[np.linspace(left, right, 17), np.linspace(left, right, 17),
                       np.full(17, left), np.full(17, right)]
            ys = np.r_[np.full(17, top), np.full(17, bottom), np.linspace(bottom, top, 17),
                       np.linspace(bottom, top, 17)]
            sx, sy = to.transform(xs, ys)
            cols, rows = ~g.transform * (np.asarray(sx), np.asarray(sy))
            c0 = max(0, int(math.floor(min(cols))) - margin_px)
            c1 = min(g.width, int(math.ceil(max(cols))) + margin_px)
            r0 = max(0, int(math.floor(min(rows))) - margin_px)
            r1 = min(g.height, int(math.ceil(max(rows))) + margin_px)
            if c0 >= c1 or r0 >= r1:
                return (np.full((4, 0, 0), FILL, np.uint8), g.transform, g.crs)
        layers = []
        names = sd.datasets()
        for band in LC_MODIS_BANDS:
            if band not in names:
                raise AssetProblem(path.name, band, "layer missing from the granule")
            sds = sd.select(band)
            try:
                layers.append(np.asarray(sds[r0:r1, c0:c1], np.uint8))
            except HDF4Error as exc:
                raise AssetProblem(path.name, band, f"unreadable ({exc})") from None
            finally:
                sds.endaccess()
    finally:
        sd.end()
    return np.stack(layers), g.transform @ Affine.translation(c0, r0), g.crs


def lc_on_grid(granules: Sequence[Path], grid: Grid) -> np.ndarray:
    """The land cover of ``granules`` on ``grid``, nearest neighbour: (4, H, W) uint16,
    :data:`~sen12ms_build.products.LC`'s nodata (255) where no granule has data."""
    from rasterio.warp import Resampling, reproject

    out = np.full((LC.count, *grid.shape), FILL, np.uint16)
    for path in granules:
        arr, transform, crs = read_granule(path, grid)
        if arr.size == 0:
            continue
        part = np.full((LC.count, *grid.shape), FILL, np.uint8)
        reproject(arr, part, src_transform=transform, src_crs=crs, src_nodata=FILL,
                  dst_transform=grid.transform, dst_crs=grid.crs, dst_nodata=FILL,
                  resampling=Resampling.nearest)
        hole = np.all(out == FILL, axis=0) & ~np.all(part == FILL, axis=0)
        out[:, hole] = part[:, hole]
    return out


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def stated_checksum(asset: Mapping[str, Any]) -> str | None:
    """The asset's SHA-256 when it states one (``file:checksum`` multihash ``1220...``)."""
    raw = str(asset.get("file:checksum", ""))
    return raw[4:].lower() if raw.startswith("1220") and len(raw) == 68 else None


class GranuleCache:
    """Whole granules on disk, named by their SHA-256 (``<sha>.hdf``), with an index entry
    per granule id (``<id>.json``: checksum, size, source without query string). A cached
    granule whose bytes no longer match its checksum is fetched again."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def _index(self, granule: str) -> Path:
        return self.root / f"{re.sub(r'[^A-Za-z0-9._-]', '_', granule)}.json"

    def cached(self, granule: str) -> Path | None:
        idx = self._index(granule)
        try:
            entry = json.loads(idx.read_text())
        except (OSError, ValueError):
            return None
        path = self.root / f"{entry['sha256']}.hdf"
        if path.is_file() and _sha256(path) == entry["sha256"]:
            return path
        return None

    def fetch(self, granule: str, href: str, session: Any, expected: str | None = None,
              timeout_s: float = 60.0) -> Path:
        """The granule's file: from the cache, else downloaded whole (atomically).

        Raises:
            AssetProblem: missing (404) or not matching its stated checksum.
            SourceUnavailable: unreachable, refused or failing after retries.
        """
        hit = self.cached(granule)
        if hit is not None:
            return hit
        import requests

        self.root.mkdir(parents=True, exist_ok=True)
        where = strip_url(href)
        whole = self.root / f"{re.sub(r'[^A-Za-z0-9._-]', '_', granule)}.download"
        try:
            with atomic_path(whole) as tmp:  # complete or absent
                with session.get(href, stream=True, timeout=timeout_s) as r:
                    if r.status_code == 404:
                        raise AssetProblem(granule, "data", f"missing (HTTP 404 at {where})")
                    if r.status_code in (401, 403):
                        raise SourceUnavailable(f"{granule}: Earthdata refused the download "
                                                f"(HTTP {r.status_code}); check "
                                                "EARTHDATA_TOKEN or the .netrc login")
                    if r.status_code >= 400:
                        raise SourceUnavailable(f"{granule}: HTTP {r.status_code} at {where} "
                                                "after retries; run again to resume")
                    size = 0
                    with open(tmp, "wb") as f:
                        for chunk in r.iter_content(CHUNK):
                            f.write(chunk)
                            size += len(chunk)
                    want = int(r.headers.get("Content-Length", size) or size)
                    if size != want:
                        raise AssetProblem(granule, "data", f"truncated download ({size} of "
                                           f"{want} bytes)")
        except requests.exceptions.RequestException as exc:
            raise SourceUnavailable(f"{granule}: download failed ({type(exc).__name__}: "
                                    f"{redact(str(exc))[:160]}); run again to resume"
                                    ) from None
        sha = _sha256(whole)
        if expected and sha != expected:
            whole.unlink(missing_ok=True)
            raise AssetProblem(granule, "data", "checksum differs from the item's "
                               "file:checksum")
        final = self.root / f"{sha}.hdf"
        whole.replace(final)
        atomic_write_text(self._index(granule), json.dumps(
            {"sha256": sha, "size": final.stat().st_size, "source": where}) + "\n")
        return final


def earthdata_session(retries: int = 5) -> Any:
    """An authenticated ``requests`` session for Earthdata downloads: ``earthaccess``' EDL
    session (bearer token from ``EARTHDATA_TOKEN``, else the ``.netrc`` login), with
    urllib3 retries (429/5xx, honouring ``Retry-After``)."""
    import os

    import earthaccess
    from requests.adapters import HTTPAdapter

    from . import credentials
    from .search import retry_policy

    auth = earthaccess.Auth()
    strategy = "environment" if os.environ.get("EARTHDATA_TOKEN") else "netrc"
    if strategy == "environment":
        credentials.remember(os.environ["EARTHDATA_TOKEN"])
    auth.login(strategy=strategy)
    session = auth.get_session()
    adapter = HTTPAdapter(max_retries=retry_policy(retries))
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session
