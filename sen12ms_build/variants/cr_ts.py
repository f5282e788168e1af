"""``variant: cr-ts`` (SEN12MS-CR-TS): per ROI a time series of single acquisitions, in the
released ``ROIs<seed>/<roi>/{S1,S2}/<t>`` tree (:mod:`..dataset.cr_layout`).

An ROI (the season's ROIs keep their seed, ``ROIs<seed>``, and scene number, ``<roi>``)
goes through three recorded stages, resumable as the paper's:

* **export** (:meth:`Backend.export_time_series`): ``cloud_removal.time_points`` slots
  spread regularly over the year (``cloud_removal.start`` .. ``end``, default the
  configured seasons' span); each slot the Sentinel-2 acquisition nearest its centre that
  covers ``min_coverage_percent`` of the ROI, and the Sentinel-1 acquisition nearest that
  one (:func:`sen12ms_build.mosaic.cloudy_pick.time_series`), each written once;
* **warp**: every distinct acquisition warped to the scene's UTM grid (as ``reproject``
  says for s1/s2), and each Sentinel-2's cloud and shadow masks
  (:func:`sen12ms_build.variants.cr.write_scene_masks`);
* **tile**: the patch locations of the scene grid (``tiling``; the released set has
  non-overlapping 256 px patches: ``stride: 256``). A location is kept when every time
  point has data over all of it, in S1 and S2 (the loaders read the same patch ids at
  every time point); clouds never reject it. Each time point's S1, S2 and mask patch is
  written, with its cloud coverage in the record.

Its root tables and descriptions are :mod:`sen12ms_build.dataset.ts_finalize`'s.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine

from ..backends import Backend, ExportGrid, NoDataError
from ..config import ConfigError
from ..dataset import cr_layout, layout
from ..mosaic import cloudy_masks
from ..planning import fingerprint, time_series_request
from ..products import modalities
from ..raster.geotiff import write_or_gdal
from ..raster.io import InputError, sha256
from ..raster.tiling import patch_windows, write_patch
from ..raster.warp import adopt_on_grid, warp_to_file
from ..roi import ROI
from ..state import State
from . import cr

log = logging.getLogger(__name__)

#: Bumped when the tree or its records change (part of the tile stage's fingerprint).
TS_VERSION = 1



def fingerprints(cfg: Any, roi: ROI, backend: Backend) -> tuple[str, str, str]:
    """The export, warp and tile fingerprints of one ROI's time series."""
    start, end = cfg.year_span
    grid = (cfg.reproject.resolution_m,) if backend.export_grid is ExportGrid.SCENE else ()
    fp_export = fingerprint("cr-ts", asdict(roi), start, end, cfg.cloud_removal.time_points,
                            cfg.cloud_removal.min_coverage_percent, backend.name, *grid)
    fp_warp = fingerprint(fp_export, asdict(cfg.reproject),
                          cfg.mosaic_params.fingerprint_dict(), asdict(cr.mask_settings(cfg)))
    fp_tile = fingerprint(fp_warp, asdict(cfg.tiling), TS_VERSION)
    return fp_export, fp_warp, fp_tile


def _date(iso: str) -> dt.date:
    return dt.datetime.fromisoformat(str(iso).replace("Z", "+00:00")).date()


def _export(cfg: Any, roi: ROI, backend: Backend, wd: Path) -> dict[str, Any]:
    if not backend.supports("time_series"):
        raise ConfigError(cfg.source, "variant", f"the {backend.name} backend cannot build "
                          "cr-ts time series (local and stac can); use --backend local|stac")
    res = backend.export_time_series(time_series_request(cfg, roi), wd / "export")
    return {"points": res.points, **res.meta}


def _warp(cfg: Any, roi: ROI, backend: Backend, wd: Path, points: list[dict]
          ) -> list[Path]:
    """Warp every distinct file, compute each S2's masks; returns the outputs."""
    grid = roi.scene_grid(cfg.reproject.resolution_m)
    mods = modalities("l1c")
    outputs = []
    done: set[str] = set()
    for p in points:
        for key, name in (("s2", p["s2_file"]), ("s1", p["s1_file"])):
            if name in done:
                continue
            done.add(name)
            src, dst = wd / "export" / name, wd / "utm" / name
            if backend.export_grid is ExportGrid.SCENE:
                adopt_on_grid(src, dst, grid, mods[key])
            else:
                method = cfg.reproject.resampling.get(key, mods[key].resampling)
                warp_to_file(src, dst, grid, mods[key], method,
                             cfg.reproject.warp_mem_limit_mb)
            outputs.append(dst)
            if key == "s2":
                mask = wd / "utm" / f"mask_{name}"
                cr.write_scene_masks(dst, mask, p["s2"], cfg)
                outputs.append(mask)
    return outputs


