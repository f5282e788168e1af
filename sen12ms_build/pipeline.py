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

import logging
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from tqdm.auto import tqdm

from .curation import rounds as curation
from .curation import decisions
from .dataset import layout
from .backends import EXPORT_FILES, Backend, ExportGrid, NoDataError
from .config import Config, ConfigError
from .errors import Sen12msError
from .raster.io import InputError, output_lock, remove_stale_temporaries, sha256
from .raster.outdir import MARKER, Claim, check_output, claim_output
from .dataset import provenance
from .products import AUX, AUX_MASKS, modalities
from .raster.warp import adopt_on_grid, warp_to_file
from .roi import ROI
from .dataset.finalize import finalize
from .housekeeping import disk_usage, peak_memory_mib
from .machine import run_cores
from .mosaic import s2cloudless_model
from .planning import fingerprint, make_backend, rois_for_run, scene_request
from .state import State, downstream, state_path
from .raster.tiling import tile_scene
from . import variants

log = logging.getLogger(__name__)


# --- one scene -----------------------------------------------------------------------------

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
    # the labels (a fourth modality) only when configured, the variant's settings only for
    # a variant: the paper's run keeps its own fingerprints
    labels = (cfg.label_product, cfg.worldcover_version) if cfg.label_product else ()
    extra = variants.fingerprint_parts(cfg)  # () for the paper's dataset
    fp_export = fingerprint(asdict(roi), base["start"], base["end"],
                            cfg.mosaic_params.fingerprint_dict(), backend_name,
                            cfg.landcover_year, *scene_grid, *labels, *extra)
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
    if cfg.variant == "cr-ts":  # a time series per ROI (sen12ms_build.variants.cr_ts)
        from .variants import cr_ts

        return SceneResult(*cr_ts.process_roi(cfg, season, roi, root, backend, state,
                                              _scene_base(cfg, season, roi)))
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
            # what the backend wrote before it stopped is the tool's (clean may remove it)
            state.wrote(p for p in (wd / "export" / n for n in EXPORT_FILES.values())
                        if p.exists())
            _remove_patches(root, branch, roi.scene, state, cfg)
            return finish_tile(record, [], [])
        outputs = [p for p in (result.s1, result.s2, result.lc, result.aux,
                               *result.extra.values(), result.s2_cloudy) if p]
        export = state.finish(branch, roi.scene, "export", fp_export,
                              {"meta": result.meta}, outputs)
    meta = export["meta"]

    # 2. warp to the local UTM zone at square pixels (adopted as is when already on it)
    grid = roi.scene_grid(cfg.reproject.resolution_m)
    mods = modalities(cfg.s2_level, cfg.extra_modalities)  # the triplet, then added ones
    utm = {k: wd / "utm" / f"{k}.tif" for k in (*mods, "aux")}
    if not (wd / "export" / "s2_aux.tif").exists():
        utm.pop("aux")
    cr_files = variants.cr.utm_files(wd) if cfg.variant == "cr" else {}
    if state.done(branch, roi.scene, "warp", fp_warp) is None:
        on_scene_grid = backend.export_grid is ExportGrid.SCENE
        for k, dst in {**utm, **cr_files}.items():
            if k == "s2_cloudy_mask":  # computed below, from the warped cloudy scene
                continue
            src = wd / "export" / EXPORT_FILES[k]
            kind = "s2" if k == "s2_cloudy" else k  # the cloudy input is warped as s2
            modality = _aux_modality(src) if k == "aux" else mods[kind]
            if on_scene_grid:  # read straight onto the scene grid: no second resampling
                adopt_on_grid(src, dst, grid, modality)
                continue
            method = cfg.reproject.resampling.get(kind, modality.resampling)
            warp_to_file(src, dst, grid, modality, method, cfg.reproject.warp_mem_limit_mb)
        if cr_files:
            variants.cr.write_scene_masks(cr_files["s2_cloudy"], cr_files["s2_cloudy_mask"],
                                          meta["s2_cloudy"], cfg)
        state.finish(branch, roi.scene, "warp", fp_warp,
                     {"width": grid.width, "height": grid.height, "crs": grid.crs},
                     [*utm.values(), *cr_files.values()])

    # 3. scene round of curation
    keep, reason, values = curation.scene_decision_from_files(utm, cfg.curation)
    record = {**base, "width": grid.width, "height": grid.height, **values,
              "s2_images": len(meta.get("s2_images", [])),
              "s2_best": len(meta.get("s2_best", [])),
              "mosaic_poor_share": meta.get("poor_share"), "crs": grid.crs,
              "backend": backend.name, "s2_level": cfg.s2_level,
              "inputs_skipped": "; ".join(meta.get("inputs_skipped", [])),
              "duplicates_dropped": "; ".join(meta.get("duplicates_dropped", [])),
              "sources": provenance.scene_sources(meta, season, roi.id, cfg.landcover_year),
              **({"modalities": list(mods)} if cfg.extra_modalities else {})}
    if cr_files:  # the cloudy input's pick (variants.cr)
        record.update(variants.cr.scene_values(meta.get("s2_cloudy")),
                      s2_cloudy=meta["s2_cloudy"])
    if not keep:
        log.info("scene %s %d rejected by the scene round: %s=%s", branch, roi.scene,
                 reason, values.get(reason))
        _remove_patches(root, branch, roi.scene, state, cfg)
        record.update(status="rejected", reason=reason, patches=0, patches_kept=0)
        return finish_tile(record, [], [])

    # 4. tiling with the patch round of curation
    def paper_name(dd: str, patch: int) -> Path:
        return layout.patch_path(root, s.seed, season, dd, roi.scene, patch)

    def paper_decision(arrays: dict) -> tuple[bool, str, dict]:
        return curation.patch_decision(arrays, cfg.curation, values)

    name_for, decide = paper_name, paper_decision
    extra_for = _quality_writer(cfg, root, s.seed, season, roi.scene)
    if cr_files:  # the cr tree, the cloudy input's checks and files (variants.cr)
        name_for = variants.cr.name_for(root, s.seed, season, roi.scene)
        decide = variants.cr.decide(paper_decision, cfg)
        extra_for = variants.cr.extra_writer(cfg, root, s.seed, season, roi.scene,
                                             meta["s2_cloudy"])
    bar = tqdm(total=None, desc=f"  patches {branch}/{roi.scene}", unit="patch",
               leave=False, disable=not progress)
    try:
        patches = tile_scene({**utm, **cr_files}, name_for, decide,
                             cfg.tiling.patch_size, cfg.tiling.stride, progress=bar.update,
                             tags_for=lambda a: provenance.patch_tags(
                                 record["sources"], a.get("aux"), a["lc"],
                                 {k: a[k] for k in cfg.extra_modalities}),
                             extra_for=extra_for, modalities=mods)
    finally:
        bar.close()
    # --- reviewer's decisions (review.json) win over the patch round ---
    patches = decisions.honour_decisions(root, branch, roi.scene, patches, utm, name_for,
                                         cfg.tiling.patch_size, tuple(mods))
    outputs = []
    for p in patches:
        outputs += p["files"].values()
    # patches of an earlier patch_size or stride: gone, so the tree holds this tiling only
    # (only files the tool wrote: the record of written files, state.written)
    owned = [f for folder in variants.scene_folders(cfg, root, branch, roi.scene)
             for f in state.written(folder)]
    stale = variants.remove_stale_patches(cfg, root, branch, roi.scene, outputs, owned)
    current = {state.rel(f) for f in outputs}
    state.unwrote(f for f in owned if state.rel(f) not in current)
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


