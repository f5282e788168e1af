"""The offline backend: the query / score / sort / merge of :mod:`sen12ms_build.mosaic` on a
local archive of rasters (layout in ``docs/archive.md``).

For a request it

1. queries the archive: every Sentinel-2 L1C acquisition whose sensing date lies in the
   period and whose footprint intersects the ROI (each then clipped to the ROI's export
   grid, as ``ee.Image.clip``);
2. scores every image (:func:`mosaic.score_image`) on that grid at the algorithm's 20 m;
3. merges them (:func:`mosaic.merge_sources`): best images (CLOUDY_PERCENTAGE below the keep
   threshold, clearest on top) over the quality mosaic;
4. exports Sentinel-1 (newest acquisition on top, :data:`products.S1_COMPOSITE`) and the
   MODIS land cover of the requested year beside it;
5. with ``labels: worldcover``, the ESA WorldCover tiles of the requested version from
   ``worldcover/`` (:func:`worldcover_tiles`), classes resampled by mode where the tiles'
   pixels are finer than the export grid's, else nearest (:func:`labels.resampling_for`).

Outputs are GeoTIFFs on the ROI's export grid (EPSG:4326, 0.0001 degrees), written
atomically. A corrupt or truncated archive file is reported with its path and skipped.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import rasterio
from rasterio.features import geometry_mask
from rasterio.warp import transform_bounds
from shapely.geometry import Polygon, box

from ..geo import Grid, pixel_size_m
from ..labels import WORLDCOVER_VERSIONS, resampling_for
from ..mosaic import engine
from ..raster.io import FAST_COMPRESSION, InputError, write_raster
from ..products import AUX_MASKS, LC, S1, S2, WC
from ..raster.warp import warp_array
from . import (EXPORT_FILES, Backend, NoDataError, SceneExport, SceneRequest, TimeSeriesExport,
               TimeSeriesRequest, cloudy)

log = logging.getLogger(__name__)


def _write(path: Path, data: np.ndarray, **kw: Any) -> None:
    """An export GeoTIFF (intermediate: fast compression)."""
    write_raster(path, data, **kw, **FAST_COMPRESSION)


@dataclass(frozen=True)
class Acquisition:
    """One archive file: its path, sensing time (UTC), lon/lat bounding box and tags."""

    path: Path
    time: dt.datetime
    bbox: tuple[float, float, float, float]
    tags: dict[str, str]

    @property
    def date(self) -> dt.date:
        return self.time.date()


def _parse_time(tags: dict[str, str], path: Path) -> dt.datetime:
    raw = tags.get("SENSING_TIME")
    if raw:
        try:
            return dt.datetime.fromisoformat(raw.replace("Z", "+00:00"))
        except ValueError:
            pass
    m = re.match(r"(\d{8}T\d{6})", path.stem)
    if m:
        return dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    raise InputError(f"{path}: no SENSING_TIME tag and no YYYYMMDDTHHMMSS in the file name")


#: Tags every Sentinel-2 file must carry (docs/archive.md): the mosaicking's shadow test
#: projects clouds along the sun's direction.
S2_REQUIRED_TAGS = ("MEAN_SOLAR_AZIMUTH_ANGLE", "MEAN_SOLAR_ZENITH_ANGLE")
#: A Sentinel-2 tile id (MGRS: UTM zone, latitude band, 100 km square), e.g. ``T18SVG``.
TILE_RE = re.compile(r"(?:^|_)T?(\d{2})([C-HJ-NP-X])([A-HJ-NP-Z]{2})(?:_|$)")
#: How far (degrees of longitude) a tile's footprint may reach beyond its UTM zone: MGRS
#: tiles overlap the next zone by up to about 100 km.
ZONE_MARGIN_DEG = 2.0


def _check_tags(path: Path, tags: dict[str, str], required: tuple[str, ...]) -> None:
    for key in required:
        if key not in tags:
            raise InputError(f"{path}: no {key} tag (required, degrees; docs/archive.md); "
                             "add it or remove the file")
        try:
            float(tags[key])
        except ValueError:
            raise InputError(f"{path}: tag {key} is {tags[key]!r}, not a number of "
                             "degrees") from None


def tile_of(path: Path, tags: dict[str, str]) -> str | None:
    """The Sentinel-2 tile (``18SVG``) a file says it is: its ``MGRS_TILE`` tag, else the
    tile in its ``PRODUCT_ID`` tag or file name (``..._T18SVG...``); None when none."""
    if tags.get("MGRS_TILE"):
        m = TILE_RE.search(tags["MGRS_TILE"].strip().upper())
        if m:
            return "".join(m.groups())
    for text in (tags.get("PRODUCT_ID", ""), path.stem):
        m = TILE_RE.search(text.upper())
        if m:
            return "".join(m.groups())
    return None


def _check_tile(path: Path, crs: Any, bbox: tuple[float, float, float, float],
                tags: dict[str, str]) -> None:
    """A file whose CRS or footprint contradicts the tile it names (a file re-tagged with
    another UTM zone lands far from its ROIs and silently drops out of every mosaic)."""
    tile = tile_of(path, tags)
    if tile is None:
        return
    zone, north = int(tile[:2]), tile[2] >= "N"
    epsg = crs.to_epsg() if crs is not None else None
    if epsg and (32601 <= epsg <= 32660 or 32701 <= epsg <= 32760):
        crs_zone, crs_north = epsg % 100, epsg < 32700
        if (crs_zone, crs_north) != (zone, north):
            raise InputError(
                f"{path}: its CRS EPSG:{epsg} (UTM zone {crs_zone}{'N' if crs_north else 'S'}) "
                f"contradicts its tile T{tile} (UTM zone {zone}{'N' if north else 'S'}); "
                "fix the file's CRS")
    west, east = -180.0 + 6 * (zone - 1), -180.0 + 6 * zone
    lon = (bbox[0] + bbox[2]) / 2
    if not west - ZONE_MARGIN_DEG <= lon <= east + ZONE_MARGIN_DEG:
        raise InputError(f"{path}: its footprint (centre at longitude {lon:.2f}) lies outside "
                         f"the UTM zone {zone} of its tile T{tile}; fix the file's CRS or "
                         "geotransform")


def scan(folder: Path, count: int | None = None, required_tags: tuple[str, ...] = (),
         tiles: bool = False) -> tuple[list[Acquisition], list[str]]:
    """Read the headers of every ``*.tif`` in ``folder``; returns the acquisitions sorted by
    time and the problems found, which are skipped: unreadable files, wrong band count, a
    missing or non-numeric ``required_tags`` tag, and (``tiles``) a CRS or footprint that
    contradicts the Sentinel-2 tile the file names."""
    acquisitions, problems = [], []
    for path in sorted(Path(folder).glob("*.tif")):
        try:
            with rasterio.open(path) as src:
                if count is not None and src.count != count:
                    raise InputError(f"{path}: expected {count} bands, found {src.count}")
                if src.crs is None:
                    raise InputError(f"{path}: no CRS")
                tags = src.tags()
                bbox = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
                crs = src.crs
            _check_tags(path, tags, required_tags)
            if tiles:
                _check_tile(path, crs, bbox, tags)
            acquisitions.append(Acquisition(path, _parse_time(tags, path), bbox, tags))
        except (InputError, rasterio.errors.RasterioError, OSError) as exc:
            msg = str(exc) if isinstance(exc, InputError) else f"{path}: unreadable ({exc})"
            log.error("skipping archive file: %s", msg)
            problems.append(msg)
    acquisitions.sort(key=lambda a: (a.time, a.path.name))
    return acquisitions, problems


def _s2_reader(found: list[Any], grid: Grid) -> Callable[[engine.Acquisition],
                                                          np.ndarray | None]:
    """The engine's reader of the archive's Sentinel-2 files ``found``: an acquisition read
    onto ``grid`` with nearest (bands x H x W, dtype and nodata of ``S2``), or None (one
    log line) when its file is corrupt."""
    files = {a.path.name: a for a in found}

    def read(acq: engine.Acquisition) -> np.ndarray | None:
        try:
            return warp_array(files[acq.name].path, grid, "nearest", S2.nodata, S2.dtype)
        except InputError as exc:
            log.error("skipping corrupt acquisition: %s", exc)
            return None
    return read


def _engine_acquisition(acq: Acquisition) -> engine.Acquisition:
    """The mosaicking engine's view of an archive file."""
    return engine.Acquisition(
        name=acq.path.name, time=acq.time,
        solar_azimuth=float(acq.tags["MEAN_SOLAR_AZIMUTH_ANGLE"]),
        solar_zenith=float(acq.tags["MEAN_SOLAR_ZENITH_ANGLE"]),
        product_id=acq.tags.get("PRODUCT_ID", acq.path.stem), footprint=acq.bbox)


