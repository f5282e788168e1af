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
import resource
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from tqdm.auto import tqdm

from . import curation, layout, review
from .backends import Backend, NoDataError, SceneRequest, get_backend
from .config import Config, ConfigError
from .io import InputError, OutputError, remove_stale_temporaries, sha256
from .products import AUX, MODALITIES, S2_COVERAGE
from .reproject import warp_to_file
from .roi import ROI, read_geojson, write_geojson
from .state import State, downstream
from .tiling import tile_scene

log = logging.getLogger(__name__)


def fingerprint(*parts: Any) -> str:
    """Short stable hash of JSON-able settings."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def state_path(root: Path) -> Path:
    """The run's SQLite state file."""
    return Path(root) / layout.WORK_DIR / "state.sqlite"


# --- ROIs --------------------------------------------------------------------------------

def season_rois(cfg: Config, season: str) -> list[ROI]:
    """The ROIs of a season: sampled from its seed, or listed in ``sampling.rois_file``."""
    from . import sampling

    s, sp = cfg.season(season), cfg.sampling
    if sp.rois_file:
        return sampling.read_roi_list(Path(sp.rois_file), seed=s.seed, roi_size_m=sp.roi_size_m)
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
                        params=cfg.mosaic_params, landcover_year=cfg.landcover_year)


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
            "scorer": cfg.mosaic_params.scorer, "merge": cfg.mosaic_params.merge}


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
    params = cfg.mosaic_params

    fp_export = fingerprint(asdict(roi), base["start"], base["end"], params.as_dict(),
                            backend.name, cfg.landcover_year)
    fp_warp = fingerprint(fp_export, asdict(cfg.reproject))
    fp_tile = fingerprint(fp_warp, asdict(cfg.tiling), asdict(cfg.curation))
    done = state.done(branch, roi.scene, "tile", fp_tile)
    if done:
        return SceneResult(done, skipped=True)

    def finish_tile(record: dict, patches: list[dict], outputs: list[Path]) -> SceneResult:
        state.finish(branch, roi.scene, "tile", fp_tile, {**record, "patch_records": patches},
                     outputs)
        return SceneResult({**record, "patch_records": patches}, time.perf_counter() - t0)

    # 1. export on the backend's grid (EPSG:4326, 0.0001 degrees)
    export = state.done(branch, roi.scene, "export", fp_export)
    if export is None:
        try:
            result = backend.export_scene(scene_request(cfg, season, roi), wd / "export")
        except (NoDataError, InputError) as exc:
            log.warning("scene %s %d rejected: %s", branch, roi.scene, exc)
            _remove_patches(root, branch, roi.scene)
            record = {**base, "status": "rejected", "reason": f"no_data: {exc}",
                      "patches": 0, "patches_kept": 0}
            return finish_tile(record, [], [])
        outputs = [p for p in (result.s1, result.s2, result.lc, result.aux) if p]
        export = state.finish(branch, roi.scene, "export", fp_export,
                              {"meta": result.meta}, outputs)
    meta = export["meta"]

    # 2. warp to the local UTM zone at square pixels
    grid = roi.scene_grid(cfg.reproject.resolution_m)
    utm = {k: wd / "utm" / f"{k}.tif" for k in ("s1", "s2", "lc", "aux")}
    if not (wd / "export" / "s2_aux.tif").exists():
        utm.pop("aux")
    if state.done(branch, roi.scene, "warp", fp_warp) is None:
        for k, dst in utm.items():
            src = wd / "export" / ("s2_aux.tif" if k == "aux" else f"{k}.tif")
            modality = AUX if k == "aux" else MODALITIES[k]
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
              "mosaic_poor_share": meta.get("poor_share"), "crs": grid.crs}
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
                             cfg.tiling.patch_size, cfg.tiling.stride, progress=bar.update)
    finally:
        bar.close()
    # --- reviewer's decisions (review.json) win over the patch round ---
    patches = review.honour_decisions(root, branch, roi.scene, patches, utm, name_for,
                                      cfg.tiling.patch_size)
    outputs = []
    for p in patches:
        outputs += p["files"].values()
        p["sha256"] = {k: sha256(f) for k, f in p["files"].items()}
        p["files"] = {k: str(Path(f).relative_to(root)) for k, f in p["files"].items()}
    kept = sum(p["kept"] for p in patches)
    record.update(status="kept", reason="", patches=len(patches), patches_kept=kept)
    return finish_tile(record, patches, outputs)