def _valid(path: Path, key: str) -> np.ndarray:
    """(H, W) bool: pixels of a UTM scene file with data (S2: any band not 0; S1: no band
    NaN)."""
    with rasterio.open(path) as src:
        a = src.read()
    return ~np.any(np.isnan(a), axis=0) if key == "s1" else np.any(a != 0, axis=0)


def _tile(cfg: Any, roi: ROI, seed: int, root: Path, wd: Path, points: list[dict]
          ) -> tuple[list[dict], list[Path]]:
    """Write every kept location's patches at every time point; returns the location
    records and the files written."""
    size, stride = cfg.tiling.patch_size, cfg.tiling.stride
    utm = wd / "utm"
    valid = None
    for name, key in {**{p["s2_file"]: "s2" for p in points},
                      **{p["s1_file"]: "s1" for p in points}}.items():
        v = _valid(utm / name, key)
        valid = v if valid is None else valid & v
    h, w = valid.shape
    wins = patch_windows(w, h, size, stride)
    with rasterio.open(utm / points[0]["s2_file"]) as src:
        crs, transform = src.crs, src.transform
    records = []
    for win in wins:
        share = 1.0 - float(valid[win.row:win.row + size, win.col:win.col + size].mean())
        keep = share <= cfg.curation.patch_max_nodata_share
        t = transform @ Affine.translation(win.col, win.row)
        records.append({"patch": win.patch, "row": win.row, "col": win.col,
                        "bounds": (t.c, t.f + size * t.e, t.c + size * t.a, t.f),
                        "kept": keep, "reason": "" if keep else "nodata",
                        "values": {"nodata": round(share, 6)}, "files": {},
                        "coverage": {}})
    written: list[Path] = []
    cache: dict[str, np.ndarray] = {}
    for p in points:
        t_ = p["t"]
        d2, d1 = _date(p["s2"]["time"]), _date(p["s1"]["time"])
        arrays = {}
        names = {p["s2_file"]: "s2", p["s1_file"]: "s1", f"mask_{p['s2_file']}": "mask"}
        for name in [n for n in cache if n not in names]:  # memory: this point's scenes only
            del cache[name]  # (neighbouring slots often share theirs: kept for the next)
        for name, key in names.items():
            if name not in cache:
                with rasterio.open(utm / name) as src:
                    cache[name] = src.read()
            arrays[key] = cache[name]
        for rec in records:
            r, c, n = rec["row"], rec["col"], rec["patch"]
            paths = {m: cr_layout.ts_patch_path(root, seed, roi.scene, m, t_,
                                                d1 if m == "s1" else d2, n)
                     for m in ("s1", "s2", "s2_mask")}
            if not rec["kept"]:
                for f in paths.values():
                    f.unlink(missing_ok=True)
                continue
            win = {k: a[:, r:r + size, c:c + size] for k, a in arrays.items()}
            tr = transform @ Affine.translation(c, r)
            tags = {"SEN12MS_ROI_ID": roi.id, "TIME_POINT": str(t_),
                    "SLOT_CENTRE": p["slot_centre"], "S2_PRODUCT_ID": p["s2"]["id"],
                    "S2_DATETIME": p["s2"]["time"], "S1_PRODUCT_ID": p["s1"]["id"],
                    "S1_DATETIME": p["s1"]["time"],
                    "CLOUD_COVERAGE": f"{cloudy_masks.coverage(win['mask'][0]):.4f}",
                    "SHADOW_COVERAGE": f"{cloudy_masks.coverage(win['mask'][1]):.4f}"}
            for m, key in (("s1", "s1"), ("s2", "s2")):
                paths[m].parent.mkdir(parents=True, exist_ok=True)
                write_patch(paths[m], win[key], key, crs, tr, tags)
            paths["s2_mask"].parent.mkdir(parents=True, exist_ok=True)
            write_or_gdal(paths["s2_mask"], win["mask"], crs=crs, transform=tr,
                          nodata=cloudy_masks.NODATA, dtype="uint8",
                          descriptions=cr.MASK_BANDS, tags=tags, compress="deflate")
            for m, f in paths.items():
                rec["files"][f"{m}_t{t_}"] = f
                written.append(f)
            rec["coverage"][str(t_)] = [round(cloudy_masks.coverage(win["mask"][0]), 6),
                                        round(cloudy_masks.coverage(win["mask"][1]), 6)]
    return records, written


