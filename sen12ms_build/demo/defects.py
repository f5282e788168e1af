"""Known defects for the demo archive, with their ground truth, so the curation rounds can be
measured (``sen12ms-build demo-archive DIR --defects``).

:data:`DEFECTS` lists the defects the paper's inspectors rejected by eye (section 3.3), each
placed, in the archive's EPSG:32618 metres, where the demo run (``configs/demo.yaml``) cuts
several patches out of it, and only in the acquisitions that end up in that season's final
scenes:

* ``hole_s2``: a 1.2 km square of no-data (0 in all 13 bands) in every fall Sentinel-2
  acquisition, so the mosaic has no image to fill it from;
* ``hole_lc``: 3 x 3 MODIS cells (1.4 km) of land-cover no-data (255) in the one MCD12Q1
  file, seen by every season's scenes over it;
* ``thin_cloud``: a thin low cloud (peak opacity 0.15, 1 km plateau, 0.6 km soft edge) over
  land in spring's clear acquisition, which the mosaic puts on top; the cloud score stays
  below its threshold there (the haze is *undetected* by the mosaic);
* ``seam``: a -20 % radiometric gain of one winter acquisition over one ROI (soft edges
  outside it): the quality mosaic takes most of its pixels from that acquisition and the
  rest from the others, so every boundary between them becomes a step (a darker image keeps
  its cloud score and stays first in the mosaic; a brighter one would lose ties);
* ``s1_stripe``: a 300 m wide stripe of 0 dB (a zero-filled burst) in every summer
  Sentinel-1 acquisition (the newest ends on top of the S1 composite);
* ``saturation``: a 1.1 km disk saturated (65535) in B2, B3, B4 and B8 of every fall
  acquisition.

Injection is pure numpy on arrays (:func:`apply_s2`, :func:`apply_s1`, :func:`apply_lc`);
:func:`inject_defects` applies it to an archive's files (atomically, each file tagged
``DEFECTS`` so a second call changes nothing) and writes the ground truth:
``truth/defects.json`` (every defect: kind, the check meant to catch it, seasons, files,
footprint in EPSG:32618 and EPSG:4326) and one mask per defect,
``truth/defect_<id>.tif`` (uint8 on the Sentinel-2 grid: 2 core, 1 soft margin, 0 clean).
:func:`evaluate` maps the truth onto a finished run's patches and measures per-defect recall
and the false-reject rate on clean patches.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import rasterio
from pyproj import Transformer
from scipy import ndimage

from ..raster.io import atomic_write_text, write_raster
from ..products import S2_BANDS

log = logging.getLogger(__name__)

DEFECTS_JSON = "truth/defects.json"
TAG = "DEFECTS"
VERSION = 1
CRS = "EPSG:32618"

#: Top-of-atmosphere reflectance of the thin cloud at full opacity (S2_BANDS order): a
#: bright, flat low cloud (as the demo archive's clouds), raised B1, B10 of a low cloud.
THIN_CLOUD_REFLECTANCE: tuple[float, ...] = (
    0.50, 0.52, 0.50, 0.49, 0.49, 0.48, 0.48, 0.47, 0.46, 0.20, 0.04, 0.30, 0.19)
#: Sentinel-2 L1C marks saturated pixels with this value.
SATURATED_DN = 65535


@dataclass(frozen=True)
class Defect:
    """One injected defect.

    Attributes:
        id: short name (also the truth mask's file name).
        kind: ``nodata_hole`` | ``thin_cloud`` | ``seam`` | ``sar_stripe`` | ``saturation``.
        check: the curation check meant to catch it (a :data:`curation.CHECKS` name).
        modality: ``s2``, ``s1`` or ``lc`` (the archive folder whose files are modified).
        seasons: the SEN12MS seasons whose final scenes carry it.
        acquisitions: ``all`` (every file of those seasons) or the sensing date
            (``YYYYMMDD``) of the one acquisition modified.
        shape: ``box`` (x0, y0, x1, y1) or ``disk`` (x, y, radius), EPSG:32618 metres.
        geometry: the shape's numbers.
        edge_m: soft edge width outside the shape (0: hard edge).
        params: kind-specific values (opacity, gain, value, bands).
    """

    id: str
    kind: str
    check: str
    modality: str
    seasons: tuple[str, ...]
    acquisitions: str
    shape: str
    geometry: tuple[float, ...]
    edge_m: float = 0.0
    params: dict[str, Any] = field(default_factory=dict)


ALL_SEASONS = ("spring", "summer", "fall", "winter")

#: The demo's defects. Positions target the demo's planned ROIs (``configs/demo_rois.csv``; fall
#: scene 3, land cover under winter scene 2, spring scene 2, winter scene 3, summer scenes 1
#: and 2, fall scene 2); ``evaluate`` reports how many patches each one reaches.
DEFECTS: tuple[Defect, ...] = (
    Defect("hole_s2", "nodata_hole", "nodata_s2", "s2", ("fall",), "all", "box",
           (439400.0, 4165400.0, 440600.0, 4166600.0)),
    Defect("hole_lc", "nodata_hole", "nodata_lc", "lc", ALL_SEASONS, "all", "box",
           (445900.0, 4163200.0, 447300.0, 4164600.0)),
    Defect("thin_cloud", "thin_cloud", "haze", "s2", ("spring",), "20170421", "disk",
           (439300.0, 4167800.0, 1000.0), edge_m=600.0, params={"opacity": 0.15}),
    Defect("seam", "seam", "seam", "s2", ("winter",), "20161222", "box",
           (436470.0, 4160570.0, 443070.0, 4167170.0), edge_m=600.0,
           params={"gain": 0.8}),
    Defect("s1_stripe", "sar_stripe", "s1_stripe", "s1", ("summer",), "all", "box",
           (441000.0, 4159990.0, 441300.0, 4179460.0), params={"value_db": 0.0}),
    Defect("saturation", "saturation", "saturated", "s2", ("fall",), "all", "disk",
           (447500.0, 4169000.0, 550.0), params={"bands": ["B2", "B3", "B4", "B8"]}),
)


# --- shapes (pure numpy) -------------------------------------------------------------------

def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def weight(defect: Defect, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Strength of a defect (0..1, float64) at points ``x``, ``y`` (EPSG:32618 metres):
    1 inside its shape, falling to 0 over ``edge_m`` outside (smoothstep), 0 beyond."""
    if defect.shape == "box":
        x0, y0, x1, y1 = defect.geometry
        dx = np.maximum(np.maximum(x0 - x, x - x1), 0.0)
        dy = np.maximum(np.maximum(y0 - y, y - y1), 0.0)
        d = np.hypot(dx, dy)
    elif defect.shape == "disk":
        cx, cy, r = defect.geometry
        d = np.maximum(np.hypot(x - cx, y - cy) - r, 0.0)
    else:
        raise ValueError(f"unknown defect shape {defect.shape!r}")
    if defect.edge_m <= 0:
        return (d <= 0).astype(np.float64)
    return 1.0 - _smoothstep(d / defect.edge_m)


def pixel_centres(transform: Any, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) of the pixel centres of a north-up grid, broadcastable (1, W) and (H, 1)."""
    h, w = shape
    x = transform.c + transform.a * (np.arange(w) + 0.5)
    y = transform.f + transform.e * (np.arange(h) + 0.5)
    return x[None, :], y[:, None]


# --- injection (pure numpy) ----------------------------------------------------------------

def apply_s2(l1c: np.ndarray, defect: Defect, w: np.ndarray) -> np.ndarray:
    """A Sentinel-2 defect on (13, H, W) uint16 L1C DN given its (H, W) weight; a copy."""
    out = l1c.copy()
    valid = np.any(l1c != 0, axis=0)
    hit = (w > 0) & valid
    if not hit.any():
        return out
    if defect.kind == "nodata_hole":
        out[:, w >= 1.0] = 0
    elif defect.kind == "saturation":
        for band in defect.params["bands"]:
            out[S2_BANDS.index(band), w >= 1.0] = SATURATED_DN
    elif defect.kind == "thin_cloud":
        a = (defect.params["opacity"] * w[hit]).astype(np.float32)
        for b, c in enumerate(THIN_CLOUD_REFLECTANCE):
            v = out[b, hit].astype(np.float32)
            v = v * (1.0 - a) + np.float32(c * 10000.0) * a
            out[b, hit] = np.clip(np.rint(v), 1, 65534).astype(np.uint16)
    elif defect.kind == "seam":
        g = (1.0 + (defect.params["gain"] - 1.0) * w[hit]).astype(np.float32)
        for b in range(out.shape[0]):
            v = out[b, hit].astype(np.float32) * g
            out[b, hit] = np.clip(np.rint(v), 1, 65534).astype(np.uint16)
    else:
        raise ValueError(f"{defect.id}: {defect.kind} is not a Sentinel-2 defect")
    return out


def apply_s1(s1: np.ndarray, defect: Defect, w: np.ndarray) -> np.ndarray:
    """A Sentinel-1 defect on (2, H, W) float32 dB given its weight; a copy."""
    if defect.kind != "sar_stripe":
        raise ValueError(f"{defect.id}: {defect.kind} is not a Sentinel-1 defect")
    out = s1.copy()
    out[:, (w >= 1.0) & ~np.any(np.isnan(s1), axis=0)] = np.float32(defect.params["value_db"])
    return out


def apply_lc(lc: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """Land-cover no-data (255) on the (H, W) bool cells ``hole`` of (4, H, W) classes."""
    out = lc.copy()
    out[:, hole] = 255
    return out


def lc_hole_cells(defect: Defect, transform: Any, crs: Any, shape: tuple[int, int]
                  ) -> np.ndarray:
    """(H, W) bool: the land-cover cells (any CRS) whose centre lies in the defect's shape."""
    cx, cy = pixel_centres(transform, shape)
    cx, cy = np.broadcast_arrays(cx, cy)
    x, y = Transformer.from_crs(crs, CRS, always_xy=True).transform(cx.ravel(), cy.ravel())
    w = weight(defect, np.asarray(x), np.asarray(y))
    return (w >= 1.0).reshape(shape)


# --- the archive ---------------------------------------------------------------------------

def _read(path: Path) -> tuple[np.ndarray, dict[str, Any]]:
    with rasterio.open(path) as src:
        meta = {"crs": src.crs, "transform": src.transform, "nodata": src.nodata,
                "descriptions": tuple(d or "" for d in src.descriptions),
                "tags": src.tags(), "dtype": src.dtypes[0]}
        return src.read(), meta


def _targets(defect: Defect, acquisitions: list[dict]) -> list[str]:
    """Archive paths (relative) a defect modifies."""
    if defect.modality == "lc":
        return [a["path"] for a in acquisitions if a["modality"] == "lc"]
    out = []
    for a in acquisitions:
        if a["modality"] != defect.modality or a.get("season") not in defect.seasons:
            continue
        stamp = a.get("sensing_time", "")[:10].replace("-", "")
        if defect.acquisitions in ("all", stamp):
            out.append(a["path"])
    return out


def truth_mask(defect: Defect, transform: Any, shape: tuple[int, int],
               lc_source: tuple[Any, Any, tuple[int, int]] | None = None) -> np.ndarray:
    """(H, W) uint8 truth of a defect on a EPSG:32618 grid: 2 where it is at full strength
    (its core), 1 where it has any effect (soft edge, or 2 pixels around a hard edge, which
    the warps blend), 0 elsewhere. For a land-cover hole the core is the set of 10 m pixels
    whose land-cover cell is a hole (``lc_source``: that grid's transform, CRS, shape)."""
    x, y = pixel_centres(transform, shape)
    if defect.modality == "lc" and lc_source is not None:
        lt, lcrs, lshape = lc_source
        cells = lc_hole_cells(defect, lt, lcrs, lshape)
        xx, yy = np.broadcast_arrays(x, y)
        tx, ty = Transformer.from_crs(CRS, lcrs, always_xy=True).transform(xx.ravel(),
                                                                           yy.ravel())
        col = np.floor((np.asarray(tx) - lt.c) / lt.a).astype(np.int64)
        row = np.floor((np.asarray(ty) - lt.f) / lt.e).astype(np.int64)
        ok = (row >= 0) & (row < lshape[0]) & (col >= 0) & (col < lshape[1])
        core = np.zeros(row.shape, bool)
        core[ok] = cells[row[ok], col[ok]]
        core = core.reshape(shape)
    else:
        w = weight(defect, x, y)
        w = np.broadcast_to(w, shape)
        core = w >= (2.0 / 3.0 if defect.kind == "thin_cloud" else 1.0)
        if defect.edge_m > 0:
            out = np.where(w > 0, 1, 0).astype(np.uint8)
            out[core] = 2
            return out
    out = ndimage.binary_dilation(core, iterations=2).astype(np.uint8)
    out[core] = 2
    return out


def has_defects(archive: Path | str) -> bool:
    """Whether an archive carries injected defects."""
    return (Path(archive) / DEFECTS_JSON).exists()


def inject_defects(archive: Path | str, defects: Iterable[Defect] = DEFECTS) -> dict[str, Any]:
    """Inject ``defects`` into the demo archive at ``archive`` (its ``archive.json`` lists the
    acquisitions) and write the ground truth; returns the ``truth/defects.json`` content.

    Idempotent: a modified file carries the GeoTIFF tag ``DEFECTS`` with the ids applied, and
    a defect already listed there is not applied again.
    """
    root = Path(archive)
    summary = json.loads((root / "archive.json").read_text())
    acquisitions = summary["acquisitions"]
    defects = list(defects)
    s2_ref = next(a["path"] for a in acquisitions if a["modality"] == "s2")
    with rasterio.open(root / s2_ref) as ref:
        grid_t, grid_shape = ref.transform, (ref.height, ref.width)
        if ref.crs.to_string() != CRS:
            raise ValueError(f"{root}: the demo defects are placed in {CRS}, the archive is "
                             f"in {ref.crs}")
    lc_path = next((a["path"] for a in acquisitions if a["modality"] == "lc"), None)
    lc_source = None
    if lc_path:
        with rasterio.open(root / lc_path) as src:
            lc_source = (src.transform, src.crs, (src.height, src.width))

    by_file: dict[str, list[Defect]] = {}
    for d in defects:
        for rel in _targets(d, acquisitions):
            by_file.setdefault(rel, []).append(d)
    for rel, ds in sorted(by_file.items()):
        path = root / rel
        with rasterio.open(path) as src:
            done = set(filter(None, src.tags().get(TAG, "").split(",")))
        todo = [d for d in ds if d.id not in done]
        if not todo:
            continue
        data, meta = _read(path)
        shape = data.shape[1:]
        for d in todo:
            if d.modality == "lc":
                data = apply_lc(data, lc_hole_cells(d, meta["transform"], meta["crs"], shape))
                continue
            x, y = pixel_centres(meta["transform"], shape)
            w = np.broadcast_to(weight(d, x, y), shape)
            data = apply_s2(data, d, w) if d.modality == "s2" else apply_s1(data, d, w)
        tags = {**meta["tags"], TAG: ",".join(sorted(done | {d.id for d in todo}))}
        extra = {"predictor": 2, "interleave": "band"} if ds[0].modality == "s2" else {}
        write_raster(path, data, crs=meta["crs"], transform=meta["transform"],
                     nodata=meta["nodata"], descriptions=meta["descriptions"], tags=tags,
                     zlevel=1, **extra)
        log.info("defects %s injected into %s", ", ".join(d.id for d in todo), rel)

    to_geo = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    entries = []
    for d in defects:
        mask = truth_mask(d, grid_t, grid_shape, lc_source)
        rel_mask = f"truth/defect_{d.id}.tif"
        write_raster(root / rel_mask, mask[None], crs=CRS, transform=grid_t, nodata=None,
                     descriptions=(f"defect {d.id}: 2 core, 1 margin",),
                     tags={"DEFECT": d.id, "KIND": d.kind})
        x0, y0, x1, y1 = _bounds(d)
        ring = [to_geo.transform(x, y) for x, y in ((x0, y0), (x1, y0), (x1, y1), (x0, y1),
                                                     (x0, y0))]
        entries.append({**asdict(d), "files": sorted(_targets(d, acquisitions)),
                        "mask": rel_mask, "core_pixels": int((mask == 2).sum()),
                        "bounds_utm": [x0, y0, x1, y1],
                        "footprint_lonlat": [[round(a, 6), round(b, 6)] for a, b in ring]})
    truth = {"version": VERSION, "crs": CRS,
             "description": "defects injected by sen12ms_build.demo.defects for measuring the "
                            "curation rounds; masks: 2 core, 1 margin (soft edge)",
             "defects": entries}
    text = json.dumps(truth, indent=1) + "\n"
    path = root / DEFECTS_JSON
    if not path.exists() or path.read_text() != text:
        atomic_write_text(path, text)
    return truth


def _bounds(d: Defect) -> tuple[float, float, float, float]:
    """Bounding box of a defect's effect (shape plus soft edge), EPSG:32618."""
    if d.shape == "box":
        x0, y0, x1, y1 = d.geometry
    else:
        cx, cy, r = d.geometry
        x0, y0, x1, y1 = cx - r, cy - r, cx + r, cy + r
    e = d.edge_m
    return x0 - e, y0 - e, x1 + e, y1 + e


def copy_archive(src: Path | str, dst: Path | str) -> Path:
    """Copy an archive folder by hard links where possible (defect injection then replaces
    the files it changes, so ``src`` is never modified)."""
    import os
    import shutil

    src, dst = Path(src), Path(dst)
    for p in sorted(src.rglob("*")):
        t = dst / p.relative_to(src)
        if p.is_dir():
            t.mkdir(parents=True, exist_ok=True)
            continue
        t.parent.mkdir(parents=True, exist_ok=True)
        if t.exists():
            continue
        try:
            os.link(p, t)
        except OSError:
            shutil.copy2(p, t)
    return dst


# --- evaluation ----------------------------------------------------------------------------

#: A patch is *affected* by a defect when the defect's core covers at least this share of it.
MIN_COVER = 0.05
#: A patch whose final mosaic holds at least this share of the demo archive's own cloud or
#: shadow truth (left by the mosaic, e.g. shadows on water, which the shadow score excludes)
#: is neither clean nor a defect patch: it is counted apart.
RESIDUAL_MIN = 0.001
#: A seam patch must hold at least this many pixel pairs across a boundary between the
#: defect's acquisition and another one inside the defect's core (a ~640 m seam).
SEAM_MIN_PAIRS = 64


@dataclass
class DefectScore:
    """How the rounds did on one defect."""

    id: str
    check: str
    affected: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)

    @property
    def recall(self) -> float:
        return len(self.rejected) / len(self.affected) if self.affected else float("nan")