def query(acquisitions: list[Acquisition], roi_ring: list[tuple[float, float]],
          start: dt.date, end: dt.date) -> list[Acquisition]:
    """Acquisitions sensed in ``[start, end]`` whose bounding box intersects the ROI."""
    roi = Polygon(roi_ring)
    return [a for a in acquisitions
            if start <= a.date <= end and box(*a.bbox).intersects(roi)]


#: The archive's folder of ESA WorldCover tiles (docs/archive.md).
WORLDCOVER_DIR = "worldcover"


def worldcover_tiles(archive: Path, version: str) -> list[Path]:
    """The ESA WorldCover map tiles of ``version`` (``v100``, ``v200``) in the archive's
    ``worldcover/`` folder, named as ESA publishes them:
    ``ESA_WorldCover_10m_<year>_<version>_<tile>_Map.tif`` (any CRS and grid)."""
    year = WORLDCOVER_VERSIONS[version][0]
    return sorted((Path(archive) / WORLDCOVER_DIR).glob(
        f"ESA_WorldCover_10m_{year}_{version}_*_Map.tif"))


def read_worldcover(tiles: Sequence[Path], grid: Grid) -> tuple[np.ndarray, list[str]]:
    """ESA WorldCover tiles on ``grid``: (1, H, W) uint8 classes (0: no data) and the names
    of the tiles that cover part of it. Each tile's classes are resampled by
    :func:`labels.resampling_for` (mode from finer pixels, else nearest; never an
    interpolation); where tiles overlap the first one with a class wins. Raises
    :class:`InputError` for an unreadable tile."""
    out = np.zeros((1, *grid.shape), np.uint8)
    target = pixel_size_m(grid)
    g_bounds = transform_bounds(grid.crs, "EPSG:4326", *grid.bounds, densify_pts=21)
    used = []
    for path in tiles:
        try:
            with rasterio.open(path) as src:
                bounds = transform_bounds(src.crs, "EPSG:4326", *src.bounds, densify_pts=21)
                tile_grid = Grid(src.crs.to_string(), src.transform, src.width, src.height)
                count = src.count
        except (rasterio.errors.RasterioError, OSError) as exc:
            raise InputError(f"{path}: unreadable ESA WorldCover tile ({exc})") from exc
        if count != 1:
            raise InputError(f"{path}: expected 1 band (the WorldCover Map), found {count}")
        if not box(*bounds).intersects(box(*g_bounds)):
            continue
        method = resampling_for(pixel_size_m(tile_grid), target)
        arr = warp_array(path, grid, method, WC.nodata, WC.dtype)
        fill = (out[0] == WC.nodata) & (arr[0] != WC.nodata)
        if fill.any():
            out[0][fill] = arr[0][fill]
            used.append(path.name)
    return out, used