def process_roi(cfg: Any, season: str, roi: ROI, root: Path, backend: Backend,
                state: State, base: dict[str, Any]) -> tuple[dict, float, bool]:
    """Run (or resume) one ROI's time series; returns (record, seconds, skipped) for the
    pipeline's :class:`SceneResult`."""
    t0 = time.perf_counter()
    s = cfg.season(season)
    branch = layout.branch_name(s.seed, season)
    wd = layout.scene_workdir(root, s.seed, season, roi.scene)
    fp_export, fp_warp, fp_tile = fingerprints(cfg, roi, backend)
    start, end = cfg.year_span
    base = {**base, "variant": "cr-ts", "start": start.isoformat(), "end": end.isoformat()}
    done = state.done(branch, roi.scene, "tile", fp_tile)
    if done and not done.get("input_problem"):
        return done, 0.0, True
    export = state.done(branch, roi.scene, "export", fp_export)
    if export is None:
        try:
            meta = _export(cfg, roi, backend, wd)
        except (NoDataError, InputError) as exc:
            log.warning("ROI %s %d rejected: %s", branch, roi.scene, exc)
            record = {**base, "status": "rejected", "reason": f"no_data: {exc}",
                      "patches": 0, "patches_kept": 0}
            if isinstance(exc, InputError):
                record["input_problem"] = str(exc)
            state.finish(branch, roi.scene, "tile", fp_tile, {**record, "patch_records": []},
                         [])
            return {**record, "patch_records": []}, time.perf_counter() - t0, False
        files = sorted({wd / "export" / f for p in meta["points"]
                        for f in (p["s2_file"], p["s1_file"])})
        export = state.finish(branch, roi.scene, "export", fp_export, {"meta": meta}, files)
    meta = export["meta"]
    points = meta["points"]
    if state.done(branch, roi.scene, "warp", fp_warp) is None:
        outputs = _warp(cfg, roi, backend, wd, points)
        state.finish(branch, roi.scene, "warp", fp_warp, {}, outputs)
    grid = roi.scene_grid(cfg.reproject.resolution_m)
    patches, written = _tile(cfg, roi, s.seed, root, wd, points)
    state.wrote(written)
    owned = state.written(cr_layout.ts_roi_folder(root, s.seed, roi.scene))
    keep = {Path(f).resolve() for f in written}
    stale = [f for f in owned if Path(f).resolve() not in keep]
    state.discard(stale)
    for p in patches:
        p["sha256"] = {k: sha256(f) for k, f in p["files"].items()}
        p["files"] = {k: str(Path(f).relative_to(root)) for k, f in p["files"].items()}
    kept = sum(p["kept"] for p in patches)
    covs = [c[0] for p in patches for c in p["coverage"].values()]
    record = {**base, "status": "kept" if kept else "rejected",
              "reason": "" if kept else "nodata", "width": grid.width,
              "height": grid.height, "crs": grid.crs, "backend": backend.name,
              "time_points": len(points), "points": points,
              "s2_distinct": meta.get("s2_distinct"), "s1_distinct": meta.get("s1_distinct"),
              "s2_acquisitions": meta.get("s2_acquisitions"),
              "s1_acquisitions": meta.get("s1_acquisitions"),
              "patches": len(patches) * len(points), "patches_kept": kept * len(points),
              "locations": len(patches), "locations_kept": kept,
              "mean_cloud_coverage": round(float(np.mean(covs)), 4) if covs else ""}
    state.finish(branch, roi.scene, "tile", fp_tile, {**record, "patch_records": patches},
                 written)
    return {**record, "patch_records": patches}, time.perf_counter() - t0, False
