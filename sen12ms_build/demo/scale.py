"""A dataset of any size without pixels: the state and records :func:`finalize` reads.

For the scale tests and ``scripts/benchmark_finalize.py``: :func:`synthesize` writes what a
finished run leaves for ``finalize`` (``.work/state.sqlite`` with one ``tile`` record per
scene, its patch records and the record of written files; ``rois/<branch>.geojson``, the
footprints the splits read), shaped like the paper's full reproduction: 600 scenes, of
which 252 survive the scene round, 841 patches tiled per kept scene (a 3840 px scene at
256/128), 180,662 kept in all. Smaller datasets keep those proportions.

``finalize`` reads no pixel: it writes the manifest, splits and self-descriptions from the
records alone, so by default no patch file exists (the STAC assets point to absent files,
which only ``validate`` would notice). ``placeholders=True`` makes every patch file a
symbolic link to one real 256 x 256 GeoTIFF per modality and scene (with the records'
checksums and the scene's provenance tags), so that ``validate`` can read a tree of any
size at little disk cost.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np

from ..dataset import layout, provenance
from ..products import LC_COLLECTION
from ..roi import ROI, write_geojson
from ..state import State, state_path

#: The paper's full reproduction (section 3.3): scenes downloaded, scenes kept by the first
#: inspection round, patch triplets kept by the second.
PAPER_SCENES, PAPER_KEPT_SCENES, PAPER_PATCHES = 600, 252, 180_662
#: Patches per row of a paper scene: 3840 px at patch 256, stride 128.
GRID = 29
ROI_SIZE_M = 38_400.0
#: Share of ROIs placed over an ROI of an earlier season (the paper's 600 ROIs hold 20
#: overlapping pairs across seasons): the leak-free split has real groups to keep together.
OVERLAP_SHARE = 20 / 600
_S2_TILE = "T18SVG"


def plan_sizes(kept_patches: int, grid: int = GRID) -> tuple[int, int]:
    """(kept scenes, all scenes) of a dataset of ``kept_patches`` kept patch triplets, in the
    paper's proportions (at least one kept scene per ``grid``² patches)."""
    per_scene = PAPER_PATCHES / PAPER_KEPT_SCENES
    kept = max(math.ceil(kept_patches / grid ** 2), round(kept_patches / per_scene), 1)
    return kept, max(kept, round(kept * PAPER_SCENES / PAPER_KEPT_SCENES))


def _rois(n: int, cfg: Any, rng: np.random.Generator) -> dict[str, list[ROI]]:
    """``n`` ROIs dealt to the config's seasons in turn: uniform on the sphere between
    56 S and 70 N, a few placed over an ROI of an earlier season (10 km away)."""
    seasons = list(cfg.seasons)
    out: dict[str, list[ROI]] = {s: [] for s in seasons}
    placed: list[tuple[float, float]] = []
    for i in range(n):
        season = seasons[i % len(seasons)]
        if placed and i >= len(seasons) and rng.random() < OVERLAP_SHARE:
            lon, lat = placed[int(rng.integers(len(placed)))]
            lat = min(lat + 0.09, 70.0)  # 10 km north: the squares share a strip
        else:
            lon = float(rng.uniform(-179.0, 179.0))
            lat = math.degrees(math.asin(rng.uniform(math.sin(math.radians(-56)),
                                                     math.sin(math.radians(70)))))
        placed.append((lon, lat))
        kind = "urban" if i % 3 == 0 else "land"
        scene = len(out[season]) + 1
        out[season].append(ROI.at(scene, cfg.season(season).seed, kind, round(lon, 5),
                                  round(lat, 5), ROI_SIZE_M))
    return out


def _hex(*parts: Any) -> str:
    return hashlib.sha256("/".join(map(str, parts)).encode()).hexdigest()


