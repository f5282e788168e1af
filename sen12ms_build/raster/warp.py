"""GDAL warp through rasterio: onto the export grid, and from it to the local UTM zone.

The paper exports at 0.0001 degrees in EPSG:4326 and then uses GDAL to bring every scene to
its local UTM zone at square 10 m x 10 m pixels (section 3.2). Both steps go through
:class:`rasterio.vrt.WarpedVRT`, i.e. GDAL's warper, reading and writing window by window
so memory stays bounded whatever the scene size. Nodata is declared on both sides so it
survives the warp (GDAL excludes nodata source pixels from the resampling kernels).

Those exclusions cost: with a source nodata GDAL's warper keeps a validity mask per band,
with a destination nodata one per destination pixel, and either makes it leave its fast
integer kernels for its generic one. An export whose pixels in the kernels' reach hold no
nodata (the usual case: the export grid and the clip keep a margin around the scene) is
warped through a VRT that declares none, into a destination that declares its nodata only
once warped: the same bytes (tested), two to three times faster for Sentinel-2
(:func:`_warp_source`).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
from pathlib import Path
from typing import Iterator
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.crs
from rasterio.enums import MaskFlags, Resampling
from rasterio.vrt import WarpedVRT
from rasterio.features import rasterize
from rasterio.warp import reproject
from rasterio.windows import Window
from shapely.affinity import translate
from shapely.geometry import MultiPoint

from ..geo import Grid, densified_ring
from .io import (FAST_COMPRESSION, GTIFF_PROFILE, InputError, OutputError, atomic_path,
                 predictor)
from ..products import Modality

log = logging.getLogger(__name__)


def resampling(name: str) -> Resampling:
    """rasterio's Resampling member for a name such as ``bilinear``."""
    try:
        return Resampling[name]
    except KeyError:
        raise ValueError(f"unknown resampling {name!r}") from None


def _nodata(value: float | None) -> float | None:
    return None if value is None else float(value)


def _vrt(src: rasterio.DatasetReader, grid: Grid, method: str, nodata: float | None,
         mem_limit_mb: int = 256) -> WarpedVRT:
    src_nodata = src.nodata if src.nodata is not None else nodata
    return WarpedVRT(
        src,
        crs=grid.crs,
        transform=grid.transform,
        width=grid.width,
        height=grid.height,
        resampling=resampling(method),
        src_nodata=_nodata(src_nodata),
        nodata=_nodata(nodata),
        warp_mem_limit=mem_limit_mb,
        warp_extras={"NUM_THREADS": "ALL_CPUS", "INIT_DEST": "NO_DATA"},
    )


def aligned_window(src: rasterio.DatasetReader, grid: Grid, nodata: float | None,
                   tol: float = 1e-6) -> Window | None:
    """The window of ``grid`` in ``src`` when a nearest-neighbour warp is a plain read: same
    CRS and pixel size, a whole-pixel offset, the source's nodata equal to ``nodata`` (or
    none declared) and no mask or alpha band. ``None`` otherwise."""
    st, gt = src.transform, grid.transform
    if src.crs is None or src.crs != rasterio.crs.CRS.from_user_input(grid.crs):
        return None
    if (st.b, st.d, gt.b, gt.d) != (0, 0, 0, 0) or not (
            math.isclose(st.a, gt.a, rel_tol=1e-12) and math.isclose(st.e, gt.e, rel_tol=1e-12)):
        return None
    col, row = (gt.c - st.c) / st.a, (gt.f - st.f) / st.e
    if abs(col - round(col)) > tol or abs(row - round(row)) > tol:
        return None
    src_nodata = src.nodata if src.nodata is not None else nodata
    same = (src_nodata == nodata or (src_nodata is not None and nodata is not None
                                     and math.isnan(src_nodata) and math.isnan(nodata)))
    flags = {f for band in src.mask_flag_enums for f in band}
    if not same or not flags <= {MaskFlags.nodata, MaskFlags.all_valid}:
        return None
    return Window(round(col), round(row), grid.width, grid.height)


def _read_aligned(src: rasterio.DatasetReader, win: Window, nodata: float | None,
                  bands: list[int] | None) -> np.ndarray:
    """Read ``win`` of ``src``, ``nodata`` (or 0) where it lies outside the source."""
    count = len(bands) if bands else src.count
    r0, c0 = int(win.row_off), int(win.col_off)
    h, w = int(win.height), int(win.width)
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r0 + h, src.height), min(c0 + w, src.width)
    if (rr0, cc0, rr1, cc1) == (r0, c0, r0 + h, c0 + w):
        return src.read(indexes=bands, window=win)
    arr = np.full((count, h, w), nodata if nodata is not None else 0, src.dtypes[0])
    if rr0 < rr1 and cc0 < cc1:
        arr[:, rr0 - r0:rr1 - r0, cc0 - c0:cc1 - c0] = src.read(
            indexes=bands, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0))
    return arr