def _remove_patches(root: Path, branch: str, scene: int, state: State,
                    cfg: Config | None = None) -> int:
    """Remove the patch files (and quality layers) the tool wrote for a scene, in the tree of
    the run's variant (:func:`variants.scene_folders`); returns the count (a file of the
    user's in those folders stays)."""
    return state.discard(f for folder in variants.scene_folders(cfg, root, branch, scene)
                         for f in state.written(folder))


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


#: Seconds to wait for a Dask scheduler (``run --executor dask --scheduler ADDRESS``)
#: before the run stops naming it (Dask's own default is 30 s).
DASK_CONNECT_TIMEOUT_S = 10


def run(cfg: Config, seasons: list[str] | None = None, *, root: Path | None = None,
        backend: Backend | None = None, progress: bool = True,
        force: tuple[str, ...] = (), workers: int | None = None,
        executor: str = "process", scheduler: str | None = None,
        on_scene: Callable[[SceneResult], None] | None = None) -> RunSummary:
    """Build (or resume) the dataset for ``seasons`` (default: every configured season).

    Everything that can be checked is checked before the first file is written: the
    seasons, the output folder (a new or empty folder, or a dataset this tool made:
    :func:`sen12ms_build.raster.outdir.check_output`), the backend and the Dask scheduler.
    The folder's marker is written first. A first run into a new or empty folder that fails
    (or keeps no patch) leaves the folder as it was, unless scenes finished (an interrupted
    run resumes); a run that ends leaves no lock file.

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
        ConfigError, InputError, OutputError: bad settings, inputs or outputs (one line);
            a folder the tool did not make is an OutputError, before any work.
    """
    from .dataset.datacard import config_fingerprint

    t0 = time.perf_counter()
    root = Path(root or cfg.out)
    seasons = seasons or list(cfg.seasons)
    for name in seasons:
        cfg.season(name)  # unknown / unconfigured season: ConfigError before any work
    workers = workers or cfg.workers
    if executor not in ("process", "dask"):
        raise ConfigError(cfg.source, "executor", f"unknown executor {executor!r}; "
                          "choose 'process' or 'dask'")
    check_output(root, "dataset")  # a folder of the user's: refused before any work
    if backend is None:
        backend = make_backend(cfg)
    with _dask_client(cfg, executor, scheduler, workers) as client:
        claim = claim_output(root, "dataset", config_fingerprint(cfg))
        summary = None
        try:
            with output_lock(root):
                try:
                    summary = _run_locked(cfg, seasons, root, backend, progress, force,
                                          workers, client, on_scene, t0, claim.fresh)
                finally:
                    if claim.fresh and (summary is None or summary.empty_reason):
                        _undo_first_run(root, claim, keep_finished=summary is None)
        finally:
            if claim.created and root.is_dir() and not any(root.iterdir()):
                root.rmdir()  # the folder this failed first run made
    return summary