@dataclass
class Evaluation:
    """Per-defect recall and the false-reject rate on clean patches."""

    defects: list[DefectScore]
    clean: int = 0
    clean_rejected: list[str] = field(default_factory=list)
    clean_reasons: dict[str, int] = field(default_factory=dict)
    marginal: int = 0
    residual: list[str] = field(default_factory=list)
    residual_rejected: list[str] = field(default_factory=list)

    @property
    def false_reject_rate(self) -> float:
        return len(self.clean_rejected) / self.clean if self.clean else float("nan")

    def as_dict(self) -> dict[str, Any]:
        return {"defects": {d.id: {"check": d.check, "affected": len(d.affected),
                                   "rejected": len(d.rejected), "recall": d.recall,
                                   "reasons": d.reasons} for d in self.defects},
                "clean": self.clean, "clean_rejected": len(self.clean_rejected),
                "false_reject_rate": self.false_reject_rate,
                "clean_reasons": self.clean_reasons, "marginal": self.marginal,
                "residual": len(self.residual),
                "residual_rejected": len(self.residual_rejected)}

    def lines(self) -> list[str]:
        out = [f"{'defect':<12} {'check':<10} {'affected':>8} {'rejected':>8} {'recall':>7}"
               "  rejected by"]
        for d in self.defects:
            why = ", ".join(f"{k} {v}" for k, v in sorted(d.reasons.items()))
            out.append(f"{d.id:<12} {d.check:<10} {len(d.affected):>8} {len(d.rejected):>8} "
                       f"{d.recall:>7.3f}  {why}")
        why = ", ".join(f"{k} {v}" for k, v in sorted(self.clean_reasons.items()))
        out.append(f"clean patches: {self.clean}, falsely rejected: "
                   f"{len(self.clean_rejected)} ({100 * self.false_reject_rate:.2f} %)"
                   f"{'; ' + why if why else ''}; partly touched (not scored): "
                   f"{self.marginal}")
        out.append(f"patches with the demo's own residual cloud/shadow (>= "
                   f"{100 * RESIDUAL_MIN:g} %, not injected): {len(self.residual)}, rejected: "
                   f"{len(self.residual_rejected)}")
        return out