def warp_array(path: Path | str, grid: Grid, method: str, nodata: float | None,
               dtype: str | None = None, bands: list[int] | None = None) -> np.ndarray:
    """Warp a raster file onto ``grid``; returns a (C, H, W) array with ``nodata`` outside
    the source. Raises :class:`InputError` for an unreadable or truncated file.

    A nearest-neighbour warp between aligned grids (:func:`aligned_window`: e.g. an archive
    already on the export grid) is a windowed read, the same pixels without the warper."""
    try:
        with rasterio.open(path) as src:
            win = aligned_window(src, grid, nodata) if method == "nearest" else None
            if win is not None:
                arr = _read_aligned(src, win, nodata, bands)
            else:
                with _vrt(src, grid, method, nodata) as vrt:
                    arr = vrt.read(indexes=bands)
    except (rasterio.errors.RasterioError, OSError) as exc:
        raise InputError(f"{path}: unreadable or truncated raster ({exc})") from exc
    return arr.astype(dtype, copy=False) if dtype else arr


def strips(height: int, width: int, rows: int = 512) -> Iterator[Window]:
    """Full-width row strips of ``rows`` rows covering a (height, width) raster."""
    for r in range(0, height, rows):
        yield Window(0, r, width, min(rows, height - r))


#: GDAL data type names of the VRT that hides a source's nodata (:func:`_vrt_without_nodata`)
_GDAL_TYPES = {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
               "int32": "Int32", "float32": "Float32", "float64": "Float64"}
#: How far (source pixels) from a destination pixel centre's source position each kernel
#: reads a pixel's centre at scale 1 (nearest: the pixel that contains the position).
#: GDAL's warper widens bilinear and cubic kernels by the source pixels per destination
#: pixel when it downsamples (its XSCALE, YSCALE).
_KERNEL_RADIUS_PX = {"nearest": 0.5, "bilinear": 1.0, "cubic": 2.0, "cubic_spline": 2.0}
#: The approximate transformer's error (0.125 source px, GDAL's default) with room.
_TRANSFORM_ERROR_PX = 0.25


def kernel_reach(src: rasterio.DatasetReader, grid: Grid, method: str
                 ) -> tuple[Window, np.ndarray] | None:
    """The source pixels GDAL's warper can read for ``grid`` with ``method``. Each
    destination pixel is sampled at its centre's position in the source; the kernel reads
    the pixels whose centres lie within its radius (:data:`_KERNEL_RADIUS_PX`, widened when
    downsampling) of that position, in each axis, so their extents come within the radius
    less half a pixel of it. The outline of the destination pixels' centres (densified) in
    source pixels, grown by a square of that half-width plus the transformer's error, holds
    every pixel read. Returns its bounding
    window in ``src`` and an (h, w) bool mask of the pixels it touches; ``None`` when it
    reaches outside the source or the method's radius is not known."""
    radius = _KERNEL_RADIUS_PX.get(method)
    if radius is None:
        return None
    left, bottom, right, top = grid.bounds
    hx, hy = grid.res[0] / 2, grid.res[1] / 2
    ring = np.array(densified_ring((left + hx, bottom + hy, right - hx, top - hy), grid.crs,
                                   src.crs.to_wkt(), densify=100))
    inv, sx, sy = ~src.transform, ring[:, 0], ring[:, 1]
    cols, rows = inv.a * sx + inv.b * sy + inv.c, inv.d * sx + inv.e * sy + inv.f
    # source pixels per destination pixel (the kernel's widening when downsampling)
    scale = max(1.0, (cols.max() - cols.min()) / max(grid.width - 1, 1),
                (rows.max() - rows.min()) / max(grid.height - 1, 1))
    if method == "nearest":
        scale = 1.0  # the containing pixel, whatever the scale
    d = radius * scale - 0.5 + _TRANSFORM_ERROR_PX  # per axis, from a sampled position
    # the outline grown by a square of half-width d (Minkowski sum: the hull of its four
    # translations, exact for the convex outline)
    pts = np.column_stack([cols, rows])
    outline = MultiPoint(np.concatenate([pts + (dx, dy) for dx in (-d, d)
                                         for dy in (-d, d)])).convex_hull
    c0, r0, c1, r1 = outline.bounds
    c0, r0, c1, r1 = math.floor(c0), math.floor(r0), math.ceil(c1), math.ceil(r1)
    if c0 < 0 or r0 < 0 or c1 > src.width or r1 > src.height:
        return None
    win = Window(c0, r0, c1 - c0, r1 - r0)
    inside = rasterize([(translate(outline, -c0, -r0), 1)], out_shape=(r1 - r0, c1 - c0),
                       all_touched=True, dtype="uint8").view(bool)
    return win, inside


