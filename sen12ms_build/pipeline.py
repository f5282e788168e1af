"""The pipeline: sample ROIs -> export (backend) -> warp to UTM -> curate -> tile -> metadata.

Each scene goes through its stages (export, warp, tile) with intermediate files in
``<root>/.work/<branch>/scene_<n>/``; a stage is done when the state file
(:mod:`sen12ms_build.state`, ``<root>/.work/state.sqlite``) records it with the fingerprint of
the settings it was made with and its outputs are intact. A re-run skips finished stages,
redoes unfinished or changed ones, and so resumes an interrupted run (every file is written
atomically, so a kill leaves no partial file); :func:`finalize` rebuilds the root metadata
(manifest, scenes, seasons, splits) from the scene records, so running seasons one by one
into the same root accumulates one dataset.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import logging
import os
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from tqdm.auto import tqdm

from .curation import rounds as curation
from .curation import decisions
from .dataset import layout
from .backends import Backend, ExportGrid, NoDataError, SceneRequest, get_backend
from .config import Config, ConfigError
from .errors import Sen12msError
from .raster.io import (InputError, OutputError, output_lock, remove_stale_temporaries,
                 sha256)
from .dataset import provenance
from .products import AUX, AUX_MASKS, MODALITIES, S2_COVERAGE
from .raster.warp import adopt_on_grid, warp_to_file
from .roi import ROI, read_geojson, write_geojson
from .dataset.finalize import finalize
from .mosaic import s2cloudless_model
from .state import State, downstream, state_path
from .raster.tiling import tile_scene

log = logging.getLogger(__name__)


def fingerprint(*parts: Any) -> str:
    """Short stable hash of JSON-able settings."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# --- ROIs --------------------------------------------------------------------------------

def season_rois(cfg: Config, season: str) -> list[ROI]:
    """The ROIs of a season: sampled from its seed, or listed in ``sampling.rois_file``."""
    from . import sampling

    s, sp = cfg.season(season), cfg.sampling
    if sp.rois_file:
        if not Path(sp.rois_file).is_file():
            raise ConfigError(cfg.source, "sampling.rois_file",
                              f"ROI list {sp.rois_file} not found")
        try:
            return sampling.read_roi_list(Path(sp.rois_file), seed=s.seed,
                                          roi_size_m=sp.roi_size_m)
        except sampling.RoiListError as exc:
            raise sampling.RoiListError(f"sampling.rois_file: {exc}") from None
    return sampling.sample_rois(
        s.seed, land_count=sp.land_count, urban_count=sp.urban_count,
        roi_size_m=sp.roi_size_m, min_land_share=sp.min_land_share,
        min_city_population=sp.min_city_population,
        region=tuple(sp.region) if sp.region else S2_COVERAGE, max_attempts=sp.max_attempts)


def rois_for_run(cfg: Config, season: str, root: Path) -> list[ROI]:
    """Season ROIs, cached in ``<root>/rois/<branch>.geojson`` for the same settings."""
    s = cfg.season(season)
    path = Path(root) / "rois" / f"{layout.branch_name(s.seed, season)}.geojson"
    fp = fingerprint(asdict(cfg.sampling), s.seed)
    if path.exists():
        try:
            if json.loads(path.read_text()).get("fingerprint") == fp:
                return read_geojson(path)
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            pass
    rois = season_rois(cfg, season)
    write_geojson(rois, path, fingerprint=fp, seed=s.seed, season=season)
    return rois


# --- one scene -----------------------------------------------------------------------------

def scene_request(cfg: Config, season: str, roi: ROI) -> SceneRequest:
    """What the backend is asked for one scene."""
    s = cfg.season(season)
    return SceneRequest(roi=roi, season=season, start=s.start, end=s.end,
                        params=cfg.mosaic_params, landcover_year=cfg.landcover_year,
                        resolution_m=cfg.reproject.resolution_m)


@dataclass
class SceneResult:
    record: dict[str, Any]
    seconds: float = 0.0
    skipped: bool = False


def _scene_base(cfg: Config, season: str, roi: ROI) -> dict[str, Any]:
    s = cfg.season(season)
    return {"branch": layout.branch_name(s.seed, season), "season": season, "seed": s.seed,
            "scene": roi.scene, "roi_id": roi.id, "kind": roi.kind, "lon": roi.lon,
            "lat": roi.lat, "utm_zone": roi.utm_zone, "epsg": roi.epsg,
            "start": s.start.isoformat(), "end": s.end.isoformat(),
            "scorer": cfg.mosaic_params.scorer, "merge": cfg.mosaic_params.merge,
            "shadow_over_water": str(cfg.mosaic_params.shadow_over_water).lower()}


