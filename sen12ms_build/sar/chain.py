"""The chain: one GRD product to terrain-corrected sigma0 VV, VH in dB on a scene grid
(:func:`sigma0_db_on_grid`). The steps and their parity with Earth Engine's
``COPERNICUS/S1_GRD`` are tabled in docs/sentinel1.md.

1. heights: the DEM on the grid, geoid to ellipsoid with EGM96 (:mod:`.geoid`) unless it is
   ellipsoidal already;
2. geometry: every grid pixel's GRD line and pixel, from the annotated orbit and the
   range-Doppler equations (:mod:`.terrain`);
3. the radar-geometry window those pixels need (plus one pixel for the bilinear kernel) is
   the only part of the measurement read, per polarisation;
4. radiometry in radar geometry (:mod:`.radiometry`): border noise, thermal noise, sigma0
   from the sigmaNought LUT;
5. bilinear resampling of sigma0 (linear power) at each grid pixel's line and pixel;
6. layover and shadow (:mod:`.layover`) set to NaN;
7. 10*log10, float32, NaN nodata.

Layover and shadow are found along range profiles inside the grid: terrain outside it is
unknown, so near the grid's along-track edges (where profiles, slanted against the rows,
leave the grid) layover or shadow cast by terrain beyond the edge is missed. Give a grid
with a margin of the expected shadow length and crop, when that matters.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
from pyproj import Transformer

from ..geo import Grid
from ..products import S1
from ..raster.io import InputError
from . import S1_PROCESSING, S1_PROCESSING_NAME, S1_PROCESSING_VERSION
from .geoid import undulation
from .geometry import RadarGeometry
from .layover import layover_shadow
from .product import GrdProduct
from .radiometry import sigma0_window
from .terrain import TIE_STEP_PX, BilinearSampler, MapGeocoding, geocode_grid

log = logging.getLogger(__name__)

#: Radar-geometry pixels read around the grid's footprint (the bilinear kernel's reach).
WINDOW_MARGIN_PX = 2


def ellipsoidal_heights(grid: Grid, dem: np.ndarray) -> np.ndarray:
    """DEM heights above EGM96 to heights above WGS 84 (h = H + N), N from the shipped grid
    evaluated on tie points every :data:`~.terrain.TIE_STEP_PX` pixels and interpolated
    bilinearly (N varies over hundreds of kilometres).

    Args:
        grid: the DEM's grid.
        dem: (H, W) heights in metres, NaN nodata.
    Returns:
        (H, W) float32 ellipsoidal heights, NaN where ``dem`` is NaN.
    """
    h, w = grid.shape
    rows = np.unique(np.append(np.arange(0, h, TIE_STEP_PX), h - 1))
    cols = np.unique(np.append(np.arange(0, w, TIE_STEP_PX), w - 1))
    t = grid.transform
    xx, yy = np.meshgrid(t.c + t.a * (cols + 0.5), t.f + t.e * (rows + 0.5))
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(xx, yy)
    n_tie = undulation(lat, lon)
    n_cols = np.stack([np.interp(np.arange(w), cols, r) for r in n_tie])  # (tie rows, W)
    out = np.array(dem, np.float32, copy=True)
    if len(rows) == 1:
        out += n_cols[0].astype(np.float32)
        return out
    k = np.clip(np.searchsorted(rows, np.arange(h), "right") - 1, 0, len(rows) - 2)
    wgt = (np.arange(h) - rows[k]) / (rows[k + 1] - rows[k])
    for r in range(h):  # row by row: no (H, W) float64 temporary
        out[r] += (n_cols[k[r]] * (1.0 - wgt[r]) + n_cols[k[r] + 1] * wgt[r]).astype(
            np.float32)
    return out


def _window(geo: MapGeocoding, lines: int, samples: int) -> tuple[slice, slice] | None:
    ok = np.isfinite(geo.line) & np.isfinite(geo.pixel) & (geo.line >= 0) \
        & (geo.line <= lines - 1) & (geo.pixel >= 0) & (geo.pixel <= samples - 1)
    if not ok.any():
        return None
    l_lo = max(int(np.floor(geo.line[ok].min())) - WINDOW_MARGIN_PX, 0)
    l_hi = min(int(np.ceil(geo.line[ok].max())) + WINDOW_MARGIN_PX + 1, lines)
    p_lo = max(int(np.floor(geo.pixel[ok].min())) - WINDOW_MARGIN_PX, 0)
    p_hi = min(int(np.ceil(geo.pixel[ok].max())) + WINDOW_MARGIN_PX + 1, samples)
    return slice(l_lo, l_hi), slice(p_lo, p_hi)


def sigma0_db_on_grid(product: GrdProduct, grid: Grid, dem: np.ndarray, *,
                      dem_is_ellipsoidal: bool = False) -> tuple[np.ndarray, dict[str, Any]]:
    """Terrain-corrected sigma0 VV, VH (dB) of one GRD product on ``grid``.

    Args:
        product: the GRD product (:class:`~.product.GrdProduct`), with VV and VH.
        grid: the output grid (the scene's UTM 10 m grid), :class:`~sen12ms_build.geo.Grid`.
        dem: (H, W) heights in metres on exactly ``grid``, NaN nodata; above the EGM96 geoid
            (SRTM, Copernicus DEM: EGM96 stands in for EGM2008, see :mod:`.geoid`) unless
            ``dem_is_ellipsoidal``.
        dem_is_ellipsoidal: heights are above the WGS 84 ellipsoid already.
    Returns:
        ``(sigma0_db, meta)``: (2, H, W) float32 VV, VH sigma0 in dB, NaN where the product
        does not cover the pixel, the DEM has no height, border noise, layover or shadow;
        ``meta`` a dict with ``product_id``, ``platform``, ``orbit_pass``,
        ``relative_orbit``, ``start``/``stop`` (ISO UTC), ``processing`` (name + version, the
        same string as :data:`~sen12ms_build.sar.S1_PROCESSING`),
        ``processing_name``, ``processing_version``, ``ipf_version``, ``window`` (the radar
        rows and columns read), and fractions of the grid: ``covered`` (valid output),
        ``outside`` (not imaged by the product or no DEM), ``border``, ``layover``,
        ``shadow``.
    Raises:
        InputError: the DEM does not match the grid, the product lacks VV or VH, or its
            XML or measurement cannot be read.
    """
    dem = np.asarray(dem)
    if dem.shape != grid.shape:
        raise InputError(f"DEM has shape {dem.shape}, the grid {grid.shape}: resample the DEM "
                         "onto the grid first")
    vv, vh = product.pol("VV"), product.pol("VH")
    ann = vv.annotation
    if (vh.annotation.lines, vh.annotation.samples) != (ann.lines, ann.samples):
        raise InputError(f"{product.product_id}: VV and VH rasters differ in size")
    height = (np.asarray(dem, np.float32) if dem_is_ellipsoidal
              else ellipsoidal_heights(grid, dem))
    geo = geocode_grid(RadarGeometry(ann), grid, height)
    del height
    out = np.full((S1.count,) + grid.shape, np.nan, np.float32)
    n = float(grid.width * grid.height)
    meta: dict[str, Any] = {
        "product_id": product.product_id,
        "platform": product.platform,
        "orbit_pass": product.orbit_pass,
        "relative_orbit": product.relative_orbit,
        "start": product.start.isoformat(),
        "stop": product.stop.isoformat(),
        "processing": S1_PROCESSING,
        "processing_name": S1_PROCESSING_NAME,
        "processing_version": S1_PROCESSING_VERSION,
        "ipf_version": product.ipf_version,
        "dem_is_ellipsoidal": dem_is_ellipsoidal,
    }
    window = _window(geo, ann.lines, ann.samples)
    if window is None:
        meta.update(window=None, covered=0.0, outside=1.0, border=0.0, layover=0.0,
                    shadow=0.0)
        return out, meta
    rows, cols = window
    meta["window"] = {"rows": [rows.start, rows.stop], "cols": [cols.start, cols.stop]}
    layover, shadow = layover_shadow(geo.line, geo.slant_range, geo.look_angle)
    sampler = BilinearSampler(geo.line - np.float32(rows.start),
                              geo.pixel - np.float32(cols.start),
                              (rows.stop - rows.start, cols.stop - cols.start))
    del geo
    inside = sampler.ok
    border_any = np.zeros(grid.shape, bool)
    for band, pol in enumerate((vv, vh)):
        dn = np.asarray(pol.read_dn(rows, cols))
        if dn.shape != (rows.stop - rows.start, cols.stop - cols.start):
            raise InputError(f"{pol.name}: the DN reader returned {dn.shape} for rows "
                             f"{rows.start}:{rows.stop}, cols {cols.start}:{cols.stop}")
        sigma0, _ = sigma0_window(dn, np.arange(rows.start, rows.stop),
                                  np.arange(cols.start, cols.stop), pol.calibration, pol.noise,
                                  lines=ann.lines, samples=ann.samples, ipf=product.ipf)
        out[band] = sampler(sigma0)
        del sigma0, dn
        border_any |= inside & ~np.isfinite(out[band])
    out[:, layover | shadow] = np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        np.log10(out, out=out)
    out *= np.float32(10.0)
    meta.update(
        covered=round(float(np.all(np.isfinite(out), axis=0).sum()) / n, 6),
        outside=round(float((~inside).sum()) / n, 6),
        border=round(float((border_any & ~layover & ~shadow).sum()) / n, 6),
        layover=round(float((layover & inside).sum()) / n, 6),
        shadow=round(float((shadow & inside & ~layover).sum()) / n, 6),
    )
    return out, meta
