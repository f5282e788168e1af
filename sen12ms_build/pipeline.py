"""The pipeline: sample ROIs -> export (backend) -> warp to UTM -> curate -> tile -> metadata.

Each scene goes through its stages in ``<root>/.work/<branch>/scene_<n>/``; a stage is done
when its ``stage-<name>.json`` marker (written last, atomically) carries the fingerprint of
the settings it was made with. A re-run skips finished stages, redoes unfinished or changed
ones, and so resumes an interrupted run; :func:`finalize` rebuilds the root metadata
(manifest, scenes, seasons, splits) from the scene records, so running seasons one by one
into the same root accumulates one dataset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from tqdm.auto import tqdm

from . import curation, layout
from .backends import Backend, NoDataError, SceneRequest, get_backend
from .config import Config
from .io import InputError, remove_stale_temporaries, sha256
from .products import AUX, MODALITIES, S2_COVERAGE
from .reproject import warp_to_file
from .roi import ROI, read_geojson, write_geojson
from .tiling import tile_scene

log = logging.getLogger(__name__)


def fingerprint(*parts: Any) -> str:
    """Short stable hash of JSON-able settings."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _stage_done(folder: Path, name: str, fp: str) -> dict | None:
    marker = folder / f"stage-{name}.json"
    if marker.exists():
        try:
            data = json.loads(marker.read_text())
        except (OSError, json.JSONDecodeError):
            return None
        if data.get("fingerprint") == fp:
            return data
    return None


def _mark(folder: Path, name: str, fp: str, **data: Any) -> dict:
    record = {"fingerprint": fp, **data}
    layout.write_json(folder / f"stage-{name}.json", record)
    return record


def _clear(folder: Path, *names: str) -> None:
    """Forget stages (their markers) so they and everything after them are redone."""
    for n in names:
        (folder / f"stage-{n}.json").unlink(missing_ok=True)


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
            "start": s.start.isoformat(), "end": s.end.isoformat()}