def _sources(roi: ROI, season: str, start: str, rng: np.random.Generator) -> dict:
    """A scene's sources as :func:`provenance.scene_sources` gives them: 4-6 Sentinel-2
    acquisitions and 3 Sentinel-1 ones in the season."""
    t0 = np.datetime64(start)
    s2 = []
    for k in range(int(rng.integers(4, 7))):
        t = (t0 + np.timedelta64(5 + 15 * k, "D") + np.timedelta64(55841, "s")).item()
        s2.append({"id": f"S2A_MSIL1C_{t:%Y%m%dT%H%M%S}_N0205_R054_{_S2_TILE}_"
                         f"{t:%Y%m%dT%H%M%S}",
                   "datetime": f"{t:%Y-%m-%dT%H:%M:%SZ}"})
    s1 = []
    for k, orbit in enumerate(("ascending", "descending", "ascending")):
        t = (t0 + np.timedelta64(16 + 30 * k, "D") + np.timedelta64(83049, "s")).item()
        s1.append({"id": f"{t:%Y%m%dT%H%M%S}_{orbit.upper()}",
                   "datetime": f"{t:%Y-%m-%dT%H:%M:%SZ}", "orbit_state": orbit})
    return {"season": season, "roi_id": roi.id, "s2": s2, "s1": s1,
            "lc_product": LC_COLLECTION, "lc_year": 2016}


def _patch_tags(sources: dict, rng: np.random.Generator) -> dict[str, str]:
    """Provenance tags of one patch (:data:`provenance.TAG_KEYS`): 1-3 contributing
    Sentinel-2 images with shares, residual cloud and shadow, 2-5 IGBP classes."""
    s2 = sources["s2"]
    take = sorted(rng.choice(len(s2), size=int(rng.integers(1, 4)), replace=False))
    w = rng.dirichlet(np.ones(len(take)))
    order = np.argsort(-w)
    classes = sorted(rng.choice(np.arange(1, 18), size=int(rng.integers(2, 6)),
                                replace=False))
    counts = rng.multinomial(256 * 256, rng.dirichlet(np.ones(len(classes))))
    return {
        "SEN12MS_VERSION": "0.1.0", "SEN12MS_ROI_ID": sources["roi_id"],
        "SEN12MS_SEASON": sources["season"],
        "S2_PRODUCT_IDS": ",".join(s2[take[i]]["id"] for i in order),
        "S2_DATETIMES": ",".join(s2[take[i]]["datetime"] for i in order),
        "S2_SHARES": ",".join(f"{w[i]:.4f}" for i in order),
        "S1_PRODUCT_IDS": ",".join(a["id"] for a in sources["s1"]),
        "S1_DATETIMES": ",".join(a["datetime"] for a in sources["s1"]),
        "S1_ORBIT_STATES": ",".join(a["orbit_state"] for a in sources["s1"]),
        "LC_PRODUCT": LC_COLLECTION, "LC_YEAR": "2016",
        "MAX_S1_S2_GAP_DAYS": f"{rng.uniform(0, 40):.2f}",
        "CLOUD_SHARE": f"{rng.uniform(0, 0.05):.4f}",
        "SHADOW_SHARE": f"{rng.uniform(0, 0.02):.4f}", "QA_MASKS": "cloud,shadow",
        "LC_IGBP_COUNTS": ",".join(f"{c}:{n}" for c, n in zip(classes, counts) if n)}