def _remove_patches(root: Path, branch: str, scene: int) -> None:
    for dd in layout.DATA_IDS:
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
    remove_stale_temporaries(root)
    summary = RunSummary(seasons=list(seasons))
    plan = {name: rois_for_run(cfg, name, root) for name in seasons}
    with State(state_path(root)) as state:
        for stage in force:
            for name in seasons:
                n = state.forget(cfg.branch(name), None, downstream(stage))
                log.info("--force %s: %s: %d stage record(s) forgotten", stage,
                         cfg.branch(name), n)
    prepare = getattr(backend, "prepare", None)
    if prepare is not None:  # batch exports: submit every scene's tasks up front
        prepare([scene_request(cfg, n, r) for n, rois in plan.items() for r in rois])
    tasks = [(name, roi) for name, rois in plan.items() for roi in rois]
    for name, rois in plan.items():
        log.info("season %s: %d ROI(s) -> %s", name, len(rois), cfg.branch(name))
    bar = tqdm(total=len(tasks), desc="scenes", unit="scene", disable=not progress)
    try:
        for res in _execute(cfg, tasks, root, backend, workers, executor, scheduler, progress):
            bar.update(1)
            if on_scene:
                on_scene(res)
            rec = res.record
            summary.scenes += 1
            summary.scenes_kept += rec["status"] == "kept"
            summary.patches += rec.get("patches", 0)
            summary.patches_kept += rec.get("patches_kept", 0)
    finally:
        bar.close()
    summary.problems = list(getattr(backend, "problems", []))
    finalize(root, cfg)
    if cfg.quicklooks:  # --- quicklooks and review pages (sen12ms_build.review) ---
        review.write_review(root, cfg)
    summary.seconds = round(time.perf_counter() - t0, 2)
    summary.peak_memory_mib = round(peak_memory_mib(), 1)
    return summary


_WORKER_BACKEND: dict[str, Backend] = {}


def scene_task(cfg: Config, season: str, roi: ROI, root: str) -> SceneResult:
    """One scene in a worker process (a pool's or a Dask worker's): its own backend
    (created once per process) and its own connection to the state file."""
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
        with Client(scheduler) if scheduler else Client(n_workers=workers,
                                                        threads_per_worker=1) as client:
            futures = [client.submit(scene_task, cfg, n, r, str(root), pure=False)
                       for n, r in tasks]
            for fut in dask_completed(futures):
                yield fut.result()
        return
    if executor != "process":
        raise ConfigError(cfg.source, "executor", f"unknown executor {executor!r}; "
                          "choose 'process' or 'dask'")
    if workers <= 1:
        with State(state_path(root)) as state:
            for name, roi in tasks:
                yield process_scene(cfg, name, roi, root, backend, progress, state)
        return
    ctx = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        futures = [pool.submit(scene_task, cfg, n, r, str(root)) for n, r in tasks]
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


def scene_records(root: Path) -> list[tuple[dict, list[dict]]]:
    """(scene record, patch records) of every finished scene under ``root``."""
    path = state_path(root)
    if not path.exists():
        return []
    with State(path) as state:
        rows = state.records("tile")
    return [({k: v for k, v in rec.items() if k != "patch_records"},
             rec.get("patch_records", [])) for _, _, rec in rows]


def finalize(root: Path, cfg: Config) -> dict[str, int]:
    """Write ``manifest.csv``, ``scenes.csv``, ``seasons.csv``, ``train_list.txt`` and
    ``test_list.txt`` from every finished scene under ``root``."""
    root = Path(root)
    records = review.apply_to_records(root, scene_records(root))  # reviewer's decisions
    manifest, scenes = [], []
    kept_scenes = [r for r, _ in records if r["status"] == "kept"]
    test = layout.split_scenes([(r["branch"], r["scene"]) for r in kept_scenes],
                               cfg.splits.test_fraction, cfg.splits.seed)
    train_list, test_list = [], []
    for rec, patches in records:
        scenes.append(rec)
        for p in patches:
            left, bottom, right, top = p["bounds"]
            manifest.append({
                **p["values"],
                "patch_id": f"{rec['branch']}_{rec['scene']}_p{p['patch']}",
                "branch": rec["branch"], "season": rec["season"], "scene": rec["scene"],
                "patch": p["patch"], "status": "kept" if p["kept"] else "rejected",
                "reason": p["reason"], "crs": rec.get("crs", ""), "left": left,
                "bottom": bottom, "right": right, "top": top, "review": p.get("review", ""),
                **{k: p["files"].get(k, "") for k in layout.DATA_IDS},
                **{f"sha256_{k}": p.get("sha256", {}).get(k, "") for k in layout.DATA_IDS}})
            if p["kept"]:
                name = Path(p["files"]["s2"]).name
                (test_list if (rec["branch"], rec["scene"]) in test else train_list).append(name)
    layout.write_csv(root / "manifest.csv", layout.MANIFEST_HEADER, manifest)
    layout.write_csv(root / "scenes.csv", layout.SCENES_HEADER, scenes)
    layout.write_csv(root / "seasons.csv", layout.SEASONS_HEADER,
                     layout.seasons_rows([r for r, _ in records]))
    layout.write_lines(root / "train_list.txt", train_list)
    layout.write_lines(root / "test_list.txt", test_list)
    return {"scenes": len(records), "patches": len(manifest),
            "train": len(train_list), "test": len(test_list)}