def process_scene(cfg: Config, season: str, roi: ROI, root: Path, backend: Backend,
                  progress: bool = False) -> SceneResult:
    """Run every stage of one scene; returns its record (also saved as ``scene.json``)."""
    t0 = time.perf_counter()
    s = cfg.season(season)
    wd = layout.scene_workdir(root, s.seed, season, roi.scene)
    wd.mkdir(parents=True, exist_ok=True)
    base = _scene_base(cfg, season, roi)
    params = cfg.mosaic_params

    fp_export = fingerprint(asdict(roi), base["start"], base["end"], params.as_dict(),
                            backend.name, cfg.landcover_year)
    fp_warp = fingerprint(fp_export, asdict(cfg.reproject))
    fp_tile = fingerprint(fp_warp, asdict(cfg.tiling), asdict(cfg.curation))
    done = _stage_done(wd, "tile", fp_tile)
    if done:
        return SceneResult(done["record"], skipped=True)
    request = scene_request(cfg, season, roi)

    # 1. export on the backend's grid (EPSG:4326, 0.0001 degrees)
    export = _stage_done(wd, "export", fp_export)
    if export is None:
        _clear(wd, "warp", "tile")
        try:
            result = backend.export_scene(request, wd / "export")
        except (NoDataError, InputError) as exc:
            log.warning("scene %s %d rejected: %s", base["branch"], roi.scene, exc)
            record = {**base, "status": "rejected", "reason": f"no_data: {exc}",
                      "patches": 0, "patches_kept": 0}
            _mark(wd, "tile", fp_tile, record=record, patches=[])
            return SceneResult(record, time.perf_counter() - t0)
        export = _mark(wd, "export", fp_export, meta=result.meta)
    meta = export["meta"]

    # 2. warp to the local UTM zone at square pixels
    grid = roi.scene_grid(cfg.reproject.resolution_m)
    utm = {k: wd / "utm" / f"{k}.tif" for k in ("s1", "s2", "lc", "aux")}
    if not (wd / "export" / "s2_aux.tif").exists():
        utm.pop("aux")
    if _stage_done(wd, "warp", fp_warp) is None:
        _clear(wd, "tile")
        for k, dst in utm.items():
            src = wd / "export" / ("s2_aux.tif" if k == "aux" else f"{k}.tif")
            modality = AUX if k == "aux" else MODALITIES[k]
            method = cfg.reproject.resampling.get(k, modality.resampling)
            warp_to_file(src, dst, grid, modality, method, cfg.reproject.warp_mem_limit_mb)
        _mark(wd, "warp", fp_warp, width=grid.width, height=grid.height, crs=grid.crs)

    # 3. scene round of curation
    keep, reason, values = curation.scene_decision_from_files(utm, cfg.curation)
    record = {**base, "width": grid.width, "height": grid.height, **values,
              "s2_images": len(meta.get("s2_images", [])),
              "s2_best": len(meta.get("s2_best", [])),
              "mosaic_poor_share": meta.get("poor_share")}
    branch_dir = Path(root) / base["branch"]
    if not keep:
        log.info("scene %s %d rejected by the scene round: %s=%s", base["branch"], roi.scene,
                 reason, values.get(reason))
        for dd in layout.DATA_IDS:
            shutil.rmtree(branch_dir / f"{dd}_{roi.scene}", ignore_errors=True)
        record.update(status="rejected", reason=reason, patches=0, patches_kept=0)
        _mark(wd, "tile", fp_tile, record=record, patches=[])
        return SceneResult(record, time.perf_counter() - t0)

    # 4. tiling with the patch round of curation
    def name_for(dd: str, patch: int) -> Path:
        return layout.patch_path(root, s.seed, season, dd, roi.scene, patch)

    bar = tqdm(total=None, desc=f"  patches {base['branch']}/{roi.scene}", unit="patch",
               leave=False, disable=not progress)
    try:
        patches = tile_scene(utm, name_for,
                             lambda arrays: curation.patch_decision(arrays, cfg.curation),
                             cfg.tiling.patch_size, cfg.tiling.stride, progress=bar.update)
    finally:
        bar.close()
    for p in patches:
        p["sha256"] = {k: sha256(f) for k, f in p["files"].items()}
        p["files"] = {k: str(Path(f).relative_to(root)) for k, f in p["files"].items()}
    kept = sum(p["kept"] for p in patches)
    record.update(status="kept", reason="", patches=len(patches), patches_kept=kept,
                  crs=grid.crs)
    _mark(wd, "tile", fp_tile, record=record, patches=patches)
    return SceneResult(record, time.perf_counter() - t0)


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
        on_scene: Callable[[SceneResult], None] | None = None) -> RunSummary:
    """Build (or resume) the dataset for ``seasons`` (default: every configured season)."""
    t0 = time.perf_counter()
    root = Path(root or cfg.out)
    seasons = seasons or list(cfg.seasons)
    for name in seasons:
        cfg.season(name)  # unknown / unconfigured season: ConfigError before any work
    if backend is None:
        backend = make_backend(cfg, progress)
    root.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(root)
    summary = RunSummary(seasons=list(seasons))
    plan = {name: rois_for_run(cfg, name, root) for name in seasons}
    prepare = getattr(backend, "prepare", None)
    if prepare is not None:  # batch exports: submit every scene's tasks up front
        prepare([scene_request(cfg, n, r) for n, rois in plan.items() for r in rois])
    for name, rois in plan.items():
        log.info("season %s: %d ROI(s) -> %s", name, len(rois), cfg.branch(name))
        for roi in tqdm(rois, desc=f"{cfg.branch(name)} scenes", unit="scene",
                        disable=not progress):
            res = process_scene(cfg, name, roi, root, backend, progress)
            if on_scene:
                on_scene(res)
            rec = res.record
            summary.scenes += 1
            summary.scenes_kept += rec["status"] == "kept"
            summary.patches += rec.get("patches", 0)
            summary.patches_kept += rec.get("patches_kept", 0)
    summary.problems = list(getattr(backend, "problems", []))
    finalize(root, cfg)
    summary.seconds = round(time.perf_counter() - t0, 2)
    summary.peak_memory_mib = round(peak_memory_mib(), 1)
    return summary


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


def make_backend(cfg: Config, progress: bool = False) -> Backend:
    """The configured backend."""
    b = cfg.backend
    if b.name == "local":
        if not b.archive:
            from .config import ConfigError

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
    out = []
    for marker in sorted(Path(root, layout.WORK_DIR).glob("*/scene_*/stage-tile.json")):
        data = json.loads(marker.read_text())
        out.append((data["record"], data.get("patches", [])))
    out.sort(key=lambda x: (x[0]["branch"], x[0]["scene"]))
    return out


def finalize(root: Path, cfg: Config) -> dict[str, int]:
    """Write ``manifest.csv``, ``scenes.csv``, ``seasons.csv``, ``train_list.txt`` and
    ``test_list.txt`` from every finished scene under ``root``."""
    root = Path(root)
    records = scene_records(root)
    manifest, scenes = [], []
    kept_scenes = [r for r, _ in records if r["status"] == "kept"]
    test = layout.split_scenes([(r["branch"], r["scene"]) for r in kept_scenes],
                               cfg.splits.test_fraction, cfg.splits.seed)
    train_list, test_list = [], []
    for rec, patches in records:
        scenes.append([rec.get(k, "") for k in layout.SCENES_HEADER])
        for p in patches:
            l, b, r, t = p["bounds"]
            v = p["values"]
            manifest.append([
                f"{rec['branch']}_{rec['scene']}_p{p['patch']}", rec["branch"], rec["season"],
                rec["scene"], p["patch"], "kept" if p["kept"] else "rejected", p["reason"],
                rec.get("crs", ""), l, b, r, t, v.get("nodata_s1", ""), v.get("nodata_s2", ""),
                v.get("nodata_lc", ""), v.get("poor", ""),
                *(p["files"].get(k, "") for k in layout.DATA_IDS),
                *(p.get("sha256", {}).get(k, "") for k in layout.DATA_IDS)])
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
