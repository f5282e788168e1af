"""Range-Doppler terrain correction onto a map grid: for every pixel of a north-up grid (UTM
10 m, say) and its ellipsoidal height, the GRD line and pixel it images, and the look angle
(for shadow); then sampling a radar-geometry image there.

Solving the range-Doppler equations (:mod:`.geometry`) for each of the 14.7 million pixels
of a 38.4 km scene would take minutes in numpy. The map position and the height enter the
solution smoothly, so the exact solution is computed only on tie points: every
:data:`TIE_STEP_PX`-th row and column, each at :data:`HEIGHT_NODES` heights spanning the
DEM's range (Chebyshev nodes). Each tie point's line, slant range and look angle become a
quadratic polynomial in height; the coefficients are interpolated bilinearly to every pixel and
the polynomial is evaluated at the pixel's own height. The ground range pixel then comes
from the slant range through the annotation's slant-to-ground polynomials, per pixel,
because the product switches polynomial from one azimuth block to the next (a step that
interpolation between tie points would smear). Against the exact solution this is
within a few thousandths of a pixel (``tests/test_sar_geometry.py`` checks it): over 320 m
the geometry's curvature moves a point by millimetres, and slant range is close to linear in
height (its curvature term, h**2 sin**2(theta) / 2R, is a few metres at 5 km of relief, which
the quadratic captures).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyproj import Transformer

from ..geo import Grid
from .geometry import RadarGeometry, geodetic_to_ecef

#: Tie points every this many output pixels (and on the last row and column).
TIE_STEP_PX = 32
#: Heights per tie point (Chebyshev nodes over the DEM's range): a quadratic in height,
#: within 0.003 pixel of the exact solution over 5 km of relief (a cubic gains nothing).
HEIGHT_NODES = 3
#: Rows evaluated at once (bounds the temporary memory to a few arrays of this many rows).
TILE_ROWS = 256
#: Heights are fitted over at least this half-range (m), so a flat DEM stays well posed.
MIN_HALF_RANGE_M = 1.0


@dataclass(frozen=True)
class MapGeocoding:
    """Radar coordinates of every pixel of a map grid, (H, W) float32, NaN where the DEM
    has no height.

    Attributes:
        line, pixel: fractional GRD row and column (pixel centres at integers).
        look_angle: degrees from the satellite's geocentric nadir.
        slant_range: metres beyond ``range_origin`` (float32 keeps millimetres this way).
        range_origin: metres.
    """

    line: np.ndarray
    pixel: np.ndarray
    look_angle: np.ndarray
    slant_range: np.ndarray
    range_origin: float = 0.0


def _nodes(n: int, step: int) -> np.ndarray:
    nodes = np.arange(0, n, step)
    last = max(n - 1, 1)
    if nodes[-1] != last:
        nodes = np.append(nodes, last)
    return nodes


def _weights(x: np.ndarray, nodes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    j = np.clip(np.searchsorted(nodes, x, "right") - 1, 0, len(nodes) - 2)
    w = (x - nodes[j]) / (nodes[j + 1] - nodes[j])
    return j, w


def geocode_grid(geometry: RadarGeometry, grid: Grid, height: np.ndarray) -> MapGeocoding:
    """Radar coordinates of every pixel of ``grid`` (see the module docstring).

    Args:
        geometry: the product's range-Doppler model.
        grid: the output grid (any projected or geographic CRS pyproj knows).
        height: (H, W) ellipsoidal heights in metres on ``grid`` (float32 or float64), NaN
            where unknown.
    Returns:
        The :class:`MapGeocoding` of the grid.
    """
    h_px, w_px = grid.shape
    height = np.asarray(height)
    finite = np.isfinite(height)
    if not finite.any():
        return MapGeocoding(*(np.full((h_px, w_px), np.nan, np.float32) for _ in range(4)))
    hmin, hmax = float(height[finite].min()), float(height[finite].max())
    centre = 0.5 * (hmin + hmax)
    half = max(0.5 * (hmax - hmin), MIN_HALF_RANGE_M) * 1.001
    k = np.arange(HEIGHT_NODES)
    u_nodes = np.cos((2 * k + 1) * np.pi / (2 * HEIGHT_NODES))
    vander = u_nodes[:, None] ** np.arange(HEIGHT_NODES)[None, :]

    rows, cols = _nodes(h_px, TIE_STEP_PX), _nodes(w_px, TIE_STEP_PX)
    t = grid.transform
    xx, yy = np.meshgrid(t.c + t.a * (cols + 0.5), t.f + t.e * (rows + 0.5))
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(xx, yy)
    values = np.empty((3, HEIGHT_NODES) + xx.shape)
    for i, u in enumerate(u_nodes):
        ecef = geodetic_to_ecef(lat, lon, centre + half * u).reshape(-1, 3)
        rc = geometry.radar_coordinates(ecef)
        for q, v in enumerate((rc.line, rc.slant_range, rc.look_angle)):
            values[q, i] = v.reshape(xx.shape)
    # coefficients of the polynomial in u, (3, K, rows, cols), then interpolated along columns
    coef = np.linalg.solve(vander, values.reshape(3, HEIGHT_NODES, -1)).reshape(values.shape)
    origin = float(np.floor(values[1].min()))
    coef[1, 0] -= origin
    out = MapGeocoding(*(np.empty((h_px, w_px), np.float32) for _ in range(4)),
                       range_origin=origin)
    interval = geometry.annotation.azimuth_time_interval
    spacing = geometry.annotation.range_pixel_spacing
    j, wc = _weights(np.arange(w_px, dtype=np.float64), cols)
    coef_cols = coef[..., j] * (1.0 - wc) + coef[..., j + 1] * wc  # (3, K, len(rows), W)

    # between two tie rows the coefficients vary linearly: evaluate row blocks at once
    for n in range(len(rows) - 1):
        r0, r1 = int(rows[n]), (int(rows[n + 1]) if n < len(rows) - 2 else h_px)
        if r1 <= r0:
            continue
        wr = ((np.arange(r0, r1) - rows[n]) / (rows[n + 1] - rows[n]))[:, None]
        u = (height[r0:r1].astype(np.float64) - centre) / half
        line, slant, look = (_horner(coef_cols[q, :, n], coef_cols[q, :, n + 1], wr, u)
                             for q in range(3))
        out.line[r0:r1] = line
        out.look_angle[r0:r1] = look
        out.slant_range[r0:r1] = slant
        ok = np.isfinite(slant)
        if ok.all():
            out.pixel[r0:r1] = geometry.ground_range(line * interval, slant + origin) / spacing
        else:
            pixel = np.full(line.shape, np.nan)
            pixel[ok] = geometry.ground_range(line[ok] * interval, slant[ok] + origin) / spacing
            out.pixel[r0:r1] = pixel
    return out


def _horner(c0: np.ndarray, c1: np.ndarray, wr: np.ndarray, u: np.ndarray) -> np.ndarray:
    """sum_k c_k u**k, each c_k (W,) interpolated between two tie rows with weights wr."""
    acc = c0[-1] + (c1[-1] - c0[-1]) * wr
    for deg in range(c0.shape[0] - 2, -1, -1):
        acc *= u
        acc += c0[deg] + (c1[deg] - c0[deg]) * wr
    return acc


class BilinearSampler:
    """Bilinear interpolation of radar-geometry windows at fixed fractional (line, pixel):
    the indices and weights are computed once and serve every polarisation.

    Args:
        line, pixel: (H, W) coordinates relative to the window (row 0 / column 0 of the
            window at line 0 / pixel 0), NaN where unknown.
        shape: (h, w) of the windows to sample.
    """

    def __init__(self, line: np.ndarray, pixel: np.ndarray, shape: tuple[int, int]):
        h, w = shape
        self.shape = np.shape(line)
        y = np.asarray(line)
        x = np.asarray(pixel)
        with np.errstate(invalid="ignore"):
            self.ok = (np.isfinite(y) & np.isfinite(x) & (y >= 0) & (x >= 0)
                       & (y <= h - 1) & (x <= w - 1))
        yo = y[self.ok]
        y0 = np.minimum(np.floor(yo), max(h - 2, 0))
        self.fy = (yo - y0).astype(np.float32)
        del yo
        xo = x[self.ok]
        x0 = np.minimum(np.floor(xo), max(w - 2, 0))
        self.fx = (xo - x0).astype(np.float32)
        del xo
        itype = np.int32 if h * w < 2**31 - w - 2 else np.int64
        self.index = y0.astype(itype) * itype(w) + x0.astype(itype)
        self.dy = w if h > 1 else 0
        self.dx = 1 if w > 1 else 0

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(H, W) float32 samples of an (h, w) window: NaN where a coordinate is unknown or
        outside the window, or any of the four neighbours is NaN (masks grow by at most a
        pixel and never blur into valid values)."""
        flat = np.ascontiguousarray(image, np.float32).ravel()
        i = self.index
        top = flat[i]
        top += (flat[i + self.dx] - top) * self.fx
        bottom = flat[i + self.dy]
        bottom += (flat[i + self.dy + self.dx] - bottom) * self.fx
        top += (bottom - top) * self.fy
        out = np.full(self.shape, np.nan, np.float32)
        out[self.ok] = top
        return out


def sample_bilinear(image: np.ndarray, line: np.ndarray, pixel: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of one window at fractional (line, pixel) (see
    :class:`BilinearSampler`)."""
    return BilinearSampler(line, pixel, image.shape)(image)