def stage_fingerprints(cfg: Config, season: str, roi: ROI, backend_name: str,
                       export_grid: ExportGrid = ExportGrid.GEOGRAPHIC
                       ) -> tuple[str, str, str]:
    """The fingerprints of a scene's export, warp and tile stages (each includes the
    settings of the stages before it; an export on the scene grid includes its pixel
    size)."""
    base = _scene_base(cfg, season, roi)
    scene_grid = (cfg.reproject.resolution_m,) if export_grid is ExportGrid.SCENE else ()
    fp_export = fingerprint(asdict(roi), base["start"], base["end"],
                            cfg.mosaic_params.as_dict(), backend_name, cfg.landcover_year,
                            *scene_grid)
    fp_warp = fingerprint(fp_export, asdict(cfg.reproject))
    fp_tile = fingerprint(fp_warp, asdict(cfg.tiling), asdict(cfg.curation),
                          provenance.PROVENANCE_VERSION, cfg.quality_layers)
    return fp_export, fp_warp, fp_tile


def process_scene(cfg: Config, season: str, roi: ROI, root: Path, backend: Backend,
                  progress: bool = False, state: State | None = None) -> SceneResult:
    """Run (or resume) every stage of one scene; returns its record.

    Stages and their outputs: ``export`` (the backend's EPSG:4326 GeoTIFFs in
    ``.work/<branch>/scene_<n>/export``), ``warp`` (the UTM scene in ``.../utm``) and
    ``tile`` (scene round, patch round, patch files in the tree). Each is recorded in the
    state file when complete and skipped on a re-run with the same settings.
    """
    if state is None:
        with State(state_path(root)) as st:
            return process_scene(cfg, season, roi, root, backend, progress, st)
    t0 = time.perf_counter()
    s = cfg.season(season)
    branch = layout.branch_name(s.seed, season)
    wd = layout.scene_workdir(root, s.seed, season, roi.scene)
    base = _scene_base(cfg, season, roi)

    fp_export, fp_warp, fp_tile = stage_fingerprints(cfg, season, roi, backend.name,
                                                     backend.export_grid)
    done = state.done(branch, roi.scene, "tile", fp_tile)
    if done and not done.get("input_problem"):  # a damaged input is tried again
        return SceneResult(done, skipped=True)

    def finish_tile(record: dict, patches: list[dict], outputs: list[Path]) -> SceneResult:
        state.finish(branch, roi.scene, "tile", fp_tile, {**record, "patch_records": patches},
                     outputs)
        return SceneResult({**record, "patch_records": patches}, time.perf_counter() - t0)

    # 1. export on the backend's grid (Backend.export_grid: EPSG:4326 at 0.0001 degrees, or
    #    the scene's UTM grid itself)
    export = state.done(branch, roi.scene, "export", fp_export)
    if export is None:
        try:
            result = backend.export_scene(scene_request(cfg, season, roi), wd / "export")
        except (NoDataError, InputError) as exc:
            record = {**base, "status": "rejected", "reason": f"no_data: {exc}",
                      "patches": 0, "patches_kept": 0}
            if isinstance(exc, InputError):  # a damaged archive file: a skipped input
                log.error("skipping archive file: %s (scene %s %d rejected)", exc, branch,
                          roi.scene)
                record["input_problem"] = str(exc)
            else:
                log.warning("scene %s %d rejected: %s", branch, roi.scene, exc)
            _remove_patches(root, branch, roi.scene)
            return finish_tile(record, [], [])
        outputs = [p for p in (result.s1, result.s2, result.lc, result.aux) if p]
        export = state.finish(branch, roi.scene, "export", fp_export,
                              {"meta": result.meta}, outputs)
    meta = export["meta"]

    # 2. warp to the local UTM zone at square pixels (adopted as is when already on it)
    grid = roi.scene_grid(cfg.reproject.resolution_m)
    utm = {k: wd / "utm" / f"{k}.tif" for k in ("s1", "s2", "lc", "aux")}
    if not (wd / "export" / "s2_aux.tif").exists():
        utm.pop("aux")
    if state.done(branch, roi.scene, "warp", fp_warp) is None:
        on_scene_grid = backend.export_grid is ExportGrid.SCENE
        for k, dst in utm.items():
            src = wd / "export" / ("s2_aux.tif" if k == "aux" else f"{k}.tif")
            modality = _aux_modality(src) if k == "aux" else MODALITIES[k]
            if on_scene_grid:  # read straight onto the scene grid: no second resampling
                adopt_on_grid(src, dst, grid, modality)
                continue
            method = cfg.reproject.resampling.get(k, modality.resampling)
            warp_to_file(src, dst, grid, modality, method, cfg.reproject.warp_mem_limit_mb)
        state.finish(branch, roi.scene, "warp", fp_warp,
                     {"width": grid.width, "height": grid.height, "crs": grid.crs},
                     utm.values())

    # 3. scene round of curation
    keep, reason, values = curation.scene_decision_from_files(utm, cfg.curation)
    record = {**base, "width": grid.width, "height": grid.height, **values,
              "s2_images": len(meta.get("s2_images", [])),
              "s2_best": len(meta.get("s2_best", [])),
              "mosaic_poor_share": meta.get("poor_share"), "crs": grid.crs,
              "sources": provenance.scene_sources(meta, season, roi.id, cfg.landcover_year)}
    if not keep:
        log.info("scene %s %d rejected by the scene round: %s=%s", branch, roi.scene,
                 reason, values.get(reason))
        _remove_patches(root, branch, roi.scene)
        record.update(status="rejected", reason=reason, patches=0, patches_kept=0)
        return finish_tile(record, [], [])

    # 4. tiling with the patch round of curation
    def name_for(dd: str, patch: int) -> Path:
        return layout.patch_path(root, s.seed, season, dd, roi.scene, patch)

    bar = tqdm(total=None, desc=f"  patches {branch}/{roi.scene}", unit="patch",
               leave=False, disable=not progress)
    try:
        patches = tile_scene(utm, name_for,
                             lambda arrays: curation.patch_decision(arrays, cfg.curation,
                                                                    values),
                             cfg.tiling.patch_size, cfg.tiling.stride, progress=bar.update,
                             tags_for=lambda a: provenance.patch_tags(record["sources"],
                                                                      a.get("aux"), a["lc"]),
                             extra_for=_quality_writer(cfg, root, s.seed, season, roi.scene))
    finally:
        bar.close()
    # --- reviewer's decisions (review.json) win over the patch round ---
    patches = decisions.honour_decisions(root, branch, roi.scene, patches, utm, name_for,
                                         cfg.tiling.patch_size)
    outputs = []
    for p in patches:
        outputs += p["files"].values()
    # patches of an earlier patch_size or stride: gone, so the tree holds this tiling only
    stale = layout.remove_stale_patches(root, branch, roi.scene, outputs)
    if stale:
        log.info("scene %s %d: %d stale patch file(s) of an earlier tiling removed", branch,
                 roi.scene, stale)
    for p in patches:
        p["sha256"] = {k: sha256(f) for k, f in p["files"].items()}
        p["files"] = {k: str(Path(f).relative_to(root)) for k, f in p["files"].items()}
    kept = sum(p["kept"] for p in patches)
    record.update(status="kept", reason="", patches=len(patches), patches_kept=kept)
    return finish_tile(record, patches, outputs)