def _dask_client(cfg: Config, executor: str, scheduler: str | None, workers: int) -> Any:
    """A context holding the Dask client of a ``dask`` run (connected before any work;
    an unreachable scheduler is one line naming it), else nothing."""
    import contextlib

    if executor != "dask":
        return contextlib.nullcontext(None)
    try:
        from dask.distributed import Client
    except ImportError:
        raise ConfigError(cfg.source, "executor", "the dask executor needs the `dask` "
                          "extra: pip install 'sen12ms-build[dask]'") from None
    if not scheduler:
        return Client(n_workers=workers, threads_per_worker=1)
    try:
        return Client(scheduler, timeout=DASK_CONNECT_TIMEOUT_S)
    except (OSError, TimeoutError, ValueError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ConfigError("", "--scheduler", f"cannot reach the Dask scheduler at "
                          f"{scheduler} within {DASK_CONNECT_TIMEOUT_S} s ({first}); start "
                          "it (`dask scheduler`), or check the address") from None


def _undo_first_run(root: Path, claim: Claim, keep_finished: bool) -> None:
    """After a failed first run into a new or empty folder: remove what it wrote (the
    record of written files, the state file, the marker), so no skeleton is left. With
    ``keep_finished`` (the run stopped on an error or an interrupt), scenes that finished a
    stage are kept for the resume."""
    path = state_path(root)
    if path.exists():
        with State(path) as state:
            if keep_finished and state.scenes():
                log.info("finished work is kept in %s: run the same command again to resume",
                         root)
                return
            state.discard(state.written())
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        for folder in (path.parent, root / "rois"):
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
    remove_stale_temporaries(root)
    (root / MARKER).unlink(missing_ok=True)
    for folder, _, _ in sorted(os.walk(root), key=lambda w: -len(Path(w[0]).parts)):
        if Path(folder) != root and not os.listdir(folder):
            os.rmdir(folder)  # the (empty) folders this run made in its new folder
    left = [p for p in root.iterdir() if p.name != ".sen12ms.lock"] if root.is_dir() else []
    if left:
        log.warning("%s: %d entr(y/ies) not written by this run left in place: %s", root,
                    len(left), ", ".join(sorted(p.name for p in left)[:5]))


def _remove_stale(cfg: Config, plan: dict[str, list[ROI]], root: Path,
                  state: State) -> None:
    """Scenes of the seasons being run that this run's settings no longer make (another
    ``seasons.<s>.seed``, a shorter ROI list): their files (those the tool wrote: patches,
    quality layers, intermediates, quicklook, ROI list, review page) and state records go,
    so the tree, manifest and splits hold this run's scenes only."""
    wanted = {(cfg.branch(n), r.scene) for n, rois in plan.items() for r in rois}
    stale = [(b, s) for b, s in state.scenes()
             if b.split("_", 1)[-1] in plan and (b, s) not in wanted]
    if not stale:
        return
    by_branch: dict[str, list[int]] = {}
    for branch, scene in stale:
        by_branch.setdefault(branch, []).append(scene)
        n = _remove_patches(root, branch, scene, state, cfg)
        wd = Path(root) / layout.WORK_DIR / branch / f"scene_{scene}"
        n += state.discard(state.written(wd))
        n += state.discard(f for f in state.written(Path(root) / "quicklooks" / branch)
                           if f.stem == f"scene_{scene}")
        state.forget(branch, scene)
    live = {b for b, _ in state.scenes()}
    for branch, scenes in sorted(by_branch.items()):
        if branch not in live:  # the whole branch is gone: its ROI list and review page
            state.discard(f for folder in ("rois", "review", "quicklooks")
                          for f in state.written(Path(root) / folder)
                          if f.name.startswith(f"{branch}.") or branch in f.parts)
        log.info("%s: %d scene(s) no longer made by these settings removed (%s)", branch,
                 len(scenes), "the whole branch" if branch not in live else
                 f"scene(s) {', '.join(map(str, sorted(scenes)))}")


def _run_locked(cfg: Config, seasons: list[str], root: Path, backend: Backend,
                progress: bool, force: tuple[str, ...], workers: int, client: Any,
                on_scene: Callable[[SceneResult], None] | None, t0: float,
                fresh: bool) -> RunSummary:
    remove_stale_temporaries(root)
    summary = RunSummary(seasons=list(seasons))
    with State(state_path(root)) as state:  # (made first: it records every file written)
        variants.claim_root(root, cfg)  # one root, one variant's tree
        plan = {name: rois_for_run(cfg, name, root) for name in seasons}
        _remove_stale(cfg, plan, root, state)
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
        for n, r in tasks:
            fp_tile = stage_fingerprints(cfg, n, r, backend.name, backend.export_grid)[2]
            record, damaged = state.check(cfg.branch(n), r.scene, "tile", fp_tile)
            summary.resumed += bool(record) and not record.get("input_problem")
            if damaged:  # finished, but its files are not the ones written: redone
                log.warning("%s scene %d is done again: %s%s", cfg.branch(n), r.scene,
                            "; ".join(damaged[:5]), " ..." if len(damaged) > 5 else "")
    if summary.resumed:
        log.info("resuming: %d of %d scenes already done", summary.resumed, len(tasks))
    bar = tqdm(total=len(tasks), desc="scenes", unit="scene", disable=not progress)
    records = []
    try:
        for res in _execute(cfg, tasks, root, backend, workers, client, progress):
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
        for skipped in filter(None, str(rec.get("inputs_skipped") or "").split("; ")):
            if skipped not in summary.problems:  # assets a worker's backend skipped
                summary.problems.append(skipped)
    if summary.patches_kept == 0:
        summary.empty_reason = _why_no_patch(cfg, records)
    summary.seconds = round(time.perf_counter() - t0, 2)
    summary.peak_memory_mib = round(peak_memory_mib(), 1)
    if summary.empty_reason and fresh:  # a failed first run: no empty dataset skeleton
        return summary
    finalize(root, cfg)
    if cfg.quicklooks:  # --- quicklooks and review pages (sen12ms_build.curation.review) ---
        from .curation.review import write_review  # the review pages need the finished tree

        if cfg.variant != "cr-ts":  # (a time series has no triplet to review)
            write_review(root, cfg)
        if cfg.variant != "sen12ms":  # the pairs / series side by side (variants.quicklook)
            from .dataset.finalize import scene_records
            from .variants import quicklook

            quicklook.write(root, cfg, scene_records(root))
    summary.seconds = round(time.perf_counter() - t0, 2)
    summary.disk = disk_usage(root)
    return summary


_WORKER_BACKEND: dict[str, Backend] = {}


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
             workers: int, client: Any, progress: bool) -> Iterator[SceneResult]:
    """Run the scene tasks (on the Dask ``client`` when given); yield results as they
    complete."""
    if client is not None:
        from dask.distributed import as_completed as dask_completed

        # a local cluster shares this machine's cores; a remote worker's are unknown here,
        # so its model runs on one thread (the worker's own thread, threads_per_worker=1)
        local = getattr(client, "cluster", None) is not None
        threads = scorer_threads(workers) if local else 1
        futures = [client.submit(scene_task, cfg, n, r, str(root), threads, pure=False)
                   for n, r in tasks]
        for fut in dask_completed(futures):
            yield fut.result()
        return
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
