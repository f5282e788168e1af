"""Cloud and cloud-shadow injection: synthetic cloud layouts (scattered cumulus, sparse
cumulus, cloud streets), their rendering as opacity, the shadows they cast (solar geometry
of :mod:`sen12ms_build.demo.solar`, independent of the detectors under test), the
compositing onto the clear ground and the injected truth.

Nothing here consults a cloud score: clouds are placed from the plan, the seeds and the
ground's own NDVI and land/water truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import ndimage

from .ground import PIXEL_M
from .plan import SEED_CLOUDS, S2Plan
from .solar import away_from_sun, shadow_shift_px

#: Cloud truth: combined cloud opacity at or above this value is "cloud".
CLOUD_TRUTH_ALPHA = 0.5

#: Top-of-atmosphere reflectance of an opaque cloud per band (S2_BANDS order): bright and flat
#: in the visible and NIR, bright B1, raised B10 (cirrus band), B9 in the water vapour
#: absorption, SWIR lower than NIR so the cloud is "moist" (NDMI = nd(B8, B11) = 0.22 > 0.1)
#: and "not snow" (NDSI = nd(B3, B11) = 0.25 < 0.6).
CLOUD_REFLECTANCE: tuple[float, ...] = (
    0.50, 0.52, 0.50, 0.49, 0.49, 0.48, 0.48, 0.47, 0.46, 0.20, 0.04, 0.30, 0.19,
)
#: Reflectance factor of the ground inside a cloud shadow per band: only diffuse skylight
#: reaches it, which is blue-rich, so the visible keeps more than NIR and SWIR. Red and NIR
#: keep the same share, so a shadow leaves NDVI unchanged (land stays land for the shadow
#: detector's water test). Over land this brings (B8 + B11 + B12) below 0.3; B10 sees no
#: ground and is left unchanged.
SHADOW_TRANSMITTANCE: tuple[float, ...] = (
    0.55, 0.45, 0.38, 0.32, 0.32, 0.32, 0.32, 0.32, 0.31, 0.30, 1.00, 0.27, 0.26,
)


# Layout constants (metres)
STREET_PERIOD_M = 4500.0  # lanes of one season: 3 x 1.5 km, repeating every 4.5 km
STREET_MARGIN_M = 60.0  # free strip on each side of a lane
STREET_LENGTH_M = (2000.0, 3600.0)  # along-lane length of one cloud
#: Heights of clouds over water: the condensation level over the sea is low (marine
#: stratocumulus and cold-air-outbreak streets), so their shadows stay close to them.
MARINE_HEIGHTS_M = (400.0, 800.0)
SCATTER_CELL_M = 3500.0  # one cloud per 3.5 km cell
SPARSE_SPACING_M = 8000.0  # sparse cloud lattice: > 7.07 km, the 5 km square diagonal
SPARSE_RADIUS_M = (350.0, 410.0)  # semi-minor axis
SPARSE_AVOID_M = 4000.0  # distance kept from beach sand (ground.beach_sand)

# --- cloud layout ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Cloud:
    """One cloud, in full-scene pixel coordinates (rows grow southwards).

    Attributes:
        row, col: centre.
        half_length, half_width: semi-axes in pixels, along and across ``angle``.
        angle: direction of the long axis, radians, in (col, row) image coordinates.
        height_m: cloud height above ground in metres (sets the shadow's displacement).
        seed: seed of the cloud's shape noise.
        band: optional lateral limits (lo, hi) in pixels of
            ``v = -col * sin(angle) + row * cos(angle)``: the cloud is cut to this strip
            (used to keep the lanes of cloud streets disjoint).
    """

    row: float
    col: float
    half_length: float
    half_width: float
    angle: float
    height_m: float
    seed: int
    band: tuple[float, float] | None = None


def plan_clouds(plan: S2Plan, index: int, shape: tuple[int, int], azimuth: float,
                zenith: float, ndvi_coarse: np.ndarray, coarse: int,
                street_axis: float, street_origin: float,
                bright_coarse: np.ndarray | None = None) -> list[Cloud]:
    """Clouds of one acquisition on the full scene (deterministic from ``index``).

    ``ndvi_coarse`` is the clear ground's NDVI averaged over ``coarse`` x ``coarse`` pixels:
    scattered clouds prefer positions whose shadow centre falls on vegetated land, where
    the algorithm's shadow detector can see it. ``street_axis`` (degrees, an azimuth) and
    ``street_origin`` (pixels) fix the season's common lane geometry. ``bright_coarse``
    (same coarse grid, bool) marks beach sand (:func:`sen12ms_build.demo.ground.beach_sand`,
    bright ground that simple cloud tests confuse with cloud); sparse clouds keep
    ``SPARSE_AVOID_M`` away from it. No detector's cloud score is consulted.
    """
    rng = np.random.default_rng([SEED_CLOUDS, index])
    h, w = shape
    if plan.layout == "clear":
        return []
    if plan.layout == "streets":
        return _street_clouds(plan, rng, shape, azimuth, zenith, street_axis, street_origin,
                              ndvi_coarse, coarse)
    if plan.layout == "sparse":
        return _sparse_clouds(plan, rng, shape, azimuth, zenith, ndvi_coarse, coarse,
                              bright_coarse)
    if plan.layout == "scattered":
        return _scattered_clouds(plan, rng, shape, azimuth, zenith, ndvi_coarse, coarse)
    raise ValueError(f"unknown cloud layout {plan.layout!r}")


def _land_score(ndvi_coarse: np.ndarray, coarse: int, row: float, col: float) -> float:
    r, c = int(row // coarse), int(col // coarse)
    if 0 <= r < ndvi_coarse.shape[0] and 0 <= c < ndvi_coarse.shape[1]:
        return float(ndvi_coarse[r, c])
    return -1.0


def _over_water(ndvi_coarse: np.ndarray, coarse: int, row: float, col: float) -> bool:
    """Whether the clear ground at a point is water (coarse NDVI < 0; outside counts as
    land)."""
    r, c = int(row // coarse), int(col // coarse)
    if 0 <= r < ndvi_coarse.shape[0] and 0 <= c < ndvi_coarse.shape[1]:
        return bool(ndvi_coarse[r, c] < 0.0)
    return False


def _pick_position(rng: np.random.Generator, box: tuple[float, float, float, float],
                   shift: tuple[int, int], ndvi_coarse: np.ndarray, coarse: int,
                   tries: int = 6, cloud_on_land: bool = False) -> tuple[float, float]:
    """A random point in ``box`` (row0, col0, row1, col1), preferring one whose shadow
    (the point + ``shift``) falls on land with NDVI > 0.2 (and, with ``cloud_on_land``, the
    point itself too): the first of ``tries`` draws that does, else the draw with the highest
    NDVI."""
    r0, c0, r1, c1 = box
    best, best_score = (0.0, 0.0), -np.inf
    for _ in range(tries):
        row, col = rng.uniform(r0, r1), rng.uniform(c0, c1)
        s = _land_score(ndvi_coarse, coarse, row + shift[0], col + shift[1])
        if cloud_on_land:
            s = min(s, _land_score(ndvi_coarse, coarse, row, col))
        if s > 0.2:
            return row, col
        if s > best_score:
            best, best_score = (row, col), s
    return best


def _scattered_clouds(plan: S2Plan, rng: np.random.Generator, shape: tuple[int, int],
                      azimuth: float, zenith: float, ndvi_coarse: np.ndarray,
                      coarse: int) -> list[Cloud]:
    """One cloud per ``SCATTER_CELL_M`` cell: ellipses of aspect 1.2-2 roughly along the
    sun's azimuth, sized so that the mean cover is ``plan.cover``."""
    h, w = shape
    cell = SCATTER_CELL_M / PIXEL_M
    ax, ay = away_from_sun(azimuth)
    base_angle = math.atan2(ay, ax)
    mean_area = plan.cover * cell * cell
    clouds = []
    for i in range(int(math.ceil(h / cell))):
        for j in range(int(math.ceil(w / cell))):
            aspect = rng.uniform(1.2, 2.0)
            area = mean_area * rng.uniform(0.6, 1.4)
            hw = math.sqrt(area / (math.pi * aspect))
            height = rng.uniform(*plan.heights_m)
            shift = shadow_shift_px(azimuth, zenith, height)
            box = (i * cell, j * cell, min(h, (i + 1) * cell), min(w, (j + 1) * cell))
            row, col = _pick_position(rng, box, shift, ndvi_coarse, coarse)
            if _over_water(ndvi_coarse, coarse, row, col):
                height = rng.uniform(*MARINE_HEIGHTS_M)
            angle = base_angle + math.radians(rng.uniform(-25.0, 25.0))
            clouds.append(Cloud(row, col, hw * aspect, hw, angle, height,
                                int(rng.integers(2**31))))
    return clouds


def _sparse_clouds(plan: S2Plan, rng: np.random.Generator, shape: tuple[int, int],
                   azimuth: float, zenith: float, ndvi_coarse: np.ndarray,
                   coarse: int, bright_coarse: np.ndarray | None) -> list[Cloud]:
    """Isolated small cumulus clouds on a jittered triangular lattice of
    ``SPARSE_SPACING_M`` (two of them never fit in one 5 km square), skipping sites within
    ``SPARSE_AVOID_M`` of beach sand (bright ground a cloud test may flag): the cover
    stays under the 5 % keep threshold in every 5 km ROI. Each cloud is an ellipse of
    semi-minor axis ``SPARSE_RADIUS_M`` and aspect 1.6-2, its long axis within 15 degrees
    of the sun's azimuth; its site is moved (within 450 m) to put its shadow on land."""
    h, w = shape
    step = SPARSE_SPACING_M / PIXEL_M
    if bright_coarse is not None and bright_coarse.any():
        far = ndimage.distance_transform_edt(~bright_coarse) * coarse >= SPARSE_AVOID_M / PIXEL_M
    else:
        far = np.ones(ndvi_coarse.shape, bool)
    ax, ay = away_from_sun(azimuth)
    base_angle = math.atan2(ay, ax)
    jitter = 450.0 / PIXEL_M  # neighbours stay >= 7.1 km apart
    dy = step * math.sqrt(3.0) / 2.0
    off_r, off_c = rng.uniform(0.0, dy), rng.uniform(0.0, step)
    clouds: list[Cloud] = []
    for i in range(-1, int(h / dy) + 2):
        for j in range(-1, int(w / step) + 2):
            r = off_r + i * dy
            c = off_c + j * step + (step / 2.0 if i % 2 else 0.0)
            half_width = rng.uniform(*SPARSE_RADIUS_M) / PIXEL_M
            half_length = half_width * rng.uniform(1.6, 2.0)
            height = rng.uniform(*plan.heights_m)
            angle = base_angle + math.radians(rng.uniform(-15.0, 15.0))
            shift = shadow_shift_px(azimuth, zenith, height)
            row, col = _pick_position(rng, (r - jitter, c - jitter, r + jitter, c + jitter),
                                      shift, ndvi_coarse, coarse)
            if _over_water(ndvi_coarse, coarse, row, col):
                height = rng.uniform(*MARINE_HEIGHTS_M)
            seed = int(rng.integers(2**31))
            m = half_length
            if not (m <= row < h - m and m <= col < w - m):
                continue
            rc = min(int(row // coarse), far.shape[0] - 1)
            if far[rc, min(int(col // coarse), far.shape[1] - 1)]:
                clouds.append(Cloud(row, col, half_length, half_width, angle, height, seed))
    return clouds


def _street_clouds(plan: S2Plan, rng: np.random.Generator, shape: tuple[int, int],
                   azimuth: float, zenith: float, axis_azimuth: float, origin: float,
                   ndvi_coarse: np.ndarray, coarse: int) -> list[Cloud]:
    """Cloud streets in lanes along ``axis_azimuth``: lane ``k`` of every period of
    ``STREET_PERIOD_M`` belongs to acquisition lane ``plan.lane`` (3 lanes per period).

    Along a lane over land, clouds of length ``STREET_LENGTH_M`` follow each other with
    random gaps such that about ``plan.cover`` of the lane's length is cloud; a shadow falls
    on the ground of the next gap or partly onto the next cloud. Over water the street is
    continuous (overlapping clouds at marine heights, :data:`MARINE_HEIGHTS_M`), so that
    each cloud's shadow falls mostly on the next cloud. Each cloud is cut to
    the part of its lane where both it and its shadow (displaced tan(zenith) * h away from
    the sun, slightly across the lane since the acquisition's azimuth differs from the
    axis) stay inside the lane: clouds and shadows of different lanes never touch.
    """
    h, w = shape
    ux, uy = away_from_sun(axis_azimuth)  # along-lane unit vector (col, row)
    angle = math.atan2(uy, ux)
    # lateral coordinate v = -col*sin(angle) + row*cos(angle) = -col*uy + row*ux
    period = STREET_PERIOD_M / PIXEL_M
    lane_w = period / 3.0
    margin = STREET_MARGIN_M / PIXEL_M
    corners = [(0.0, 0.0), (0.0, float(w)), (float(h), 0.0), (float(h), float(w))]
    vs = [-c * uy + r * ux for r, c in corners]
    us = [c * ux + r * uy for r, c in corners]
    u_min, u_max = min(us), max(us)
    clouds: list[Cloud] = []
    k_first = int(math.floor((min(vs) - origin) / period)) - 1
    k_last = int(math.ceil((max(vs) - origin) / period)) + 1
    for k in range(k_first, k_last + 1):
        lo = origin + k * period + plan.lane * lane_w + margin
        hi = origin + k * period + (plan.lane + 1) * lane_w - margin
        s = u_min - rng.uniform(0.0, STREET_LENGTH_M[1] / PIXEL_M)
        while s < u_max:
            length = rng.uniform(*STREET_LENGTH_M) / PIXEL_M
            u = s + length / 2.0
            v0 = (lo + hi) / 2.0
            marine = _over_water(ndvi_coarse, coarse, u * uy + v0 * ux, u * ux - v0 * uy)
            height = rng.uniform(*(MARINE_HEIGHTS_M if marine else plan.heights_m))
            dr, dc = shadow_shift_px(azimuth, zenith, height)
            across = -dc * uy + dr * ux
            band = (lo + max(0.0, -across), hi - max(0.0, across))
            width = (band[1] - band[0]) * rng.uniform(0.9, 1.05)
            v = (band[0] + band[1]) / 2.0 + rng.uniform(-0.05, 0.05) * (band[1] - band[0])
            col = u * ux - v * uy
            row = u * uy + v * ux
            if -length <= row <= h + length and -length <= col <= w + length:
                clouds.append(Cloud(row, col, length / 2.0, width / 2.0, angle, height,
                                    int(rng.integers(2**31)), band))
            if marine:  # continuous street: each shadow falls mostly on the next cloud
                s += length * rng.uniform(0.65, 0.85)
            else:
                s += length + length * (1.0 - plan.cover) / plan.cover * rng.uniform(0.6, 1.4)
    return clouds


# --- cloud rendering -------------------------------------------------------------------------

def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise of about unit standard deviation, float64, periodic.

    For ``sigma`` >= 8 px the noise is drawn on a grid ``f = sigma // 4`` times coarser,
    filtered there and upsampled bilinearly (same statistics, a fraction of the cost).
    Normalisation is analytic (the std of 2-D white noise filtered by a Gaussian of ``s``
    cells is 1 / (2 sqrt(pi) s)), so no data-dependent reduction is involved.
    """
    f = max(1, int(sigma // 4))
    if f == 1:
        n = ndimage.gaussian_filter(rng.standard_normal(shape), sigma, mode="wrap")
        return n * (2.0 * math.sqrt(math.pi) * sigma)
    s = sigma / f
    small = (shape[0] // f + 2, shape[1] // f + 2)
    n = ndimage.gaussian_filter(rng.standard_normal(small), s, mode="wrap")
    n *= 2.0 * math.sqrt(math.pi) * s

    def axis(m: int) -> tuple[np.ndarray, np.ndarray]:
        x = (np.arange(m) + 0.5) / f
        i = np.floor(x).astype(np.int64)
        return i, x - i

    ri, rw = axis(shape[0])
    ci, cw = axis(shape[1])
    rows = n[ri] * (1.0 - rw)[:, None] + n[ri + 1] * rw[:, None]
    return rows[:, ci] * (1.0 - cw)[None, :] + rows[:, ci + 1] * cw[None, :]


def render_cloud(cloud: Cloud, edge: float = 0.05,
                 rough: float = 0.18) -> tuple[np.ndarray, int, int]:
    """Opacity of one cloud in its bounding box.

    A noisy ellipse: the normalised elliptic radius is perturbed by smooth noise (+-``rough``),
    opacity rises from 0 to 1 over the outer ``edge`` share of the radius (smoothstep), and
    the interior carries a light texture (0.88-1). Returns (alpha float64 (n, n) in [0, 1],
    row0, col0) with the box's upper-left corner in full-scene pixels.
    """
    rng = np.random.default_rng(cloud.seed)
    half = int(math.ceil(max(cloud.half_length, cloud.half_width) * (1.0 + rough))) + 3
    r0, c0 = int(math.floor(cloud.row)) - half, int(math.floor(cloud.col)) - half
    n = 2 * half + 1
    rows = np.arange(r0, r0 + n, dtype=np.float64)[:, None] + 0.5
    cols = np.arange(c0, c0 + n, dtype=np.float64)[None, :] + 0.5
    dy, dx = rows - cloud.row, cols - cloud.col
    ca, sa = math.cos(cloud.angle), math.sin(cloud.angle)
    u = (dx * ca + dy * sa) / cloud.half_length
    v = (-dx * sa + dy * ca) / cloud.half_width
    rho = np.sqrt(u * u + v * v)
    shape_noise = _smooth_noise(rng, (n, n), max(2.0, cloud.half_width / 3.0))
    rho = rho * (1.0 + rough * np.clip(shape_noise, -2.0, 2.0) / 2.0)
    alpha = _smoothstep((1.0 - rho) / edge)
    texture = _smooth_noise(rng, (n, n), 2.5)
    alpha *= np.clip(0.94 + 0.03 * texture, 0.88, 1.0)
    if cloud.band is not None:
        lo, hi = cloud.band
        vabs = -cols * sa + rows * ca
        taper = 4.0
        alpha *= _smoothstep((vabs - lo) / taper) * _smoothstep((hi - vabs) / taper)
    return alpha, r0, c0


def _paste(target: np.ndarray, patch: np.ndarray, r0: int, c0: int, op: str) -> None:
    """Combine ``patch`` (placed at r0, c0 in window coordinates) into ``target``."""
    h, w = target.shape
    ph, pw = patch.shape
    ra, ca = max(0, r0), max(0, c0)
    rb, cb = min(h, r0 + ph), min(w, c0 + pw)
    if ra >= rb or ca >= cb:
        return
    sub = patch[ra - r0:rb - r0, ca - c0:cb - c0]
    if op == "mul":
        target[ra:rb, ca:cb] *= sub
    else:
        target[ra:rb, ca:cb] |= sub


def cloud_layers(clouds: Sequence[Cloud], window: tuple[int, int, int, int],
                 azimuth: float, zenith: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cloud opacity, shadow opacity and displaced cloud masks on a window.

    Clouds combine as independent layers (alpha = 1 - prod(1 - alpha_i)). Each cloud's
    shadow is its opacity displaced by :func:`shadow_shift_px` for its height, made fully
    dark where the cloud is cloud truth (shadow opacity ``min(1, alpha_i / 0.5)``): the
    penumbra lies outside the shadow truth.

    Returns:
        alpha: (h, w) float64 cloud opacity in [0, 1].
        shade: (h, w) float64 shadow opacity in [0, 1].
        displaced: (h, w) bool, union of the displaced truth masks (alpha_i >= threshold).
    """
    r0, c0, h, w = window
    clear = np.ones((h, w))
    lit = np.ones((h, w))
    displaced = np.zeros((h, w), bool)
    for cloud in clouds:
        if not touches(cloud, window, azimuth, zenith):
            continue
        alpha, pr, pc = render_cloud(cloud)
        dr, dc = shadow_shift_px(azimuth, zenith, cloud.height_m)
        _paste(clear, 1.0 - alpha, pr - r0, pc - c0, "mul")
        _paste(lit, 1.0 - np.minimum(1.0, alpha / CLOUD_TRUTH_ALPHA), pr + dr - r0, pc + dc - c0,
               "mul")
        _paste(displaced, alpha >= CLOUD_TRUTH_ALPHA, pr + dr - r0, pc + dc - c0, "or")
    return 1.0 - clear, 1.0 - lit, displaced


def composite(ground: np.ndarray, alpha: np.ndarray, shade: np.ndarray,
              brightness: float = 1.0, cloud_refl: np.ndarray | None = None) -> np.ndarray:
    """Cloudy L1C DN from clear ground DN.

    ``refl = ground * (1 - shade * (1 - T)) * (1 - alpha) + C * brightness * alpha`` per band,
    with T = :data:`SHADOW_TRANSMITTANCE` and C = :data:`CLOUD_REFLECTANCE`: the shadow
    darkens the ground, the cloud lies on top. Computed in float32 on the affected pixels
    only. ``ground``: (13, H, W) uint16 DN; ``alpha``, ``shade``: (H, W) in [0, 1].
    ``cloud_refl``: optional (13, H, W) reflectance of the cloud per pixel (real clouds,
    :mod:`.realclouds`) in place of ``C * brightness``. Returns (13, H, W) uint16, DN >= 1.
    """
    out = ground.copy()
    idx = np.flatnonzero((alpha > 0.0) | (shade > 0.0))
    if idx.size == 0:
        return out
    a = alpha.ravel()[idx].astype(np.float32)
    s = shade.ravel()[idx].astype(np.float32)
    one = np.float32(1.0)
    flat = out.reshape(out.shape[0], -1)
    for b in range(out.shape[0]):
        t = np.float32(SHADOW_TRANSMITTANCE[b])
        if cloud_refl is None:
            c = np.float32(CLOUD_REFLECTANCE[b] * 10000.0 * brightness)
        else:
            c = cloud_refl[b].ravel()[idx].astype(np.float32) * np.float32(10000.0)
        v = flat[b, idx].astype(np.float32)
        v *= one - s * (one - t)
        v *= one - a
        v += c * a
        flat[b, idx] = np.clip(np.rint(v), 1, 65535).astype(np.uint16)
    return out


def truth_masks(alpha: np.ndarray, displaced: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cloud, shadow) uint8 0/1 truth: cloud = alpha >= :data:`CLOUD_TRUTH_ALPHA`,
    shadow = displaced cloud mask and not cloud."""
    cloud = alpha >= CLOUD_TRUTH_ALPHA
    return cloud.astype(np.uint8), (displaced & ~cloud).astype(np.uint8)


def shadow_source_visible(cloud: np.ndarray, azimuth: float, zenith: float,
                          heights_m: tuple[float, float]) -> np.ndarray:
    """(H, W) bool: pixels that some pixel of the (H, W) bool ``cloud`` truth shades at a
    cloud height in ``heights_m`` (min, max), i.e. the union of the cloud mask displaced by
    every integer shadow shift of that height range. Shadow truth outside this mask was cast
    by a cloud outside the image (a crop), which no detector working on the image can see;
    inside it, every shadow pixel is explained by the recorded geometry."""
    shifts = {shadow_shift_px(azimuth, zenith, float(hm))
              for hm in np.arange(heights_m[0], heights_m[1] + 0.25, 0.25)}
    out = np.zeros(cloud.shape, bool)
    h, w = cloud.shape
    for dr, dc in sorted(shifts):
        r0, r1 = max(0, dr), min(h, h + dr)
        c0, c1 = max(0, dc), min(w, w + dc)
        if r0 < r1 and c0 < c1:
            out[r0:r1, c0:c1] |= cloud[r0 - dr:r1 - dr, c0 - dc:c1 - dc]
    return out


def touches(cloud: Cloud, window: tuple[int, int, int, int], azimuth: float,
             zenith: float) -> bool:
    """Whether a cloud's box or its shadow's box intersects the window."""
    r0, c0, h, w = window
    half = max(cloud.half_length, cloud.half_width) * 1.25 + 4
    dr, dc = shadow_shift_px(azimuth, zenith, cloud.height_m)
    for rr, cc in ((cloud.row, cloud.col), (cloud.row + dr, cloud.col + dc)):
        if rr + half >= r0 and rr - half < r0 + h and cc + half >= c0 and cc - half < c0 + w:
            return True
    return False