def _aux_modality(path: Path):
    """:data:`AUX_MASKS` for a 4-band aux export (local backend), else :data:`AUX`."""
    import rasterio

    with rasterio.open(path) as f:
        return AUX_MASKS if f.count == AUX_MASKS.count else AUX


def _quality_writer(cfg: Config, root: Path, seed: int, season: str, scene: int):
    """The tiler's ``extra_for``: writes (or removes) the patch's quality layer."""
    def extra(patch: int, arrays: dict, crs: Any, transform: Any, tags: dict,
              keep: bool) -> dict[str, Path]:
        path = layout.quality_path(root, seed, season, scene, patch)
        if not keep or not cfg.quality_layers or "aux" not in arrays:
            path.unlink(missing_ok=True)
            return {}
        provenance.write_quality(path, arrays["aux"], crs, transform, tags)
        return {provenance.QA_ID: path}
    return extra


def _remove_patches(root: Path, branch: str, scene: int) -> None:
    for dd in (*layout.DATA_IDS, provenance.QA_ID):
        shutil.rmtree(Path(root) / branch / f"{dd}_{scene}", ignore_errors=True)


# --- a season, and the root metadata --------------------------------------------------------

@dataclass
class RunSummary:
    """Figures of a run."""

    seasons: list[str] = field(default_factory=list)
    scenes: int = 0
    scenes_kept: int = 0
    patches: int = 0
    patches_kept: int = 0
    seconds: float = 0.0
    peak_memory_mib: float = 0.0
    problems: list[str] = field(default_factory=list)
    resumed: int = 0  # scenes already done before this run
    #: when no patch was kept: why, and which setting to change (one line); else ""
    empty_reason: str = ""
    disk: dict[str, int] = field(default_factory=dict)  # bytes per part (:func:`disk_usage`)