def has_nodata(src: rasterio.DatasetReader, win: Window, nodata: float,
               where: np.ndarray | None = None, rows: int = 256) -> bool:
    """True if some band of ``src`` holds ``nodata`` (NaN: any NaN) in ``win`` (only at the
    pixels ``where`` marks, an (h, w) bool mask, if given); read by strips of ``rows`` rows,
    stopping at the first one found."""
    nan = isinstance(nodata, float) and math.isnan(nodata)
    r0, h = int(win.row_off), int(win.height)
    for r in range(0, h, rows):
        n = min(rows, h - r)
        a = src.read(window=Window(win.col_off, r0 + r, win.width, n))
        hit = (np.isnan(a) if nan else a == a.dtype.type(nodata)).any(axis=0)
        if (hit & where[r:r + n]).any() if where is not None else hit.any():
            return True
    return False


def _vrt_without_nodata(src: rasterio.DatasetReader, threads: int | str = "ALL_CPUS") -> str:
    """A VRT (XML text, opened by GDAL as a dataset) of every band of ``src`` with no nodata
    declared: the pixels, grid and CRS of ``src``, its blocks decoded by ``threads`` worker
    threads (GTiff's NUM_THREADS open option)."""
    name = escape(str(Path(src.name).resolve()))
    opts = f'<OpenOptions><OOI key="NUM_THREADS">{escape(str(threads))}</OOI></OpenOptions>'
    bands = "".join(
        f'<VRTRasterBand dataType="{_GDAL_TYPES[src.dtypes[i]]}" band="{i + 1}">'
        f'<SimpleSource><SourceFilename relativeToVRT="0">{name}</SourceFilename>{opts}'
        f"<SourceBand>{i + 1}</SourceBand></SimpleSource></VRTRasterBand>"
        for i in range(src.count))
    gt = ", ".join(repr(float(v)) for v in src.transform.to_gdal())
    return (f'<VRTDataset rasterXSize="{src.width}" rasterYSize="{src.height}">'
            f"<SRS>{escape(src.crs.to_wkt())}</SRS><GeoTransform>{gt}</GeoTransform>"
            f"{bands}</VRTDataset>")


def _warp_source(src: rasterio.DatasetReader, grid: Grid, method: str, nodata: float | None,
                 threads: int | str = "ALL_CPUS"
                 ) -> tuple[rasterio.DatasetReader | None, float | None]:
    """(dataset to warp from, its nodata) for :func:`warp_to_file`. GDAL's warper keeps a
    validity mask per band when the source declares nodata, and its integer kernels run
    about twice as fast without one. When no pixel the kernels can read holds ``nodata``
    (:func:`kernel_reach`, :func:`has_nodata`), every mask would be all valid, so the warp
    reads ``src`` through a VRT without nodata: the same pixels out, faster. Returns
    ``(None, nodata)`` to warp ``src`` itself (float data: the NaN kernels gain nothing)."""
    if nodata is None or src.dtypes[0] not in _GDAL_TYPES or src.dtypes[0].startswith("float"):
        return None, nodata
    reach = kernel_reach(src, grid, method)
    if reach is None:
        return None, nodata
    # its own handle: its decoded blocks are freed after the check
    with rasterio.open(src.name, num_threads=threads) as check:
        if has_nodata(check, reach[0], nodata, reach[1]):
            return None, nodata
    return rasterio.open(_vrt_without_nodata(src, threads)), None