def _scene_mask(archive: Path, rel: str, grid_t: Any, shape: tuple[int, int],
                crs: Any) -> np.ndarray:
    from rasterio.warp import Resampling, reproject

    out = np.zeros(shape, np.uint8)
    with rasterio.open(archive / rel) as src:
        reproject(rasterio.band(src, 1), out, dst_transform=grid_t, dst_crs=crs,
                  resampling=Resampling.nearest, dst_nodata=0)
    return out


def seam_pairs(source: np.ndarray, index: int, core: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels of acquisition ``index`` inside ``core`` next to (4-neighbour)
    a pixel of another acquisition; ``source`` is the mosaic's source index (255 none)."""
    out = np.zeros(source.shape, bool)
    a = source == index
    other = (source != index) & (source != 255)
    out[:, :-1] |= a[:, :-1] & other[:, 1:]
    out[:, 1:] |= a[:, 1:] & other[:, :-1]
    out[:-1, :] |= a[:-1, :] & other[1:, :]
    out[1:, :] |= a[1:, :] & other[:-1, :]
    return out & core


def evaluate(root: Path | str, archive: Path | str, size: int = 256, stride: int = 128,
             min_cover: float = MIN_COVER) -> Evaluation:
    """Score a finished run at ``root`` (built from the defect archive ``archive``).

    A patch is *affected* by a defect of its season when the defect's core covers at least
    ``min_cover`` of it (a seam, in addition, needs :data:`SEAM_MIN_PAIRS` boundary pixels of
    the gained acquisition in the mosaic); it is *clean* when no defect of its season touches
    it at all (core or margin); the rest are *marginal* and not scored. A patch counts as
    rejected when the scene round or the patch round rejected it.
    """
    from ..dataset import layout
    from ..dataset.finalize import scene_records
    from ..state import state_path
    from ..state import State
    from ..raster.tiling import patch_windows

    root, archive = Path(root), Path(archive)
    truth = json.loads((archive / DEFECTS_JSON).read_text())
    entries = truth["defects"]
    with State(state_path(root)) as st:
        exports = {(b, s): r for b, s, r in st.records("export")}
    scores = {e["id"]: DefectScore(e["id"], e["check"]) for e in entries}
    ev = Evaluation(list(scores.values()))
    for rec, patches in scene_records(root):
        branch, scene, season = rec["branch"], rec["scene"], rec["season"]
        wd = layout.scene_workdir(root, rec["seed"], season, scene)
        s2 = wd / "utm" / "s2.tif"
        if not s2.exists():
            continue
        with rasterio.open(s2) as src:
            grid_t, shape, crs = src.transform, (src.height, src.width), src.crs
        meta_files = [Path(i["file"]).stem for i in
                      exports.get((branch, scene), {}).get("meta", {}).get("s2_images", [])]
        residual = _residual(archive, wd / "utm" / "aux.tif", meta_files, grid_t, shape, crs)
        status = {p["patch"]: p["kept"] for p in patches}
        reason = {p["patch"]: p["reason"] for p in patches}
        windows = patch_windows(shape[1], shape[0], size, stride)
        touched = np.zeros(len(windows), bool)
        for e in entries:
            if season not in e["seasons"]:
                continue
            mask = _scene_mask(archive, e["mask"], grid_t, shape, crs)
            if not mask.any():
                continue
            core = mask == 2
            if e["kind"] == "seam":
                files = meta_files
                stem = Path(e["files"][0]).stem if e["files"] else None
                if stem in files and (wd / "utm" / "aux.tif").exists():
                    with rasterio.open(wd / "utm" / "aux.tif") as src:
                        pairs = seam_pairs(src.read(1), files.index(stem), core)
                else:
                    pairs = np.zeros(shape, bool)
            for k, w in enumerate(windows):
                sl = np.s_[w.row:w.row + size, w.col:w.col + size]
                if mask[sl].any():
                    touched[k] = True
                hit = core[sl].mean() >= min_cover
                if e["kind"] == "seam":
                    hit = hit and int(pairs[sl].sum()) >= SEAM_MIN_PAIRS
                if not hit:
                    continue
                pid = f"{branch}_{scene}_p{w.patch}"
                sc = scores[e["id"]]
                sc.affected.append(pid)
                if not status.get(w.patch, False):
                    sc.rejected.append(pid)
                    why = reason.get(w.patch) or f"scene:{rec.get('reason', '')}"
                    sc.reasons[why] = sc.reasons.get(why, 0) + 1
        affected = {p for sc in scores.values() for p in sc.affected}
        for k, w in enumerate(windows):
            pid = f"{branch}_{scene}_p{w.patch}"
            if touched[k]:
                ev.marginal += pid not in affected
                continue
            if residual is not None and residual[w.row:w.row + size,
                                                 w.col:w.col + size].mean() >= RESIDUAL_MIN:
                ev.residual.append(pid)
                if not status.get(w.patch, False):
                    ev.residual_rejected.append(pid)
                continue
            ev.clean += 1
            if not status.get(w.patch, False):
                ev.clean_rejected.append(pid)
                why = reason.get(w.patch) or f"scene:{rec.get('reason', '')}"
                ev.clean_reasons[why] = ev.clean_reasons.get(why, 0) + 1
    return ev


def _residual(archive: Path, aux_path: Path, stems: list[str], grid_t: Any,
              shape: tuple[int, int], crs: Any) -> np.ndarray | None:
    """(H, W) bool: pixels of a scene's mosaic that its source acquisition's cloud or shadow
    truth marks (the demo archive's own clouds, left in the mosaic); None without truth."""
    if not aux_path.exists() or not stems:
        return None
    with rasterio.open(aux_path) as src:
        source = src.read(1)
    out = np.zeros(shape, bool)
    for i, stem in enumerate(stems):
        sel = source == i
        if not sel.any():
            continue
        for kind in ("cloud", "shadow"):
            rel = f"truth/{stem}_{kind}.tif"
            if (archive / rel).exists():
                out |= sel & (_scene_mask(archive, rel, grid_t, shape, crs) > 0)
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def evaluation_json(ev: Evaluation) -> str:
    """The evaluation as JSON text (NaN as null)."""
    d = ev.as_dict()
    for v in d["defects"].values():
        v["recall"] = _jsonable(v["recall"])
    d["false_reject_rate"] = _jsonable(d["false_reject_rate"])
    return json.dumps(d, indent=1)