class NoPatchesError(Sen12msError, RuntimeError):
    """A run finished without a single kept patch."""


def _why_no_patch(cfg: Config, records: list[dict]) -> str:
    """One line: why a run kept no patch, and which setting to change."""
    from collections import Counter

    if not records:
        return "no scene was processed"
    reasons = Counter()
    for r in records:
        if r.get("input_problem"):
            reasons["damaged input"] += 1
        elif r["status"] != "kept":
            reasons[str(r.get("reason", "")).split(":", 1)[0] or "rejected"] += 1
        elif not r.get("patches"):
            reasons["smaller than one patch"] += 1
        else:
            reasons["every patch rejected by the patch round"] += 1
    what = ", ".join(f"{n} x {k}" for k, n in reasons.most_common())
    size_m = cfg.tiling.patch_size * cfg.reproject.resolution_m
    hints = []
    if reasons.get("no_data"):
        hints.append("point sampling.region / sampling.rois_file / the season dates at "
                     "data the archive covers")
    if reasons.get("damaged input"):
        hints.append("replace the damaged archive file(s) logged as skipped inputs")
    if reasons.get("smaller than one patch"):
        hints.append(f"raise sampling.roi_size_m to at least {size_m:g} m "
                     f"(tiling.patch_size x reproject.resolution_m)")
    if set(reasons) - {"no_data", "smaller than one patch", "damaged input"}:
        hints.append("relax the curation thresholds named (curation.scene_max_* / "
                     "patch_max_*, docs/config.md)")
    return (f"no patch produced: {len(records)} scene(s): {what}; "
            f"{'; or '.join(hints)}")


def run(cfg: Config, seasons: list[str] | None = None, *, root: Path | None = None,
        backend: Backend | None = None, progress: bool = True,
        force: tuple[str, ...] = (), workers: int | None = None,
        executor: str = "process", scheduler: str | None = None,
        on_scene: Callable[[SceneResult], None] | None = None) -> RunSummary:
    """Build (or resume) the dataset for ``seasons`` (default: every configured season).

    Args:
        force: stages to redo (``export``, ``warp``, ``tile``; each with those after it).
        workers: scenes processed in parallel (default ``cfg.workers``); 1 runs in-process.
        executor: ``process`` (a local process pool) or ``dask`` (the scenes as tasks on a
            Dask cluster at ``scheduler``; needs the ``dask`` extra).

    Returns:
        The run's figures; ``empty_reason`` says why when no patch was kept (the CLI then
        exits non-zero), ``resumed`` how many scenes were already done.

    Raises:
        LockedError: another run holds ``<root>/.sen12ms.lock`` (:func:`io.output_lock`).
        ConfigError, InputError, OutputError: bad settings, inputs or outputs (one line).
    """
    t0 = time.perf_counter()
    root = Path(root or cfg.out)
    seasons = seasons or list(cfg.seasons)
    for name in seasons:
        cfg.season(name)  # unknown / unconfigured season: ConfigError before any work
    workers = workers or cfg.workers
    if backend is None:
        backend = make_backend(cfg)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the output folder {root}: {exc}") from exc
    with output_lock(root):
        return _run_locked(cfg, seasons, root, backend, progress, force, workers, executor,
                           scheduler, on_scene, t0)


