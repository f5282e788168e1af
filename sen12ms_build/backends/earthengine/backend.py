"""The Earth Engine backend: options, connection, and the two export modes behind
:class:`sen12ms_build.backends.Backend`.

For a :class:`~sen12ms_build.backends.SceneRequest` it

1. asks Earth Engine (one ``value:compute``) which Sentinel-2, Sentinel-1 and MODIS images
   the scene uses, with every Sentinel-2 image's CLOUDY_PERCENTAGE and ROI coverage, and
   decides the merge's best images with :func:`sen12ms_build.mosaic.best_images`;
2. builds the three images (:mod:`.graphs`): the cloud-free S2 mosaic with its aux bands,
   the S1 mosaic (newest on top) and the land cover; like the local backend, S2 images are
   clipped to the ROI grown by ``CLIP_MARGIN_PX`` export pixels (so the UTM warp finds data
   at the scene's edges) while statistics use the exact ROI;
3. ``mode="download"``: fetches them on the ROI's export grid in chunks through
   ``computePixels`` (:mod:`.download`); ``mode="batch"``: runs one export task per image to
   Cloud Storage or Drive, waits for it and pulls the files (:mod:`.tasks`);
4. mosaics the pieces into ``s2.tif``, ``s2_aux.tif``, ``s1.tif``, ``lc.tif`` on exactly the
   export grid (EPSG:4326, 0.0001 degrees), written atomically (:mod:`.assemble`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import re
import shutil
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from rasterio.features import geometry_mask

from ... import mosaic
from ...geo import Grid
from ...products import AUX, AUX_MASKS, CLIP_MARGIN_PX, S1_PROCESSING_EE, S2_COLLECTION
from .. import EXPORT_FILES, Backend, NoDataError, SceneExport, SceneRequest
from . import assemble as asm
from . import chunks, download, graphs, tasks
from .auth import Connection, connect
from .client import HIGH_VOLUME_URL, RestClient, RetryPolicy
from .errors import BatchFallback, BatchTaskError, QuotaExhaustedError

log = logging.getLogger(__name__)

MODES = ("download", "batch")
PRODUCT_KEYS = ("s2", "s1", "lc")


def product_keys(request: SceneRequest) -> tuple[str, ...]:
    """The products of a scene: the triplet, then its added labels (``wc``, ``dw``)."""
    return (*PRODUCT_KEYS, *request.extra)


@dataclass(frozen=True)
class EarthEngineOptions:
    """Options of :class:`EarthEngineBackend` (the ``backend.earthengine`` config section).

    Attributes:
        project: Google Cloud project registered for Earth Engine (else
            ``$EARTHENGINE_PROJECT``, ``$GOOGLE_CLOUD_PROJECT``, the credentials' project).
        service_account_key: path of a service-account JSON key (else
            ``$EARTHENGINE_SERVICE_ACCOUNT_KEY``, else ``earthengine authenticate``).
        credentials: ``"persistent"`` (the above) or ``"none"`` (emulators and tests only).
        s2_collection: Sentinel-2 L1C collection id.
        mode: ``"download"`` (computePixels chunks) or ``"batch"`` (export tasks).
        max_concurrency: computePixels requests in flight at most (project quota: 40).
        max_retries: retries of a request after 429 / 5xx / timeouts / truncation.
        backoff_base: seconds; retry k waits up to ``backoff_base * 2**k`` (full jitter).
        backoff_max: seconds, cap of one wait.
        request_timeout: seconds to connect and between received bytes.
        max_request_bytes: uncompressed bytes per computePixels response (limit 48 MiB).
        s2_chunk_px: side (pixels) of the Sentinel-2 mosaic chunks, sized by *compute*:
            every chunk scores every image of the season (40 shadow displacements each),
            see :data:`chunks.S2_CHUNK_PX` for the default and why.
        min_chunk_px: a chunk that hits a compute limit is split in four down to this side;
            below it the scene falls back to a batch export (needs ``bucket`` or
            ``drive_folder``).
        timeout_retries: retries after a read time-out (then the chunk is split).
        cache_dir: chunk cache root (``<cache_dir>/<season>/<roi>/``); default
            ``<out_dir>/.ee-cache``. Also holds the batch task state by default.
        keep_chunks: keep cached chunks after a scene's outputs were written.
        export_aux: also export ``s2_aux.tif`` (:data:`products.AUX_MASKS`: source image
            index, poor, cloud and shadow masks), which curation and the quality layers read.
        bucket: Cloud Storage bucket for batch exports.
        drive_folder: Google Drive folder for batch exports (pulled from ``pull_dir``).
        export_prefix: object-name prefix of batch exports.
        pull_dir: local folder holding the finished exports (a synced Drive folder or a
            ``gsutil rsync`` copy of the bucket); if unset, Cloud Storage is read directly.
        state_file: JSON file of batch task records (default
            ``<cache_dir or ~/.cache/sen12ms-build>/earthengine-tasks.json``).
        poll_interval: seconds between task status polls.
        task_timeout: seconds to wait for a scene's tasks (None: no limit).
        dry_run: ``export_scene`` plans and counts images but downloads no pixels.
        progress: tqdm progress bars for chunks and tasks.
        request_url_base: Earth Engine endpoint for ``ee.Initialize`` and the REST calls
            (default: the standard endpoint, and the high-volume one for downloads).
        storage_url_base: Cloud Storage endpoint override (tests).
        workload_tag: Earth Engine workload tag of the requests (cost attribution).
    """

    project: str | None = None
    service_account_key: str | None = None
    credentials: str = "persistent"
    s2_collection: str = S2_COLLECTION
    mode: str = "download"
    max_concurrency: int = 8
    max_retries: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 64.0
    request_timeout: float = 300.0
    max_request_bytes: int = chunks.MAX_REQUEST_BYTES
    s2_chunk_px: int = chunks.S2_CHUNK_PX
    min_chunk_px: int = chunks.MIN_CHUNK_PX
    timeout_retries: int = 1
    cache_dir: str | None = None
    keep_chunks: bool = False
    export_aux: bool = True
    bucket: str | None = None
    drive_folder: str | None = None
    export_prefix: str = "sen12ms"
    pull_dir: str | None = None
    state_file: str | None = None
    poll_interval: float = 30.0
    task_timeout: float | None = None
    dry_run: bool = False
    progress: bool = True
    request_url_base: str | None = None
    storage_url_base: str | None = None
    workload_tag: str | None = "sen12ms-build"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {self.mode!r}")
        if self.credentials not in ("persistent", "none"):
            raise ValueError("credentials must be 'persistent' or 'none'")
        if not 1 <= int(self.max_concurrency) <= chunks.PROJECT_CONCURRENCY_QUOTA:
            raise ValueError(f"max_concurrency must be within 1..{chunks.PROJECT_CONCURRENCY_QUOTA}"
                             " (Earth Engine's concurrent-request quota per project)")
        if int(self.max_retries) < 0:
            raise ValueError("max_retries must be >= 0")
        if not 0 < int(self.max_request_bytes) <= chunks.MAX_REQUEST_BYTES:
            raise ValueError(f"max_request_bytes must be within 1..{chunks.MAX_REQUEST_BYTES}")
        if not 1 <= int(self.min_chunk_px) <= int(self.s2_chunk_px) <= chunks.MAX_SIDE_PX:
            raise ValueError(f"need 1 <= min_chunk_px <= s2_chunk_px <= {chunks.MAX_SIDE_PX}")
        for name in ("backoff_base", "backoff_max", "request_timeout", "poll_interval"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be > 0 seconds")
        if self.mode == "batch":
            if bool(self.bucket) == bool(self.drive_folder):
                raise ValueError("batch mode needs exactly one of bucket or drive_folder")
            if self.drive_folder and not self.pull_dir:
                raise ValueError("batch exports to Drive are pulled from a local copy: set "
                                 "pull_dir to the synced Drive folder")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any] | None) -> "EarthEngineOptions":
        """Options from a config mapping; unknown names raise ``ValueError`` naming them."""
        options = dict(options or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ValueError(f"unknown Earth Engine option(s): {', '.join(unknown)} "
                             f"(known: {', '.join(sorted(known))})")
        return cls(**options)

    def as_dict(self) -> dict[str, Any]:
        """For manifests: every option except the key path."""
        d = dataclasses.asdict(self)
        d["service_account_key"] = "<set>" if self.service_account_key else None
        return d


@dataclass
class _Scene:
    request: SceneRequest
    grid: Grid
    region: Any  # ee.Geometry: the ROI ring (query, statistics)
    clip: Any  # ee.Geometry: the ring grown by CLIP_MARGIN_PX export pixels (S2 clip)
    start: str
    end: str

    @property
    def key(self) -> str:
        return f"{self.request.season}/{self.request.roi.id}"


def _iso_ms(ms: Any) -> str | None:
    try:
        return dt.datetime.fromtimestamp(float(ms) / 1000.0, dt.UTC).isoformat()
    except (TypeError, ValueError):
        return None


def _time_in_id(product_id: str) -> str | None:
    """The start time in a Sentinel-1 product id (``S1A_IW_GRDH_1SDV_20170603T170603_...``),
    ISO 8601 UTC; None if it has none."""
    m = re.search(r"_(\d{8}T\d{6})_", product_id)
    if not m:
        return None
    return dt.datetime.strptime(m.group(1), "%Y%m%dT%H%M%S").replace(
        tzinfo=dt.UTC).isoformat()


def s1_acquisitions(s1: Sequence[Any]) -> list[dict[str, Any]]:
    """The scene's Sentinel-1 acquisitions from the summary's ``s1`` list (oldest first):
    ``product_id``, ``time`` (ISO, UTC), ``orbit_pass`` (``ASCENDING`` / ``DESCENDING``
    from ``orbitProperties_pass``; "" when Earth Engine reported none), ``relative_orbit``
    (``relativeOrbitNumber_start``; None when unreported) and ``processing``
    (:data:`~sen12ms_build.products.S1_PROCESSING_EE`: Earth Engine made the sigma0), the keys
    the other backends write and :func:`sen12ms_build.dataset.provenance.scene_sources`
    reads. Plain id strings (summaries of earlier versions) give the time from the id and
    no pass."""
    out = []
    for a in s1:
        if not isinstance(a, Mapping):
            a = {"id": str(a)}
        pid = str(a.get("id", ""))
        out.append({"product_id": pid,
                    "time": _iso_ms(a.get("time_start")) or _time_in_id(pid),
                    "orbit_pass": str(a.get("orbit_pass") or "").upper(),
                    "relative_orbit": (int(a["relative_orbit"])
                                       if a.get("relative_orbit") is not None else None),
                    "processing": S1_PROCESSING_EE})
    return out


def _cloudy(s2: Sequence[Mapping[str, Any]]) -> list[float]:
    """CLOUDY_PERCENTAGE per image; 100 where Earth Engine returned none."""
    return [float(i["cloudy_percentage"]) if i.get("cloudy_percentage") is not None else 100.0
            for i in s2]


def _band_count(path: Path) -> int | None:
    """Band count of a GeoTIFF, None if unreadable (then verification reports it)."""
    import rasterio

    try:
        with rasterio.open(path) as src:
            return src.count
    except (rasterio.errors.RasterioError, OSError):
        return None


class EarthEngineBackend(Backend):
    """Google Earth Engine backend (see the module docstring). Constructing it
    authenticates and initializes Earth Engine, so bad credentials fail before any work."""

    name = "earthengine"

    def __init__(self, **options: Any):
        self.options = EarthEngineOptions.from_mapping(options)
        self._conn: Connection | None = None
        self._client: RestClient | None = None
        self._store: tasks.TaskStore | None = None
        self.scenes_done = 0  # scenes exported by this backend object (for the quota line)
        self.connect()

    def supports(self, ability: str) -> bool:
        """See :meth:`Backend.supports`: batch submission up front and the dry run."""
        return ability in ("prepare", "dry_run")

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> Connection:
        """Authenticate and ``ee.Initialize`` (once)."""
        if self._conn is None:
            o = self.options
            self._conn = connect(project=o.project, service_account_key=o.service_account_key,
                                 credentials=o.credentials, url=o.request_url_base)
        return self._conn

    @property
    def client(self) -> RestClient:
        """The REST client of direct downloads (high-volume endpoint by default)."""
        if self._client is None:
            conn = self.connect()
            o = self.options
            self._client = RestClient(
                o.request_url_base or HIGH_VOLUME_URL, conn.project, conn.session,
                policy=RetryPolicy(o.max_retries, o.backoff_base, o.backoff_max,
                                   o.request_timeout, min(o.timeout_retries, o.max_retries)),
                max_concurrency=o.max_concurrency, workload_tag=o.workload_tag)
        return self._client

    @property
    def store(self) -> tasks.TaskStore:
        """The batch task records."""
        if self._store is None:
            o = self.options
            path = (Path(o.state_file) if o.state_file else
                    Path(o.cache_dir or Path.home() / ".cache" / "sen12ms-build")
                    / "earthengine-tasks.json")
            self._store = tasks.TaskStore(path.expanduser())
        return self._store

    # -- scene pieces -----------------------------------------------------------------------------

    def _scene(self, request: SceneRequest) -> _Scene:
        ring = request.roi.ring()
        grid = request.roi.export_grid()
        return _Scene(request, grid, graphs.region_of(ring),
                      graphs.region_of(ring, CLIP_MARGIN_PX * grid.res[0]),
                      request.start.isoformat(), request.end.isoformat())

    def summary(self, request: SceneRequest) -> dict[str, Any]:
        """Images of the scene and S2 statistics (one ``value:compute``); raises
        :class:`NoDataError` if a modality has no image."""
        sc = self._scene(request)
        expr = graphs.encode(graphs.scene_summary(
            sc.region, sc.start, sc.end, request.params, collection=self.options.s2_collection,
            year=request.landcover_year, labels=request.labels,
            version=request.worldcover_version))
        result = self.client.compute_value(expr, what=f"summary of {sc.key}")
        what = f"ROI {request.roi.id} in {sc.start}..{sc.end}"
        if not result.get("s2"):
            raise NoDataError(f"no Sentinel-2 image ({self.options.s2_collection}) for {what}")
        if not result.get("s1"):
            raise NoDataError(f"no Sentinel-1 IW VV+VH image for {what}")
        if not result.get("lc"):
            raise NoDataError(f"no MODIS land cover for {request.landcover_year}")
        if request.labels and not result.get("labels"):
            raise NoDataError(f"no {request.labels} image for {what}")
        return result

    def images(self, request: SceneRequest, summary: Mapping[str, Any]) -> dict[str, Any]:
        """The three ``ee.Image`` of a scene, the S2 best images pinned from ``summary``."""
        sc = self._scene(request)
        s2 = summary["s2"]
        best_ids = [s2[i]["id"] for i in mosaic.best_images(_cloudy(s2), request.params)]
        return {
            "s2": graphs.s2_mosaic(sc.region, sc.start, sc.end, request.params,
                                   collection=self.options.s2_collection,
                                   with_aux=self.options.export_aux, best_ids=best_ids,
                                   clip=sc.clip),
            "s1": graphs.s1_image(sc.region, sc.start, sc.end),
            "lc": graphs.landcover_image(sc.region, request.landcover_year),
            **{k: graphs.labels_image(request.labels, sc.region, sc.start, sc.end, sc.grid,
                                      request.worldcover_version) for k in request.extra},
        }

    def _meta(self, sc: _Scene, summary: Mapping[str, Any]) -> dict[str, Any]:
        s2 = summary["s2"]
        cloudy = _cloudy(s2)
        best = mosaic.best_images(cloudy, sc.request.params)
        g = sc.grid
        return {
            "backend": self.name, "mode": self.options.mode,
            "grid": {"crs": g.crs, "transform": list(g.transform)[:6], "width": g.width,
                     "height": g.height},
            "s2_collection": self.options.s2_collection,
            "s2_images": [{
                "id": i["id"], "time": _iso_ms(i.get("time_start")),
                "solar_azimuth": i.get("solar_azimuth"), "solar_zenith": i.get("solar_zenith"),
                "cloudy_percentage": round(cloudy[n], 3),
                "roi_coverage_percent": (round(float(i["roi_coverage_percent"]), 3)
                                         if i.get("roi_coverage_percent") is not None else None),
                "best": n in best} for n, i in enumerate(s2)],
            "s2_best": [s2[i]["id"] for i in best],
            "s1_images": [a["product_id"] for a in s1_acquisitions(summary["s1"])],
            "s1_acquisitions": s1_acquisitions(summary["s1"]),
            "lc_image": list(summary["lc"])[0],
            **({"labels": self._labels_meta(sc, summary)} if sc.request.labels else {}),
        }

    def _labels_meta(self, sc: _Scene, summary: Mapping[str, Any]) -> dict[str, Any]:
        """The scene's labels source (provenance): product, Earth Engine id, version,
        period, the images used."""
        from ...labels import DYNAMICWORLD_COLLECTION, WORLDCOVER_VERSIONS

        r = sc.request
        if r.labels == "worldcover":
            year, collection, _ = WORLDCOVER_VERSIONS[r.worldcover_version]
            return {"product": "worldcover", "id": collection, "version": r.worldcover_version,
                    "period": str(year), "images": list(summary.get("labels", []))}
        return {"product": "dynamicworld", "id": DYNAMICWORLD_COLLECTION, "version": "V1",
                "period": f"{sc.start}/{sc.end}", "images": list(summary.get("labels", []))}

    def _roi_mask(self, sc: _Scene) -> np.ndarray:
        return ~geometry_mask([{"type": "Polygon", "coordinates": [sc.request.roi.ring()]}],
                              out_shape=sc.grid.shape, transform=sc.grid.transform)

    def _assemble(self, sc: _Scene, pieces: Mapping[str, Sequence[Path]], out: Path,
                  meta: dict[str, Any], expect_full_cover: bool,
                  legacy_aux: bool = False) -> None:
        prods = chunks.products(self.options.export_aux, legacy_aux=legacy_aux,
                                extra=sc.request.extra)
        aux = AUX if legacy_aux else AUX_MASKS
        stats = asm.AuxStats()
        tags = {"SOURCE": f"earthengine:{self.options.mode}", "SEASON": sc.request.season,
                "ROI": sc.request.roi.id}
        for key in product_keys(sc.request):
            ktags = dict(tags)
            if key == "s2":
                ktags.update(MOSAIC_IMAGES=len(meta["s2_images"]),
                             BEST_IMAGES=len(meta["s2_best"]))
            asm.assemble(sc.grid, pieces[key], prods[key],
                         asm.targets_for(key, out, EXPORT_FILES, self.options.export_aux, ktags,
                                         aux=aux),
                         expect_full_cover=expect_full_cover,
                         roi_mask=self._roi_mask(sc) if key == "s2" else None,
                         stats=stats if key == "s2" and self.options.export_aux else None)
        if self.options.export_aux:
            meta["poor_share"] = round(stats.poor_share, 5)
            meta["mosaic_coverage"] = round(stats.mosaic_coverage, 5)
            for n, image in enumerate(meta["s2_images"]):
                image["pixels_in_mosaic"] = stats.sources.get(n, 0)

    # -- the Backend protocol -------------------------------------------------------------------

    def export_scene(self, request: SceneRequest, out_dir: Path) -> SceneExport:
        """See :class:`sen12ms_build.backends.Backend`."""
        out = Path(out_dir)
        if self.options.dry_run:
            plan = self.dry_run([request])
            return SceneExport.in_folder(out, {"backend": self.name, "dry_run": True,
                                               "plan": plan.scenes[0].as_dict()})
        sc = self._scene(request)
        try:
            summary = self.summary(request)
            meta = self._meta(sc, summary)
            images = self.images(request, summary)
            out.mkdir(parents=True, exist_ok=True)
            if self.options.mode == "download":
                self._download(sc, images, out, meta)
            else:
                self._batch(sc, images, out, meta)
            if request.variant == "cr":  # the pair's cloudy input (graphs.cloudy_pick)
                from . import cloudy

                cloudy.export(self, sc, summary, out, meta)
        except QuotaExhaustedError as exc:
            st = self.client.stats if self._client is not None else {"requests": 0, "bytes": 0}
            raise QuotaExhaustedError(
                f"{exc} Stopped at {sc.key} after {self.scenes_done} scene(s) of this run "
                f"({st['requests']} request(s), {st['bytes'] / 2**20:.1f} MiB downloaded); "
                "finished scenes and chunks are kept: run the same command again once the "
                "quota resets to resume.") from None
        self.scenes_done += 1
        return SceneExport.in_folder(out, meta)

    # -- direct download --------------------------------------------------------------------------

    def _cache_root(self, sc: _Scene, out: Path) -> Path:
        if self.options.cache_dir:
            return Path(self.options.cache_dir).expanduser() / sc.request.season / \
                sc.request.roi.id
        return out / ".ee-cache"

    def jobs(self, request: SceneRequest, images: Mapping[str, Any], out: Path
             ) -> list[download.ProductJob]:
        """The chunked computePixels jobs of a scene."""
        sc = self._scene(request)
        plans = chunks.plan_grid(sc.grid, with_aux=self.options.export_aux,
                                 max_bytes=self.options.max_request_bytes,
                                 s2_side=self.options.s2_chunk_px, extra=request.extra)
        root = self._cache_root(sc, out)
        return [download.ProductJob(k, plans[k].product, graphs.encode(images[k]), sc.grid,
                                    plans[k].chunks, root, min_side=self.options.min_chunk_px)
                for k in product_keys(request)]

    def _download(self, sc: _Scene, images: Mapping[str, Any], out: Path,
                  meta: dict[str, Any]) -> None:
        if self.store.get(f"{sc.key}/s2") is not None:  # fell back before: resume the tasks
            log.warning("%s: resuming its batch export (recorded fallback)", sc.key)
            meta["fallback"] = "batch (recorded)"
            self._batch(sc, images, out, meta)
            return
        jobs = self.jobs(sc.request, images, out)
        before = dict(self.client.stats)
        try:
            pieces = download.download(self.client, jobs,
                                       max_workers=self.options.max_concurrency,
                                       progress=self.options.progress, desc=sc.key)
        except BatchFallback as exc:
            self._fallback(sc, images, out, meta, exc)
            return
        meta["splits"] = {j.key: len(j.splits) for j in jobs if j.splits}
        self._assemble(sc, pieces, out, meta, expect_full_cover=True)
        after = self.client.stats
        meta["requests"] = {"chunks": sum(len(j.chunks) for j in jobs),
                            "http": after["requests"] - before["requests"],
                            "retries": after["retries"] - before["retries"],
                            "bytes": after["bytes"] - before["bytes"]}
        if not self.options.keep_chunks:
            download.clear_cache(jobs)

    def _fallback(self, sc: _Scene, images: Mapping[str, Any], out: Path,
                  meta: dict[str, Any], exc: BatchFallback) -> None:
        """A chunk too heavy even at the floor: export the scene with batch tasks (no
        interactive limits), recorded in the task state file so a resumed run goes
        straight there."""
        o = self.options
        if not (o.bucket or o.drive_folder):
            raise BatchFallback(
                f"{sc.key}: {exc} Set backend.earthengine.bucket (or drive_folder and "
                "pull_dir) so that such scenes fall back to a batch export task.") from None
        log.warning("%s: falling back to a batch export: %s", sc.key, exc)
        meta["fallback"] = f"batch: {exc}"
        self._batch(sc, images, out, meta)

    # -- batch export -----------------------------------------------------------------------------

    def _record_args(self, sc: _Scene, key: str) -> dict[str, Any]:
        o = self.options
        if o.bucket:
            return {"destination": tasks.GCS, "bucket": o.bucket,
                    "prefix": f"{o.export_prefix}/{sc.key}/{key}"}
        name = f"{o.export_prefix}_{sc.request.season}_{sc.request.roi.id}_{key}"
        return {"destination": tasks.DRIVE, "folder": o.drive_folder, "prefix": name}

    def _submit_scene(self, sc: _Scene, images: Mapping[str, Any]) -> list[tasks.TaskRecord]:
        prods = chunks.products(self.options.export_aux, extra=sc.request.extra)
        recs = []
        for key in product_keys(sc.request):
            digest = download.request_digest(graphs.encode(images[key]), sc.grid, prods[key])
            recs.append(tasks.submit(self.store, f"{sc.key}/{key}", images[key], sc.grid,
                                     digest=digest, **self._record_args(sc, key)))
        return recs

    def submit(self, requests: Sequence[SceneRequest]) -> list[tasks.TaskRecord]:
        """Batch mode: start (or resume) the export tasks of many scenes without waiting,
        so they run in parallel on Earth Engine. Scenes without data are logged and
        skipped. Returns the task records."""
        out: list[tasks.TaskRecord] = []
        for request in requests:
            sc = self._scene(request)
            try:
                summary = self.summary(request)
            except NoDataError as exc:
                log.warning("%s: %s; not submitted", sc.key, exc)
                continue
            out += self._submit_scene(sc, self.images(request, summary))
        log.info("batch tasks: %s", self.store.summary())
        return out

    def prepare(self, requests: Sequence[SceneRequest]) -> None:
        """Call once with all of a run's scenes before exporting them one by one: in batch
        mode this submits every export task up front (:meth:`submit`) so Earth Engine runs
        them in parallel while :meth:`export_scene` waits for and pulls one scene at a time;
        a no-op in download mode and in a dry run."""
        if self.options.mode == "batch" and not self.options.dry_run:
            self.submit(requests)

    def _source(self) -> tasks.ExportSource:
        o = self.options
        if o.pull_dir:
            return tasks.LocalFolderSource(Path(o.pull_dir).expanduser())
        conn = self.connect()
        return tasks.GcsSource(conn.project, conn.credentials, o.storage_url_base)

    def _batch(self, sc: _Scene, images: Mapping[str, Any], out: Path,
               meta: dict[str, Any]) -> None:
        recs = self._submit_scene(sc, images)
        keys = [r.key for r in recs]
        tasks.wait_for(self.store, keys, poll_interval=self.options.poll_interval,
                       timeout=self.options.task_timeout, progress=self.options.progress)
        self._pull(sc, out, meta)

    def _pull(self, sc: _Scene, out: Path, meta: dict[str, Any]) -> None:
        prods = chunks.products(self.options.export_aux, extra=sc.request.extra)
        source = self._source()
        dest = self._cache_root(sc, out) / "exports"
        dest.mkdir(parents=True, exist_ok=True)
        pieces: dict[str, list[Path]] = {}
        task_ids = {}
        legacy = False
        for key in product_keys(sc.request):
            rec = self.store.get(f"{sc.key}/{key}")
            if rec is None or rec.state != tasks.SUCCEEDED:
                raise BatchTaskError(f"export {sc.key}/{key} is not finished "
                                     f"({rec.state if rec else 'not submitted'})")
            files = source.fetch(rec, dest)
            if key == "s2" and self.options.export_aux and _band_count(files[0]) == \
                    len(chunks.products(True, legacy_aux=True)["s2"].bands):
                # finished by a version that exported 2 aux bands (no cloud/shadow masks)
                log.warning("%s: export of an earlier version with 2 aux bands (source, "
                            "poor): its quality layers carry the poor mask only", rec.key)
                legacy = True
                prods = chunks.products(True, legacy_aux=True, extra=sc.request.extra)
            for f in files:
                if not asm.verify_file(f, prods[key], None):
                    raise BatchTaskError(f"export {rec.key}: {f} is not a complete GeoTIFF "
                                         f"of {len(prods[key].bands)} {prods[key].dtype} bands")
            pieces[key] = files
            task_ids[key] = rec.task_id
        self._assemble(sc, pieces, out, meta, expect_full_cover=True, legacy_aux=legacy)
        meta["tasks"] = task_ids
        for key in product_keys(sc.request):
            rec = self.store.get(f"{sc.key}/{key}")
            if rec is not None:
                rec.pulled = True
                self.store.put(rec)
        if not self.options.keep_chunks:
            shutil.rmtree(dest, ignore_errors=True)
            try:
                dest.parent.rmdir()  # the scene's cache folder, if now empty
            except OSError:
                pass

    def pull(self, request: SceneRequest, out_dir: Path, *, wait: bool = True) -> SceneExport:
        """Batch mode: bring a scene's finished exports into ``out_dir`` (waiting for them
        with ``wait``; otherwise :class:`BatchTaskError` if one is not finished)."""
        sc = self._scene(request)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        keys = [f"{sc.key}/{k}" for k in product_keys(request)]
        if wait:
            tasks.wait_for(self.store, keys, poll_interval=self.options.poll_interval,
                           timeout=self.options.task_timeout, progress=self.options.progress)
        else:
            tasks.refresh(self.store, keys)
        summary = self.summary(request)
        meta = self._meta(sc, summary)
        self._pull(sc, out, meta)
        return SceneExport.in_folder(out, meta)

    def task_status(self, refresh: bool = True) -> dict[str, int]:
        """Counts of the recorded batch tasks per state (refreshed from Earth Engine)."""
        if refresh:
            tasks.refresh(self.store, list(self.store.records))
        return self.store.summary()

    # -- dry run ----------------------------------------------------------------------------------

    def dry_run(self, requests: Sequence[SceneRequest], *, count_images: bool = True
                ) -> chunks.Plan:
        """What a run would request: per scene the export grid, image counts per collection
        (one small ``value:compute`` each with ``count_images``), computePixels requests and
        expected bytes. Downloads no pixels. Logs the table and returns the plan."""
        images: dict[tuple[str, str], dict[str, int]] = {}
        if count_images:
            for r in requests:
                sc = self._scene(r)
                expr = graphs.encode(graphs.scene_counts(
                    sc.region, sc.start, sc.end, collection=self.options.s2_collection,
                    year=r.landcover_year, labels=r.labels, version=r.worldcover_version))
                images[(r.roi.id, r.season)] = {
                    k: int(v) for k, v in
                    self.client.compute_value(expr, what=f"image count of {sc.key}").items()}
        plan = plan_requests(requests, self.options, images)
        log.info("Earth Engine dry run (%s mode):\n%s", self.options.mode, plan.format())
        return plan


def plan_requests(requests: Sequence[SceneRequest], options: EarthEngineOptions | None = None,
                  images: Mapping[tuple[str, str], Mapping[str, int]] | None = None
                  ) -> chunks.Plan:
    """The pure plan of ``requests`` under ``options`` (no Earth Engine call)."""
    o = options or EarthEngineOptions()
    extra = requests[0].extra if requests else ()  # one run, one labels setting
    return chunks.plan([(r.roi, r.season) for r in requests], with_aux=o.export_aux,
                       max_bytes=o.max_request_bytes, s2_side=o.s2_chunk_px,
                       concurrency=o.max_concurrency, images=images, extra=extra)


__all__ = ["EarthEngineBackend", "EarthEngineOptions", "plan_requests"]
