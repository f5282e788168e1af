"""The ``stac`` backend: the SEN12MS algorithm on open archives behind STAC APIs.

For a scene it searches each modality's profile (:mod:`.search`), reads every Sentinel-2
acquisition straight onto the scene's UTM 10 m grid (:mod:`.sentinel2`, :mod:`.reader`) and
mosaics them with the shared engine (:func:`sen12ms_build.mosaic.engine.mosaic_acquisitions`),
composes Sentinel-1 newest on top (:mod:`.sentinel1`) and warps the MODIS land cover with
nearest (:mod:`.modis`); with ``labels: worldcover`` it reads ESA WorldCover's tiles by
mode (:mod:`.worldcover`). It declares :attr:`ExportGrid.SCENE`: the warp stage adopts its
files without a second resampling.

An acquisition whose asset is missing or unreadable is skipped; the problem (item, asset,
reason) is in :attr:`StacBackend.problems` and the scene's ``inputs_skipped``. A source that
is unreachable or refuses its credentials stops the run (:class:`.reader.SourceUnavailable`,
one line); finished scenes are kept and a second run resumes.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ...geo import Grid, pixel_size_m
from ...mosaic import engine
from ...products import AUX_MASKS, LC, S1, S2_BANDS, WC, s2_modality
from ...raster.io import FAST_COMPRESSION, write_raster
from .. import (EXPORT_FILES, Backend, ExportGrid, NoDataError, SceneExport, SceneRequest,
                TimeSeriesExport, TimeSeriesRequest, cloudy)
from . import access, credentials, modis, sentinel1, sentinel2, worldcover
from .credentials import redact, strip_url
from .options import Source, StacOptions
from .reader import AssetProblem, AssetReader, BandAsset, SourceUnavailable
from .search import SearchResult, search

log = logging.getLogger(__name__)


def _write(path: Path, data: np.ndarray, **kw: Any) -> None:
    write_raster(path, data, **kw, **FAST_COMPRESSION)


def roi_bbox(request: SceneRequest) -> tuple[float, float, float, float]:
    """The ROI's lon/lat bounding box (its densified ring's extent)."""
    ring = request.roi.ring()
    lons, lats = [p[0] for p in ring], [p[1] for p in ring]
    return min(lons), min(lats), max(lons), max(lats)


class StacBackend(Backend):
    """Backend over STAC APIs (see the module doc).

    Args:
        options: the parsed ``backend.stac`` section (:func:`.options.parse`).
        scorer: the run's ``mosaic.scorer`` (``scl`` adds the SCL plane to L2A reads).
    """

    name = "stac"
    export_grid = ExportGrid.SCENE

    def __init__(self, options: StacOptions, scorer: str = "paper"):
        self.options = options
        self.scorer = scorer
        credentials.install_log_filter()
        for w in options.warnings:
            log.warning("backend.stac: %s", w)
        self._problems: list[str] = []
        self._lock = threading.Lock()
        self._readers: dict[str, AssetReader] = {}
        self._session: Any = None

    # -- abilities ---------------------------------------------------------------------------

    def supports(self, ability: str) -> bool:
        """See :meth:`Backend.supports`: skipped inputs, a dry run of its own and ``cr-ts``
        time series (:mod:`.timeseries`)."""
        return ability in ("problems", "dry_run", "time_series")

    def export_time_series(self, request: TimeSeriesRequest,
                           out_dir: Path) -> TimeSeriesExport:
        """See :meth:`Backend.export_time_series` (:mod:`.timeseries`)."""
        from .timeseries import export_time_series

        return export_time_series(self, request, out_dir)

    @property
    def problems(self) -> list[str]:
        """Inputs skipped so far: ``item: asset: reason`` (no credential, no query string)."""
        with self._lock:
            return list(self._problems)

    def _problem(self, exc: AssetProblem) -> str:
        return self._problem_line(str(exc))

    def _problem_line(self, text: str) -> str:
        line = redact(text)
        log.error("skipping acquisition: %s", line)
        with self._lock:
            if line not in self._problems:
                self._problems.append(line)
        return line

    def dry_run(self, requests: Sequence[SceneRequest]) -> Any:
        """The plan of requests, bytes and granules per modality and profile
        (:func:`.plan.plan`), against the profiles' quotas; offline."""
        from .plan import plan

        return plan(requests, self.options)

    # -- helpers -----------------------------------------------------------------------------

    def reader(self, source: Source) -> AssetReader:
        key = f"{source.modality}:{source.profile.name}:{source.kind}"
        if key not in self._readers:
            self._readers[key] = AssetReader(source.profile, source.kind,
                                             self.options.timeout_s, self.options.retries,
                                             self.options.max_concurrent)
        return self._readers[key]

    def _search(self, source: Source, request: SceneRequest, start=None, end=None,
                headers: Mapping[str, str] | None = None) -> SearchResult:
        return search(source.profile.endpoint, source.product.collection, roi_bbox(request),
                      start or request.start, end or request.end,
                      timeout_s=self.options.timeout_s, retries=self.options.retries,
                      page_size=self.options.page_size, headers=headers)

    def _http(self) -> Any:
        """A requests session with the search's retry policy (XML assets)."""
        if self._session is None:
            import requests
            from requests.adapters import HTTPAdapter

            from .search import retry_policy

            s = requests.Session()
            s.mount("http://", HTTPAdapter(max_retries=retry_policy(self.options.retries)))
            s.mount("https://", HTTPAdapter(max_retries=retry_policy(self.options.retries)))
            self._session = s
        return self._session

    # -- Sentinel-2 --------------------------------------------------------------------------

    def s2_acquisitions(self, request: SceneRequest) -> tuple[list[engine.Acquisition],
                                                              dict[str, Any]]:
        """The period's Sentinel-2 acquisitions over the ROI, oldest first, and what the
        search left out (duplicates, items without their assets)."""
        src = self.options.sources["s2"]
        level = src.level or "l1c"
        found = self._search(src, request)
        acqs, skipped = [], []
        for item in found.items:
            try:
                acqs.append(sentinel2.acquisition(item, src.product, level,
                                                  with_scl=self.scorer == "scl"))
            except AssetProblem as exc:
                skipped.append(self._problem(exc))
        acqs.sort(key=lambda a: (a.time, a.name))
        return acqs, {"skipped": skipped, "dropped": [d.line() for d in found.dropped],
                      "repeated": found.repeated}

    def s2_reader(self, grid: Grid, skipped: list[str]
                  ) -> tuple[Callable[[engine.Acquisition], np.ndarray | None],
                             list[SourceUnavailable]]:
        """The engine's reader of Sentinel-2 acquisitions onto ``grid``
        (:func:`sentinel2.read_acquisition`), and the list that keeps the first
        :class:`SourceUnavailable`. An acquisition with a broken asset reads as None, its
        problem line appended to ``skipped``; once the source is unavailable every later
        one reads as None too, and the caller raises the kept failure when the engine is
        done."""
        src = self.options.sources["s2"]
        level = src.level or "l1c"
        reader = self.reader(src)
        failure: list[SourceUnavailable] = []

        def read(acq: engine.Acquisition) -> np.ndarray | None:
            if failure:
                return None
            try:
                return sentinel2.read_acquisition(reader, acq, grid, level)
            except AssetProblem as exc:
                skipped.append(self._problem(exc))
            except SourceUnavailable as exc:
                failure.append(exc)
            return None

        return read, failure

    def s2_mosaic(self, request: SceneRequest, grid: Grid, roi_mask: np.ndarray
                  ) -> tuple[engine.MosaicResult, dict[str, Any]]:
        """The scene's Sentinel-2 mosaic through the shared engine (:func:`s2_acquisitions`
        read by :func:`sentinel2.read_acquisition`)."""
        src = self.options.sources["s2"]
        acqs, info = self.s2_acquisitions(request)
        if not acqs:
            raise NoDataError(f"no Sentinel-2 acquisition for ROI {request.roi.id} in "
                              f"{request.start}..{request.end} at {src.profile.name}")
        read, failure = self.s2_reader(grid, info["skipped"])
        res = engine.mosaic_acquisitions(acqs, read, pixel_size_m(grid), roi_mask,
                                         request.params)
        if failure:
            raise failure[0]
        info["acquisitions"], info["read"] = acqs, read  # (the cr variant reads one again)
        if res is None:
            raise NoDataError(f"no readable Sentinel-2 acquisition covers ROI "
                              f"{request.roi.id} ({len(info['skipped'])} skipped)")
        rules = sorted({r for a in acqs for r in a.extra.get("offset_rules", [])})
        info["offset_rules"] = rules
        return res, info

    # -- Sentinel-1 --------------------------------------------------------------------------

    def _s1(self, request: SceneRequest, grid: Grid) -> tuple[np.ndarray, dict[str, Any]]:
        """The period's GRD products through the chain, newest on top (module doc of
        :mod:`.sentinel1`)."""
        from ...sar.selection import paint_newest_on_top

        src = self.options.sources["s1"]
        found = self._search(src, request)
        items, skipped, left = sentinel1.painting_order(
            found.items, request.start, request.end, request.roi.ring())
        for line in skipped:
            self._problem_line(line)
        if left:
            log.info("Sentinel-1: %d item(s) not IW GRD VV+VH over the ROI in the period: %s",
                     len(left), ", ".join(left))
        if not items:
            raise NoDataError(f"no Sentinel-1 acquisition for ROI {request.roi.id} in "
                              f"{request.start}..{request.end} at {src.profile.name}")
        dem: dict[str, Any] = {}
        layers, acqs = [], []
        for item in items:  # oldest first
            try:
                if "heights" not in dem:
                    dem["heights"], dem["meta"] = self._dem(grid, request)
                arr, chain_meta = self._s1_grd(item, src, grid, dem["heights"])
            except AssetProblem as exc:
                skipped.append(self._problem(exc))
                continue
            layers.append(arr)
            if np.all(np.isfinite(arr), axis=0).any():
                acqs.append(sentinel1.acquisition(chain_meta, item))
        if not acqs:
            raise NoDataError(f"no readable Sentinel-1 acquisition covers ROI "
                              f"{request.roi.id} ({len(skipped)} skipped)")
        result = paint_newest_on_top(layers)
        return result, {"s1_images": [a["file"] for a in acqs], "s1_acquisitions": acqs,
                        "s1_skipped": skipped, "dem": dem.get("meta", {}),
                        "s1_dropped": [d.line() for d in found.dropped]}

    def _s1_grd(self, item: Mapping[str, Any], src: Source, grid: Grid, dem: np.ndarray
                ) -> tuple[np.ndarray, dict[str, Any]]:
        """One GRD item as sigma0 dB on ``grid`` through the GRD chain, and its metadata."""
        inputs = sentinel1.grd_inputs(item, src.product, lambda href: self._fetch(src, href),
                                      self.reader(src))
        arr, meta = sentinel1.sigma0_on_grid(inputs, grid, dem)
        log.info("Sentinel-1 %s: radar window %s, %.1f %% of the grid covered", item["id"],
                 meta.get("window"), 100.0 * float(meta.get("covered", 0.0)))
        return arr.astype(np.float32, copy=False), meta

    def _fetch(self, src: Source, href: str) -> bytes:
        """The bytes of a small asset (the SAFE's XML): ``http(s)`` signed when the profile
        signs (signed again after a 403), ``s3://`` with the profile's S3 settings and keys,
        or a local file.

        Raises:
            AssetProblem: missing; SourceUnavailable: unreachable or refused.
        """
        reader = self.reader(src)
        url = access.rewrite(href, reader.rules)
        if url.startswith("s3://"):
            return sentinel1.s3_get(src.profile, src.kind, url, self.options.timeout_s,
                                 self.options.retries)
        if not url.startswith(("http://", "https://")):
            path = Path(url.removeprefix("file://"))
            if not path.is_file():
                raise AssetProblem(strip_url(href), "xml", "missing")
            return path.read_bytes()
        for attempt in (0, 1):
            signed = reader.signer.sign(url, fresh=attempt > 0) if reader.signer else url
            try:
                with access.host_slot(access.host_of(url), reader.limit):
                    return sentinel1.fetch_bytes(self._http(), signed, self.options.timeout_s)
            except SourceUnavailable as exc:
                if attempt == 0 and reader.signer is not None and "HTTP 403" in str(exc):
                    log.info("%s: HTTP 403, signing again (token expired?)", strip_url(url))
                    continue
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _dem(self, grid: Grid, request: SceneRequest) -> tuple[np.ndarray, dict[str, Any]]:
        """Copernicus DEM heights (m above the geoid) on ``grid``, bilinear from the tiles'
        1 arc-second pixels; (H, W) float32. Pixels no tile covers are 0 m (the Copernicus
        DEM has no tiles over open sea): their share is ``filled`` in the metadata.

        Raises:
            AssetProblem, SourceUnavailable: a tile could not be read.
        """
        import datetime as dt

        src = self.options.sources["dem"]
        found = search(src.profile.endpoint, src.product.collection, roi_bbox(request),
                       dt.date(2000, 1, 1), dt.date.today(), timeout_s=self.options.timeout_s,
                       retries=self.options.retries, dedup=False)
        out = np.full(grid.shape, np.nan, np.float32)
        key = src.product.assets.get("DEM", "data")
        tiles = []
        for item in found.items:
            a = item.get("assets", {}).get(key)
            if not a:
                continue
            tile = self.reader(src).read(BandAsset(str(item["id"]), "DEM", key,
                                                   str(a["href"])), grid, "float32",
                                         float("nan"))
            hole = np.isnan(out) & ~np.isnan(tile)
            out[hole] = tile[hole]
            tiles.append(str(item["id"]))
        filled = float(np.isnan(out).mean())
        out[np.isnan(out)] = 0.0
        if filled:
            log.info("DEM: %.1f %% of ROI %s has no %s tile: 0 m above the geoid there",
                     100.0 * filled, request.roi.id, src.product.collection)
        return out, {"collection": src.product.collection, "tiles": tiles,
                     "filled": round(filled, 6)}

    # -- land cover --------------------------------------------------------------------------

    def _lc(self, request: SceneRequest, grid: Grid) -> tuple[np.ndarray, dict[str, Any]]:
        import datetime as dt

        src = self.options.sources["lc"]
        year = request.landcover_year
        session = modis.earthdata_session(self.options.retries)
        # CMR-STAC searches public collections without the token; only downloads carry it
        found = self._search(src, request, dt.date(year, 1, 1), dt.date(year, 12, 31))
        cache = modis.GranuleCache(self.options.cache / "granules")
        files, used, skipped = [], [], []
        for item in found.items:
            key = src.product.assets.get("LC_Type1", "data")
            a = item.get("assets", {}).get(key)
            try:
                if not a:
                    raise AssetProblem(str(item["id"]), key, "missing from the item")
                files.append(cache.fetch(str(item["id"]), str(a["href"]), session,
                                         modis.stated_checksum(a), self.options.timeout_s))
                used.append(str(item["id"]))
            except AssetProblem as exc:
                skipped.append(self._problem(exc))
        if not files:
            raise NoDataError(f"no MCD12Q1 granule of {year} for ROI {request.roi.id} at "
                              f"{src.profile.name} ({len(skipped)} skipped)")
        try:
            arr = modis.lc_on_grid(files, grid)
        except AssetProblem as exc:
            skipped.append(self._problem(exc))
            raise NoDataError(f"MCD12Q1 granule unreadable for ROI {request.roi.id}") from None
        return arr, {"lc_file": ";".join(used), "lc_year": year, "lc_skipped": skipped}

    # -- 10 m labels -------------------------------------------------------------------------

    def _labels(self, request: SceneRequest, grid: Grid) -> tuple[np.ndarray, dict[str, Any]]:
        """ESA WorldCover of the request's version on ``grid`` (``labels: worldcover``; the
        config allows no other product with this backend)."""
        from ...labels import WORLDCOVER_VERSIONS

        src = self.options.sources["labels"]
        version = request.worldcover_version
        start, end = worldcover.period(version)
        found = self._search(src, request, start, end)
        items = worldcover.version_items(found.items, version)
        if not items:
            raise NoDataError(f"no ESA WorldCover {version} tile for ROI {request.roi.id} at "
                              f"{src.profile.name} ({src.product.collection})")
        key = src.product.assets.get("Map", "map")
        arr, used, problems = worldcover.read_on_grid(self.reader(src), items, key, grid)
        skipped = [self._problem(p) for p in problems]
        if not used:
            raise NoDataError(f"no readable ESA WorldCover {version} tile covers ROI "
                              f"{request.roi.id} ({len(skipped)} skipped)")
        return arr, {"labels": {"product": "worldcover",
                                "id": WORLDCOVER_VERSIONS[version][1], "version": version,
                                "period": str(start.year), "images": used,
                                "collection": src.product.collection},
                     "labels_skipped": skipped}

    # -- the scene ---------------------------------------------------------------------------

    def export_scene(self, request: SceneRequest, out_dir: Path) -> SceneExport:
        """See :class:`sen12ms_build.backends.Backend`: ``s1.tif``, ``s2.tif`` (the level's
        bands), ``lc.tif`` and ``s2_aux.tif`` on the scene's UTM grid."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        grid = request.grid(self.export_grid)
        roi_mask = np.ones(grid.shape, bool)  # the scene grid is the ROI square itself
        level = self.options.s2_level
        s2m = s2_modality(level)
        src2 = self.options.sources["s2"]
        meta: dict[str, Any] = {
            "backend": self.name, "s2_level": level,
            "sources": {m: {"profile": s.profile.name, "collection": s.product.collection,
                            "endpoint": strip_url(s.profile.endpoint)}
                        for m, s in self.options.sources.items()},
            "grid": {"crs": grid.crs, "transform": list(grid.transform)[:6],
                     "width": grid.width, "height": grid.height}}
        res, info = self.s2_mosaic(request, grid, roi_mask)
        if request.variant == "cr":  # the pair's cloudy input (backends.cloudy)
            from .timeseries import writer

            res.meta.update(cloudy.export_cloudy(info["acquisitions"], info["read"], res.meta,
                                                 roi_mask, request.cloudy, out, writer(grid),
                                                 request.roi.id))
        keep = [S2_BANDS.index(b) for b in s2m.bands]
        mosaic = res.mosaic[keep] if len(keep) != res.mosaic.shape[0] else res.mosaic
        s1, s1_meta = self._s1(request, grid)
        lc, lc_meta = self._lc(request, grid)
        _write(out / EXPORT_FILES["s2"], mosaic, crs=grid.crs, transform=grid.transform,
               nodata=s2m.nodata, descriptions=s2m.descriptions,
               tags={"MOSAIC_IMAGES": len(res.meta["s2_images"]),
                     "BEST_IMAGES": len(res.meta["s2_best"]), "S2_LEVEL": level.upper(),
                     "STAC_PROFILE": src2.profile.name})
        _write(out / EXPORT_FILES["aux"], res.aux, crs=grid.crs, transform=grid.transform,
               nodata=255, descriptions=AUX_MASKS.descriptions)
        _write(out / EXPORT_FILES["s1"], s1, crs=grid.crs, transform=grid.transform,
               nodata=S1.nodata, descriptions=S1.descriptions)
        _write(out / EXPORT_FILES["lc"], lc, crs=grid.crs, transform=grid.transform,
               nodata=LC.nodata, descriptions=LC.descriptions)
        if request.labels:
            labels, labels_meta = self._labels(request, grid)
            _write(out / EXPORT_FILES["wc"], labels, crs=grid.crs, transform=grid.transform,
                   nodata=WC.nodata, descriptions=WC.descriptions)
            lc_meta["lc_skipped"] += labels_meta.pop("labels_skipped")
            meta.update(labels_meta)
        skipped = info["skipped"] + s1_meta.pop("s1_skipped") + lc_meta.pop("lc_skipped")
        dropped = info["dropped"] + s1_meta.pop("s1_dropped")
        meta.update(res.meta)
        dem_meta = s1_meta.pop("dem")
        meta.update(s1_meta)
        meta["dem"] = dem_meta
        meta.update(lc_meta)
        meta["inputs_skipped"] = skipped
        meta["duplicates_dropped"] = dropped
        meta["s2_offset_rules"] = info.get("offset_rules", [])
        return SceneExport.in_folder(out, meta)