def _run_locked(cfg: Config, seasons: list[str], root: Path, backend: Backend,
                progress: bool, force: tuple[str, ...], workers: int, executor: str,
                scheduler: str | None, on_scene: Callable[[SceneResult], None] | None,
                t0: float) -> RunSummary:
    remove_stale_temporaries(root)
    summary = RunSummary(seasons=list(seasons))
    plan = {name: rois_for_run(cfg, name, root) for name in seasons}
    with State(state_path(root)) as state:
        for stage in force:
            for name in seasons:
                n = state.forget(cfg.branch(name), None, downstream(stage))
                log.info("--force %s: %s: %d stage record(s) forgotten", stage,
                         cfg.branch(name), n)
    if backend.supports("prepare"):  # batch exports: submit every scene's tasks up front
        backend.prepare([scene_request(cfg, n, r) for n, rois in plan.items() for r in rois])
    tasks = [(name, roi) for name, rois in plan.items() for roi in rois]
    for name, rois in plan.items():
        log.info("season %s: %d ROI(s) -> %s", name, len(rois), cfg.branch(name))
    with State(state_path(root)) as state:
        summary.resumed = sum(
            not (state.done(cfg.branch(n), r.scene, "tile",
                            stage_fingerprints(cfg, n, r, backend.name,
                                               backend.export_grid)[2]) or
                 {"input_problem": 1}).get("input_problem")
            for n, r in tasks)
    if summary.resumed:
        log.info("resuming: %d of %d scenes already done", summary.resumed, len(tasks))
    bar = tqdm(total=len(tasks), desc="scenes", unit="scene", disable=not progress)
    records = []
    try:
        for res in _execute(cfg, tasks, root, backend, workers, executor, scheduler, progress):
            bar.update(1)
            if on_scene:
                on_scene(res)
            rec = res.record
            records.append(rec)
            summary.scenes += 1
            summary.scenes_kept += rec["status"] == "kept"
            summary.patches += rec.get("patches", 0)
            summary.patches_kept += rec.get("patches_kept", 0)
    finally:
        bar.close()
    summary.problems = list(backend.problems)
    for rec in records:  # damaged archive files met in the scenes (any worker)
        if rec.get("input_problem") and rec["input_problem"] not in summary.problems:
            summary.problems.append(rec["input_problem"])
    finalize(root, cfg)
    if cfg.quicklooks:  # --- quicklooks and review pages (sen12ms_build.curation.review) ---
        from .curation.review import write_review  # the review pages need the finished tree

        write_review(root, cfg)
    if summary.patches_kept == 0:
        summary.empty_reason = _why_no_patch(cfg, records)
    summary.seconds = round(time.perf_counter() - t0, 2)
    summary.peak_memory_mib = round(peak_memory_mib(), 1)
    summary.disk = disk_usage(root)
    return summary


#: Parts of a dataset root for :func:`disk_usage`: name -> glob patterns below the root.
DISK_PARTS = {
    "patches": ("ROIs*/s1_*", "ROIs*/s2_*", "ROIs*/lc_*"),
    "quality layers": ("ROIs*/qa_*",),
    "stac": ("stac",),
    "quicklooks and review": ("quicklooks", "review"),
    "metadata": ("*.csv", "*.txt", "*.json", "README.md", "croissant", "rois"),
    "intermediates (.work)": (layout.WORK_DIR,),
}