def scene_record(cfg: Any, season: str, roi: ROI, kept: int, tiled: int, grid: int,
                 rng: np.random.Generator, placeholder: dict | None = None) -> dict:
    """The ``tile`` record of one scene as the pipeline stores it (``patch_records``
    included): ``tiled`` patches of a ``grid`` x ``grid`` layout, the first ``kept`` of a
    seeded order kept, the others rejected by the patch round; ``tiled == 0`` is a scene
    the scene round rejected. ``placeholder``: the tags and checksums every patch carries
    (:func:`write_placeholders`)."""
    s = cfg.season(season)
    branch = layout.branch_name(s.seed, season)
    sources = _sources(roi, season, s.start.isoformat(), rng)
    x0, y0, x1, y1 = roi.utm_bounds(cfg.reproject.resolution_m)
    size = cfg.tiling.patch_size * cfg.reproject.resolution_m
    step = cfg.tiling.stride * cfg.reproject.resolution_m
    rec = {"branch": branch, "season": season, "seed": s.seed, "scene": roi.scene,
           "roi_id": roi.id, "kind": roi.kind, "lon": roi.lon, "lat": roi.lat,
           "utm_zone": roi.utm_zone, "epsg": roi.epsg, "start": s.start.isoformat(),
           "end": s.end.isoformat(), "scorer": "paper", "merge": "paper",
           "shadow_over_water": "false", "width": round((x1 - x0) / 10),
           "height": round((y1 - y0) / 10),
           **{c: 0.0 for c in layout.CHECK_COLUMNS if c != "poor_blob"},
           "s2_dark_floor": 0.09, "s2_images": len(sources["s2"]), "s2_best": 1,
           "mosaic_poor_share": 0.0, "crs": f"EPSG:{roi.epsg}", "backend": "earthengine",
           "s2_level": "l1c", "inputs_skipped": "", "duplicates_dropped": "",
           "sources": sources, "status": "kept" if tiled else "rejected",
           "reason": "" if tiled else "nodata_s2", "patches": tiled, "patches_kept": kept}
    keep = set(rng.permutation(tiled)[:kept].tolist())
    patches = []
    for i in range(tiled):
        row, col = divmod(i, grid)
        left, top = x0 + col * step, y1 - row * step
        is_kept = i in keep
        values = {c: 0.0 for c in layout.CHECK_COLUMNS}
        if not is_kept:
            values["nodata_s2"] = round(float(rng.uniform(0.01, 1.0)), 6)
        p = {"patch": i + 1, "row": row * cfg.tiling.stride, "col": col * cfg.tiling.stride,
             "bounds": [left, top - size, left + size, top], "kept": is_kept,
             "reason": "" if is_kept else "nodata_s2", "values": values}
        if is_kept:
            p["files"] = {dd: str(layout.patch_path(Path(), s.seed, season, dd, roi.scene,
                                                    i + 1))
                          for dd in layout.DATA_IDS}
            p["files"]["qa"] = str(layout.quality_path(Path(), s.seed, season, roi.scene,
                                                       i + 1))
            if placeholder:
                p["tags"], p["sha256"] = placeholder["tags"], placeholder["sha256"]
            else:
                p["tags"] = _patch_tags(sources, rng)
                p["sha256"] = {k: _hex(branch, roi.scene, i + 1, k) for k in p["files"]}
        else:
            p["files"], p["tags"], p["sha256"] = {}, {}, {}
        patches.append(p)
    return {**rec, "patch_records": patches}


def write_placeholders(folder: Path, cfg: Any, tags: dict[str, str]) -> dict:
    """One real patch GeoTIFF per modality and a quality layer in ``folder`` (zeros, the
    modality's bands, dtype and nodata, 256 px at 10 m in UTM 33N) carrying the provenance
    ``tags``; returns their ``paths`` and ``sha256``."""
    import rasterio
    from rasterio.transform import from_origin

    from ..products import MODALITIES, s2_modality
    from ..raster.io import sha256

    folder.mkdir(parents=True, exist_ok=True)
    n = cfg.tiling.patch_size
    res = cfg.reproject.resolution_m
    transform = from_origin(500_000.0, 5_000_000.0, res, res)
    paths = {}
    for dd in layout.DATA_IDS:
        m = s2_modality("l1c") if dd == "s2" else MODALITIES[dd]
        path = folder / f"placeholder_{dd}.tif"
        with rasterio.open(path, "w", driver="GTiff", width=n, height=n, count=m.count,
                           dtype=m.dtype, crs="EPSG:32633", transform=transform,
                           nodata=m.nodata, compress="deflate") as f:
            f.write(np.zeros((m.count, n, n), m.dtype))
            f.update_tags(**tags)
            f.descriptions = m.descriptions
        paths[dd] = path
    qa = folder / "placeholder_qa.tif"
    provenance.write_quality(qa, np.zeros((4, n, n), np.uint8), "EPSG:32633", transform,
                             tags, gdal=True)
    paths["qa"] = qa
    return {"paths": paths, "tags": tags, "sha256": {k: sha256(p) for k, p in paths.items()}}