class LocalBackend(Backend):
    """Backend over a local archive directory (``s2/``, ``s1/``, ``lc/``)."""

    name = "local"

    def __init__(self, archive: str | Path, progress: bool = False):
        self.archive = Path(archive)
        if not self.archive.is_dir():
            raise InputError(f"archive directory not found: {self.archive} "
                             "(create the demo one with `sen12ms-build demo-archive DIR`)")
        for kind in ("s2", "s1", "lc"):
            if not any((self.archive / kind).glob("*.tif")):
                raise InputError(f"archive {self.archive} has no GeoTIFF in {kind}/ "
                                 "(layout: docs/archive.md)")
        self.progress = progress
        self._index: dict[str, tuple[list[Acquisition], list[str]]] = {}
        self._unused: list[str] = []

    def index(self, kind: str) -> list[Acquisition]:
        """Acquisitions of ``s2`` or ``s1`` (cached after the first scan)."""
        if kind not in self._index:
            if kind == "s2":
                self._index[kind] = scan(self.archive / kind, S2.count, S2_REQUIRED_TAGS,
                                         tiles=True)
            else:
                self._index[kind] = scan(self.archive / kind, {"s1": S1.count}[kind])
        return self._index[kind][0]

    def supports(self, ability: str) -> bool:
        """See :meth:`Backend.supports`: the local backend reports skipped files and, in
        :meth:`prepare`, the files no ROI of the run can use; it exports ``cr-ts`` time
        series."""
        return ability in ("problems", "prepare", "time_series")

    @staticmethod
    def _writer(grid: Grid) -> cloudy.Writer:
        """An export writer on ``grid`` (:data:`cloudy.Writer`)."""
        def write(path: Path, data: np.ndarray, **kw: Any) -> None:
            _write(path, data, crs=grid.crs, transform=grid.transform, **kw)
        return write

    def export_time_series(self, request: TimeSeriesRequest,
                           out_dir: Path) -> TimeSeriesExport:
        """See :meth:`Backend.export_time_series`: the archive's acquisitions of the
        period over the ROI, read on the export grid with nearest (as for the mosaic)."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        grid = request.grid(self.export_grid)
        roi_mask = ~geometry_mask([{"type": "Polygon", "coordinates": [request.roi.ring()]}],
                                  out_shape=grid.shape, transform=grid.transform)
        ring = request.roi.ring()
        s2 = query(self.index("s2"), ring, request.start, request.end)
        s1 = query(self.index("s1"), ring, request.start, request.end)
        read_s2 = _s2_reader(s2, grid)

        def read_s1(a: dict[str, Any]) -> np.ndarray | None:
            try:
                return warp_array(a["path"], grid, "nearest", S1.nodata, S1.dtype)
            except InputError as exc:
                log.error("skipping corrupt acquisition: %s", exc)
                return None

        s1_items = [{"id": a.tags.get("PRODUCT_ID", a.path.stem), "time": a.time.isoformat(),
                     "orbit_pass": a.tags.get("ORBIT_PASS", ""), "path": a.path} for a in s1]
        return cloudy.export_time_series(request, [_engine_acquisition(a) for a in s2],
                                         read_s2, s1_items, read_s1, roi_mask, out,
                                         self._writer(grid))

    def prepare(self, requests: Sequence[SceneRequest]) -> None:
        """Record the archive files sensed in a requested period whose footprint misses
        every ROI requested for that period: a file with a wrong CRS or geotransform is
        never used, and would otherwise go unmentioned."""
        self._unused = []
        for kind in ("s2", "s1"):
            for acq in self.index(kind):
                periods = [r for r in requests if r.start <= acq.date <= r.end]
                if periods and not any(box(*acq.bbox).intersects(Polygon(r.roi.ring()))
                                       for r in periods):
                    self._unused.append(
                        f"{acq.path}: its footprint (lon {acq.bbox[0]:.3f}..{acq.bbox[2]:.3f}, "
                        f"lat {acq.bbox[1]:.3f}..{acq.bbox[3]:.3f}) misses every ROI of "
                        "this run in its period; not used (check its CRS and geotransform)")
        for line in self._unused:
            log.warning("archive file not used: %s", line)

    @property
    def problems(self) -> list[str]:
        """Archive files skipped so far (path and reason), and those no ROI can use."""
        return [p for _, probs in self._index.values() for p in probs] + self._unused

    # -- modalities --------------------------------------------------------------------------

    def _s2(self, request: SceneRequest, grid: Grid, roi_mask: np.ndarray,
            out: Path) -> dict[str, Any]:
        params = request.params
        found = query(self.index("s2"), request.roi.ring(), request.start, request.end)
        if not found:
            raise NoDataError(f"no Sentinel-2 acquisition for ROI {request.roi.id} in "
                              f"{request.start}..{request.end}")
        read = _s2_reader(found, grid)

        acqs = [_engine_acquisition(a) for a in found]
        res = engine.mosaic_acquisitions(acqs, read, pixel_size_m(grid), roi_mask, params)
        if res is None:
            raise NoDataError(f"no readable Sentinel-2 acquisition covers ROI {request.roi.id}")
        if request.variant == "cr":  # the cloud-removal pair's cloudy input (backends.cloudy)
            res.meta.update(cloudy.export_cloudy(acqs, read, res.meta, roi_mask, request.cloudy,
                                                 out, self._writer(grid), request.roi.id))
        _write(out / EXPORT_FILES["s2"], res.mosaic, crs=grid.crs, transform=grid.transform,
               nodata=S2.nodata, descriptions=S2.descriptions,
               tags={"MOSAIC_IMAGES": len(res.meta["s2_images"]),
                     "BEST_IMAGES": len(res.meta["s2_best"])})
        _write(out / EXPORT_FILES["aux"], res.aux, crs=grid.crs, transform=grid.transform,
               nodata=255, descriptions=AUX_MASKS.descriptions)
        return res.meta

    def _s1(self, request: SceneRequest, grid: Grid, out: Path) -> dict[str, Any]:
        found = query(self.index("s1"), request.roi.ring(), request.start, request.end)
        result = np.full((S1.count, *grid.shape), np.nan, np.float32)
        used, acqs = [], []
        for acq in found:  # oldest first: the newest ends on top
            try:
                arr = warp_array(acq.path, grid, "nearest", S1.nodata, S1.dtype)
            except InputError as exc:
                log.error("skipping corrupt acquisition: %s", exc)
                continue
            ok = ~np.any(np.isnan(arr), axis=0)
            if ok.any():
                result[:, ok] = arr[:, ok]
                used.append(acq.path.name)
                acqs.append({"file": acq.path.name, "time": acq.time.isoformat(),
                             "product_id": acq.tags.get("PRODUCT_ID", acq.path.stem),
                             "orbit_pass": acq.tags.get("ORBIT_PASS", ""),
                             "relative_orbit": acq.tags.get("RELATIVE_ORBIT") or None,
                             "processing": acq.tags.get("PROCESSING")
                             or "unstated (local archive)"})
        if not used:
            raise NoDataError(f"no Sentinel-1 acquisition for ROI {request.roi.id} in "
                              f"{request.start}..{request.end}")
        _write(out / EXPORT_FILES["s1"], result, crs=grid.crs, transform=grid.transform,
               nodata=S1.nodata, descriptions=S1.descriptions)
        return {"s1_images": used, "s1_acquisitions": acqs}

    def _lc(self, request: SceneRequest, grid: Grid, out: Path) -> dict[str, Any]:
        path = self.archive / "lc" / f"MCD12Q1_{request.landcover_year}.tif"
        if not path.exists():
            raise NoDataError(f"no land cover for {request.landcover_year}: {path} is missing")
        arr = warp_array(path, grid, "nearest", LC.nodata, LC.dtype)
        if arr.shape[0] != LC.count:
            raise InputError(f"{path}: expected {LC.count} bands, found {arr.shape[0]}")
        _write(out / EXPORT_FILES["lc"], arr, crs=grid.crs, transform=grid.transform,
               nodata=LC.nodata, descriptions=LC.descriptions)
        return {"lc_file": path.name, "lc_year": request.landcover_year}

    def _labels(self, request: SceneRequest, grid: Grid, out: Path) -> dict[str, Any]:
        """The 10 m labels of ``request.labels`` (``worldcover``; Dynamic World is Earth
        Engine only and stopped at config load)."""
        if request.labels != "worldcover":
            raise NoDataError(f"labels {request.labels!r}: the local backend reads ESA "
                              "WorldCover only")
        version = request.worldcover_version
        year, collection, _ = WORLDCOVER_VERSIONS[version]
        tiles = worldcover_tiles(self.archive, version)
        if not tiles:
            raise NoDataError(
                f"no ESA WorldCover {version} ({year}) tile in {self.archive / WORLDCOVER_DIR}"
                f" (ESA_WorldCover_10m_{year}_{version}_<tile>_Map.tif; docs/archive.md)")
        arr, used = read_worldcover(tiles, grid)
        if not used:
            raise NoDataError(f"no ESA WorldCover {version} tile covers ROI {request.roi.id}")
        _write(out / EXPORT_FILES["wc"], arr, crs=grid.crs, transform=grid.transform,
               nodata=WC.nodata, descriptions=WC.descriptions,
               tags={"PRODUCT": collection, "VERSION": version, "YEAR": year})
        return {"labels": {"product": "worldcover", "id": collection, "version": version,
                           "period": str(year), "files": used}}

    def export_scene(self, request: SceneRequest, out_dir: Path) -> SceneExport:
        """See :class:`sen12ms_build.backends.Backend`."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        grid = request.grid(self.export_grid)
        roi_mask = ~geometry_mask([{"type": "Polygon", "coordinates": [request.roi.ring()]}],
                                  out_shape=grid.shape, transform=grid.transform)
        meta: dict[str, Any] = {"backend": self.name, "grid": {
            "crs": grid.crs, "transform": list(grid.transform)[:6],
            "width": grid.width, "height": grid.height}}
        meta.update(self._s2(request, grid, roi_mask, out))
        meta.update(self._s1(request, grid, out))
        meta.update(self._lc(request, grid, out))
        if request.labels:
            meta.update(self._labels(request, grid, out))
        return SceneExport.in_folder(out, meta)