def _bytes(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def disk_usage(root: Path) -> dict[str, int]:
    """Bytes used by each part of a dataset root (:data:`DISK_PARTS`)."""
    root = Path(root)
    return {part: sum(_bytes(p) for pat in pats for p in root.glob(pat))
            for part, pats in DISK_PARTS.items()}


def clean(root: Path) -> int:
    """Remove the scenes' intermediate files (``.work/<branch>/``: exports and UTM scenes);
    keep the state file, so finished scenes still resume as finished (their tile stage's
    outputs are the patches). Returns the bytes freed. Re-admitting a patch by review, the
    quicklooks and ``--force tile`` need the intermediates: the next run exports them again."""
    work = Path(root) / layout.WORK_DIR
    if not Path(root).is_dir():
        raise InputError(f"{root}: no such dataset folder")
    freed = 0
    for sub in sorted(work.glob("ROIs*")) + sorted(work.glob("stac_partial")):
        if sub.is_dir():
            freed += _bytes(sub)
            shutil.rmtree(sub)
    return freed


_WORKER_BACKEND: dict[str, Backend] = {}


def run_cores() -> int:
    """The cores this run may use: the process's CPU affinity (what ``taskset``, a container
    or a batch scheduler gave it), else the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def scorer_threads(workers: int, cores: int | None = None) -> int:
    """Threads of one scene worker's cloud model (s2cloudless): the run's cores shared among
    its ``workers`` processes, at least 1, so a process pool never runs more threads than
    cores (docs/clouds.md)."""
    return max(1, (run_cores() if cores is None else cores) // max(1, workers))


def scene_task(cfg: Config, season: str, roi: ROI, root: str, threads: int = 1
               ) -> SceneResult:
    """One scene in a worker process (a pool's or a Dask worker's): its own backend
    (created once per process), its own connection to the state file, and ``threads``
    threads for the cloud model (:func:`scorer_threads`)."""
    s2cloudless_model.set_threads(threads)
    key = fingerprint(asdict(cfg.backend))
    if key not in _WORKER_BACKEND:
        _WORKER_BACKEND[key] = make_backend(cfg)
    return process_scene(cfg, season, roi, Path(root), _WORKER_BACKEND[key], False)


def _execute(cfg: Config, tasks: list[tuple[str, ROI]], root: Path, backend: Backend,
             workers: int, executor: str, scheduler: str | None, progress: bool
             ) -> Iterator[SceneResult]:
    """Run the scene tasks; yield results as they complete."""
    if executor == "dask":
        try:
            from dask.distributed import Client
            from dask.distributed import as_completed as dask_completed
        except ImportError:
            raise ConfigError(cfg.source, "executor", "the dask executor needs the `dask` "
                              "extra: pip install 'sen12ms-build[dask]'") from None
        # a local cluster shares this machine's cores; a remote worker's are unknown here,
        # so its model runs on one thread (the worker's own thread, threads_per_worker=1)
        threads = 1 if scheduler else scorer_threads(workers)
        with Client(scheduler) if scheduler else Client(n_workers=workers,
                                                        threads_per_worker=1) as client:
            futures = [client.submit(scene_task, cfg, n, r, str(root), threads, pure=False)
                       for n, r in tasks]
            for fut in dask_completed(futures):
                yield fut.result()
        return
    if executor != "process":
        raise ConfigError(cfg.source, "executor", f"unknown executor {executor!r}; "
                          "choose 'process' or 'dask'")
    if workers <= 1:
        s2cloudless_model.set_threads(scorer_threads(1))
        with State(state_path(root)) as state:
            for name, roi in tasks:
                yield process_scene(cfg, name, roi, root, backend, progress, state)
        return
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        threads = scorer_threads(workers)
        futures = [pool.submit(scene_task, cfg, n, r, str(root), threads) for n, r in tasks]
        try:
            for fut in as_completed(futures):
                yield fut.result()
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def dry_run(cfg: Config, seasons: list[str] | None = None, root: Path | None = None) -> str:
    """What a run would request, without exporting any pixels: per ROI the acquisitions
    found (local) or the Earth Engine plan (images, requests, bytes). Returns the text."""
    seasons = seasons or list(cfg.seasons)
    for name in seasons:
        cfg.season(name)
    requests = [scene_request(cfg, n, r) for n in seasons for r in season_rois(cfg, n)]
    if cfg.backend.name == "earthengine":
        from .backends.earthengine import EarthEngineOptions, plan_requests
        from .backends.earthengine.errors import EarthEngineAuthError

        try:
            backend = make_backend(cfg)
        except EarthEngineAuthError as exc:
            log.warning("no Earth Engine session (%s): planning without image counts", exc)
            opts = EarthEngineOptions.from_mapping(cfg.backend.earthengine)
            return plan_requests(requests, opts).format()
        return backend.dry_run(requests).format()
    from .backends.local import query

    backend = make_backend(cfg)
    lines = [f"{'season':<8} {'roi':<22} {'lon':>10} {'lat':>9} {'utm':>4} "
             f"{'s2':>3} {'s1':>3}"]
    for r in requests:
        ring = r.roi.ring()
        n2 = len(query(backend.index("s2"), ring, r.start, r.end))
        n1 = len(query(backend.index("s1"), ring, r.start, r.end))
        lines.append(f"{r.season:<8} {r.roi.id:<22} {r.roi.lon:>10.4f} {r.roi.lat:>9.4f} "
                     f"{r.roi.utm_zone:>4} {n2:>3} {n1:>3}")
    return "\n".join(lines)


def make_backend(cfg: Config) -> Backend:
    """The configured backend."""
    b = cfg.backend
    if b.name == "local":
        if not b.archive:
            raise ConfigError(cfg.source, "backend.archive",
                              "the local backend needs an archive directory")
        return get_backend("local", archive=b.archive)
    return get_backend("earthengine", **b.earthengine)


def peak_memory_mib() -> float:
    """Peak resident memory of this process and its finished children, MiB (Linux)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024.0
