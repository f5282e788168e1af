"""Simulated land cover from a class map of the real ground: MODIS MCD12Q1 (463 m, MODIS
sinusoidal grid) and ESA WorldCover (10 m, EPSG:4326 at 1/12000 degree).

The two are made independently from the same 10 m ground classes (:mod:`.ground`), with
rules that agree: a class maps to the same simplified IGBP (DFC2020) class through either
product (:data:`WORLDCOVER_CODES`, :data:`MODIS_CODES`, :mod:`sen12ms_build.labels`), so
where MODIS has a pure cell WorldCover's classes inside it say the same thing."""

from __future__ import annotations

import math

import numpy as np
from affine import Affine
from pyproj import Transformer

from ..geo import Grid
from ..labels import WORLDCOVER_RES_DEG
from .ground import BARE, BEACH_NEAR_WATER_M, CLASS_NAMES, CROPLAND, FOREST, PIXEL_M, WATER, \
    WETLAND

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

def _global_grid_over(grid: Grid, crs: str, origin: tuple[float, float], pixel: float,
                      n: int) -> Grid:
    """The cells of a global north-up grid of ``crs`` (upper-left corner ``origin``, square
    ``pixel``) that cover the scene grid: its boundary, ``n`` points per side, transformed
    to ``crs`` and its bounding box snapped outwards to whole cells."""
    left, bottom, right, top = grid.bounds
    xs = np.concatenate([np.linspace(left, right, n), np.full(n, right),
                         np.linspace(right, left, n), np.full(n, left)])
    ys = np.concatenate([np.full(n, top), np.linspace(top, bottom, n),
                         np.full(n, bottom), np.linspace(bottom, top, n)])
    sx, sy = Transformer.from_crs(grid.crs, crs, always_xy=True).transform(xs, ys)
    x0, y0 = origin
    c_min = int(math.floor((min(sx) - x0) / pixel))
    c_max = int(math.ceil((max(sx) - x0) / pixel))
    r_min = int(math.floor((y0 - max(sy)) / pixel))
    r_max = int(math.ceil((y0 - min(sy)) / pixel))
    transform = Affine(pixel, 0.0, x0 + c_min * pixel, 0.0, -pixel, y0 - r_min * pixel)
    return Grid(crs, transform, c_max - c_min, r_max - r_min)


def modis_grid(grid: Grid) -> tuple[Grid, np.ndarray]:
    """The MODIS sinusoidal 463 m grid covering a scene grid, aligned to the global MODIS
    grid, and a (h, w) bool mask of cells whose centre lies inside the scene."""
    left, bottom, right, top = grid.bounds
    mgrid = _global_grid_over(grid, MODIS_SINUSOIDAL, MODIS_ORIGIN, MODIS_PIXEL_M, 32)
    transform = mgrid.transform
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


#: ESA WorldCover code of each demo ground class (:data:`.ground.CLASS_NAMES`): water 80
#: (permanent water bodies), wetland 90 (herbaceous wetland: salt marsh), forest 10 (tree
#: cover), cropland 40; bare ground within :data:`.ground.BEACH_NEAR_WATER_M` of water is 60
#: (bare / sparse vegetation: beach), elsewhere 40 (fallow fields), the rules of the MODIS
#: simulation (barren next to water, cropland away from it).
WORLDCOVER_CODES: dict[int, int] = {WATER: 80, WETLAND: 90, CROPLAND: 40, FOREST: 10}
WORLDCOVER_BEACH, WORLDCOVER_FALLOW = 60, 40
#: The WorldCover tile of the demo scene (3 x 3 degree tiles named by their south-west
#: corner): the archive holds the window of it that covers the scene.
WORLDCOVER_TILE = "N36W078"


def worldcover_classes(classes: np.ndarray) -> np.ndarray:
    """The demo's 10 m WorldCover codes, (H, W) uint8, from its ground classes
    (:data:`WORLDCOVER_CODES`)."""
    from scipy import ndimage

    out = np.zeros(classes.shape, np.uint8)
    for cls, code in WORLDCOVER_CODES.items():
        out[classes == cls] = code
    bare = classes == BARE
    near = ndimage.binary_dilation(classes == WATER,
                                   iterations=int(BEACH_NEAR_WATER_M / PIXEL_M))
    out[bare & near] = WORLDCOVER_BEACH
    out[bare & ~near] = WORLDCOVER_FALLOW
    return out


def simulate_worldcover(classes: np.ndarray, grid: Grid) -> tuple[np.ndarray, Grid]:
    """Simulated ESA WorldCover: (1, h, w) uint8 on WorldCover's own grid (EPSG:4326 at
    1/12000 degree, aligned to the global grid of its 3 x 3 degree tiles), covering the
    scene's bounds. Each pixel takes the code (:func:`worldcover_classes`) of the 10 m
    ground pixel its centre falls in (nearest); pixels whose centre lies outside the scene
    are 0 (WorldCover's nodata)."""
    codes = worldcover_classes(classes)
    wgrid = _global_grid_over(grid, "EPSG:4326", (-180.0, 90.0), WORLDCOVER_RES_DEG, 64)
    transform = wgrid.transform
    out = np.zeros((1, wgrid.height, wgrid.width), np.uint8)
    to_utm = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True)
    t = grid.transform
    cols = np.arange(wgrid.width) + 0.5
    for r in range(0, wgrid.height, 256):  # by row blocks: bounded memory
        rows = np.arange(r, min(r + 256, wgrid.height)) + 0.5
        cc, rr = np.meshgrid(cols, rows)
        glon, glat = transform @ (cc.ravel(), rr.ravel())
        ux, uy = to_utm.transform(glon, glat)
        col = np.floor((np.asarray(ux) - t.c) / t.a).astype(np.int64)
        row = np.floor((np.asarray(uy) - t.f) / t.e).astype(np.int64)
        ok = (col >= 0) & (col < grid.width) & (row >= 0) & (row < grid.height)
        block = np.zeros(col.shape, np.uint8)
        block[ok] = codes[row[ok], col[ok]]
        out[0, r:r + len(rows)] = block.reshape(len(rows), wgrid.width)
    return out, wgrid