def synthesize(root: Path | str, cfg: Any, kept_patches: int, *, grid: int = GRID,
               seed: int = 0, placeholders: bool = False) -> dict[str, int]:
    """Write the state and ROI footprints of a finished dataset of ``kept_patches`` kept
    patch triplets below ``root`` (see the module's docstring); nothing else.

    Args:
        cfg: the run's config (its seasons, splits, tiling and resolution are used).
        grid: patches per row of a kept scene (``grid``² tiled per scene).
        placeholders: also link every kept patch file (and quality layer) to a real
            GeoTIFF of its scene (:func:`write_placeholders`), for ``validate``.
    Returns:
        ``scenes``, ``kept_scenes``, ``patches`` (tiled), ``kept_patches``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    n_kept_scenes, n_scenes = plan_sizes(kept_patches, grid)
    if kept_patches > n_kept_scenes * grid ** 2:
        raise ValueError(f"{kept_patches} patches do not fit {n_kept_scenes} scenes of "
                         f"{grid}² patches")
    rois = _rois(n_scenes, cfg, rng)
    order = [(season, r) for season in rois for r in rois[season]]
    kept_at = set(rng.permutation(len(order))[:n_kept_scenes].tolist())
    quota = [kept_patches // n_kept_scenes + (i < kept_patches % n_kept_scenes)
             for i in range(n_kept_scenes)]
    written: list[Path] = []
    tiled = 0
    with State(state_path(root)) as st:
        for season, season_rois in rois.items():
            path = root / "rois" / f"{cfg.branch(season)}.geojson"
            path.parent.mkdir(parents=True, exist_ok=True)
            write_geojson(season_rois, path, seed=cfg.season(season).seed, season=season)
            written.append(path)
        k = 0
        for i, (season, roi) in enumerate(order):
            if i in kept_at:
                n_tiled, n_kept = grid ** 2, quota[k]
                k += 1
            else:
                n_tiled = n_kept = 0
            ph = None
            if placeholders and n_kept:  # one set of files per scene: its tags
                sources = _sources(roi, season, cfg.season(season).start.isoformat(),
                                   np.random.default_rng(i))
                ph = write_placeholders(root / ".work" / "placeholders" / f"{season}_{i}",
                                        cfg, _patch_tags(sources, np.random.default_rng(i)))
            rec = scene_record(cfg, season, roi, n_kept, n_tiled, grid, rng, ph)
            tiled += n_tiled
            st.finish(rec["branch"], roi.scene, "tile", "synthetic", rec)
            if ph:
                written += _link_placeholders(root, rec["patch_records"], ph["paths"])
        st.wrote(written)
    return {"scenes": n_scenes, "kept_scenes": n_kept_scenes, "patches": tiled,
            "kept_patches": kept_patches}


def _link_placeholders(root: Path, patches: list[dict], paths: dict[str, Path]) -> list[Path]:
    out = []
    for p in patches:
        for k, rel in p.get("files", {}).items():
            link = root / rel
            link.parent.mkdir(parents=True, exist_ok=True)
            link.unlink(missing_ok=True)
            link.symlink_to(paths[k].resolve())
            out.append(link)
    return out


def add_scene(root: Path | str, cfg: Any, season: str, kept: int, *, grid: int = GRID,
              seed: int = 1, lon: float = 150.0, lat: float = -30.0) -> tuple[str, int]:
    """Record one more finished scene (``kept`` of ``grid``² patches kept) in ``season``
    below ``root``, as a resumed run that finishes one more scene leaves it: its ROI in
    ``rois/<branch>.geojson`` and its ``tile`` record. Returns (branch, scene)."""
    from ..roi import read_geojson

    root = Path(root)
    branch = cfg.branch(season)
    path = root / "rois" / f"{branch}.geojson"
    rois = read_geojson(path) if path.exists() else []
    roi = ROI.at(max((r.scene for r in rois), default=0) + 1, cfg.season(season).seed,
                 "land", lon, lat, ROI_SIZE_M)
    write_geojson([*rois, roi], path, seed=cfg.season(season).seed, season=season)
    rec = scene_record(cfg, season, roi, kept, grid ** 2, grid, np.random.default_rng(seed))
    with State(state_path(root)) as st:
        st.finish(branch, roi.scene, "tile", "synthetic", rec)
        st.wrote([path])
    return branch, roi.scene