def warp_to_file(src_path: Path | str, dst_path: Path | str, grid: Grid, modality: Modality,
                 method: str | None = None, mem_limit_mb: int = 256,
                 threads: int | str = "ALL_CPUS") -> Path:
    """Warp one modality's export onto the UTM scene ``grid`` as a tiled GeoTIFF with the
    modality's dtype, nodata and band descriptions; atomic.

    One GDAL warp operation from file to file (GDAL's chunked, multithreaded warper, as
    ``gdalwarp`` runs it), so memory is bounded by ``mem_limit_mb`` whatever the scene size.

    Args:
        src_path: the backend's export (EPSG:4326, 0.0001 degrees).
        dst_path: the scene GeoTIFF to write (ZSTD-compressed, 256 x 256 blocks).
        grid: the scene grid (local UTM, square pixels).
        modality: :data:`products.S1` / ``S2`` / ``LC``.
        method: resampling; defaults to the modality's (land cover: nearest).
    """
    method = method or modality.resampling
    dst_path = Path(dst_path)
    profile = {**GTIFF_PROFILE, **FAST_COMPRESSION, "predictor": predictor(modality.dtype),
               "count": modality.count, "dtype": modality.dtype, "width": grid.width,
               "height": grid.height, "crs": grid.crs, "transform": grid.transform,
               "nodata": modality.nodata,
               # blocks compressed by worker threads as the warp goes (the same bytes)
               "num_threads": threads}
    if grid.width < 256 or grid.height < 256:
        profile.update(tiled=False)
        profile.pop("blockxsize"), profile.pop("blockysize")
    bands = list(range(1, modality.count + 1))
    try:
        # the source's blocks decoded by GTiff's worker threads as the warper reads them
        with rasterio.open(src_path, num_threads=threads) as src:
            if src.count != modality.count:
                raise InputError(f"{src_path}: expected {modality.count} bands for "
                                 f"{modality.key}, found {src.count}")
            src_nodata = src.nodata if src.nodata is not None else modality.nodata
            plain, src_nodata = _warp_source(src, grid, method, src_nodata, threads)
            if plain is not None:
                # no nodata read: none declared on the destination during the warp either,
                # or GDAL keeps its generic kernel (a validity mask per destination
                # pixel); it starts filled with the nodata, declared once warped
                profile["nodata"] = None
                init = {"init_dest_nodata": False, "INIT_DEST": modality.nodata}
            else:
                init = {"init_dest_nodata": True}
            with (plain or contextlib.nullcontext()), atomic_path(dst_path) as tmp, \
                    rasterio.open(tmp, "w", **profile) as dst:
                reproject(
                    source=rasterio.band(plain or src, bands),
                    destination=rasterio.band(dst, bands),
                    resampling=resampling(method),
                    src_nodata=_nodata(src_nodata),
                    dst_nodata=None if plain is not None else _nodata(modality.nodata),
                    warp_mem_limit=mem_limit_mb,
                    num_threads=2 if threads == "ALL_CPUS" else int(threads),
                    **init,
                )
                dst.nodata = modality.nodata
                dst.descriptions = modality.descriptions
                dst.update_tags(RESAMPLING=method, SOURCE=Path(src_path).name)
    except (InputError, OutputError):
        raise
    except rasterio.errors.RasterioIOError as exc:
        if isinstance(exc.__cause__, OSError):
            raise OutputError(f"cannot write {dst_path}: {exc}") from exc
        raise InputError(f"{src_path}: unreadable or truncated raster ({exc})") from exc
    log.debug("warped %s -> %s (%dx%d, %s)", src_path, dst_path, grid.width, grid.height,
              method)
    return dst_path


def pixel_is_square(path: Path | str, res_m: float = 10.0, tol: float = 1e-9) -> bool:
    """True if the raster's pixels are ``res_m`` x ``res_m`` (projected CRS, north-up)."""
    with rasterio.open(path) as src:
        a, e = src.transform.a, src.transform.e
        return (src.crs is not None and src.crs.is_projected and
                math.isclose(a, res_m, abs_tol=tol) and math.isclose(-e, res_m, abs_tol=tol))


def adopt_on_grid(src_path: Path | str, dst_path: Path | str, grid: Grid,
                  modality: Modality) -> Path:
    """Take an export that is already on the scene ``grid`` as the scene file, without
    resampling it again (a backend that declares :attr:`ExportGrid.SCENE
    <sen12ms_build.backends.ExportGrid>`): the grid, band count and dtype are checked, then
    the file is hard-linked (or copied) into place atomically.

    Raises:
        InputError: the export is not on ``grid`` (CRS, transform or size differ), or its
            bands or dtype are not the modality's.
    """
    src_path, dst_path = Path(src_path), Path(dst_path)
    try:
        with rasterio.open(src_path) as src:
            same = (src.crs is not None and src.crs == rasterio.crs.CRS.from_user_input(grid.crs)
                    and src.width == grid.width and src.height == grid.height
                    and src.transform.almost_equals(grid.transform, precision=1e-6))
            if not same:
                raise InputError(
                    f"{src_path}: the backend declares the scene grid but exported "
                    f"{src.width}x{src.height} px in {src.crs} at {tuple(src.transform)[:6]}"
                    f", not {grid.width}x{grid.height} px in {grid.crs}")
            if src.count != modality.count or src.dtypes[0] != modality.dtype:
                raise InputError(f"{src_path}: expected {modality.count} {modality.dtype} "
                                 f"bands for {modality.key}, found {src.count} "
                                 f"{src.dtypes[0]}")
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"{src_path}: unreadable or truncated raster ({exc})") from exc
    with atomic_path(dst_path) as tmp:
        tmp.unlink()
        try:
            os.link(src_path, tmp)
        except OSError:
            shutil.copyfile(src_path, tmp)
    log.debug("adopted %s as %s (already on the scene grid)", src_path, dst_path)
    return dst_path
