"""Range-Doppler geometry of a GRD product: from a point on the ground (ECEF) to its line and
pixel in the product, with the angles the layover, shadow and incidence computations need.

For a point P (Earth-fixed, WGS 84):

1. zero-Doppler time t: the root of f(t) = (P - S(t)) . V(t), the satellite S(t), V(t) from
   the orbit (:mod:`.orbit`), by Newton's method (f'(t) = (P - S) . A - |V|**2);
2. slant range R = |P - S(t)|;
3. ground range from the annotation's slant-to-ground polynomial nearest in time to t,
   pixel = ground range / spacing;
4. line = t / azimuth time interval (the epoch is the first line);
5. look angle: the angle at S between the nadir (-S) and P - S; incidence angle: the angle at
   P between the ellipsoid normal and S - P.

Pure numpy; the constants are WGS 84's (the annotation's ellipsoid is checked against them).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..raster.io import InputError
from .annotation import ProductAnnotation
from .orbit import Orbit

SPEED_OF_LIGHT = 299_792_458.0
WGS84_A = 6_378_137.0
WGS84_F = 1.0 / 298.257223563
WGS84_B = WGS84_A * (1.0 - WGS84_F)
WGS84_E2 = WGS84_F * (2.0 - WGS84_F)
#: Newton iterations stop when every time step is below this (s); 1e-7 s is 0.75 mm.
ZERO_DOPPLER_TOL_S = 1e-7
ZERO_DOPPLER_MAX_ITER = 20


def geodetic_to_ecef(lat: np.ndarray, lon: np.ndarray, h: np.ndarray) -> np.ndarray:
    """WGS 84 geodetic latitude, longitude (degrees) and ellipsoidal height (m) to ECEF.

    Returns:
        (..., 3) float64 metres.
    """
    phi = np.radians(np.asarray(lat, np.float64))
    lam = np.radians(np.asarray(lon, np.float64))
    h = np.asarray(h, np.float64)
    sin_phi = np.sin(phi)
    n = WGS84_A / np.sqrt(1.0 - WGS84_E2 * sin_phi * sin_phi)
    x = (n + h) * np.cos(phi) * np.cos(lam)
    y = (n + h) * np.cos(phi) * np.sin(lam)
    z = (n * (1.0 - WGS84_E2) + h) * sin_phi
    return np.stack(np.broadcast_arrays(x, y, z), axis=-1)


def ellipsoid_normal(lat: np.ndarray, lon: np.ndarray) -> np.ndarray:
    """Unit outward ellipsoid normals (ECEF, (..., 3)) at geodetic lat/lon (degrees)."""
    phi = np.radians(np.asarray(lat, np.float64))
    lam = np.radians(np.asarray(lon, np.float64))
    return np.stack([np.cos(phi) * np.cos(lam), np.cos(phi) * np.sin(lam), np.sin(phi)], -1)


@dataclass(frozen=True)
class RadarCoordinates:
    """Where ground points fall in the product: (N,) float64 arrays.

    Attributes:
        line, pixel: fractional row and column of the GRD raster (pixel centres at integers).
        time: zero-Doppler time, seconds since the annotation's epoch.
        slant_range: metres.
        look_angle: degrees between the satellite's geocentric nadir and the line of sight.
        satellite: (N, 3) ECEF position of the satellite at ``time``.
    """

    line: np.ndarray
    pixel: np.ndarray
    time: np.ndarray
    slant_range: np.ndarray
    look_angle: np.ndarray
    satellite: np.ndarray


class RadarGeometry:
    """The range-Doppler model of one GRD product (its annotation)."""

    def __init__(self, annotation: ProductAnnotation):
        a, b = annotation.ellipsoid
        if abs(a - WGS84_A) > 0.01 or abs(b - WGS84_B) > 0.01:
            raise InputError(f"annotation ellipsoid ({a}, {b}) is not WGS 84")
        self.annotation = annotation
        self.orbit = Orbit(annotation.orbit)
        self._t0 = 0.5 * annotation.last_line_time
        self._tables: dict[int, tuple[float, np.ndarray]] = {}

    def zero_doppler_time(self, points: np.ndarray) -> np.ndarray:
        """Zero-Doppler times (s since the epoch) of (N, 3) ECEF points (Newton's method)."""
        t = np.full(len(points), self._t0)
        for _ in range(ZERO_DOPPLER_MAX_ITER):
            pos, vel, acc = self.orbit.state(t)
            d = points - pos
            f = np.einsum("ij,ij->i", d, vel)
            fp = np.einsum("ij,ij->i", d, acc) - np.einsum("ij,ij->i", vel, vel)
            step = f / fp
            t = t - step
            if not np.any(np.abs(step) > ZERO_DOPPLER_TOL_S):
                break
        return t

    def ground_range(self, t: np.ndarray, slant_range: np.ndarray) -> np.ndarray:
        """Ground range (m from the first pixel) of slant ranges at times ``t``, with the
        slant-to-ground polynomial whose time is nearest to ``t`` (the processor's own rule:
        the annotation's geolocation grid agrees with it to 0.01 pixel, while interpolating
        two polynomials in time misses it by up to half a pixel)."""
        stg = self.annotation.slant_to_ground
        t = np.asarray(t, np.float64)
        slant_range = np.asarray(slant_range, np.float64)
        if len(stg.time) == 1:
            return _poly(stg.srgr[0], slant_range - stg.sr0[0])
        k = np.clip(np.searchsorted(stg.time, t), 1, len(stg.time) - 1)
        k = np.where(np.abs(t - stg.time[k - 1]) <= np.abs(stg.time[k] - t), k - 1, k)
        out = np.zeros(np.broadcast_shapes(t.shape, slant_range.shape))
        for kk in range(int(k.min()), int(k.max()) + 1):
            g = self._srgr(kk, slant_range - stg.sr0[kk])
            out = np.where(k == kk, g, out)
        return out

    def _srgr(self, k: int, x: np.ndarray) -> np.ndarray:
        """Record ``k``'s slant-to-ground polynomial at ``x`` (slant range - sr0, m): exact
        for few points; for many, a cached table every :data:`TABLE_STEP_M` metres
        interpolated linearly (error < 1e-4 m: the polynomial's second derivative is below
        1e-4 per metre over the swath)."""
        coef = self.annotation.slant_to_ground.srgr[k]
        finite = x[np.isfinite(x)]
        if x.size < 4096 or finite.size == 0:
            return _poly(coef, x)
        lo, hi = float(finite.min()), float(finite.max())
        start, table = self._tables.get(k, (np.inf, np.empty(0)))
        if lo < start or hi > start + TABLE_STEP_M * (len(table) - 1):
            lo = min(lo, start) - 1000.0
            hi = max(hi, start + TABLE_STEP_M * (len(table) - 1) if table.size else hi) + 1000.0
            nodes = lo + TABLE_STEP_M * np.arange(int(np.ceil((hi - lo) / TABLE_STEP_M)) + 1)
            start, table = lo, _poly(coef, nodes)
            self._tables[k] = (start, table)
        return np.interp(x, start + TABLE_STEP_M * np.arange(len(table)), table)

    def radar_coordinates(self, points: np.ndarray) -> RadarCoordinates:
        """Line, pixel and angles of (N, 3) ECEF ground points (see the module docstring)."""
        points = np.asarray(points, np.float64).reshape(-1, 3)
        t = self.zero_doppler_time(points)
        sat, _, _ = self.orbit.state(t)
        los = points - sat
        r = np.linalg.norm(los, axis=1)
        nadir = -sat / np.linalg.norm(sat, axis=1)[:, None]
        look = np.degrees(np.arccos(np.clip(np.einsum("ij,ij->i", los, nadir) / r, -1, 1)))
        pixel = self.ground_range(t, r) / self.annotation.range_pixel_spacing
        line = t / self.annotation.azimuth_time_interval
        return RadarCoordinates(line, pixel, t, r, look, sat)


def incidence_angle(points: np.ndarray, satellite: np.ndarray, lat: np.ndarray,
                    lon: np.ndarray) -> np.ndarray:
    """Ellipsoid incidence angle (degrees) at ECEF ``points`` seen from ``satellite``."""
    los = satellite - points
    los /= np.linalg.norm(los, axis=-1, keepdims=True)
    n = ellipsoid_normal(lat, lon)
    return np.degrees(np.arccos(np.clip(np.sum(los * n, axis=-1), -1.0, 1.0)))


#: Slant-to-ground polynomials of many points are tabulated every this many metres.
TABLE_STEP_M = 2.0


def _poly(coef: np.ndarray, x: np.ndarray) -> np.ndarray:
    """sum_k coef[..., k] * x**k (Horner), coef (D,) or (N, D)."""
    coef = np.asarray(coef)
    out = np.zeros_like(x, dtype=np.float64) + coef[..., -1]
    for k in range(coef.shape[-1] - 2, -1, -1):
        out = out * x + coef[..., k]
    return out
