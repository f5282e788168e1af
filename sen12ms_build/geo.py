"""Geodesy helpers shared by the sampler, the backends and the warp: UTM zones, ROI
squares and the two pixel grids of a scene.

* export grid: EPSG:4326 at 0.0001 degrees, aligned to multiples of the resolution (the
  paper's Earth Engine export grid);
* scene grid: the ROI's local UTM zone (WGS 84, north or south) at square 10 m pixels,
  aligned to multiples of 10 m.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from affine import Affine
from pyproj import CRS, Transformer

from .products import CLIP_MARGIN_PX, EXPORT_RES_DEG


def utm_zone(lon: float, lat: float) -> int:
    """UTM zone number (1..60) of a point, with the Norway and Svalbard exceptions."""
    lon = ((lon + 180.0) % 360.0) - 180.0
    zone = int((lon + 180.0) // 6.0) + 1
    if 56.0 <= lat < 64.0 and 3.0 <= lon < 12.0:
        zone = 32
    elif 72.0 <= lat < 84.0:
        if 0.0 <= lon < 9.0:
            zone = 31
        elif 9.0 <= lon < 21.0:
            zone = 33
        elif 21.0 <= lon < 33.0:
            zone = 35
        elif 33.0 <= lon < 42.0:
            zone = 37
    return min(zone, 60)


@functools.lru_cache(maxsize=128)
def to_lonlat(crs: str) -> Transformer:
    """The transformer from ``crs`` (e.g. ``EPSG:32618``) to lon/lat (EPSG:4326, x = lon),
    made once per CRS: making one costs milliseconds, a dataset's patches share a few dozen
    UTM zones. (For one thread: pyproj transformers are not shared across threads.)"""
    return Transformer.from_crs(crs, "EPSG:4326", always_xy=True)


def utm_epsg(lon: float, lat: float) -> int:
    """EPSG code of the WGS 84 UTM zone of a point: 326zz north, 327zz south."""
    return (32600 if lat >= 0 else 32700) + utm_zone(lon, lat)


@dataclass(frozen=True)
class Grid:
    """A north-up pixel grid: CRS, affine transform and size (width, height)."""

    crs: str
    transform: Affine
    width: int
    height: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.height, self.width

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        t = self.transform
        return t.c, t.f + t.e * self.height, t.c + t.a * self.width, t.f

    @property
    def res(self) -> tuple[float, float]:
        return self.transform.a, -self.transform.e


def _snap_out(lo: float, hi: float, step: float) -> tuple[float, float]:
    # round() first so that values a hair off a grid line do not gain a pixel
    a = math.floor(round(lo / step, 6)) * step
    b = math.ceil(round(hi / step, 6)) * step
    return round(a, 10), round(b, 10)


def square_utm_bounds(lon: float, lat: float, size_m: float, epsg: int,
                      res_m: float = 10.0) -> tuple[float, float, float, float]:
    """Bounds (left, bottom, right, top) in metres of the ``size_m`` square centred on the
    point in UTM ``epsg``, aligned to ``res_m``."""
    to_utm = Transformer.from_crs("EPSG:4326", f"EPSG:{epsg}", always_xy=True)
    x, y = to_utm.transform(lon, lat)
    half = size_m / 2.0
    left = math.floor(round((x - half) / res_m, 6)) * res_m
    bottom = math.floor(round((y - half) / res_m, 6)) * res_m
    n = int(round(size_m / res_m))
    return left, bottom, left + n * res_m, bottom + n * res_m


def utm_grid(bounds: tuple[float, float, float, float], epsg: int,
             res_m: float = 10.0) -> Grid:
    """The scene grid: square ``res_m`` pixels covering UTM ``bounds``."""
    left, bottom, right, top = bounds
    width = int(round((right - left) / res_m))
    height = int(round((top - bottom) / res_m))
    return Grid(f"EPSG:{epsg}", Affine(res_m, 0.0, left, 0.0, -res_m, top), width, height)


def geographic_ring(bounds: tuple[float, float, float, float], epsg: int,
                    densify: int = 16) -> list[tuple[float, float]]:
    """The UTM ``bounds`` square as a closed lon/lat ring (counter-clockwise), densified
    with ``densify`` points per side so that its edges follow the projection."""
    return densified_ring(bounds, f"EPSG:{epsg}", "EPSG:4326", densify)


def densified_ring(bounds: tuple[float, float, float, float], src_crs: Any, dst_crs: Any,
                   densify: int = 16) -> list[tuple[float, float]]:
    """The ``bounds`` rectangle of ``src_crs`` as a closed ring in ``dst_crs`` (x, y order;
    counter-clockwise), densified with ``densify`` points per side so that its edges follow
    the projection."""
    left, bottom, right, top = bounds
    to_geo = Transformer.from_crs(src_crs, dst_crs, always_xy=True)
    pts: list[tuple[float, float]] = []
    corners = [(left, bottom), (right, bottom), (right, top), (left, top)]
    for (x0, y0), (x1, y1) in zip(corners, corners[1:] + corners[:1]):
        for k in range(densify):
            f = k / densify
            pts.append(to_geo.transform(x0 + f * (x1 - x0), y0 + f * (y1 - y0)))
    pts.append(pts[0])
    return [(float(x), float(y)) for x, y in pts]


def export_grid(ring: list[tuple[float, float]], res_deg: float = EXPORT_RES_DEG,
                margin_px: int = CLIP_MARGIN_PX) -> Grid:
    """The export grid (EPSG:4326, ``res_deg``) covering a lon/lat ring plus a margin of
    ``margin_px`` pixels, aligned to multiples of ``res_deg``."""
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    left, right = _snap_out(min(lons), max(lons), res_deg)
    bottom, top = _snap_out(min(lats), max(lats), res_deg)
    left = round(left - margin_px * res_deg, 10)
    bottom = round(bottom - margin_px * res_deg, 10)
    right = round(right + margin_px * res_deg, 10)
    top = round(top + margin_px * res_deg, 10)
    width = int(round((right - left) / res_deg))
    height = int(round((top - bottom) / res_deg))
    return Grid("EPSG:4326", Affine(res_deg, 0.0, left, 0.0, -res_deg, top), width, height)


def pixel_size_m(grid: Grid) -> tuple[float, float]:
    """Ground size (x, y) in metres of one pixel at the grid's centre; exact for projected
    grids, WGS 84 ellipsoid arc lengths for geographic ones."""
    crs = CRS.from_user_input(grid.crs)
    if not crs.is_geographic:
        return abs(grid.transform.a), abs(grid.transform.e)
    lat = math.radians((grid.bounds[1] + grid.bounds[3]) / 2.0)
    a, e2 = 6378137.0, 0.00669437999014
    w = math.sqrt(1 - e2 * math.sin(lat) ** 2)
    m_per_deg_lat = math.radians(1) * a * (1 - e2) / w ** 3
    m_per_deg_lon = math.radians(1) * a * math.cos(lat) / w
    return abs(grid.transform.a) * m_per_deg_lon, abs(grid.transform.e) * m_per_deg_lat
